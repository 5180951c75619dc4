"""Issue 16: `pyctr build` from a Dockerfile, with real RUN containers through each runtime.

The base image is the busybox test image (pyctr_fixtures), loaded into each test's private store
as localhost/busybox:latest. RUN steps have no network (`--network none`, the default: a new
network namespace with lo only), so nothing here touches the host's network.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyctr_fixtures import RUNTIME_PARAMS, Pyctr, build_oci_layout, pyctr_in_open_store

pytestmark = pytest.mark.requires("root", "busybox")
BASE = "localhost/busybox:latest"


@pytest.fixture(scope="module")
def base_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An oci-archive of the busybox test image, named localhost/busybox:latest."""
    top = tmp_path_factory.mktemp("bld-base")
    build_oci_layout(top / "layout")
    index = json.loads((top / "layout" / "index.json").read_text())
    index["manifests"][0]["annotations"]["io.containerd.image.name"] = BASE
    (top / "layout" / "index.json").write_text(json.dumps(index))
    archive = top / "busybox-oci.tar"
    with tarfile.open(archive, "w") as tar:
        for entry in (top / "layout").iterdir():
            tar.add(entry, entry.name)
    return archive


@pytest.fixture(params=RUNTIME_PARAMS)
def pyctr(request: pytest.FixtureRequest, base_archive: Path) -> Iterator[Pyctr]:
    for p in pyctr_in_open_store(request.param, "bld"):
        p.run("load", "-i", str(base_archive))
        yield p
        assert not _mounts_under(p.root)
        assert not (p.root / "build").exists() or not os.listdir(p.root / "build")
        runtime_state = p.root / "runtime" / Path(p.runtime).name
        assert not runtime_state.exists() or not os.listdir(runtime_state)


def _mounts_under(path: Path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(str(path))]


def _context(top: Path, files: dict[str, str | bytes]) -> Path:
    for name, data in files.items():
        path = top / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
    return top


def _targz(entries: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, text in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(text)
            info.mode = 0o600
            info.uid = info.gid = 42
            tar.addfile(info, io.BytesIO(text.encode()))
    return buf.getvalue()


def _config(pyctr: Pyctr, image: str) -> dict[str, object]:
    doc: dict[str, object] = json.loads(pyctr.run("inspect", image).out)[0]["Config"]
    return doc


def _layer_names(pyctr: Pyctr, image: str, skip: int) -> list[list[str]]:
    """The entry names of each layer of `image` after the first `skip`."""
    manifest = json.loads(pyctr.run("inspect", image).out)[0]["Manifest"]
    out = []
    for layer in manifest["layers"][skip:]:
        blob = pyctr.root / "blobs" / "sha256" / layer["digest"].removeprefix("sha256:")
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob.read_bytes()))) as tar:
            out.append(tar.getnames())
    return out


EVERYTHING = """\
# syntax=docker/dockerfile:1
ARG BASE=localhost/busybox
FROM ${BASE}:latest AS base
ARG VERSION=0.1
ARG FROM_CLI
LABEL org.example.version=$VERSION "org.example.name"="build test"
ENV APP_HOME=/srv/app GREETING="hello world"
WORKDIR $APP_HOME
COPY *.txt ./
COPY --chown=app:extra --chmod=640 conf/ conf/
ADD files.tar.gz unpacked/
RUN echo "$GREETING $VERSION $FROM_CLI" > run-shell.txt
RUN ["sh", "-c", "id -u > run-exec.txt"]
SHELL ["/bin/sh", "-ec"]
RUN test "$(cat run-exec.txt)" = 0; \\
    echo shell-ok > shell.txt
USER app
RUN id -un > /tmp/who && touch /tmp/mine
USER root
EXPOSE 8080 53/udp
VOLUME ["/data"]
STOPSIGNAL SIGUSR1
HEALTHCHECK --interval=5s --timeout=2s --retries=4 CMD test -e /srv/app/shell.txt
ENTRYPOINT ["/bin/sh", "-c", "echo entry: $0 $@", "from-entrypoint"]
CMD ["arg1", "arg2"]
"""


