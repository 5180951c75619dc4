"""The ttrpc server side: accept containerd's connections, read requests, write responses.

A handler gets the request's payload and a `Reply`; it answers at once (returns bytes) or keeps
the Reply to answer later (returns None): `Wait` is answered when the process exits, while the
same connection goes on carrying other calls.
"""

from __future__ import annotations

import _socket
import time

from pyrunc import log
from pyrunc._typing import MYPY
from pyrunc.shim import messages as m
from pyrunc.shim import ttrpc, wire
from pyrunc.shim.loop import ERR, IN, OUT, Loop

if MYPY:
    from collections.abc import Callable

    Handler = Callable[[bytes, "Reply"], "bytes | None"]


class Reply:
    """Where the response to one request goes: its connection and stream."""

    def __init__(self, conn: Conn, stream: int) -> None:
        self.conn, self.stream = conn, stream

    def ok(self, payload: bytes) -> None:
        self.conn.send(self.stream, ttrpc.response(payload))

    def error(self, err: ttrpc.RpcError) -> None:
        self.conn.send(self.stream, ttrpc.response(error=err))


class Conn:
    def __init__(self, server: Server, sock: _socket.socket) -> None:
        self.server, self.sock = server, sock
        self.fd = sock.fileno()
        self.frames = ttrpc.Frames()
        self.out = bytearray()
        self.closed = False
        sock.setblocking(False)
        server.loop.add(self.fd, IN, self.on_events)

    def on_events(self, events: int) -> None:
        if events & OUT:
            self.flush()
        if events & (IN | ERR) and not self.closed:
            self.on_readable()

    def on_readable(self) -> None:
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.close()
            return
        try:
            frames = self.frames.feed(data)
        except ttrpc.ProtocolError as exc:
            log.warning(f"ttrpc: {exc}")
            self.close()
            return
        for stream, kind, payload in frames:
            if kind == ttrpc.REQUEST:
                self.server.dispatch(Reply(self, stream), payload)

    def send(self, stream: int, payload: bytes) -> None:
        if self.closed:
            return
        self.out += ttrpc.frame(stream, ttrpc.RESPONSE, payload)
        self.flush()

    def flush(self) -> None:
        try:
            while self.out:
                n = self.sock.send(self.out)
                del self.out[:n]
        except BlockingIOError:
            self.server.loop.modify(self.fd, IN | OUT)
            return
        except OSError:
            self.close()
            return
        self.server.loop.modify(self.fd, IN)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.server.loop.remove(self.fd)
            self.sock.close()
            self.server.conns.discard(self)


class Server:
    def __init__(self, loop: Loop, listener: _socket.socket,
                 on_accept: Callable[[], None] | None = None) -> None:
        self.loop, self.listener = loop, listener
        self.accepted = on_accept
        self.services: dict[tuple[str, str], Handler] = {}
        self.conns: set[Conn] = set()
        listener.setblocking(False)
        loop.add(listener.fileno(), IN, self.on_accept)

    def register(self, service: str, handlers: dict[str, Handler]) -> None:
        for method, fn in handlers.items():
            self.services[(service, method)] = fn

    def on_accept(self, _events: int) -> None:
        while True:
            try:
                fd, _ = self.listener._accept()  # type: ignore[attr-defined]
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning(f"ttrpc: accept: {exc}")
                return
            sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM, 0, fd)
            self.conns.add(Conn(self, sock))
            if self.accepted is not None:
                self.accepted()

    def stop_listening(self) -> None:
        self.loop.remove(self.listener.fileno())
        self.listener.close()

    def dispatch(self, reply: Reply, data: bytes) -> None:
        try:
            req = wire.decode(m.REQUEST, data)
        except wire.DecodeError as exc:
            reply.error(ttrpc.RpcError(ttrpc.INVALID_ARGUMENT, f"ttrpc request: {exc}"))
            return
        service, method = wire.text(req, "service"), wire.text(req, "method")
        handler = self.services.get((service, method))
        if handler is None:
            reply.error(ttrpc.RpcError(ttrpc.UNIMPLEMENTED, f"{service}.{method} not implemented"))
            return
        t0 = time.perf_counter() if log.enabled() else 0.0
        try:
            out = handler(wire.raw(req, "payload"), reply)
        except ttrpc.RpcError as exc:
            log.debug(f"{method}: error {exc.code}: {exc.message}")
            reply.error(exc)
            return
        except wire.DecodeError as exc:
            reply.error(ttrpc.RpcError(ttrpc.INVALID_ARGUMENT, f"{method}: {exc}"))
            return
        except Exception as exc:  # noqa: BLE001 — a bug answers this call, the shim goes on
            log.error(f"{method}: {type(exc).__name__}: {exc}")
            reply.error(ttrpc.RpcError(ttrpc.INTERNAL, f"{method}: {exc}"))
            return
        if out is not None:
            reply.ok(out)
        if t0:
            log.debug(f"{method}: {(time.perf_counter() - t0) * 1000:.2f} ms")
