"""Unix socket pairs and fd passing (SCM_RIGHTS) on the C module `_socket`.

`import socket` pulls enum, selectors and collections (~6 ms of every start); the runtime needs
only a socketpair, send/recv and SCM_RIGHTS, which the C socket object has. The sockets made
here are close-on-exec, as Python makes all its sockets.
"""

from __future__ import annotations

import _socket
import struct

AF_UNIX = _socket.AF_UNIX
SOCK_STREAM = _socket.SOCK_STREAM
SOCK_SEQPACKET = _socket.SOCK_SEQPACKET
SOCK_DGRAM = _socket.SOCK_DGRAM
Socket = _socket.socket


def pair(kind: int = SOCK_SEQPACKET) -> tuple[Socket, Socket]:
    a, b = _socket.socketpair(AF_UNIX, kind)
    return a, b


def send_fds(sock: Socket, data: bytes, fds: list[int]) -> None:
    rights = struct.pack(f"{len(fds)}i", *fds)
    sock.sendmsg([data], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, rights)])


def recv_fds(sock: Socket, bufsize: int, maxfds: int) -> tuple[bytes, list[int]]:
    # struct, not array: array pulls collections (~4 ms of every start)
    data, ancdata, _flags, _addr = sock.recvmsg(bufsize, _socket.CMSG_LEN(maxfds * 4))
    fds: list[int] = []
    for level, kind, payload in ancdata:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            n = len(payload) // 4
            fds += struct.unpack(f"{n}i", payload[: n * 4])
    return data, fds


def connect(path: str, kind: int = SOCK_STREAM) -> Socket:
    sock = Socket(AF_UNIX, kind)
    try:
        sock.connect(path)
    except BaseException:
        sock.close()
        raise
    return sock