def test_every_instruction(pyctr: Pyctr, tmp_path: Path) -> None:
    ctx = _context(tmp_path / "ctx", {
        "Dockerfile": EVERYTHING, "a.txt": "A\n", "b.txt": "B\n", "secret.txt": "no\n",
        "conf/app.conf": "x=1\n", "conf/skip.tmp": "tmp\n",
        "files.tar.gz": _targz({"d/inner.txt": "inner\n"}),
        ".dockerignore": "# comments and blank lines are skipped\n\nsecret*\n**/*.tmp\n"})
    r = pyctr.run("build", "-t", "bld/every:1", "--build-arg", "FROM_CLI=cli-value",
                  "--build-arg", "UNUSED=1", str(ctx))
    assert "Successfully tagged bld/every:1" in r.out
    assert "Step 22/22 : CMD" in r.out
    assert "UNUSED" in r.err and "FROM_CLI" not in r.err
    config = _config(pyctr, "bld/every:1")
    c = config["config"]
    assert isinstance(c, dict)
    assert c["Labels"] == {"org.example.test": "pyctr", "org.example.version": "0.1",
                           "org.example.name": "build test"}
    assert {"APP_HOME=/srv/app", "GREETING=hello world", "FROM_IMAGE=yes"} <= set(c["Env"])
    assert not any(e.startswith(("VERSION=", "FROM_CLI=")) for e in c["Env"])  # ARGs stay out
    assert (c["WorkingDir"], c["User"], c["StopSignal"]) == ("/srv/app", "root", "SIGUSR1")
    assert c["ExposedPorts"] == {"8080/tcp": {}, "53/udp": {}}
    assert c["Volumes"] == {"/data": {}}
    assert c["Healthcheck"] == {"Test": ["CMD-SHELL", "test -e /srv/app/shell.txt"],
                                "Interval": 5_000_000_000, "Timeout": 2_000_000_000, "Retries": 4}
    assert c["Shell"] == ["/bin/sh", "-ec"]
    assert c["Entrypoint"] == ["/bin/sh", "-c", "echo entry: $0 $@", "from-entrypoint"]
    assert c["Cmd"] == ["arg1", "arg2"]

    assert pyctr.run("run", "--rm", "bld/every:1").out == "entry: from-entrypoint arg1 arg2\n"
    r = pyctr.run("run", "--rm", "--entrypoint", "sh", "bld/every:1", "-c",
                  "pwd; cat a.txt b.txt run-shell.txt run-exec.txt shell.txt /tmp/who; "
                  "stat -c '%u:%g %a' conf/app.conf unpacked/d/inner.txt /tmp/mine; "
                  "cat unpacked/d/inner.txt; ls -a; ls -a conf")
    assert r.out.splitlines() == [
        "/srv/app", "A", "B", "hello world 0.1 cli-value", "0", "shell-ok", "app",
        "1000:2000 640", "42:42 600", "1000:1000 644", "inner",
        ".", "..", "a.txt", "b.txt", "conf", "run-exec.txt", "run-shell.txt", "shell.txt",
        "unpacked", ".", "..", "app.conf"]
    # The runtime's mount points (made in the snapshot's init layer) are in no layer.
    names = [n for layer in _layer_names(pyctr, "bld/every:1", 3) for n in layer]
    assert "srv/app/run-shell.txt" in names
    junk = {"proc", "sys", "dev", "etc/hosts", "etc/hostname", "etc/resolv.conf"}
    assert not junk & set(names), junk & set(names)


MULTI = """\
FROM localhost/busybox AS build
RUN mkdir -p /out && echo built > /out/artifact && chown 1000:2000 /out/artifact
FROM localhost/busybox
RUN echo from-stage-1 > /stage1
FROM scratch
COPY --from=build /bin/busybox /bin/
COPY --from=build /out/ /opt/
COPY --from=1 /stage1 /etc/passwd /etc/
CMD ["/bin/busybox", "sh", "-c", "cat /opt/artifact /etc/stage1; busybox stat -c %u:%g /opt/artifact; busybox ls /"]
"""


