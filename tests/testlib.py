"""What tests share beyond fixtures: the runtime wrapper and busybox bundles (import this, not
conftest: several conftest modules exist and `from conftest import` picks whichever came first)."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

BUSYBOX = "/usr/bin/busybox"


@dataclass
class Result:
    rc: int
    out: str
    err: str


@dataclass
class Runtime:
    """A runtime binary with a private --root; `run(...)` returns rc, stdout, stderr."""

    binary: str
    root: Path

    def argv(self, *args: str, root: bool = True) -> list[str]:
        return [self.binary, *(["--root", str(self.root)] if root else []), *args]

    def run(self, *args: str, input: str | None = None, timeout: float = 60,
            check: bool = False, root: bool = True, **kw: object) -> Result:
        # Files, not pipes: a created container's init keeps the runtime's stdio (it is the
        # container's), so a pipe would not reach EOF until the container exits.
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            if input is None:
                kw.setdefault("stdin", subprocess.DEVNULL)
            p = subprocess.run(self.argv(*args, root=root), input=input, stdout=out, stderr=err,
                               text=True, timeout=timeout, **kw)  # type: ignore[call-overload]
            out.seek(0)
            err.seek(0)
            r = Result(p.returncode, out.read(), err.read())
        if check and r.rc != 0:
            raise AssertionError(f"{args} failed rc={r.rc}: {r.err}{r.out}")
        return r

    def state(self, cid: str) -> dict[str, object]:
        return json.loads(self.run("state", cid, check=True).out)  # type: ignore[no-any-return]


def make_rootfs(rootfs: Path) -> None:
    """A minimal busybox-static root: /bin/<applet> links, /etc/passwd and /etc/group."""
    for d in ("bin", "sbin", "etc", "proc", "sys", "dev", "tmp", "root", "usr/bin"):
        (rootfs / d).mkdir(parents=True, exist_ok=True)
    shutil.copy2(BUSYBOX, rootfs / "bin" / "busybox")
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True)
    for name in applets.stdout.split():
        link = rootfs / "bin" / name
        if not link.exists():
            link.symlink_to("busybox")
    (rootfs / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"
        "app:x:1000:1000:app:/tmp:/bin/sh\n")
    (rootfs / "etc" / "group").write_text(
        "root:x:0:\nnogroup:x:65534:\napp:x:1000:\nextra:x:2000:app\n")
    (rootfs / "tmp").chmod(0o1777)


_ROOTFS_CACHE: dict[str, Path] = {}


def base_config(args: list[str]) -> dict[str, object]:
    """What `pyrunc spec` (as `runc spec`) writes, with `args`, terminal off, hostname pyrunc."""
    from pyrunc.spec.specgen import default_spec

    config = default_spec()
    config["process"]["terminal"] = False
    config["process"]["args"] = args
    config["hostname"] = "pyrunc"
    return config


class Bundle:
    """A bundle directory with a busybox rootfs; edit `.config` and call `.write()`."""

    def __init__(self, path: Path, rootfs_src: Path, args: list[str]) -> None:
        self.path = path
        self.rootfs = path / "rootfs"
        shutil.copytree(rootfs_src, self.rootfs, symlinks=True)
        self.config: dict = base_config(args)  # type: ignore[type-arg]
        self.write()

    def write(self) -> None:
        (self.path / "config.json").write_text(json.dumps(self.config, indent=2))

    @property
    def process(self) -> dict:  # type: ignore[type-arg]
        return self.config["process"]  # type: ignore[no-any-return]

    @property
    def linux(self) -> dict:  # type: ignore[type-arg]
        return self.config["linux"]  # type: ignore[no-any-return]


# --- cgroup test trees ---------------------------------------------------------------------
def cgroup_mounts() -> list[str]:
    from pyrunc.linux.cgroups.layout import detect

    lay = detect()
    return sorted(set(lay.v1.values()) | ({lay.unified} if lay.unified else set()))


def remove_cgroup_tree(path: str) -> None:
    """Kill what is left in a test cgroup tree and remove it (rmdir is EBUSY until they are gone)."""
    if not os.path.isdir(path):
        return
    for top, _dirs, _files in os.walk(path, topdown=False):
        with open(os.path.join(top, "cgroup.procs")) as f:
            for pid in f.read().split():
                os.kill(int(pid), signal.SIGKILL)
    for top, dirs, _files in os.walk(path, topdown=False):
        for d in [*(os.path.join(top, d) for d in dirs)]:
            rmdir_retry(d)
    rmdir_retry(path)


def rmdir_retry(path: str) -> None:
    for _ in range(500):
        try:
            os.rmdir(path)
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                raise
            time.sleep(0.01)
    os.rmdir(path)


# --- unprivileged users -------------------------------------------------------------------------
@dataclass
class HostUser:
    name: str
    uid: int
    gid: int
    home: Path | None = None

    def run(self, *argv: str, env: dict[str, str] | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """`argv` as this user: no supplementary groups, no capabilities.

        setpriv keeps root's capabilities up to its own execve (which then resolves the path
        with CAP_DAC_OVERRIDE): a shell in between, which has none left, makes the real attempt.
        """
        return subprocess.run(["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}",
                               "--clear-groups", "--", "/bin/sh", "-c", 'exec "$@"', "sh",
                               *argv], capture_output=True, text=True, timeout=timeout,
                              env=env, stdin=subprocess.DEVNULL)

    def subids(self, kind: str) -> tuple[int, int]:
        """(start, count) of this user's range in /etc/subuid or /etc/subgid."""
        with open(f"/etc/sub{kind}") as f:
            for line in f:
                name, start, count = line.strip().split(":")
                if name == self.name:
                    return int(start), int(count)
        raise LookupError(f"{self.name} has no range in /etc/sub{kind}")


