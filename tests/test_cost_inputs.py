"""Bad input to scripts/crossover.py: a one-line error that names the flag, key or file, a non-zero
exit, nothing on stdout, no traceback and no hang; and the inputs that are valid but were
mishandled (a $0 spot price, a region without one, a crossover at 0, over-capacity fleets)."""

from __future__ import annotations

import contextlib
import io
import json
import math
import re
import signal
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path
from typing import Iterator

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hybridllm import cost_figures
from hybridllm.economics import Workload, analyse
from hybridllm.errors import UserError
from hybridllm.cli import crossover
from hybridllm.layout import REPO_ROOT


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "crossover.py"), *args],
                          capture_output=True, text=True, cwd=REPO_ROOT, timeout=30, check=False)


def workload_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "w.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


# Each bad input of issue 13 item 4, and the words its error must contain.
BAD_FLAGS = [
    (["--tokens-per-day", "1e8", "--node-hourly", "nan"], "--node-hourly is nan: it must be a finite number"),
    (["--tokens-per-day", "1e8", "--engineering-hours", "nan"],
     "--engineering-hours is nan: it must be a finite number"),
    (["--tokens-per-day", "inf"], "--tokens-per-day is inf: it must be a finite number"),
    (["--tokens-per-day", "nan"], "--tokens-per-day is nan: it must be a finite number"),
    (["--tokens-per-day", "1e8", "--node-hourly", "-1"], "--node-hourly is -1: it must be at least 0"),
    (["--tokens-per-day", "1e8", "--spot-hourly", "-0.5"], "--spot-hourly is -0.5: it must be at least 0"),
    (["--tokens-per-day", "1e8", "--engineering-hours", "-5"], "--engineering-hours is -5: it must be at least 0"),
    (["--tokens-per-day", "1e20"], "--tokens-per-day is 1e+20: it must be above 0 and at most 1e+13"),
    (["--tokens-per-day", "1e12"], "needs 14,118 Standard_NC96ads_A100_v4 nodes on one path, more than the 10,000"),
    (["--tokens-per-day", "1e8", "--prompt-tokens", "800.9"], "--prompt-tokens is 800.9: it must be a whole number"),
    (["--tokens-per-day", "1e8", "--api-model", "gpt-9"],
     "--api-model names gpt-9, which data/figures.yaml has no prices"),
    (["--tokens-per-day", "1e8", "--reference-model", "gpt-9"],
     "--reference-model is 'gpt-9', not an Azure OpenAI model"),
    (["--tokens-per-day", "1e8", "--region", "centralus"],
     "--region is 'centralus': no on-demand price for Standard_NC96ads_A100_v4 there (it has a spot price only"),
    (["--tokens-per-day", "1e8", "--plot", "/proc/no-such-dir/x.png"],
     "--plot /proc/no-such-dir/x.png cannot be written"),
    (["--tokens-per-day", "1e8", "--as-of", "2026-13-01"], "--as-of is '2026-13-01', not a date"),
    (["--tokens-per-day", "lots"], "--tokens-per-day is 'lots', not a number"),
    (["--tokens-per-day", "1e8", "--api-deployment", "regional"],
     "--api-deployment is 'regional' (fix: use one of globalStandard, dataZone)"),
    (["--tokens-per-day", "1e8", "--format", "xml"], "argument --format: invalid choice"),
    ([], "no tokensPerDay"),
]

BAD_FILES = [
    ("tokensPerDay: 1e8\npeakToAverage: .nan\n", "peakToAverage is nan: it must be a finite number"),
    ("tokensPerDay: 1e8\nreferenceModel: gpt-9\n", "referenceModel is 'gpt-9', not an Azure OpenAI model"),
    ("tokensPerDay: 1e8\nregion: [eastus]\n", "region is ['eastus'], not a single name"),
    ("tokensPerDay: 1e8\negressBytesPerToken: -4\n", "egressBytesPerToken is -4: it must be at least 0"),
    ("tokensPerDay: 1e8\nnodeHourly: -14\n", "nodeHourly is -14: it must be at least 0"),
    ("tokensPerDay: 1e8\npromptTokens: 800.9\n", "promptTokens is 800.9: it must be a whole number"),
    ("tokensPerDay: 1e20\n", "tokensPerDay is 1e+20: it must be above 0 and at most 1e+13"),
    ("tokensPerDay: 1e8\nregion: centralus\n", "region is 'centralus': no on-demand price"),
    ("tokensPerDay: 1e8\napiModels: gpt-5-mini\n", "apiModels is 'gpt-5-mini', not a list of model names"),
    ("tokensPerDay: 1e8\nbatchShare: 0.8\nschemaStrictShare: 0.5\n", "schemaStrictShare plus batchShare exceeds 1"),
    ("tokensPerDay: 1e8\ntokenz: 1\n", "unknown key(s) tokenz"),
    ("tokensPerDay: 1e8\n1: 2\nzz: 3\n", "unknown key(s) 1, zz"),
    ("tokensPerDay: lots\n", "tokensPerDay is 'lots', not a number"),
    ("tokensPerDay: 1e8\npromptTokens: 200000\n", "more than the model's 131,072-token context"),
    ("tokensPerDay: 1e8\nminCustomerNodes: true\n", "minCustomerNodes is True, not a number"),
    ("- 1\n- 2\n", "the top level is a list, not a mapping"),
]


