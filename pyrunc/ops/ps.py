"""`ps`: the processes of a container, as host pids (`--format json`) or as `ps` output (table).

docker top runs `ps --format json <id>` and then reads /proc itself; the table form runs the host's
`ps` with the given arguments and keeps the header and the lines whose PID column is in the cgroup.
"""

from __future__ import annotations

from pyrunc.errors import PyruncError, SpecError
from pyrunc.sys import jsonfast


def ps_pids(root: str, cid: str) -> list[int]:
    from pyrunc.container import Container

    c = Container.load(root, cid)
    pids: list[int] = c.cgroup().pids()
    return pids


def ps(root: str, cid: str, fmt: str, ps_args: list[str]) -> str:
    pids = ps_pids(root, cid)
    if fmt == "json":
        return jsonfast.dumps(pids, compact=False) + "\n"
    if fmt != "table":
        raise SpecError(f"invalid format option {fmt!r}")
    return filter_table(_run_ps(ps_args or ["-ef"]), pids)


def _run_ps(args: list[str]) -> str:
    import subprocess  # noqa: TID251  (ps is a slow path; `ps` has to run as a program)

    try:
        out = subprocess.run(["ps", *args], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", "") or exc
        raise PyruncError(f"ps: {detail}") from exc
    return out.stdout


def filter_table(output: str, pids: list[int]) -> str:
    """The header plus the lines whose PID column (found in the header, as runc does) is ours."""
    lines = output.splitlines()
    if not lines:
        return ""
    header = lines[0].split()
    if "PID" not in header:
        raise PyruncError("couldn't find PID field in ps output")
    col = header.index("PID")
    wanted = set(pids)
    kept = [lines[0]]
    for line in lines[1:]:
        fields = line.split()
        if len(fields) > col and fields[col].isdigit() and int(fields[col]) in wanted:
            kept.append(line)
    return "\n".join(kept) + "\n"
