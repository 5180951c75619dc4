"""ttrpc, containerd's RPC over a unix socket: framing, unary requests and responses.

No maintained ttrpc library exists for Python, and the task API needs only unary calls, so this
is the protocol as github.com/containerd/ttrpc (channel.go, types.go) puts it on the wire:

    | length uint32 BE | stream id uint32 BE | type uint8 | flags uint8 |  payload (length bytes)
    type 1: Request{service, method, payload, timeout_nano, metadata}      client -> server
    type 2: Response{status: google.rpc.Status, payload}                   server -> client

A client numbers its streams 1, 3, 5, ...; a response carries its request's stream id, and
responses may come back in any order (the shim answers `Wait` only when the process exits). A
payload is at most 4 MiB. No handshake: the socket's permissions (0600, root) are the check.
"""

from __future__ import annotations

import _socket
import struct

from pyrunc.shim import messages as m
from pyrunc.shim import wire

HEADER_LEN = 10
MAX_PAYLOAD = 4 << 20
REQUEST, RESPONSE = 1, 2
_HEADER = struct.Struct(">IIBB")

# google.golang.org/grpc/codes
OK, UNKNOWN, INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS = 0, 2, 3, 5, 6
FAILED_PRECONDITION, UNIMPLEMENTED, INTERNAL, UNAVAILABLE = 9, 12, 13, 14


class RpcError(Exception):
    """An error status, as a handler raises it or a client receives it."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ProtocolError(Exception):
    """The peer broke the framing; the connection is closed."""


def frame(stream: int, kind: int, payload: bytes) -> bytes:
    return _HEADER.pack(len(payload), stream, kind, 0) + payload


class Frames:
    """Reassembles frames from the bytes a socket gives, however they are split."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, int, bytes]]:
        """(stream id, type, payload) of each frame completed by `data`."""
        self.buf += data
        out = []
        while len(self.buf) >= HEADER_LEN:
            length, stream, kind, _ = _HEADER.unpack_from(self.buf)
            if length > MAX_PAYLOAD:
                raise ProtocolError(f"message of {length} bytes exceeds {MAX_PAYLOAD}")
            if len(self.buf) < HEADER_LEN + length:
                break
            out.append((stream, kind, bytes(self.buf[HEADER_LEN:HEADER_LEN + length])))
            del self.buf[:HEADER_LEN + length]
        return out


def response(payload: bytes = b"", error: RpcError | None = None) -> bytes:
    if error is None:
        return wire.encode(m.RESPONSE, {"payload": payload})
    return wire.encode(m.RESPONSE, {"status": {"code": error.code, "message": error.message}})


def request(service: str, method: str, payload: bytes, timeout_ns: int = 0,
            metadata: dict[str, str] | None = None) -> bytes:
    md: list[wire.Msg] = [{"key": k, "value": v} for k, v in (metadata or {}).items()]
    return wire.encode(m.REQUEST, {"service": service, "method": method, "payload": payload,
                                   "timeout_nano": timeout_ns, "metadata": md})


def unix_path(address: str) -> str:
    """containerd's addresses: `unix:///path` is a file, a bare name an abstract socket."""
    if address.startswith("unix://"):
        return address[len("unix://"):]
    return address if address.startswith("/") else "\0" + address


class Client:
    """A blocking unary client: the shim's event publisher, and the tests."""

    def __init__(self, address: str, timeout: float = 5.0) -> None:
        self.sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(unix_path(address))
        except OSError:
            self.sock.close()
            raise
        self.next_stream = 1
        self.frames = Frames()

    def close(self) -> None:
        self.sock.close()

    def call(self, service: str, method: str, payload: bytes,
             metadata: dict[str, str] | None = None) -> bytes:
        """The response payload; RpcError for an error status, OSError when the link fails."""
        stream = self.next_stream
        self.next_stream += 2
        self.sock.sendall(frame(stream, REQUEST, request(service, method, payload,
                                                         metadata=metadata)))
        while True:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionResetError("ttrpc: connection closed before the response")
            for got, kind, body in self.frames.feed(data):
                if got == stream and kind == RESPONSE:
                    resp = wire.decode(m.RESPONSE, body)
                    status = wire.sub(resp, "status")
                    if wire.num(status, "code"):
                        raise RpcError(wire.num(status, "code"), wire.text(status, "message"))
                    return wire.raw(resp, "payload")
