"""Issue 4's escapes through the real CLI. CVE-2019-5736 for a Python runtime: the container's
binary is a script `#!/proc/self/exe`, so the init's execve runs the host's interpreter inside the
container; that process then tries to get the interpreter file opened for writing."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess  # noqa: TID251 - tests may pay for it
from pathlib import Path

import pytest

pytestmark = pytest.mark.requires("root", "busybox")

HOSTILE = """#!/proc/self/exe
import os
res = {"exe": os.readlink("/proc/self/exe")}
for path in ["/proc/self/exe", "/proc/1/exe"] + [
        "/proc/self/map_files/" + n for n in sorted(os.listdir("/proc/self/map_files"))]:
    try:
        os.close(os.open(path, os.O_WRONLY))
        res[path] = 0
    except OSError as exc:
        res[path] = exc.errno
print("RESULT " + repr(res), flush=True)
# The real attack: keep a handle, let the interpreter stop running, then reopen it for writing
# (`true >>` opens and writes nothing).
fd = os.open("/proc/self/exe", os.O_PATH)
os.set_inheritable(fd, True)
os.execv("/bin/sh", ["sh", "-c", "true >> /proc/self/fd/%d; echo REOPEN rc=$?" % fd])
"""


def host_interpreter() -> str:
    return os.path.realpath("/usr/bin/python3") if os.path.exists("/usr/bin/python3") else ""


def sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def add_interpreter_deps(rootfs: Path, interp: str) -> None:
    """Copies (never bind mounts) of what the host interpreter needs to start in the container:
    its shared libraries and the `encodings` package; the rest of its startup is frozen."""
    ldd = subprocess.run(["ldd", interp], capture_output=True, text=True, check=True).stdout
    for lib in re.findall(r"(/\S+) \(0x", ldd):
        dest = rootfs / lib.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(os.path.realpath(lib), dest)
    ver = subprocess.run([interp, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                         capture_output=True, text=True, check=True).stdout.strip()
    src = Path(f"/usr/lib/python{ver}/encodings")
    shutil.copytree(src, rootfs / f"usr/lib/python{ver}/encodings", symlinks=True,
                    ignore=shutil.ignore_patterns("__pycache__"))


def _hostile_bundle(make_bundle, *args: str):  # type: ignore[no-untyped-def]
    b = make_bundle(*args)
    add_interpreter_deps(b.rootfs, host_interpreter())
    (b.rootfs / "hostile").write_text(HOSTILE)
    (b.rootfs / "hostile").chmod(0o755)
    return b


@pytest.mark.skipif(not host_interpreter(), reason="needs /usr/bin/python3")
def test_hostile_proc_self_exe_shebang_through_exec(runtime, make_bundle, cid) -> None:  # type: ignore[no-untyped-def]
    """`exec` joins with a Python process: the script's #!/proc/self/exe runs the host
    interpreter inside the container, which must not be able to write it (read-only mount)."""
    interp = host_interpreter()
    before = sha256(interp)
    b = _hostile_bundle(make_bundle, "sleep", "30")
    assert runtime.run("run", "-d", "-b", str(b.path), cid).rc == 0
    r = runtime.run("exec", cid, "/hostile")
    line = next((ln for ln in r.out.splitlines() if ln.startswith("RESULT ")), None)
    assert line is not None, f"the hostile script did not run: rc={r.rc} {r.err}{r.out}"
    import ast

    res = ast.literal_eval(line[len("RESULT "):])
    opened = [p for p, e in res.items() if p != "exe" and e == 0]
    assert opened == [], f"opened for writing: {opened}"
    assert "REOPEN rc=1" in r.out, r.out + r.err
    # EROFS from the guard; while pytest itself runs the same file the kernel answers ETXTBSY
    # first, so the read-only mount is also checked by name (and EROFS in test_escapes_exeguard).
    assert re.search(r"Read-only file system|Text file busy", r.err), r.err
    assert res["exe"] == "/run/pyrunc/exe/python3"
    assert sha256(interp) == before


@pytest.mark.skipif(not host_interpreter(), reason="needs /usr/bin/python3")
def test_hostile_proc_self_exe_shebang_as_init(runtime, make_bundle, cid) -> None:  # type: ignore[no-untyped-def]
    """The init execs the workload from pyrunc.container.barrier's sealed memfd: #!/proc/self/exe then names
    that small program, never the host interpreter, and the attack cannot even start."""
    from pyrunc.container import barrier

    if not barrier.available():
        pytest.skip("the barrier program is x86_64 only")
    interp = host_interpreter()
    before = sha256(interp)
    b = _hostile_bundle(make_bundle, "/hostile")
    r = runtime.run("run", "-b", str(b.path), cid)
    assert r.rc == 127, r.out + r.err
    assert "RESULT" not in r.out
    assert "exec of the container process failed" in r.err
    assert sha256(interp) == before


@pytest.mark.parametrize("kind", ["symlink-out", "symlink-in", "file"])
def test_proc_must_be_an_ordinary_directory(runtime, make_bundle, cid, tmp_path, kind) -> None:  # type: ignore[no-untyped-def]
    """CVE-2019-16884 / CVE-2019-19921 class: procfs is mounted on a real directory of the rootfs,
    never through a link (a fake /proc would take the writes meant for procfs); runc refuses too."""
    b = make_bundle("true")
    (b.rootfs / "proc").rmdir()
    if kind == "file":
        (b.rootfs / "proc").write_text("")
    else:
        (b.rootfs / "fakeproc").mkdir()
        (b.rootfs / "proc").symlink_to(str(tmp_path / "host") if kind == "symlink-out" else "fakeproc")
    r = runtime.run("run", "-b", str(b.path), cid, timeout=30)
    assert r.rc == 1
    assert "/proc: proc must be mounted on an ordinary directory" in r.err
    assert not (tmp_path / "host").exists()
    assert not (runtime.root / cid).exists()


def test_dev_symlink_keeps_device_nodes_in_the_root(runtime, make_bundle, cid, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A rootfs whose /dev is a symlink to a host path: the device nodes and links are made inside
    the root (the link is resolved there), never on the host."""
    host = tmp_path / "hostdev"
    host.mkdir()
    b = make_bundle("ls", "/dev/null", "/dev/zero")
    shutil.rmtree(b.rootfs / "dev")
    (b.rootfs / "dev").symlink_to(str(host))
    b.config["mounts"] = [m for m in b.config["mounts"] if not m["destination"].startswith("/dev")]
    b.write()
    r = runtime.run("run", "-b", str(b.path), cid, timeout=30)
    assert r.rc == 0, r.err
    assert list(host.iterdir()) == []
    assert (b.rootfs / str(host).lstrip("/") / "null").is_char_device()
