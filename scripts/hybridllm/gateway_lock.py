"""The gateway image's lock files, made and checked in one place (`make lock`, tests/test_packaging.py).

gateway/requirements.lock pins the gateway's runtime ([project].dependencies of the root
pyproject.toml) and gateway/build-requirements.lock the backend that builds its wheel
([build-system].requires). uv writes both for every platform (`--universal`) with a sha256 for each
file of each pinned release, so the image's `pip install --require-hashes` gets exactly these files
on amd64 and arm64 alike.

  python -m hybridllm.gateway_lock            # write both locks (keeps pins that still fit)
  python -m hybridllm.gateway_lock --upgrade  # newest releases that fit
  python -m hybridllm.gateway_lock --check    # exit 1, saying why, when a lock is stale
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from .errors import UserError
from .layout import REPO_ROOT, display_path

PYPROJECT = REPO_ROOT / "pyproject.toml"
RUNTIME_LOCK = REPO_ROOT / "gateway" / "requirements.lock"
BUILD_LOCK = REPO_ROOT / "gateway" / "build-requirements.lock"
# The image's Python minor (gateway/Dockerfile's base tag); tests/test_image.py keeps the two equal.
PYTHON_VERSION = "3.11"
REGENERATE = "make lock"

_PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;\\]+)\s*(?:;\s*(?P<marker>[^\\]+?))?\s*\\?$")
_HASH = re.compile(r"^\s+--hash=sha256:(?P<digest>[0-9a-f]{64})\s*\\?$")


@dataclass(frozen=True)
class Pin:
    name: str  # canonical (PEP 503) name
    version: str
    marker: str | None
    hashes: frozenset[str]


@dataclass(frozen=True)
class LockSpec:
    """One lock file and the list in a pyproject.toml it is made from."""

    path: Path
    table: str  # "project" ([project].dependencies) or "build-system" ([build-system].requires)
    pyproject: Path = PYPROJECT

    @property
    def source(self) -> str:
        return "[project].dependencies" if self.table == "project" else "[build-system].requires"

    def requirements(self) -> list[Requirement]:
        with self.pyproject.open("rb") as handle:
            table = tomllib.load(handle)[self.table]
        raw = table["dependencies"] if self.table == "project" else table["requires"]
        try:
            return [Requirement(text) for text in raw]
        except InvalidRequirement as exc:
            raise UserError(display_path(self.pyproject), f"{self.source}: {exc}") from None


RUNTIME = LockSpec(RUNTIME_LOCK, "project")
BUILD = LockSpec(BUILD_LOCK, "build-system")
LOCKS = (RUNTIME, BUILD)


def parse_lock(path: Path) -> dict[str, Pin]:
    """Pins by canonical name. Raises UserError for a line that is neither a pin, a hash nor a comment."""
    if not path.is_file():
        raise UserError(display_path(path), "missing", f"run `{REGENERATE}`")
    pins: dict[str, Pin] = {}
    current: dict | None = None  # the pin whose hash lines are being read, until a comment or blank line

    def close() -> None:
        if current:
            pins[current["name"]] = Pin(current["name"], current["version"], current["marker"],
                                        frozenset(current["hashes"]))

    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            close()
            current = None
            continue
        pin, digest = _PIN.match(line), _HASH.match(line)
        if pin:
            close()
            current = {"name": canonicalize_name(pin["name"]), "version": pin["version"],
                       "marker": pin["marker"], "hashes": []}
        elif digest and current is not None:
            current["hashes"].append(digest["digest"])
        else:
            raise UserError(f"{display_path(path)}:{number}", f"not an exact pin with sha256 hashes: {line.strip()!r}",
                            f"the file is generated; run `{REGENERATE}` instead of editing it")
    close()
    return pins


def problems(spec: LockSpec) -> list[str]:
    """What is wrong with a lock without asking the index: unhashed pins, and requirements of
    pyproject.toml it does not pin or pins at a version they exclude."""
    where = display_path(spec.path)
    pins = parse_lock(spec.path)
    found = [f"{where}: {pin.name}=={pin.version} has no sha256 hash" for pin in pins.values() if not pin.hashes]
    for requirement in spec.requirements():
        pin = pins.get(canonicalize_name(requirement.name))
        if pin is None:
            found.append(f"{where}: {requirement.name} ({spec.source} in {display_path(spec.pyproject)}) is not pinned")
        elif not requirement.specifier.contains(pin.version, prereleases=True):
            found.append(f"{where}: {pin.name}=={pin.version} is outside {requirement} "
                         f"({spec.source} in {display_path(spec.pyproject)})")
    return found


def _uv_compile(spec: LockSpec, out: Path, upgrade: bool, constraints: Path | None = None) -> None:
    command = [sys.executable, "-m", "uv", "pip", "compile", "--quiet", "--universal", "--generate-hashes",
               "--python-version", PYTHON_VERSION, "--custom-compile-command", REGENERATE, "--output-file", str(out.resolve())]
    if upgrade:
        command.append("--upgrade")
    if constraints is not None:
        command += ["--constraint", str(constraints)]
    # Run beside the pyproject.toml so the lock's "# via" annotations name it the same from anywhere.
    folder = spec.pyproject.parent
    if spec.table == "project":
        done = subprocess.run([*command, spec.pyproject.name], cwd=folder, capture_output=True, text=True, check=False)
    else:
        # From stdin: the lock's annotations then name no temporary file.
        lines = "".join(f"{requirement}\n" for requirement in spec.requirements())
        done = subprocess.run([*command, "-"], input=lines, cwd=folder, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise UserError(display_path(spec.path), f"uv pip compile failed:\n{done.stderr.strip()}",
                        "uv needs the package index (PyPI) to resolve; check the network and pyproject.toml")


def write(spec: LockSpec, upgrade: bool = False) -> None:
    """(Re)write a lock. uv keeps the pins of an existing lock that still fit unless `upgrade`."""
    _uv_compile(spec, spec.path, upgrade)


def drift(spec: LockSpec) -> list[str]:
    """Differences between the lock and what `make lock` would write now. uv resolves pyproject.toml
    afresh with the locked releases as constraints (so a new release on the index changes nothing):
    the same releases must come out, no more and no fewer, and every hash in the lock must be one the
    index publishes for that release (an index may add files to a release, never change one)."""
    where = display_path(spec.path)
    locked = parse_lock(spec.path)
    with tempfile.TemporaryDirectory() as folder:
        constraints = Path(folder) / "constraints.txt"
        constraints.write_text("".join(f"{pin.name}=={pin.version}\n" for pin in locked.values()), encoding="utf-8")
        fresh_path = Path(folder) / spec.path.name
        try:
            _uv_compile(spec, fresh_path, upgrade=False, constraints=constraints)
        except UserError as exc:
            return [f"{where}: the locked releases no longer satisfy {spec.source} in "
                    f"{display_path(spec.pyproject)}: {exc.problem}"]
        fresh = parse_lock(fresh_path)
    found = []
    for name in sorted(locked.keys() | fresh.keys()):
        old, new = locked.get(name), fresh.get(name)
        if old is None:
            found.append(f"{where}: {name}=={new.version} is needed but not locked")
        elif new is None:
            found.append(f"{where}: {name}=={old.version} is locked but nothing needs it")
        elif old.marker != new.marker:
            found.append(f"{where}: {name} is locked for {old.marker or 'every platform'}, "
                         f"now needed for {new.marker or 'every platform'}")
        elif not old.hashes <= new.hashes:
            found.append(f"{where}: {name}=={old.version} has hashes the index does not publish: "
                         f"{', '.join(sorted(old.hashes - new.hashes))}")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hybridllm.gateway_lock", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--check", action="store_true", help="report stale locks instead of writing them")
    action.add_argument("--upgrade", action="store_true", help="move every pin to the newest release that fits")
    args = parser.parse_args(argv)
    try:
        if args.check:
            found = [problem for spec in LOCKS for problem in problems(spec) + drift(spec)]
            for problem in found:
                print(problem, file=sys.stderr)
            if found:
                print(f"fix: run `{REGENERATE}` and commit the locks", file=sys.stderr)
            return 1 if found else 0
        for spec in LOCKS:
            write(spec, upgrade=args.upgrade)
            print(f"wrote {display_path(spec.path)} ({len(parse_lock(spec.path))} pins)")
        return 0
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
