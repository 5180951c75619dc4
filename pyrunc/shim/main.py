"""containerd-shim-pyrunc-v2: containerd's shim v2 binary for pyrunc.

containerd runs the binary twice per container (runtime/v2/binary.go, shim.go):

    containerd-shim-pyrunc-v2 -namespace NS -address A -publish-binary B -id ID [-debug] start
        cwd: the bundle; stdin: the runtime options (protobuf Any), if any.
        Prints the ttrpc address of the shim that will serve ID and writes it to ./address
        (containerd reads it back when it restarts). containerd then calls the task API there.
    containerd-shim-pyrunc-v2 -namespace NS -address A -publish-binary B -id ID -bundle DIR delete
        Remove what is left of ID; prints a DeleteResponse (protobuf). containerd runs it after a
        shim died, and also after every task it deletes (its ttrpc client's on-close callback).

Both are usually answered by the launcher's sh (bin/containerd-shim-pyrunc-v2) without starting
Python: `start` when the namespace's shim is up (its info file, daemon.py), `delete` when the
shim has already deleted ID. This module does the rest.

One shim per containerd namespace: the socket is unix:///run/containerd/s/<sha256(A/NS/pyrunc)>.
`start` binds it; if that address is taken by a live shim, `start` answers with it and is done
(no new process, no interpreter beyond its own: this is why `ctr run` is fast here); otherwise it
forks the shim daemon, which inherits the listening socket, so containerd's first call waits in
the backlog while the daemon imports the task service. containerd's runc shim groups only the
containers of one pod (`io.kubernetes.cri.sandbox-id`); a namespace is a superset of that. The
daemon lingers PYRUNC_SHIM_IDLE seconds (60) after its last task is deleted, then exits.

Containers do not depend on the shim: they are not killed when it dies (no pdeathsig; the init
is reparented), and the daemon keeps running when containerd restarts, which reconnects through
each bundle's address file. pyrunc's state for namespace NS is under /run/containerd/pyrunc/NS
(runc's shim uses /run/containerd/runc/NS); the daemon's log is shim.log there
(with -debug, or PYRUNC_SHIM_DEBUG=1 in containerd's environment: each call and its time).
"""

from __future__ import annotations

import _socket
import errno
import sys

from pyrunc.sys import oslite as os

NAME = "containerd-shim-pyrunc-v2"
SOCKET_DIR = "/run/containerd/s"
STATE_DIR = "/run/containerd/pyrunc"
_BOOL_FLAGS = {"debug", "v", "version"}
_FLAGS = {"namespace", "address", "publish-binary", "id", "bundle", "socket"}


class UsageError(Exception):
    pass


def parse(argv: list[str]) -> tuple[dict[str, str], str]:
    """Go's flag package: -name value, -name=value, --name; the first other word is the action."""
    flags: dict[str, str] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("-") or arg in ("-", "--"):
            break
        name, eq, value = arg.lstrip("-").partition("=")
        if name in _BOOL_FLAGS:
            flags[name] = value if eq else "true"
        elif name in _FLAGS:
            if not eq:
                i += 1
                if i >= len(argv):
                    raise UsageError(f"flag needs an argument: -{name}")
                value = argv[i]
            flags[name] = value
        else:
            raise UsageError(f"flag provided but not defined: -{name}")
        i += 1
    if i < len(argv) and argv[i] == "--":
        i += 1
    return flags, argv[i] if i < len(argv) else ""


def socket_address(containerd_address: str, namespace: str) -> str:
    import _sha256

    key = f"{containerd_address.rstrip('/')}/{namespace}/pyrunc".encode()
    return f"unix://{SOCKET_DIR}/{_sha256.sha256(key).hexdigest()}"


def state_root(namespace: str) -> str:
    return f"{STATE_DIR}/{namespace}"


def write_address(path: str, address: str) -> None:
    """Temp file + rename, as containerd's shim.WriteAddress."""
    tmp = os.path.join(os.path.dirname(os.path.abspath(path)), "." + os.path.basename(path))
    os.write_replace(path, address, tmp)


def _listen(path: str) -> tuple[_socket.socket, int] | None:
    """A listening socket at path and the inode of its file, or None when a live shim already
    listens there."""
    os.makedirs(SOCKET_DIR, 0o700, exist_ok=True)
    for _ in range(2):
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
        try:
            sock.bind(path)
        except OSError as exc:
            sock.close()
            if exc.errno != errno.EADDRINUSE:
                raise
            if _can_connect(path):
                return None
            try:
                os.unlink(path)  # a dead shim's socket
            except FileNotFoundError:
                pass
            continue
        os.chmod(path, 0o600)
        sock.listen(128)
        return sock, os.stat(path).st_ino
    raise OSError(errno.EADDRINUSE, "shim socket in use", path)


