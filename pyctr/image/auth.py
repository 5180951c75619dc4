"""Credentials and authentication challenges.

Credentials come from `pyctr login` and from docker's ~/.docker/config.json (`auths.<host>.auth`,
base64 of `user:password`), both in the same file format. A registry's 401 carries a
`WWW-Authenticate` challenge: `Basic realm=...`, or `Bearer realm=...,service=...,scope=...`
telling us where to get a token.
"""

from __future__ import annotations

import base64
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

_PARAM = re.compile(r'\s*([a-zA-Z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?')


@dataclass(frozen=True)
class Challenge:
    scheme: str
    params: dict[str, str]


def parse_challenge(header: str) -> Challenge:
    """Parse one `WWW-Authenticate` value (`Bearer realm="...",service="..."`)."""
    scheme, _, rest = header.strip().partition(" ")
    params = {}
    for m in _PARAM.finditer(rest):
        value = m.group(2) if m.group(2) is not None else m.group(3)
        params[m.group(1).lower()] = re.sub(r"\\(.)", r"\1", value)
    return Challenge(scheme.lower(), params)


def default_config_path() -> Path:
    env = os.environ.get("DOCKER_CONFIG")
    base = Path(env) if env else Path.home() / ".docker"
    return base / "config.json"


def _host_keys(host: str) -> list[str]:
    keys = [host, "https://" + host, "http://" + host]
    if host in ("docker.io", "registry-1.docker.io", "index.docker.io"):
        keys += ["https://index.docker.io/v1/", "index.docker.io", "docker.io"]
    return keys


class CredentialStore:
    """Reads and writes `auths` entries of a docker config.json."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_config_path()

    def _load(self) -> dict[str, object]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, host: str) -> tuple[str, str] | None:
        auths = self._load().get("auths")
        if not isinstance(auths, dict):
            return None
        for key in _host_keys(host):
            entry = auths.get(key)
            if isinstance(entry, dict) and entry.get("auth"):
                user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
                return user, password
        return None

    def set(self, host: str, user: str, password: str) -> None:
        data = self._load()
        auths = data.setdefault("auths", {})
        assert isinstance(auths, dict)
        auths[host] = {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}
        self._write(data)

    def remove(self, host: str) -> bool:
        data = self._load()
        auths = data.get("auths")
        if not isinstance(auths, dict) or host not in auths:
            return False
        del auths[host]
        self._write(data)
        return True

    def _write(self, data: dict[str, object]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".config.")
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent="\t")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.rename(tmp, self.path)


def basic_header(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