def test_multi_stage(pyctr: Pyctr, tmp_path: Path) -> None:
    ctx = _context(tmp_path / "ctx", {"Dockerfile": MULTI})
    pyctr.run("build", "-t", "bld/multi", str(ctx))
    r = pyctr.run("run", "--rm", "bld/multi")
    assert r.out.split("\n")[:3] == ["built", "from-stage-1", "1000:2000"]
    assert set(r.out.split("\n")[3:]) >= {"bin", "opt", "etc"}
    # FROM scratch + three COPYs: three layers, nothing of the busybox image's own
    assert len(_layer_names(pyctr, "bld/multi", 0)) == 3
    assert _config(pyctr, "bld/multi")["rootfs"]["diff_ids"].__len__() == 3  # type: ignore[index]


WORKDIRS = """\
FROM localhost/busybox
WORKDIR /made/here
WORKDIR /bin
ADD --chown=1000:2000 files.tar.gz unpacked/
USER 1000
WORKDIR /made/by-user
"""


def test_workdir_makes_a_layer_and_add_chowns_an_archive(pyctr: Pyctr, tmp_path: Path) -> None:
    ctx = _context(tmp_path / "ctx", {"Dockerfile": WORKDIRS,
                                      "files.tar.gz": _targz({"d/inner.txt": "inner\n"})})
    pyctr.run("build", "-t", "bld/wd", str(ctx))
    history = [h for h in _config(pyctr, "bld/wd")["history"]  # type: ignore[attr-defined]
               if "WORKDIR" in h["created_by"]]
    # docker 20.10's builder: a directory WORKDIR made is a layer; one already there is none
    assert [(h["created_by"].split("WORKDIR ")[1], h.get("empty_layer", False))
            for h in history] == [("/made/here", False), ("/bin", True), ("/made/by-user", False)]
    base = len(json.loads(pyctr.run("inspect", BASE).out)[0]["Manifest"]["layers"])
    names = _layer_names(pyctr, "bld/wd", base)
    assert sorted(names[0]) == ["made", "made/here"]
    assert "made/by-user" in names[2]
    r = pyctr.run("run", "--rm", "-u", "0", "bld/wd", "stat", "-c", "%n %u:%g %a", "/made",
                  "/made/here", "/made/by-user", "/bin/unpacked", "/bin/unpacked/d/inner.txt")
    assert r.out.splitlines() == [  # WORKDIR's directories are root's (after USER too)
        "/made 0:0 755", "/made/here 0:0 755", "/made/by-user 0:0 755",
        "/bin/unpacked 1000:2000 755", "/bin/unpacked/d/inner.txt 1000:2000 600"]  # not 42:42


def _cache_entries(pyctr: Pyctr) -> set[str]:
    return {p.name for p in (pyctr.root / "buildcache").glob("*.json")}


def test_builder_prune_and_prune_remove_build_cache(pyctr: Pyctr, tmp_path: Path) -> None:
    ctx = _context(tmp_path / "ctx", {"Dockerfile": WORKDIRS,
                                      "files.tar.gz": _targz({"d/inner.txt": "inner\n"})})
    pyctr.run("build", "-t", "bld/pr", str(ctx))
    entries = _cache_entries(pyctr)
    assert len(entries) == 5
    # every entry names layers the image holds: nothing is unused
    assert "0 build cache entries removed" in pyctr.run("builder", "prune").out
    assert _cache_entries(pyctr) == entries
    assert pyctr.run("build", "-t", "bld/pr", str(ctx)).out.count("Using cache") == 5
    # -a: every entry, the image stays
    assert "5 build cache entries removed" in pyctr.run("builder", "prune", "-a", "-f").out
    assert _cache_entries(pyctr) == set()
    assert "Using cache" not in pyctr.run("build", "-t", "bld/pr", str(ctx)).out
    # the image gone, `system prune` removes its blobs and the entries that named them
    pyctr.run("rmi", "bld/pr")
    out = pyctr.run("system", "prune").out
    assert "5 build cache entries removed" in out
    assert _cache_entries(pyctr) == set()
    assert [line.split()[0] for line in pyctr.run("images").out.splitlines()[1:]] == [
        "localhost/busybox"]  # the base image is still there


