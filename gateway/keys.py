"""Gateway API keys. The keys file (a mounted Secret) holds only SHA-256 hashes, each with the
traffic classes and backends the key may use. `python -m gateway.keys new` makes a key. The
gateway re-reads the file when it changes (`refresh`, every auth.reloadSeconds), so a revoked
key stops working without a restart.

keys file:
  keys:
    - name: team-a               # shown in logs, never the key
      sha256: <64 hex>           # sha256 of the key
      classes: [customer]        # values the key may send in the class header; ["*"] for any
      backends: ["*"]            # backends allowed to serve this key
      backendOverride: false     # may pin a backend with the explicit backend header
"""

from __future__ import annotations

import argparse
import hashlib
import os
import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .config import ConfigError
from .split import sticky_point

ANY = "*"


class _KeyEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    name: str = Field(min_length=1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    classes: list[str] = [ANY]
    backends: list[str] = [ANY]
    backend_override: bool = Field(False, alias="backendOverride")


class _KeysFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    keys: list[_KeyEntry]


@dataclass(frozen=True)
class ApiKey:
    name: str
    classes: frozenset[str]
    backends: frozenset[str]
    backend_override: bool
    # Where the key falls on a split stickyBy key (split.py): worked out once, when it is loaded.
    sticky_point: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sticky_point", sticky_point(self.name))

    def may_use_class(self, traffic_class: str) -> bool:
        return ANY in self.classes or traffic_class in self.classes

    def may_use_backend(self, backend: str) -> bool:
        return ANY in self.backends or backend in self.backends


# When auth is off (an explicit setting, for meshes that authenticate upstream of us).
UNRESTRICTED = ApiKey("anonymous", frozenset({ANY}), frozenset({ANY}), True)


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _signature(path: Path) -> tuple[int, int, int] | None:
    """What changes when the file does, following symlinks: a Secret volume swaps a `..data`
    symlink to a new directory rather than rewriting the file."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_ino, stat.st_mtime_ns, stat.st_size


class KeyStore:
    """Looks keys up by hash: the plaintext is hashed once per request and never stored."""

    def __init__(self, by_hash: dict[str, ApiKey], path: Path | None = None, backends: set[str] | None = None) -> None:
        self._by_hash = by_hash
        self._path = path
        self._backends = backends or set()
        self._signature = _signature(path) if path is not None else None

    @classmethod
    def load(cls, path: str | Path, backends: set[str]) -> "KeyStore":
        path = Path(path)
        signature = _signature(path)
        store = cls(_read(path, backends), path, backends)
        store._signature = signature
        return store

    def refresh(self) -> bool:
        """Re-read the file if it changed since it was read. True when new keys are in force;
        a ConfigError (the old keys stay in force) when the new file is not a valid keys file."""
        if self._path is None:
            return False
        signature = _signature(self._path)
        if signature == self._signature:
            return False
        self._signature = signature  # report a broken file once, not on every check
        self._by_hash = _read(self._path, self._backends)
        return True

    def find(self, presented: str) -> ApiKey | None:
        return self._by_hash.get(digest(presented))


def _read(path: Path, backends: set[str]) -> dict[str, ApiKey]:
    where = str(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        parsed = _KeysFile.model_validate(raw)
    except FileNotFoundError:
        raise ConfigError(f"{where}: keys file not found (mount the gateway keys Secret there)") from None
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read the keys file: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML: {exc}") from None
    except ValidationError as exc:
        lines = [f"{where}: {'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
        raise ConfigError("\n".join(lines)) from None
    by_hash: dict[str, ApiKey] = {}
    for entry in parsed.keys:
        unknown = set(entry.backends) - backends - {ANY}
        if unknown:
            raise ConfigError(f"{where}: key {entry.name!r} names unknown backends {sorted(unknown)}")
        if entry.sha256 in by_hash:
            raise ConfigError(f"{where}: key {entry.name!r} has the same hash as {by_hash[entry.sha256].name!r}")
        by_hash[entry.sha256] = ApiKey(
            entry.name, frozenset(entry.classes), frozenset(entry.backends), entry.backend_override
        )
    return by_hash


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway.keys", description="Make a gateway API key.")
    sub = parser.add_subparsers(dest="command", required=True)
    new = sub.add_parser("new", help="print a new key once, and the keys-file entry with its hash")
    new.add_argument("--name", required=True)
    new.add_argument("--classes", default=ANY, help="comma-separated traffic classes, or *")
    new.add_argument("--backends", default=ANY, help="comma-separated backends, or *")
    new.add_argument("--backend-override", action="store_true")
    args = parser.parse_args(argv)
    key = "hlk-" + secrets.token_urlsafe(32)
    entry = {
        "name": args.name,
        "sha256": digest(key),
        "classes": args.classes.split(","),
        "backends": args.backends.split(","),
        "backendOverride": args.backend_override,
    }
    print(f"# key for {args.name} (shown once; store it in the client's secret store):\n# {key}", file=sys.stderr)
    print(yaml.safe_dump([entry], sort_keys=False), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
