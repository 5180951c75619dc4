"""Unix socket pairs and fd passing (SCM_RIGHTS) on the C module `_socket`.

`import socket` pulls enum, selectors and collections (~6 ms of every start); the runtime needs
only a socketpair, send/recv and SCM_RIGHTS, which the C socket object has. The sockets made
here are close-on-exec, as Python makes all its sockets.
"""

from __future__ import annotations

import _socket
import array

AF_UNIX = _socket.AF_UNIX
SOCK_STREAM = _socket.SOCK_STREAM
SOCK_SEQPACKET = _socket.SOCK_SEQPACKET
SOCK_DGRAM = _socket.SOCK_DGRAM
Socket = _socket.socket


def pair(kind: int = SOCK_SEQPACKET) -> tuple[Socket, Socket]:
    a, b = _socket.socketpair(AF_UNIX, kind)
    return a, b


def send_fds(sock: Socket, data: bytes, fds: list[int]) -> None:
    sock.sendmsg([data], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, array.array("i", fds))])


def recv_fds(sock: Socket, bufsize: int, maxfds: int) -> tuple[bytes, list[int]]:
    fds = array.array("i")
    data, ancdata, _flags, _addr = sock.recvmsg(bufsize, _socket.CMSG_LEN(maxfds * fds.itemsize))
    for level, kind, payload in ancdata:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - (len(payload) % fds.itemsize)])
    return data, list(fds)


def connect(path: str, kind: int = SOCK_STREAM) -> Socket:
    sock = Socket(AF_UNIX, kind)
    try:
        sock.connect(path)
    except BaseException:
        sock.close()
        raise
    return sock
