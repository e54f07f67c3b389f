"""gateway/split.py: weighted, sticky splits. First the arithmetic on its own, then the real
gateway on 127.0.0.1 in front of real upstream stubs, driven with the real openai client: where
users land, that they stay there, that two gateway processes agree, draining, stickiness by key,
the arm in x-llm-backend and the metrics, and fallback from a failed arm.

The expected arm of a sticky value comes from the documented rule (gateway_harness.expected_arm),
not from the gateway's own code."""

from __future__ import annotations

import hashlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import httpx
import openai
import pytest
import yaml
from starlette.datastructures import Headers

from gateway.config import Route
from gateway.split import Split, sticky_point, upper_bounds
from gateway_harness import (AUTH, DEMO_KEY, EXAMPLE, FaultyUpstream, GatewayProcess, RunningGateway, config_for,
                             example_gateway, expected_arm, upstream_stubs, write_keys)

VLLM, AZURE = "vllm-customer", "azure-openai"
USERS = [f"user-{n:04d}" for n in range(1000)]
TEAM_KEYS = {f"sk-team-{n:02d}": f"team-{n:02d}" for n in range(40)}


def user(name: str) -> Headers:
    return Headers(headers={"x-llm-user": name})


def split_route(arms: list[tuple[str, float]], sticky: str | None = None, fallbacks: list[str] | None = None) -> Route:
    spec: dict[str, Any] = {"split": [{"backend": b, "weight": w} for b, w in arms], "fallbacks": fallbacks or []}
    if sticky:
        spec["stickyBy"] = sticky
    return Route.model_validate(spec)


# ---- the arithmetic -------------------------------------------------------------------------------


def test_the_sticky_point_is_unsalted_blake2b() -> None:
    # A pinned value: a change here would move users to other arms on the next deploy.
    assert sticky_point("alice") == 0x4DEAEC0CCE54DA89
    assert sticky_point("ü-user") == int.from_bytes(hashlib.blake2b("ü-user".encode(), digest_size=8).digest(), "big")


