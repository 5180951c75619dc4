"""Named volumes: `volume create|ls|rm|inspect` and `run -v NAME:/path`.

    <root>/volumes/<name>/_data          the content, bind-mounted into containers
    <root>/volumes/<name>/volume.json    name, driver "local", creation time, labels

As docker does, a volume that is still empty when a container first mounts it is filled with
what the image has at the mount point (owners and modes kept). Containers record the names they
use, so `volume rm` refuses a volume that any container, running or not, still names.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

from pyctr.errors import ContainerError, NotFound
from pyctr.image.store import Store, atomic_write, flocked, now, private_dir

_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")


def is_name(source: str) -> bool:
    return bool(_NAME.match(source))


class Volumes:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.dir = store.root / "volumes"

    def data(self, name: str) -> Path:
        return self.dir / name / "_data"

    def create(self, name: str, labels: dict[str, str] | None = None) -> tuple[Path, bool]:
        """The volume's data directory, and whether this call made it."""
        if not is_name(name):
            raise ContainerError(f"invalid volume name {name!r} "
                                 "([a-zA-Z0-9][a-zA-Z0-9_.-]+, at least two characters)")
        with flocked(self.dir / ".lock"):
            if (self.dir / name / "volume.json").exists():
                return self.data(name), False
            private_dir(self.dir / name)
            self.data(name).mkdir(exist_ok=True)
            record = {"Name": name, "Driver": "local", "CreatedAt": now(),
                      "Labels": labels or {}, "Scope": "local"}
            atomic_write(self.dir / name / "volume.json", json.dumps(record).encode())
        return self.data(name), True

    def inspect(self, name: str) -> dict[str, Any]:
        try:
            record: dict[str, Any] = json.loads((self.dir / name / "volume.json").read_bytes())
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise NotFound(f"no such volume: {name}") from exc
        return record | {"Mountpoint": str(self.data(name))}

    def names(self) -> list[str]:
        return sorted(p.name for p in self.dir.iterdir()
                      if not p.name.startswith(".") and (p / "volume.json").exists())

    def remove(self, name: str, users: list[str]) -> None:
        self.inspect(name)
        if users:
            raise ContainerError(f"remove {name}: volume is in use by {', '.join(users)}")
        with flocked(self.dir / ".lock"):
            shutil.rmtree(self.dir / name)
