"""The gateway image, without a Docker engine: gateway/Dockerfile passes hadolint and the image policy
(pinned base, multi-stage, hashed lock, non-root 65532), and its Python layer is rebuilt here the way
the Dockerfile builds it: the wheel from this checkout and gateway/requirements.lock, with
--require-hashes, into a fresh venv. That venv, run as UID 65532 with nothing of it writable, serves a
chat request through `hybrid-llm-gateway` to a stub upstream on 127.0.0.1 and runs the applier."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import httpx
import openai
import pytest
import yaml
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from gateway_harness import DEMO_KEY, example_config, free_port, upstream_stubs
from hybridllm import gateway_lock
from hybridllm.layout import REPO_ROOT

DOCKERFILE = REPO_ROOT / "gateway" / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
HADOLINT = Path(sys.executable).with_name("hadolint")
IMAGE_USER = 65532
# The image's platforms (release.yml builds both) as wheel platform tags, with the glibc of the
# base's Debian bookworm (2.36) as the newest manylinux a wheel may need.
WHEEL_ARCHES = {"linux/amd64": "x86_64", "linux/arm64": "aarch64"}
MANYLINUX = ["manylinux_2_5", "manylinux_2_12", "manylinux_2_17", "manylinux_2_28", "manylinux_2_31",
             "manylinux_2_34", "manylinux_2_36", "manylinux2014", "manylinux2010", "manylinux1"]
# The yardstick: what `pip install '.[gateway]'` used to drag in from the tools.
HEAVY = {"helm-python-sdk", "kubernetes-validate", "matplotlib", "numpy", "pillow"}
MAX_VENV_MB = 120


def _tools_only() -> set[str]:
    """The tools' own dependencies (scripts/pyproject.toml) that the gateway does not declare, plus HEAVY."""
    def names(path: Path) -> set[str]:
        with path.open("rb") as handle:
            return {canonicalize_name(Requirement(r).name) for r in tomllib.load(handle)["project"]["dependencies"]}

    return (names(REPO_ROOT / "scripts" / "pyproject.toml") - names(REPO_ROOT / "pyproject.toml")) | HEAVY


# ---- the Dockerfile ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    line: int
    keyword: str
    arguments: str


def instructions(text: str) -> list[Instruction]:
    """Dockerfile instructions with continuation lines joined (comments and blank lines dropped)."""
    found: list[Instruction] = []
    pending, start = "", 0
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue
        start = start or number
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, arguments = (pending + stripped).partition(" ")
        found.append(Instruction(start, keyword.upper(), " ".join(arguments.split())))
        pending, start = "", 0
    return found


_PINNED_BASE = re.compile(r"^(?P<image>[a-z0-9./-]+):(?P<tag>[A-Za-z0-9._-]+)@sha256:[0-9a-f]{64}(?: AS (?P<stage>\S+))?$",
                          re.IGNORECASE)


def policy_problems(text: str) -> list[str]:
    """What the image must be, beyond hadolint's rules: each base pinned by tag and digest (or an
    earlier stage), two stages at least, the runtime installed only from the hashed lock and the
    wheel, and a final stage that runs as UID:GID 65532 through the gateway's console script."""
    steps = instructions(text)
    problems: list[str] = []
    stages: list[str] = []
    final_user = None
    for step in steps:
        where = f"gateway/Dockerfile:{step.line}"
        if step.keyword == "FROM":
            words = step.arguments.split()
            if words[0] in stages:
                stages.append(words[2] if len(words) == 3 else f"#{len(stages)}")
                final_user = None
                continue
            pinned = _PINNED_BASE.match(step.arguments)
            if not pinned or pinned["tag"] == "latest":
                problems.append(f"{where}: base {words[0]} is not pinned by a version tag and a sha256 digest")
                stages.append(words[-1] if len(words) == 3 else f"#{len(stages)}")
            else:
                stages.append(pinned["stage"] or f"#{len(stages)}")
            final_user = None
        elif step.keyword == "USER":
            final_user = step.arguments
        elif step.keyword == "ADD":
            problems.append(f"{where}: ADD fetches or unpacks implicitly; COPY what the build needs")
        elif step.keyword == "RUN" and "pip" in step.arguments and " install " in step.arguments:
            for command in step.arguments.split("&&"):
                if " install " not in command or "uninstall" in command:
                    continue
                if " -r " in command and "--require-hashes" not in command:
                    problems.append(f"{where}: `{command.strip()}` installs a lock without --require-hashes")
                if " -r " not in command and not ("--no-deps" in command and "--no-index" in command):
                    problems.append(f"{where}: `{command.strip()}` installs something other than the lock "
                                    "or the local wheel (--no-deps --no-index)")
    if len(stages) < 2:
        problems.append("gateway/Dockerfile: one stage; build in one, copy the venv into a clean one")
    if final_user != f"{IMAGE_USER}:{IMAGE_USER}":
        problems.append(f"gateway/Dockerfile: the final stage runs as {final_user or 'root'}, not {IMAGE_USER}:{IMAGE_USER}")
    entrypoints = [step for step in steps if step.keyword == "ENTRYPOINT"]
    if not entrypoints or json.loads(entrypoints[-1].arguments) != ["hybrid-llm-gateway"]:
        problems.append("gateway/Dockerfile: the ENTRYPOINT is not the console script hybrid-llm-gateway")
    return problems