def test_bounds_are_exact_and_cover_the_whole_line() -> None:
    assert upper_bounds([65, 35]) == ((2**64 * 13) // 20, 2**64)
    assert upper_bounds([0.1, 0.2]) == (2**64 // 3, 2**64), "exact fractions, not float rounding"
    assert upper_bounds([1, 1, 1])[-1] == 2**64
    assert upper_bounds([0.5, 0, 0.5]) == (2**63, 2**63, 2**64)
    with pytest.raises(ValueError, match="must not all be 0"):
        upper_bounds([0, 0])


def test_many_users_land_by_weight_on_three_arms() -> None:
    arms = [("a", 50.0), ("b", 30.0), ("c", 20.0)]
    split = Split(split_route(arms, "header:x-llm-user"), {"a": "a", "b": "b", "c": "c"})
    landed = Counter(split.arms[split.pick(user(f"u{n}"), 0)] for n in range(20000))
    for name, weight in arms:
        assert abs(landed[name] / 20000 * 100 - weight) < 2, landed
    assert all(split.arms[split.pick(user(f"u{n}"), 0)] == expected_arm(f"u{n}", arms) for n in range(2000))


def test_more_weight_on_an_arm_only_moves_users_onto_it() -> None:
    backends = {VLLM: VLLM, AZURE: AZURE}
    before = Split(split_route([(VLLM, 65), (AZURE, 35)], "header:x-llm-user"), backends)
    after = Split(split_route([(VLLM, 70), (AZURE, 30)], "header:x-llm-user"), backends)
    moved = Counter()
    for name in USERS:
        old = before.arms[before.pick(user(name), 0)]
        new = after.arms[after.pick(user(name), 0)]
        if old != new:
            moved[(old, new)] += 1
    assert set(moved) == {(AZURE, VLLM)} and 20 < moved[(AZURE, VLLM)] < 80, moved


def test_a_drained_arm_gets_no_traffic_but_stays_a_fallback() -> None:
    split = Split(split_route([(VLLM, 0), (AZURE, 1)], "header:x-llm-user", [VLLM]), {VLLM: VLLM, AZURE: AZURE})
    assert {split.arms[split.pick(user(name), 0)] for name in USERS} == {AZURE}
    assert split.chains == ((VLLM,), (AZURE, VLLM))
    assert split.shares() == {VLLM: 0.0, AZURE: 1.0}


def test_sticky_by_key_uses_the_point_worked_out_when_the_key_was_loaded() -> None:
    from gateway.keys import ApiKey

    arms = [(VLLM, 50.0), (AZURE, 50.0)]
    split = Split(split_route(arms, "key"), {VLLM: VLLM, AZURE: AZURE})
    for name in (f"team-{n}" for n in range(200)):
        key = ApiKey(name, frozenset({"*"}), frozenset({"*"}), False)
        assert key.sticky_point == sticky_point(name)
        assert split.arms[split.pick(user("ignored"), key.sticky_point)] == expected_arm(name, arms)


def test_an_arm_is_not_repeated_in_its_own_chain() -> None:
    split = Split(split_route([(VLLM, 1), (AZURE, 1)], None, [AZURE, VLLM]), {VLLM: VLLM, AZURE: AZURE})
    assert split.chains == ((VLLM, AZURE), (AZURE, VLLM))


# ---- over HTTP --------------------------------------------------------------------------------------

SPLIT = [(VLLM, 65.0), (AZURE, 35.0)]


def split_config(stubs: dict[str, FaultyUpstream], keys_file: Path) -> dict[str, Any]:
    config = config_for(stubs)
    config["auth"]["keysFile"] = str(keys_file)
    arms = [{"backend": b, "weight": w} for b, w in SPLIT]
    # Each arm falls back to the other.
    config["routes"]["customer"] = {"split": arms, "stickyBy": "header:x-llm-user", "fallbacks": [AZURE, VLLM]}
    config["routes"]["keyed"] = {"split": [{"backend": VLLM, "weight": 1}, {"backend": AZURE, "weight": 1}],
                                 "stickyBy": "key"}
    config["routes"]["drained"] = {"split": [{"backend": VLLM, "weight": 0}, {"backend": AZURE, "weight": 100}],
                                   "stickyBy": "header:x-llm-user", "fallbacks": [VLLM]}
    config["models"].update(keyed={"route": "keyed"}, drained={"route": "drained"})
    return config


@pytest.fixture(scope="module")
def stubs() -> Iterator[dict[str, FaultyUpstream]]:
    with upstream_stubs() as started:
        for stub in started.values():
            stub.record = False  # thousands of requests: keep no copies
        yield started


@pytest.fixture(scope="module")
def keys_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "keys.yaml"
    write_keys(path, {DEMO_KEY: {"name": "demo", "backendOverride": True},
                      **{key: {"name": name} for key, name in TEAM_KEYS.items()}})
    return path


@pytest.fixture(scope="module")
def config_file(stubs: dict[str, FaultyUpstream], keys_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("config") / "gateway.yaml"
    path.write_text(yaml.safe_dump(split_config(stubs, keys_file)), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def gateway(config_file: Path) -> Iterator[RunningGateway]:
    with example_gateway(yaml.safe_load(config_file.read_text(encoding="utf-8"))) as running:
        yield running


def client(url: str, key: str = DEMO_KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=20)


def arm_of(api: openai.OpenAI, model: str = "llama-3.3-70b", user: str | None = None, stream: bool = False,
           **extra: Any) -> str:
    """Send one chat completion; the backend that answered, from x-llm-backend."""
    headers = {"x-llm-user": user} if user is not None else {}
    raw = api.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": "hi"}], stream=stream, extra_headers=headers, **extra)
    if stream:
        assert "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices) == "Hello from the stub."
    else:
        assert raw.parse().choices[0].message.content == "Hello from the stub."
    return raw.headers["x-llm-backend"]


def arms_of_users(url: str, users: list[str], model: str = "llama-3.3-70b") -> dict[str, str]:
    api = client(url)
    with ThreadPoolExecutor(8) as pool:
        return dict(zip(users, pool.map(lambda user: arm_of(api, model, user), users)))


def share(landed: dict[str, str] | list[str], arm: str) -> float:
    values = list(landed.values()) if isinstance(landed, dict) else landed
    return 100 * sum(v == arm for v in values) / len(values)


def test_a_thousand_users_land_within_five_points_of_the_weights(gateway: RunningGateway) -> None:
    decisions = {arm: gateway.metric("llm_gateway_split_decisions_total", route="customer", arm=arm) for arm in (VLLM, AZURE)}
    served = {arm: gateway.metric("llm_gateway_requests_total", route="customer", backend=arm, status="200")
              for arm in (VLLM, AZURE)}
    landed = arms_of_users(gateway.url, USERS)
    print(f"\n1,000 users on 65/35: {share(landed, VLLM):.1f}% {VLLM}, {share(landed, AZURE):.1f}% {AZURE}")
    assert abs(share(landed, VLLM) - 65) <= 5 and abs(share(landed, AZURE) - 35) <= 5
    assert landed == {user: expected_arm(user, SPLIT) for user in USERS}, "the documented hash rule"
    # The metrics count the same arms the header showed.
    for arm in (VLLM, AZURE):
        count = sum(v == arm for v in landed.values())
        assert gateway.metric("llm_gateway_split_decisions_total", route="customer", arm=arm) - decisions[arm] == count
        assert gateway.metric("llm_gateway_requests_total", route="customer", backend=arm, status="200") - served[arm] == count
    assert gateway.metric("llm_gateway_split_weight", route="customer", arm=VLLM) == pytest.approx(0.65)
    assert gateway.metric("llm_gateway_split_weight", route="customer", arm=AZURE) == pytest.approx(0.35)


def test_one_user_always_lands_on_the_same_arm(gateway: RunningGateway) -> None:
    api = client(gateway.url)
    for user in ("alice", "bob", "carol", "dave"):
        seen = {arm_of(api, user=user, stream=stream) for stream in (False, True) for _ in range(5)}
        assert seen == {expected_arm(user, SPLIT)}, user
    # Routes without a split ignore the sticky header: `code` keeps its primary.
    raw = httpx.post(gateway.url + "/v1/completions", json={"model": "code", "prompt": "def f():"},
                     headers={**AUTH, "x-llm-user": "alice"})
    assert raw.headers["x-llm-backend"] == VLLM and raw.headers["x-llm-route"] == "code"


def test_requests_without_the_sticky_header_are_spread_by_weight(gateway: RunningGateway) -> None:
    api = client(gateway.url)
    with ThreadPoolExecutor(8) as pool:
        landed = list(pool.map(lambda _: arm_of(api), range(1500)))
    print(f"\n1,500 requests without x-llm-user on 65/35: {share(landed, VLLM):.1f}% {VLLM}")
    # 1,500 draws at p=0.65: one standard deviation is 1.2 points, so 5 points is 4 of them.
    assert abs(share(landed, VLLM) - 65) <= 5


def test_an_empty_sticky_header_counts_as_none(gateway: RunningGateway) -> None:
    api = client(gateway.url)
    assert {arm_of(api, user="") for _ in range(60)} == {VLLM, AZURE}


def test_weight_zero_drains_an_arm_that_still_serves_as_fallback(gateway: RunningGateway) -> None:
    landed = arms_of_users(gateway.url, USERS[:200], model="drained")
    assert set(landed.values()) == {AZURE}
    assert gateway.metric("llm_gateway_split_decisions_total", route="drained", arm=VLLM) == 0
    assert gateway.metric("llm_gateway_split_weight", route="drained", arm=VLLM) == 0
    # Azure OpenAI fails: the drained arm takes the request as the route's fallback.
    raw = client(gateway.url).chat.completions.with_raw_response.create(
        model="drained", messages=[{"role": "user", "content": "hi"}], extra_headers={"x-llm-user": "alice"},
        extra_body={"fault": {AZURE: {"status": 500}}})
    assert raw.headers["x-llm-backend"] == VLLM


def test_sticky_by_key_keeps_each_key_on_one_arm(gateway: RunningGateway) -> None:
    arms = [(VLLM, 1.0), (AZURE, 1.0)]
    landed: dict[str, str] = {}
    for key, name in TEAM_KEYS.items():
        api = client(gateway.url, key)
        seen = {arm_of(api, "keyed", user=f"someone-{n}") for n in range(3)}  # the header does not matter here
        assert len(seen) == 1, name
        landed[name] = seen.pop()
    assert landed == {name: expected_arm(name, arms) for name in TEAM_KEYS.values()}
    assert set(landed.values()) == {VLLM, AZURE}


def test_every_arm_can_still_be_pinned(gateway: RunningGateway) -> None:
    user = next(u for u in USERS if expected_arm(u, SPLIT) == VLLM)
    for backend in (VLLM, AZURE, "vllm-batch"):
        response = gateway.post({"model": "llama-3.3-70b", "messages": [{"role": "user", "content": "hi"}]},
                                {"x-llm-backend": backend, "x-llm-user": user})
        assert response.status_code == 200
        assert (response.headers["x-llm-backend"], response.headers["x-llm-route"]) == (backend, f"pinned:{backend}")


@pytest.mark.parametrize("arm,other", [(VLLM, AZURE), (AZURE, VLLM)])
def test_a_failed_arm_falls_back(gateway: RunningGateway, arm: str, other: str) -> None:
    user = next(u for u in USERS if expected_arm(u, SPLIT) == arm)
    before = gateway.fallbacks("status_5xx", source=arm, target=other)
    decided = gateway.metric("llm_gateway_split_decisions_total", route="customer", arm=arm)
    for stream in (False, True):
        assert arm_of(client(gateway.url), user=user, stream=stream,
                      extra_body={"fault": {arm: {"status": 503}}}) == other
    assert gateway.fallbacks("status_5xx", source=arm, target=other) == before + 2
    # The decision counts the arm the user belongs to; the answer is counted where it came from.
    assert gateway.metric("llm_gateway_split_decisions_total", route="customer", arm=arm) == decided + 2


def test_streams_record_time_to_first_token_and_tokens_per_second_per_arm(gateway: RunningGateway) -> None:
    user = next(u for u in USERS if expected_arm(u, SPLIT) == AZURE)
    ttft = gateway.metric("llm_gateway_time_to_first_token_seconds_count", route="customer", backend=AZURE)
    speed = gateway.metric("llm_gateway_stream_tokens_per_second_count", route="customer", backend=AZURE)
    tokens = gateway.metric("llm_gateway_tokens_total", route="customer", backend=AZURE, kind="completion")
    arm_of(client(gateway.url), user=user, stream=True)
    assert gateway.metric("llm_gateway_time_to_first_token_seconds_count", route="customer", backend=AZURE) == ttft + 1
    assert gateway.metric("llm_gateway_stream_tokens_per_second_count", route="customer", backend=AZURE) == speed + 1
    assert gateway.metric("llm_gateway_tokens_total", route="customer", backend=AZURE, kind="completion") == tokens + 5


def test_tokens_per_second_measures_the_time_after_the_first_token(tmp_path: Path) -> None:
    """A stub that waits 0.3 s, then sends 5 tokens with 0.1 s after each: about 10 tokens per
    second once the first token is out."""
    customer = FaultyUpstream(name=VLLM, token_delay=0.1, delay=0.3).start()
    others = {"vllm-batch": FaultyUpstream(name="vllm-batch").start(), AZURE: FaultyUpstream(name=AZURE, azure=True).start()}
    try:
        with example_gateway(config_for({VLLM: customer, **others})) as running:
            for _ in range(3):
                arm_of(client(running.url), stream=True)
            count = running.metric("llm_gateway_stream_tokens_per_second_count", route="customer", backend=VLLM)
            total = running.metric("llm_gateway_stream_tokens_per_second_sum", route="customer", backend=VLLM)
            ttft = running.metric("llm_gateway_time_to_first_token_seconds_sum", route="customer", backend=VLLM)
    finally:
        for stub in (customer, *others.values()):
            stub.stop()
    assert count == 3
    # 5 tokens in the ~0.5 s from the first token to the end: 10 tokens/s (12.5 is the ceiling
    # even if the last pause were not counted).
    assert 8 <= total / count <= 12.5, total / count
    assert 0.3 <= ttft / 3 < 0.6, "the 0.3 s before the first token is TTFT, not decode time"


def test_two_gateway_processes_put_every_user_on_the_same_arm(config_file: Path, gateway: RunningGateway) -> None:
    users = USERS[:300]
    # Different hash seeds: anything built on Python's salted hash() would disagree.
    with GatewayProcess(config_file, hash_seed="1") as first, GatewayProcess(config_file, hash_seed="2") as second:
        one, two = arms_of_users(first.url, users), arms_of_users(second.url, users)
    assert one == two == arms_of_users(gateway.url, users)
    assert set(one.values()) == {VLLM, AZURE}


def test_the_documented_example_split_works(stubs: dict[str, FaultyUpstream], keys_file: Path) -> None:
    """The commented split example in gateway/examples/local.yaml is a valid route."""
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    start = lines.index("# An A/B split, for example on the customer route:") + 1
    block = []
    for line in lines[start:]:
        if not line.startswith("#   "):
            break
        block.append(line[4:])
    example = yaml.safe_load("\n".join(block))
    config = split_config(stubs, keys_file)
    config["routes"].update(example)
    route = next(iter(example.values()))
    arms = [(a["backend"], float(a["weight"])) for a in route["split"]]
    with example_gateway(config) as running:
        assert arms_of_users(running.url, USERS[:100]) == {u: expected_arm(u, arms) for u in USERS[:100]}
