"""The createRuntime hook that brings `lo` up in a container's new network namespace.

Run by the runtime with the container's state JSON on stdin; enters the network namespace of
the state's `pid` and sets lo up with the SIOCSIFFLAGS ioctl on a socket opened there (a
socket belongs to the network namespace it was made in): no pyroute2 (250-365 ms to import) and
no `ip` process.
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import os
import socket
import struct
import sys

CLONE_NEWNET = 0x40000000
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
IFREQ = "16sH22x"  # struct ifreq: ifr_name, ifr_flags, the rest of the union


def setns_net(fd: int) -> None:
    # os.setns only exists from Python 3.12.
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns(CLONE_NEWNET): {os.strerror(err)}")


def lo_up(pid: int) -> None:
    fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        setns_net(fd)
    finally:
        os.close(fd)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        req = fcntl.ioctl(sock.fileno(), SIOCGIFFLAGS, struct.pack(IFREQ, b"lo", 0))
        flags = struct.unpack(IFREQ, req)[1]
        fcntl.ioctl(sock.fileno(), SIOCSIFFLAGS, struct.pack(IFREQ, b"lo", flags | IFF_UP))


def main() -> int:
    try:
        state = json.load(sys.stdin)
        lo_up(int(state["pid"]))
    except (OSError, ValueError, KeyError, IndexError) as exc:
        print(f"pyctr.driver.nethook: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