CACHED = """\
FROM localhost/busybox
ENV MODE=cached
COPY app.txt /app/
RUN cat /app/app.txt > /app/copy.txt && date +%s%N > /app/stamp
CMD ["cat", "/app/copy.txt"]
"""


def _store_state(pyctr: Pyctr) -> tuple[set[str], set[str]]:
    return ({p.name for p in (pyctr.root / "blobs" / "sha256").iterdir()},
            {p.name for p in (pyctr.root / "layers").iterdir()})


def test_second_build_hits_the_cache(pyctr: Pyctr, tmp_path: Path) -> None:
    ctx = _context(tmp_path / "ctx", {"Dockerfile": CACHED, "app.txt": "one\n"})
    first = pyctr.run("build", "-t", "bld/cached", str(ctx))
    assert "Using cache" not in first.out
    image_id = pyctr.run("images", "-q").out.split()
    stamp = pyctr.run("run", "--rm", "bld/cached", "cat", "/app/stamp").out
    before = _store_state(pyctr)  # (run unpacked the image's last layer)

    second = pyctr.run("build", "-t", "bld/cached", str(ctx))
    assert second.out.count(" ---> Using cache") == 4  # every step but FROM
    assert pyctr.run("images", "-q").out.split() == image_id  # the same image id
    assert _store_state(pyctr) == before  # no new blob, no new layer
    assert pyctr.run("run", "--rm", "bld/cached", "cat", "/app/stamp").out == stamp

    (ctx / "app.txt").write_text("two\n")  # the COPY and what follows miss, ENV still hits
    third = pyctr.run("build", "-t", "bld/cached", str(ctx))
    assert third.out.count(" ---> Using cache") == 1
    assert pyctr.run("run", "--rm", "bld/cached").out == "two\n"
    fourth = pyctr.run("build", "--no-cache", "-t", "bld/cached", str(ctx))
    assert "Using cache" not in fourth.out
    assert pyctr.run("run", "--rm", "bld/cached", "cat", "/app/stamp").out != stamp


@pytest.mark.parametrize(("dockerfile", "line", "words"), [
    ("FROM localhost/busybox\nRUN echo ok > /f\nRUN echo failing; exit 3\n", 3,
     ["RUN", "non-zero code: 3"]),
    ("FROM localhost/busybox\nCOPY missing.txt /x\n", 2, ["missing.txt", "context"]),
    ("FROM localhost/busybox\nADD http://example.invalid/f /f\n", 2, ["remote URLs"]),
    ("FROM localhost/busybox\n\nFROBNICATE now\n", 3, ["unknown instruction"]),
    ("FROM localhost/busybox\nUSER nobody\nRUN true\n", 3, ["unable to find user nobody"]),
    ("FROM localhost/busybox\nRUN --mount=type=cache,target=/x true\n", 2, ["unknown flag"]),
])
def test_errors_name_the_line_and_leave_nothing(pyctr: Pyctr, tmp_path: Path, dockerfile: str,
                                                line: int, words: list[str]) -> None:
    ctx = _context(tmp_path / "ctx", {"Dockerfile": dockerfile})
    images = pyctr.run("images").out
    r = pyctr.run("build", "-t", "bld/broken", str(ctx), check=False)
    assert r.rc == 1
    errors = [x for x in r.err.splitlines() if x.startswith("pyctr: ")]
    assert len(errors) == 1 and errors[0].startswith(f"pyctr: Dockerfile:{line}: "), r.err
    assert all(w in errors[0] for w in words), errors[0]
    assert pyctr.run("images").out == images  # no image, not even a partial one
    # (the fixture checks that no mount, snapshot or runtime container is left)


def test_bad_command_line(pyctr: Pyctr, tmp_path: Path) -> None:
    ctx = _context(tmp_path / "ctx", {"Dockerfile": "FROM localhost/busybox\n"})
    for args, words in ([["-t", "Bad:Name"], "reference"], [["--network", "bridge"], "network"],
                        [["-f", str(tmp_path / "nope")], "Dockerfile"],
                        [["--target", "nosuch"], "target"]):
        r = pyctr.run("build", *args, str(ctx), check=False)
        assert r.rc == 1 and r.err.startswith("pyctr: ") and words in r.err, r.err
        assert len(r.err.strip().splitlines()) == 1