def _can_connect(path: str) -> bool:
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    sock.settimeout(1.0)
    try:
        sock.connect(path)
    except OSError:
        return False
    finally:
        sock.close()
    return True


def start(flags: dict[str, str]) -> int:
    namespace = flags.get("namespace", "")
    address = socket_address(flags.get("address", ""), namespace)
    path = address[len("unix://"):]
    raw = _read_options()
    if raw:  # refused here rather than at Create: an error before any shim is started
        from pyrunc.shim import options

        shim_cgroup = options.from_bytes(raw).shim_cgroup
    else:
        shim_cgroup = ""
    bound = _listen(path)
    if bound is not None:
        sock, ino = bound
        pid = os.fork()
        if pid == 0:
            try:
                _daemon(sock, path, ino, namespace, flags)
            finally:
                os._exit(0)
        sock.close()
        try:
            _place(pid, shim_cgroup)
        except BaseException:
            os.kill(pid, 9)  # SIGKILL: it has served nothing yet
            from pyrunc.shim.daemon import _unlink_if_ours

            _unlink_if_ours(path, ino)
            raise
    write_address("address", address)
    sys.stdout.write(address)
    return 0


def _read_options() -> bytes:
    """containerd writes the runtime options on stdin (a marshalled Any; nothing with ctr run)."""
    data = b""
    try:
        while chunk := os.read(0, 65536):
            data += chunk
    except OSError:
        pass
    return data


def _place(pid: int, shim_cgroup: str) -> None:
    """What runc's shim manager does to a shim it starts: the options' shim_cgroup, then the
    OOM score."""
    from pyrunc.shim import placement

    if shim_cgroup:
        placement.join_cgroup(pid, shim_cgroup)
    placement.adjust_oom_score(pid)


def _daemon(sock: _socket.socket, path: str, ino: int, namespace: str,
            flags: dict[str, str]) -> None:
    os.setsid()
    root = state_root(namespace)
    os.makedirs(root, 0o711, exist_ok=True)
    os.chdir(root)  # not the bundle: containerd removes it
    null = os.open("/dev/null", os.O_RDWR)
    logfd = os.open(os.path.join(root, "shim.log"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    for fd, target in ((null, 0), (null, 1), (logfd, 2)):
        os.dup2(fd, target)
    os.close(null)
    os.close(logfd)
    from pyrunc.shim import daemon

    daemon.serve(sock, path, ino, root, namespace, os.getenv("TTRPC_ADDRESS") or "",
                 debug=flags.get("debug") == "true" or bool(os.getenv("PYRUNC_SHIM_DEBUG")),
                 containerd_address=flags.get("address", ""))


def delete(flags: dict[str, str]) -> int:
    """Clean up after a dead shim: the container, its rootfs mounts; a DeleteResponse on stdout."""
    import time

    from pyrunc import container
    from pyrunc.container import destroy
    from pyrunc.errors import PyruncError
    from pyrunc.shim import messages, mounts, options, wire

    cid = flags.get("id", "")
    bundle = flags.get("bundle") or os.getcwd()
    base = options.read_root(bundle)  # the task's `root` option, if it had one
    namespace = flags.get("namespace", "")
    root = os.path.join(base, namespace) if base else state_root(namespace)
    pid = 0
    try:
        pid = container.load(root, cid).pid
    except PyruncError:
        pass
    destroy.delete(root, cid, force=True)
    mounts.unmount_rootfs(os.path.join(bundle, "rootfs"))
    now = time.time_ns()
    resp = wire.encode(messages.DELETE_RESPONSE, {
        "pid": pid, "exit_status": 128 + 9,
        "exited_at": {"seconds": now // 1_000_000_000, "nanos": now % 1_000_000_000}})
    sys.stdout.flush()
    os.write(1, resp)
    return 0


def main(argv: list[str]) -> int:
    try:
        flags, action = parse(argv)
        if flags.get("v") == "true" or flags.get("version") == "true":
            from pyrunc.shim.task import VERSION

            sys.stdout.write(f"{NAME}:\n  Version:  {VERSION}\n")
            return 0
        if not flags.get("namespace"):
            raise UsageError("shim namespace cannot be empty")
        if action == "start":
            return start(flags)
        if action == "delete":
            return delete(flags)
        raise UsageError(f"unknown action {action!r}: expected start or delete"
                         if action else "no action: expected start or delete")
    except Exception as exc:  # noqa: BLE001 — the one place that turns errors into exit codes
        sys.stderr.write(f"{NAME}: {exc}\n")
        return 1
