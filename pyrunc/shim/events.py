"""Publishing task events to containerd: Events.Forward over ttrpc to $TTRPC_ADDRESS.

Events are queued while a call is served and sent once its response is out (the loop's idle
step), in order, one at a time over one connection: the next leaves when containerd has answered
the last (its ttrpc server runs each request in a goroutine of its own, so two in flight could
arrive out of order). The connection is watched by the loop like any other, so the shim goes on
serving calls while containerd handles an event, as the runc shim's publisher goroutine lets it.
containerd away (restarting): the queue is kept and retried every second, for at most 5 minutes'
worth of events, as containerd's own shim requeues them. At exit, what is left is sent blocking.
"""

from __future__ import annotations

import _socket
import time

from pyrunc import log
from pyrunc._typing import MYPY
from pyrunc.shim import messages as m
from pyrunc.shim import ttrpc, wire
from pyrunc.shim.loop import IN

if MYPY:
    from pyrunc.shim.loop import Loop
    from pyrunc.shim.wire import Msg

SERVICE = "containerd.services.events.ttrpc.v1.Events"
_MAX_QUEUE = 4096


class Publisher:
    def __init__(self, loop: Loop, address: str, namespace: str) -> None:
        self.loop, self.address, self.namespace = loop, address, namespace
        self.metadata = {"containerd-namespace-ttrpc": namespace}
        self.queue: list[bytes] = []
        self.sock: _socket.socket | None = None
        self.frames = ttrpc.Frames()
        self.stream = 1  # the next stream id (a client's are odd)
        self.in_flight = 0  # the stream id of the event awaiting containerd's answer
        self.retry: int | None = None
        loop.idle.append(self.flush)

    def publish(self, name: str, event: Msg) -> None:
        topic, table = m.EVENTS[name]
        ns = time.time_ns()
        envelope: Msg = {
            "timestamp": {"seconds": ns // 1_000_000_000, "nanos": ns % 1_000_000_000},
            "namespace": self.namespace, "topic": topic,
            "event": {"type_url": m.EVENT_TYPE_PREFIX + name, "value": wire.encode(table, event)}}
        if len(self.queue) < _MAX_QUEUE:
            self.queue.append(wire.encode(m.FORWARD_REQUEST, {"envelope": envelope}))

    def flush(self) -> None:
        """Send the first queued event, unless one is in flight (the loop's idle step)."""
        if not self.address or self.retry is not None or self.in_flight or not self.queue:
            return
        try:
            sock = self.sock or self._connect()
            stream, self.stream = self.stream, self.stream + 2
            payload = ttrpc.request(SERVICE, "Forward", self.queue[0], metadata=self.metadata)
            sock.sendall(ttrpc.frame(stream, ttrpc.REQUEST, payload))
            self.in_flight = stream
        except OSError as exc:
            self._failed(exc)

    def _connect(self) -> _socket.socket:
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
        sock.settimeout(5.0)  # sends block at most this long (an event is a few hundred bytes)
        try:
            sock.connect(ttrpc.unix_path(self.address))
        except OSError:
            sock.close()
            raise
        self.sock, self.frames = sock, ttrpc.Frames()
        self.loop.add(sock.fileno(), IN, self._on_readable)
        return sock

    def _on_readable(self, _events: int) -> None:
        if self.sock is None:
            return
        try:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionResetError("containerd closed the events connection")
            frames = self.frames.feed(data)
        except (OSError, ttrpc.ProtocolError) as exc:
            self._failed(exc)
            return
        for stream, kind, body in frames:
            if kind == ttrpc.RESPONSE and stream == self.in_flight:
                self._answered(body)

    def _answered(self, body: bytes) -> None:
        status = wire.sub(wire.decode(m.RESPONSE, body), "status")
        if wire.num(status, "code"):  # containerd refused it: resending would not help
            log.warning(f"publishing an event: {wire.text(status, 'message')}")
        self.queue.pop(0)
        self.in_flight = 0
        self.flush()

    def _failed(self, exc: Exception) -> None:
        log.debug(f"publishing events to {self.address}: {exc}; retrying in 1s")
        self._drop_client()
        self.retry = self.loop.call_later(1.0, self._retry)

    def _retry(self) -> None:
        self.retry = None
        self.flush()

    def _drop_client(self) -> None:
        self.in_flight = 0  # resent on the next connection
        if self.sock is not None:
            self.loop.remove(self.sock.fileno())
            self.sock.close()
            self.sock = None

    def drain(self) -> None:
        """At exit: send what is left, blocking, and give up at the first failure."""
        self._drop_client()
        if not self.address or not self.queue:
            return
        try:
            client = ttrpc.Client(self.address, timeout=5.0)
        except OSError as exc:
            log.debug(f"publishing events to {self.address}: {exc}; {len(self.queue)} dropped")
            return
        try:
            while self.queue:
                try:
                    client.call(SERVICE, "Forward", self.queue[0], self.metadata)
                except ttrpc.RpcError as exc:
                    log.warning(f"publishing an event: {exc.message}")
                self.queue.pop(0)
        except OSError as exc:
            log.debug(f"publishing events to {self.address}: {exc}; {len(self.queue)} dropped")
        finally:
            client.close()
