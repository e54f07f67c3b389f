"""One comparison run: the jobs from the chosen suites, every job on every backend, then scoring.

Code runs after all requests have finished, so the sandboxes' CPU load never slows the streams
being timed.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, replace

from .evalsets import CodeProblem, SchemaTask, code_request, humaneval, schema_request, schema_tasks
from .progress import Progress
from .runner import Job, Sample, Target, preflight, run
from .sandbox import Limits, run_program
from .scoring import check_program, check_schema_answer


@dataclass(frozen=True)
class Plan:
    problems: tuple[CodeProblem, ...]
    tasks: tuple[SchemaTask, ...]

    def jobs(self) -> list[Job]:
        return ([Job("humaneval", p.id, code_request(p)) for p in self.problems]
                + [Job("schema", t.id, schema_request(t)) for t in self.tasks])


def plan(suite: str, limit: int | None) -> Plan:
    """The first `limit` items of each chosen suite (all when None)."""
    problems = humaneval()[:limit] if suite in ("humaneval", "all") else ()
    tasks = schema_tasks()[:limit] if suite in ("schema", "all") else ()
    return Plan(tuple(problems), tuple(tasks))


@dataclass
class Evaluation:
    model: str
    samples: list[Sample]
    sandbox_layers: tuple[str, ...]


async def _score(plan_: Plan, samples: list[Sample], limits: Limits, progress: Progress | None) -> tuple[str, ...]:
    problems = {p.id: p for p in plan_.problems}
    tasks = {t.id: t for t in plan_.tasks}
    running = asyncio.Semaphore(max(1, min(4, os.cpu_count() or 1)))
    layers: tuple[str, ...] = ()

    async def score(sample: Sample) -> None:
        nonlocal layers
        if sample.suite == "schema":
            task = tasks[sample.item]
            verdict = check_schema_answer(task, sample.text) if not sample.error else None
            sample.extra = {"schema_ok": bool(verdict and verdict.ok), "response_format": task.response_format,
                            "detail": verdict.problem if verdict else sample.error}
        elif sample.error:
            sample.extra = {"passed": False, "outcome": "request_error", "detail": sample.error}
        else:
            async with running:
                execution = await run_program(check_program(problems[sample.item], sample.text), limits)
            layers = layers or execution.layers
            sample.extra = {"passed": execution.passed, "outcome": execution.outcome, "detail": execution.detail}
        if progress:
            progress.advance()

    await asyncio.gather(*(score(sample) for sample in samples))
    return layers


async def evaluate(target: Target, backends: list[str], plan_: Plan, concurrency: int, limits: Limits,
                   show_progress: bool | None = None) -> Evaluation:
    model = await preflight(target, backends)
    target = replace(target, model=model)
    jobs = plan_.jobs()
    progress = Progress(len(jobs) * len(backends), "requests", enabled=show_progress)
    samples = await run(target, backends, jobs, concurrency, progress)
    progress.close()
    checking = Progress(len(samples), "scoring ", enabled=show_progress)
    layers = await _score(plan_, samples, limits, checking)
    checking.close()
    return Evaluation(model, samples, layers)