@contextlib.contextmanager
def rootless_user(name: str, pyrunc: str) -> Iterator[HostUser]:
    """unprivileged_user(name, subids=True), for running `pyrunc` as it: the test is skipped when
    that user cannot run it (a checkout other users cannot read)."""
    import pytest

    with unprivileged_user(name, subids=True) as user:
        if user.run(pyrunc, "--version").returncode != 0:
            pytest.skip("pyrunc's checkout is not readable by other users here")
        yield user


@contextlib.contextmanager
def user_tree(user: HostUser, rootfs: Path, prefix: str, private: str, own_top: bool = False
              ) -> Iterator[Path]:
    """A temp dir (name starting with `prefix`) other users can traverse, holding bundle/rootfs, a
    copy of `rootfs`, and an empty mode-0700 dir `private`; everything under it is `user`'s (and
    the dir itself with `own_top`). Removed at the end."""
    top = Path(tempfile.mkdtemp(prefix=prefix))
    top.chmod(0o755)
    shutil.copytree(rootfs, top / "bundle" / "rootfs", symlinks=True)
    (top / private).mkdir(mode=0o700)
    for path in [*([top] if own_top else []), *top.rglob("*")]:
        os.lchown(path, user.uid, user.gid)
    yield top
    shutil.rmtree(top)


@contextlib.contextmanager
def unprivileged_user(name: str, subids: bool = False) -> Iterator[HostUser]:
    """A user made for the test (useradd) and removed after it (userdel); with `subids`, a
    regular user, which useradd gives ranges in /etc/subuid and /etc/subgid."""
    import pwd

    subprocess.run(["userdel", name], capture_output=True)
    kind = [] if subids else ["--system"]
    subprocess.run(["useradd", *kind, "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                   check=True, capture_output=True)
    try:
        pw = pwd.getpwnam(name)
        yield HostUser(name, pw.pw_uid, pw.pw_gid)
    finally:
        subprocess.run(["userdel", name], check=True, capture_output=True)