def assert_clean_error(done: subprocess.CompletedProcess[str], message: str) -> None:
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert done.stderr.startswith("error: ")


@pytest.mark.parametrize("args,message", BAD_FLAGS, ids=[" ".join(a) or "no-args" for a, _ in BAD_FLAGS])
def test_each_bad_flag_gets_a_one_line_error(args: list[str], message: str) -> None:
    assert_clean_error(cli(*args), message)


@pytest.mark.parametrize("text,message", BAD_FILES, ids=[m.split(" ")[0] for _, m in BAD_FILES])
def test_each_bad_workload_key_gets_a_one_line_error_naming_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = workload_file(tmp_path, text)
    done = cli("--workload", path)
    assert_clean_error(done, message)
    assert path in done.stderr


def test_an_unwritable_plot_path_fails_before_any_work(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder", encoding="utf-8")
    assert_clean_error(cli("--tokens-per-day", "1e8", "--plot", str(blocker / "x.png")),
                       f"--plot {blocker / 'x.png'} cannot be written")
    assert_clean_error(cli("--tokens-per-day", "1e8", "--plot", str(tmp_path)), "is a directory")


def test_a_read_only_plot_folder_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        done = cli("--tokens-per-day", "1e8", "--plot", str(folder / "x.png"))
        if done.returncode == 0:  # root ignores the mode bits
            pytest.skip("running as root: the folder is writable anyway")
        assert_clean_error(done, f"--plot {folder / 'x.png'} cannot be written")
    finally:
        folder.chmod(0o700)


@pytest.mark.parametrize("entry,message", [
    ({"outputPer1M": -1.0}, "azureOpenAI.m.outputPer1M is -1.0: it must be a finite number >= 0"),
    ({"outputPer1M": float("nan")}, "azureOpenAI.m.outputPer1M is nan: it must be a finite number >= 0"),
    ({"outputPer1M": "cheap"}, "azureOpenAI.m.outputPer1M is 'cheap', not a number"),
])
def test_a_bad_figure_names_its_key_in_the_figures_file(entry: dict, message: str) -> None:
    with pytest.raises(UserError) as raised:
        cost_figures.number(entry, "outputPer1M", "azureOpenAI.m")
    assert raised.value.where == "data/figures.yaml" and message in raised.value.problem


def test_a_workload_built_in_code_is_checked_too() -> None:
    for bad, message in [(dict(peak_to_average=math.nan), "peakToAverage is nan"),
                         (dict(region=["eastus"]), "region is ['eastus'], not a single name"),
                         (dict(prompt_tokens=800.9), "promptTokens is 800.9: it must be a whole number")]:
        with pytest.raises(UserError, match=re.escape(message)):
            analyse(Workload(tokens_per_day=1e8, **bad))


def test_a_zero_spot_price_is_a_price() -> None:
    done = cli("--tokens-per-day", "1e8", "--spot-hourly", "0", "--format", "json", "--as-of", "2026-11-27")
    report = json.loads(done.stdout)
    spot = next(s for s in report["strategies"] if s["name"] == "self-host, spot batch")
    assert report["node"]["spotHourly"] == 0.0 and report["node"]["costPer1MTokensFullUse"]["spot"] == 0.0
    # 1 on-demand node for the customer peak, 1 spot node at $0 for batch, engineering and egress.
    egress = 1e8 / 3 * 4 / 1e9 * 0.087 * 730 / 24
    assert (spot["customerNodes"], spot["batchNodes"]) == (2, 1)
    assert spot["monthlyUSD"] == pytest.approx(2 * 14.692 * 730 + 0 + 2000 + egress, abs=0.01)
    table = cli("--tokens-per-day", "1e8", "--spot-hourly", "0").stdout
    assert "$0.00/h spot" in table and "no spot price" not in table


def test_a_region_without_a_spot_price_says_so() -> None:
    done = cli("--tokens-per-day", "1e8", "--region", "westeurope", "--format", "json")
    report = json.loads(done.stdout)
    spot = next(s for s in report["strategies"] if s["name"] == "self-host, spot batch")
    assert spot["monthlyUSD"] is None and not spot["recommendable"]
    assert "no spot price for Standard_NC96ads_A100_v4 in westeurope" in spot["unavailable"]
    assert any("self-host, spot batch: not priced" in note for note in report["notes"])
    table = cli("--tokens-per-day", "1e8", "--region", "westeurope").stdout
    assert re.search(r"self-host, spot batch\s+not priced", table)
    priced = cli("--tokens-per-day", "1e8", "--region", "westeurope", "--spot-hourly", "2.5", "--format", "json")
    spot = next(s for s in json.loads(priced.stdout)["strategies"] if s["name"] == "self-host, spot batch")
    assert spot["monthlyUSD"] and spot["recommendable"]


def test_a_crossover_at_zero_is_zero_not_never() -> None:
    args = ["--tokens-per-day", "1e8", "--node-hourly", "0", "--engineering-hours", "0", "--ignore-capacity",
            "--api-model", "gpt-5-mini"]
    assert "gpt-5-mini               0 tokens/day (from the first token)" in cli(*args).stdout
    report = json.loads(cli(*args, "--format", "json").stdout)
    assert report["apiModels"]["gpt-5-mini"]["crossoverTokensPerDay"] == 0.0


def test_ignore_capacity_flags_fleets_over_capacity_and_never_recommends_them() -> None:
    report = json.loads(cli("--tokens-per-day", "1e9", "--ignore-capacity", "--api-model", "gpt-5.5",
                            "--format", "json").stdout)
    on_demand = next(s for s in report["strategies"] if s["name"] == "self-host, on-demand")
    # 1e9 tokens/day on one node that carries 120.4M: 830% utilisation.
    assert on_demand["utilisation"] == pytest.approx(1e9 / (1200 / (800 / 3538 + 400 / 630) * 86400), rel=1e-6)
    assert not on_demand["recommendable"] and "could not carry" in on_demand["unavailable"]
    assert report["recommended"]["strategy"] == "API only: gpt-5.5"
    assert any("utilisation above 100%" in note for note in report["notes"])


# ---------------------------------------------------------------------------------------------
# Property: whatever the flags and workload keys, the tool answers or refuses in one line, quickly.

BAD_NUMBERS = st.one_of(
    st.sampled_from(["nan", "inf", "-inf", "-1", "0", "1e20", "800.9", "1e-300", "1e308", "", " ", "abc", "NaN", "-0"]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(min_value=-10**6, max_value=10**15).map(str),
)
BAD_NAMES = st.sampled_from(["gpt-9", "", "centralus", "x", "Llama-3.3-70B-Instruct", "eastus"])
MODELS = ["gpt-5-mini", "gpt-5-nano", "gpt-4o-mini", "gpt-5.5", "Llama-3.3-70B-Instruct", "gpt-5.4-mini"]
REGIONS = ["eastus", "eastus2", "westus3", "westeurope", "swedencentral", "southcentralus"]


def mostly(valid: st.SearchStrategy, bad: st.SearchStrategy) -> st.SearchStrategy:
    """Three valid values to one bad one, so that both paths (answer, refusal) get exercised."""
    return st.one_of(valid, valid, valid, bad)


def text(strategy: st.SearchStrategy) -> st.SearchStrategy:
    return strategy.map(lambda v: repr(v) if isinstance(v, float) else str(v))


VALID = {  # per workload key: values that should get an answer
    "tokensPerDay": st.floats(1e3, 3e10), "peakToAverage": st.floats(1, 10), "promptTokens": st.integers(0, 20_000),
    "completionTokens": st.integers(1, 8_000), "cachedPromptShare": st.floats(0, 1), "batchShare": st.floats(0, 0.5),
    "schemaStrictShare": st.floats(0, 0.5), "region": st.sampled_from(REGIONS),
    "instanceType": st.just("Standard_NC96ads_A100_v4"),
    "capacityBasis": st.sampled_from(["sustainable", "saturation"]),
    "minCustomerNodes": st.integers(0, 5), "minBatchNodes": st.integers(0, 5), "spotEvictionOverhead": st.floats(0, 1),
    "egressBytesPerToken": st.floats(0, 16), "engineeringHoursPerMonth": st.floats(0, 400),
    "nodeHourly": st.floats(0, 100), "spotHourly": st.floats(0, 20), "apiModels": st.lists(st.sampled_from(MODELS),
    min_size=1, max_size=3), "referenceModel": st.sampled_from(["gpt-5-mini", "gpt-5.1", "gpt-4o"]),
    "apiDeployment": st.sampled_from(["globalStandard", "dataZone"]),
}
BAD_YAML = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.integers(min_value=-10**20, max_value=10**20), st.booleans(),
    BAD_NAMES, st.lists(BAD_NAMES, max_size=2), st.sampled_from([".nan", "lots"]),
    st.dictionaries(st.sampled_from(["a", "b"]), st.integers(), max_size=1),
)
FLAG_KEYS = {"--tokens-per-day": "tokensPerDay", "--prompt-tokens": "promptTokens",
             "--completion-tokens": "completionTokens", "--node-hourly": "nodeHourly", "--spot-hourly": "spotHourly",
             "--engineering-hours": "engineeringHoursPerMonth", "--reference-model": "referenceModel",
             "--api-deployment": "apiDeployment", "--region": "region", "--capacity-basis": "capacityBasis"}
FLAG_VALUES = {flag: mostly(text(VALID[key]), BAD_NUMBERS if key in ("tokensPerDay", "promptTokens",
               "completionTokens", "nodeHourly", "spotHourly", "engineeringHoursPerMonth") else BAD_NAMES)
               for flag, key in FLAG_KEYS.items()}
FLAG_VALUES["--api-model"] = mostly(st.sampled_from(MODELS), BAD_NAMES)
FLAG_VALUES["--as-of"] = mostly(st.dates(min_value=date(2026, 1, 1), max_value=date(2029, 1, 1)).map(str),
                                st.sampled_from(["yesterday", "2026-13-01", ""]))
FLAG_VALUES["--format"] = st.sampled_from(["json", "table"])
KEY_VALUES = st.sampled_from([*VALID, "unknownKey"]).flatmap(
    lambda key: st.tuples(st.just(key), mostly(VALID[key], BAD_YAML) if key in VALID else st.integers()))


class Hung(Exception):
    pass


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    def expire(*_: object) -> None:
        raise Hung(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_main(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), deadline(20):
        try:
            code = crossover.main(argv)
        except SystemExit as exc:  # argparse's own exits (a bad --format)
            code = exc.code if isinstance(exc.code, int) else 1
    return code, out.getvalue(), err.getvalue()


def reject_constant(name: str) -> float:
    raise AssertionError(f"non-finite number {name} in the JSON output")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(flags=st.dictionaries(st.sampled_from(sorted(FLAG_VALUES)), st.none(), max_size=5).flatmap(
           lambda chosen: st.fixed_dictionaries({flag: FLAG_VALUES[flag] for flag in chosen})),
       keys=st.lists(KEY_VALUES, max_size=5).map(dict),
       with_file=st.booleans(), ignore_capacity=st.booleans())
def test_no_traceback_no_hang_no_non_finite_number(flags: dict[str, str], keys: dict, with_file: bool,
                                                    ignore_capacity: bool) -> None:
    # A volume unless the workload file brings one (a later --tokens-per-day still wins).
    argv: list[str] = [] if with_file and "tokensPerDay" in keys else ["--tokens-per-day", "1.5e8"]
    for flag, value in flags.items():
        argv += [flag, value] if not value.startswith("-") else [f"{flag}={value}"]
    if ignore_capacity:
        argv.append("--ignore-capacity")
    with tempfile.TemporaryDirectory() as folder:
        if with_file:
            path = Path(folder) / "w.yaml"
            path.write_text(yaml.safe_dump(keys), encoding="utf-8")
            argv += ["--workload", str(path)]
        code, out, err = run_main(argv)
    assert code in (0, 2), (argv, err)
    if code == 2:
        assert out == "" and err.startswith("error: ") and len(err.strip().splitlines()) == 1, (argv, err)
        return
    assert err == ""
    if flags.get("--format") == "json":
        json.loads(out, parse_constant=reject_constant)
    else:
        assert not re.search(r"\b(nan|inf|infinity)\b", out, re.IGNORECASE), out