def hadolint(path: Path) -> list[dict]:
    done = subprocess.run([str(HADOLINT), "--no-color", "--format", "json", str(path)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.stdout.strip().startswith("["), f"hadolint did not run: {done.stderr}"
    return json.loads(done.stdout)


def test_hadolint_passes_the_dockerfile() -> None:
    findings = hadolint(DOCKERFILE)
    assert findings == [], "\n".join(f"gateway/Dockerfile:{f['line']} {f['code']} {f['message']}" for f in findings)


def test_hadolint_fires_on_a_careless_dockerfile(tmp_path: Path) -> None:
    careless = tmp_path / "Dockerfile"
    careless.write_text("FROM python:latest\nRUN pip install fastapi\nUSER root\nCMD python -m gateway\n")
    codes = {finding["code"] for finding in hadolint(careless)}
    # latest tag, unpinned pip install, pip cache kept, last USER root, shell-form CMD
    assert {"DL3007", "DL3013", "DL3042", "DL3002", "DL3025"} <= codes, codes


def test_the_dockerfile_meets_the_image_policy() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert policy_problems(text) == []
    # The base's Python minor is the one the lock was resolved for.
    (base,) = [step.arguments for step in instructions(text) if step.keyword == "FROM" and "@sha256:" in step.arguments]
    assert re.match(rf"python:{re.escape(gateway_lock.PYTHON_VERSION)}\.\d+-", base), (base, gateway_lock.PYTHON_VERSION)
    # Exactly the locks gateway_lock writes are what the image installs.
    copied = {word for step in instructions(text) if step.keyword == "COPY" for word in step.arguments.split()[:-1]}
    assert {"gateway/requirements.lock", "gateway/build-requirements.lock"} <= copied


@pytest.mark.parametrize("mutation, expected", [
    (("@sha256:", "@sha265:"), "is not pinned by a version tag and a sha256 digest"),
    (("USER 65532:65532", "USER root"), "runs as root"),
    (("USER 65532:65532\n", ""), "runs as root"),
    (("--require-hashes --only-binary=:all: \\\n        -r gateway/requirements.lock",
      "--only-binary=:all: -r gateway/requirements.lock"), "without --require-hashes"),
    (("--no-deps --no-index /wheels/*.whl", "/wheels/*.whl"), "something other than the lock"),
    (('ENTRYPOINT ["hybrid-llm-gateway"]', 'ENTRYPOINT ["python", "-m", "gateway"]'), "ENTRYPOINT"),
])
def test_the_image_policy_fires(mutation: tuple[str, str], expected: str) -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert mutation[0] in text, "the test's mutation no longer applies to gateway/Dockerfile"
    problems = policy_problems(text.replace(mutation[0], mutation[1], 1))
    assert any(expected in problem for problem in problems), problems


def test_the_build_context_is_only_what_the_dockerfile_copies() -> None:
    """.dockerignore denies everything, then lets in exactly the sources the Dockerfile copies."""
    patterns = [line.strip() for line in DOCKERIGNORE.read_text().splitlines() if line.strip() and not line.startswith("#")]
    assert patterns[0] == "*"
    allowed = {pattern[1:].rstrip("/") for pattern in patterns if pattern.startswith("!")}
    sources = {word.split("/")[0] if "/" in word.rstrip("/") else word.rstrip("/")
               for step in instructions(DOCKERFILE.read_text()) if step.keyword == "COPY" and "--from=" not in step.arguments
               for word in step.arguments.split()[:-1]}
    assert sources == allowed == {"pyproject.toml", "gateway", "applier"}


# ---- the image's Python layer --------------------------------------------------------------------


def _runs_as_image_user(python: str) -> bool:
    try:
        done = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], user=IMAGE_USER,
                              group=IMAGE_USER, cwd="/", env={"PATH": "/usr/bin:/bin"}, capture_output=True,
                              text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0 and done.stdout.strip() == gateway_lock.PYTHON_VERSION


@dataclass(frozen=True)
class ImageLayer:
    folder: Path
    venv: Path
    wheel: Path
    # Whether the venv's processes run as UID 65532 (the test runs as root and some Python 3.11
    # this user can execute exists), as in the image.
    as_image_user: bool

    def bin(self, name: str) -> str:
        return str(self.venv / "bin" / name)

    def run(self, *command: str, timeout: float = 60, **options) -> subprocess.CompletedProcess[str]:
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False,
                              **self.process_options(), **options)

    def process_options(self) -> dict:
        # The image's environment: its venv first on PATH, nothing from this checkout or .venv.
        env = {"PATH": f"{self.venv / 'bin'}:/usr/bin:/bin", "HOME": "/nonexistent", "PYTHONDONTWRITEBYTECODE": "1",
               "AOAI_API_KEY": "aoai-test-key"}
        options = {"cwd": "/", "env": env}
        if self.as_image_user:
            options.update(user=IMAGE_USER, group=IMAGE_USER, extra_groups=[])
        return options


