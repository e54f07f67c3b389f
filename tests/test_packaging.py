"""The two distributions: hybrid-llm-gateway (./pyproject.toml: gateway and applier, what the image
holds) and hybrid-llm-tools (scripts/pyproject.toml: hybridllm). Their console scripts start from any
directory with nothing on PYTHONPATH; the gateway's hashed lock (gateway/requirements.lock) is exactly
what `make lock` writes from pyproject.toml and holds none of the tools' dependencies; the tools also
work installed from their wheel, inside a checkout, and say so clearly outside one."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from hybridllm import gateway_lock
from hybridllm.errors import UserError
from hybridllm.layout import REPO_ROOT

BIN = Path(sys.executable).parent
GATEWAY_SCRIPTS = {"hybrid-llm-gateway", "hybrid-llm-keys", "hybrid-llm-applier"}
TOOLS_SCRIPTS = {"hybrid-llm-render", "hybrid-llm-validate", "hybrid-llm-crossover", "hybrid-llm-nodepools",
                 "hybrid-llm-preflight", "hybrid-llm-compare", "hybrid-llm-package"}
# What used to come with `pip install '.[gateway]'` from the tools (issue 11).
HEAVY = {"helm-python-sdk", "kubernetes-validate", "matplotlib", "numpy", "pillow"}


def pyproject(path: Path) -> dict:
    with path.open("rb") as handle:
        return tomllib.load(handle)


GATEWAY = pyproject(REPO_ROOT / "pyproject.toml")
TOOLS = pyproject(REPO_ROOT / "scripts" / "pyproject.toml")


def test_each_distribution_declares_its_console_scripts() -> None:
    assert set(GATEWAY["project"]["scripts"]) == GATEWAY_SCRIPTS
    assert set(TOOLS["project"]["scripts"]) == TOOLS_SCRIPTS
    assert GATEWAY["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"] == ["gateway", "applier"]
    assert TOOLS["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"] == ["hybridllm"]
    # Nothing finds the packages through pytest's pythonpath any more: they are installed.
    assert "pythonpath" not in GATEWAY["tool"]["pytest"]["ini_options"]


@pytest.mark.parametrize("script", sorted(GATEWAY_SCRIPTS | TOOLS_SCRIPTS))
def test_every_console_script_starts_from_anywhere(script: str, tmp_path: Path) -> None:
    """Installed entry points, run from a directory outside the checkout with no PYTHONPATH."""
    done = subprocess.run([str(BIN / script), "--help"], cwd=tmp_path, env={"PATH": f"{BIN}:/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage:"), done.stdout


def test_the_gateway_declares_none_of_the_tools_dependencies() -> None:
    gateway = {canonicalize_name(Requirement(r).name) for r in GATEWAY["project"]["dependencies"]}
    locked = set(gateway_lock.parse_lock(gateway_lock.RUNTIME_LOCK))
    tools = {canonicalize_name(Requirement(r).name) for r in TOOLS["project"]["dependencies"]}
    assert not (tools - gateway) & locked, "the gateway's lock pulls in the tools' dependencies"
    assert not HEAVY & locked


# ---- the lock ------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", gateway_lock.LOCKS, ids=lambda spec: spec.path.name)
def test_the_lock_pins_every_requirement_with_hashes(spec: gateway_lock.LockSpec) -> None:
    assert gateway_lock.problems(spec) == []
    pins = gateway_lock.parse_lock(spec.path)
    assert pins and all(pin.hashes for pin in pins.values())


@pytest.mark.parametrize("spec", gateway_lock.LOCKS, ids=lambda spec: spec.path.name)
def test_the_lock_is_what_make_lock_writes(spec: gateway_lock.LockSpec) -> None:
    """uv resolves pyproject.toml again (from PyPI), keeping the lock's pins as `make lock` does: the
    same releases must come out, and every locked hash must be one PyPI publishes."""
    assert gateway_lock.drift(spec) == []


def _lock_copy(tmp_path: Path, edit=lambda text: text) -> gateway_lock.LockSpec:
    """A copy of the runtime lock and pyproject.toml to break, side by side as in the repository."""
    shutil.copyfile(REPO_ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    lock = tmp_path / "requirements.lock"
    lock.write_text(edit(gateway_lock.RUNTIME_LOCK.read_text(encoding="utf-8")), encoding="utf-8")
    return gateway_lock.LockSpec(lock, "project", tmp_path / "pyproject.toml")


def test_lock_problems_name_the_requirement(tmp_path: Path) -> None:
    without_orjson = _lock_copy(tmp_path, lambda text: text.replace("\norjson==", "\n#orjson==", 1))
    with pytest.raises(UserError, match="not an exact pin with sha256 hashes"):
        gateway_lock.problems(without_orjson)  # its hash lines now follow a comment

    lock = gateway_lock.parse_lock(gateway_lock.RUNTIME_LOCK)
    pyyaml = lock["pyyaml"]
    spec = _lock_copy(tmp_path, lambda text: text.replace(f"pyyaml=={pyyaml.version}", "pyyaml==5.4.1"))
    assert gateway_lock.problems(spec) == [
        f"{spec.path}: pyyaml==5.4.1 is outside pyyaml>=6.0 ([project].dependencies in {spec.pyproject})"]

    pyproject = spec.pyproject.read_text(encoding="utf-8").replace('  "orjson>=3.9",\n', '  "orjson>=3.9",\n  "six>=1.16",\n')
    spec.pyproject.write_text(pyproject, encoding="utf-8")
    spec.path.write_text(gateway_lock.RUNTIME_LOCK.read_text(encoding="utf-8"), encoding="utf-8")
    assert gateway_lock.problems(spec) == [f"{spec.path}: six ([project].dependencies in {spec.pyproject}) is not pinned"]


def test_lock_drift_names_what_changed(tmp_path: Path) -> None:
    """Against PyPI: a dependency added to pyproject.toml, one removed, and a hash PyPI never published."""
    lock = gateway_lock.parse_lock(gateway_lock.RUNTIME_LOCK)
    forged = next(iter(sorted(lock["orjson"].hashes)))
    spec = _lock_copy(tmp_path, lambda text: text.replace(forged, "0" * 64))
    pyproject = spec.pyproject.read_text(encoding="utf-8")
    pyproject = pyproject.replace('  "orjson>=3.9",\n', '  "orjson>=3.9",\n  "six>=1.16",\n')
    pyproject = pyproject.replace('  "prometheus-client>=0.20",\n', "")
    spec.pyproject.write_text(pyproject, encoding="utf-8")
    found = "\n".join(gateway_lock.drift(spec))
    assert "six==" in found and "is needed but not locked" in found
    assert f"prometheus-client=={lock['prometheus-client'].version} is locked but nothing needs it" in found
    assert f"orjson=={lock['orjson'].version} has hashes the index does not publish: {'0' * 64}" in found
    spec.pyproject.write_text(pyproject.replace('"orjson>=3.9"', '"orjson>=99"'), encoding="utf-8")
    (stale,) = gateway_lock.drift(spec)
    assert stale.startswith(f"{spec.path}: the locked releases no longer satisfy [project].dependencies in {spec.pyproject}")


# ---- the tools, installed from their wheel -------------------------------------------------------


@pytest.fixture(scope="module")
def tools_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """hybrid-llm-tools installed from its wheel (not editable) into a fresh venv. Its third-party
    dependencies come from .venv's site-packages through a path file, which adds them to sys.path
    without running .venv's own path files (the editable installs of this checkout)."""
    folder = tmp_path_factory.mktemp("tools")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
                    "--wheel-dir", str(folder / "wheels"), str(REPO_ROOT / "scripts")], check=True, timeout=300)
    (wheel,) = (folder / "wheels").glob("hybrid_llm_tools-*.whl")
    venv = folder / "venv"
    subprocess.run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", "--without-pip", str(venv)],
                   check=True, timeout=120)
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--quiet",
                    "--no-deps", "--no-index", str(wheel)], check=True, timeout=300)
    (site,) = (venv / "lib").glob("python3.*/site-packages")
    (site / "dev-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    return venv


def test_the_installed_tools_work_inside_a_checkout_and_refuse_outside(tools_venv: Path, tmp_path: Path) -> None:
    env = {"PATH": f"{tools_venv / 'bin'}:/usr/bin:/bin"}
    where = subprocess.run([str(tools_venv / "bin" / "python"), "-c", "import hybridllm; print(hybridllm.__file__)"],
                           env=env, capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(tools_venv)), where
    # From a folder inside the checkout: the tools find it above the current directory.
    inside = subprocess.run([str(tools_venv / "bin" / "hybrid-llm-nodepools"), "spot-batch-aks"],
                            cwd=REPO_ROOT / "values", env=env, capture_output=True, text=True, timeout=120, check=False)
    assert inside.returncode == 0 and "az aks nodepool add" in inside.stdout, inside.stderr
    outside = subprocess.run([str(tools_venv / "bin" / "hybrid-llm-nodepools"), "values/spot-batch-aks.yaml"],
                             cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert outside.returncode == 2 and "Traceback" not in outside.stderr
    assert "not a hybrid-llm checkout" in outside.stderr and "HYBRID_LLM_ROOT" in outside.stderr
    pointed = subprocess.run([str(tools_venv / "bin" / "hybrid-llm-nodepools"), "spot-batch-aks"], cwd=tmp_path,
                             env={**env, "HYBRID_LLM_ROOT": str(REPO_ROOT)}, capture_output=True, text=True,
                             timeout=120, check=False)
    assert pointed.returncode == 0 and "az aks nodepool add" in pointed.stdout, pointed.stderr
