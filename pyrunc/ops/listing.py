"""`list [-f table|json] [-q]`: the containers under --root, as runc prints them."""

from __future__ import annotations

from pyrunc import container
from pyrunc.container import state
from pyrunc.errors import PyruncError
from pyrunc.sys import jsonfast
from pyrunc.sys import oslite as os


def _rows(root: str) -> list[dict[str, object]]:
    rows = []
    for cid in state.list_ids(root):
        try:
            c = container.Container.load(root, cid)
        except PyruncError:
            continue  # being created, or unreadable: `state`/`delete` report those
        rows.append({**c.oci_state(), "owner": _owner(os.path.join(root, cid))})
    return rows


def _owner(path: str) -> str:
    """runc's list shows the user owning the state directory (`state` leaves owner empty)."""
    import pwd

    try:
        uid = os.stat(path).st_uid
    except OSError:
        return ""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"#{uid}"


def listing(root: str, fmt: str = "table", quiet: bool = False) -> str:
    rows = _rows(root)
    if quiet:
        return "".join(f"{r['id']}\n" for r in rows)
    if fmt == "json":
        return (jsonfast.dumps(rows) if rows else "null") + "\n"
    if fmt != "table":
        raise PyruncError(f"invalid format option {fmt!r}")
    table = [["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]]
    table += [[str(r["id"]), str(r["pid"]), str(r["status"]), str(r["bundle"]), str(r["created"]),
               str(r["owner"])] for r in rows]
    # runc's tabwriter: cells padded by 3, columns at least 12 wide
    widths = [max(12, *(len(row[i]) + 3 for row in table)) for i in range(6)]
    lines = ["".join(cell.ljust(w) if i < 5 else cell for i, (cell, w) in enumerate(zip(row, widths, strict=True)))
             for row in table]
    return "\n".join(lines) + "\n"