def _pip(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, f"pip {' '.join(args)}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


@pytest.fixture(scope="module")
def image_layer() -> Iterator[ImageLayer]:
    """gateway/Dockerfile's build stage, step for step, on this machine."""
    folder = Path(tempfile.mkdtemp(prefix="hybrid-llm-image-"))
    folder.chmod(0o755)  # the image user must reach the venv and the config
    try:
        wheels = folder / "wheels"
        _pip("wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", str(wheels), str(REPO_ROOT))
        (wheel,) = wheels.glob("hybrid_llm_gateway-*.whl")
        candidates = [getattr(sys, "_base_executable", sys.executable), f"/usr/local/bin/python{gateway_lock.PYTHON_VERSION}",
                      f"/usr/bin/python{gateway_lock.PYTHON_VERSION}"]
        usable = [python for python in candidates if os.geteuid() == 0 and Path(python).exists() and _runs_as_image_user(python)]
        python = (usable or candidates)[0]
        venv = folder / "venv"
        subprocess.run([python, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
        target = ["--python", str(venv / "bin" / "python")]
        _pip(*target, "install", "--require-hashes", "--only-binary=:all:", "-r", str(gateway_lock.RUNTIME_LOCK))
        _pip(*target, "install", "--no-deps", "--no-index", str(wheel))
        _pip(*target, "check")
        yield ImageLayer(folder, venv, wheel, bool(usable))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _size_mb(path: Path) -> float:
    return sum(file.stat().st_size for file in path.rglob("*") if file.is_file() and not file.is_symlink()) / 2**20


def test_the_venv_holds_exactly_the_lock_and_the_gateway(image_layer: ImageLayer) -> None:
    done = image_layer.run(image_layer.bin("python"), "-c",
                           "import importlib.metadata as m, json; print(json.dumps(sorted(d.metadata['Name'] for d in m.distributions())))")
    assert done.returncode == 0, done.stderr
    installed = {canonicalize_name(name) for name in json.loads(done.stdout)}
    locked = {pin.name for pin in gateway_lock.parse_lock(gateway_lock.RUNTIME_LOCK).values()
              if pin.marker is None or Marker(pin.marker).evaluate()}
    assert installed == locked | {"hybrid-llm-gateway"}
    assert not installed & _tools_only(), f"the gateway's venv holds tools' dependencies: {installed & _tools_only()}"
    site = next((image_layer.venv / "lib").glob("python3.*/site-packages"))
    sizes = sorted(((_size_mb(entry), entry.name) for entry in site.iterdir() if entry.is_dir()), reverse=True)
    total = _size_mb(image_layer.venv)
    print(f"\nimage venv: {total:.1f} MB, {len(installed)} distributions; largest: "
          + ", ".join(f"{name} {size:.1f} MB" for size, name in sizes[:6]))
    assert total < MAX_VENV_MB, f"the gateway's venv grew to {total:.0f} MB"
    # The wheel carries the two packages and nothing of the repository beside them.
    listing = subprocess.run([sys.executable, "-m", "zipfile", "-l", str(image_layer.wheel)], capture_output=True,
                             text=True, check=True).stdout
    tops = {line.split()[0].split("/")[0] for line in listing.splitlines()[1:] if line.strip()}
    assert tops == {"gateway", "applier", image_layer.wheel.name.split("-")[0] + "-" + image_layer.wheel.name.split("-")[1] + ".dist-info"}
    assert "Dockerfile" not in listing and "examples/" not in listing and ".lock" not in listing


@pytest.fixture()
def served(image_layer: ImageLayer) -> Iterator[str]:
    """`hybrid-llm-gateway` from the venv, with the example config pointed at stub upstreams on
    127.0.0.1; yields its URL once ready."""
    with upstream_stubs() as stubs:
        config = example_config(**{name.replace("-", "_"): stub.port for name, stub in stubs.items()})
        keys = image_layer.folder / "keys.yaml"
        shutil.copyfile(config["auth"]["keysFile"], keys)
        config["auth"]["keysFile"] = str(keys)
        config_file = image_layer.folder / "gateway.yaml"
        config_file.write_text(yaml.safe_dump(config), encoding="utf-8")
        for path in (keys, config_file):
            path.chmod(0o644)
        port = free_port()
        process = subprocess.Popen([image_layer.bin("hybrid-llm-gateway"), "--config", str(config_file), "--host",
                                    "127.0.0.1", "--port", str(port), "--log-level", "WARNING"],
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   **image_layer.process_options())
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    process.kill()
                    pytest.fail(f"hybrid-llm-gateway from the image venv did not become ready:\n{process.communicate()[0]}")
                time.sleep(0.1)
            yield url
            # A clean drain: uvicorn re-raises the SIGTERM it handled once it has shut down.
            process.send_signal(signal.SIGTERM)
            assert process.wait(30) in (0, -signal.SIGTERM), process.communicate()[0]
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(5)


def test_the_venv_serves_a_chat_request_as_the_image_user(image_layer: ImageLayer, served: str) -> None:
    client = openai.OpenAI(base_url=f"{served}/v1", api_key=DEMO_KEY, max_retries=0, timeout=15)
    answer = client.chat.completions.create(model="llama-3.3-70b", messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].message.content == "Hello from the stub."
    assert answer.usage is not None and answer.usage.prompt_tokens == 11
    streamed = "".join(chunk.choices[0].delta.content or "" for chunk in client.chat.completions.create(
        model="llama-3.3-70b", messages=[{"role": "user", "content": "hi"}], stream=True) if chunk.choices)
    assert streamed == "Hello from the stub."
    assert "llm_gateway_requests_total" in httpx.get(f"{served}/metrics").text
    if not image_layer.as_image_user:
        print(f"\nno Python {gateway_lock.PYTHON_VERSION} that UID {IMAGE_USER} may run: served as UID {os.geteuid()}")


def test_the_applier_and_the_keys_command_run_from_the_venv(image_layer: ImageLayer) -> None:
    """The chart's hook Jobs run `python -m applier` with the image's PATH."""
    done = image_layer.run("python", "-m", "applier", "--help")
    assert done.returncode == 0 and done.stdout.startswith("usage: python -m applier"), done.stderr
    missing = image_layer.run("python", "-m", "applier", "--manifests", "/nonexistent", "--namespace", "llm",
                              "--release", "hybrid-llm")
    assert missing.returncode == 2 and "Traceback" not in missing.stderr, missing.stderr
    made = image_layer.run(image_layer.bin("hybrid-llm-keys"), "new", "--name", "team-a", "--classes", "customer")
    assert made.returncode == 0, made.stderr
    (entry,) = yaml.safe_load(made.stdout)
    assert entry["name"] == "team-a" and re.fullmatch(r"[0-9a-f]{64}", entry["sha256"]), made.stdout
    assert "hlk-" in made.stderr and "hlk-" not in made.stdout


@pytest.mark.parametrize("platform", sorted(WHEEL_ARCHES))
def test_every_locked_release_has_a_wheel_for_the_image_platform(platform: str, tmp_path: Path) -> None:
    """The image builds with --only-binary=:all: on amd64 and arm64: no release in the lock may
    need a compiler there. pip resolves the lock for that platform and checks every file's hash."""
    arch = WHEEL_ARCHES[platform]
    platforms = [flag for tag in MANYLINUX for flag in ("--platform", f"{tag}_{arch}")]
    _pip("install", "--dry-run", "--quiet", "--ignore-installed", "--target", str(tmp_path / "target"), *platforms,
         "--python-version", gateway_lock.PYTHON_VERSION, "--implementation", "cp", "--only-binary=:all:",
         "--require-hashes", "-r", str(gateway_lock.RUNTIME_LOCK))