@pytest.mark.requires("cmd:dockerd", "cmd:/usr/bin/docker")
def test_saved_image_runs_in_docker(pyctr: Pyctr, tmp_path: Path) -> None:
    if Path(pyctr.runtime).name != "runc":
        pytest.skip("one runtime is enough for docker's side")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "clients"))
    from daemons import Dockerd

    ctx = _context(tmp_path / "ctx", {"Dockerfile": CACHED + 'ENTRYPOINT ["sh", "-c"]\n'
                                      'CMD ["cat /app/copy.txt; echo $MODE"]\n',
                                      "app.txt": "in docker\n"})
    pyctr.run("build", "-t", "bld/todocker:1", str(ctx))
    archive = tmp_path / "built.tar"
    pyctr.run("save", "-o", str(archive), "bld/todocker:1")
    # a short path: dockerd's sockets live under it (108 bytes at most for a unix socket)
    daemon = Dockerd.for_runtimes(Path(tempfile.mkdtemp(prefix="bld-dockerd-")), [])
    try:
        daemon.start()
        loaded = daemon.docker("load", "-i", str(archive), timeout=120)
        assert loaded.returncode == 0, loaded.stderr
        run = daemon.docker("run", "--rm", "--network", "none", "bld/todocker:1", timeout=120)
        assert (run.returncode, run.stdout) == (0, "in docker\ncached\n"), run.stderr
        health = daemon.docker("inspect", "-f", "{{json .Config.Entrypoint}}", "bld/todocker:1")
        assert json.loads(health.stdout) == ["sh", "-c"]
    finally:
        daemon.stop()


@pytest.mark.requires("cmd:unshare", "cmd:ip")
def test_run_steps_network_none_or_host_inside_a_private_netns(pyctr: Pyctr, tmp_path: Path
                                                                ) -> None:
    """--network host shares the builder's network namespace (here a private one holding a
    veth pair), the default none gives RUN a namespace with lo alone."""
    import subprocess  # noqa: TID251 - the build runs inside `unshare -n`

    ctx = _context(tmp_path / "ctx", {"Dockerfile": "FROM localhost/busybox\n"
                                      "RUN ip -o link | grep -c : > /links\n"
                                      'CMD ["cat", "/links"]\n'})
    pyctr_argv = " ".join([sys.executable, "-m", "pyctr", "--root", str(pyctr.root),
                           "--runtime", pyctr.runtime, "build", "-q"])
    counts = {}
    for net in ("none", "host"):
        script = (f"ip link set lo up && ip link add bld-a type veth peer name bld-b && "
                  f"{pyctr_argv} --network {net} -t bld/net:{net} {ctx}")
        p = subprocess.run(["unshare", "-m", "--propagation", "private", "-u", "-i", "-n",
                            "sh", "-c", script], capture_output=True, text=True, timeout=120,
                           env=dict(os.environ, PYTHONPATH=str(Path(__file__).parents[3])))
        assert p.returncode == 0, p.stderr
        counts[net] = pyctr.run("run", "--rm", f"bld/net:{net}").out.strip()
    assert counts == {"none": "1", "host": "3"}


@pytest.mark.requires("cmd:docker-registry")
def test_built_image_is_pushed_and_pulled(pyctr: Pyctr, tmp_path: Path) -> None:
    if Path(pyctr.runtime).name != "runc":
        pytest.skip("one runtime is enough for the registry's side")
    from pyctr_fixtures import start_registry

    server = start_registry(tmp_path / "registry")
    try:
        ctx = _context(tmp_path / "ctx", {"Dockerfile": CACHED, "app.txt": "pushed\n"})
        name = f"{server.host}/bld/pushed:1"
        pyctr.run("build", "-t", name, str(ctx))
        image_id = pyctr.run("images", "-q").out.split()
        pyctr.run("push", "--insecure", name)
        pyctr.run("rmi", name)
        pyctr.run("prune")
        pyctr.run("pull", "--insecure", name)
        assert pyctr.run("images", "-q").out.split() == image_id
        assert pyctr.run("run", "--rm", name).out == "pushed\n"
    finally:
        server.stop()
