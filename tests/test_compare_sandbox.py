"""Generated code is contained: each hostile program is stopped by the limit meant for it, counts
as failed, leaves nothing outside its folder, and the tool goes on running programs afterwards.
Every canonical HumanEval solution passes inside the same limits, so they do not fail good code."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from pathlib import Path

import pytest

from hybridllm.compare.evalsets import humaneval
from hybridllm.compare.sandbox import Execution, Limits, run_program
from hybridllm.compare.scoring import check_program

LIMITS = Limits(seconds=2)


def run(program: str, limits: Limits = LIMITS, layers: tuple[str, ...] | None = None) -> tuple[Execution, float]:
    started = time.monotonic()
    execution = asyncio.run(run_program(program, limits, layers))
    return execution, time.monotonic() - started


def test_a_busy_loop_is_stopped_by_the_cpu_limit() -> None:
    execution, seconds = run("while True:\n    pass\n")
    assert not execution.passed and execution.outcome == "cpu_limit" and "SIGXCPU" in execution.detail
    assert seconds < LIMITS.seconds + 3


def test_a_program_that_waits_forever_is_killed_at_the_wall_clock_limit() -> None:
    execution, seconds = run("import time\ntime.sleep(3600)\n")
    assert not execution.passed and execution.outcome == "timeout"
    assert LIMITS.seconds <= seconds < LIMITS.seconds + 4


def test_exhausting_memory_hits_the_address_space_limit() -> None:
    execution, seconds = run("hog = []\nwhile True:\n    hog.append(bytearray(1 << 24))\n", Limits(seconds=5, memory_mib=256))
    assert not execution.passed and execution.outcome == "failed" and "MemoryError" in execution.detail
    assert seconds < 5


def test_a_file_over_the_size_limit_cannot_be_written() -> None:
    execution, _ = run("open('big', 'wb').write(b'x' * (4 << 20))\n", Limits(seconds=5, file_mib=1))
    assert not execution.passed and "File too large" in execution.detail


def test_writing_outside_the_working_folder_is_refused_by_each_layer(tmp_path: Path) -> None:
    canary = tmp_path / "escaped.txt"
    program = f"open({str(canary)!r}, 'w').write('escaped')\n"
    execution, _ = run(program)
    assert not execution.passed and "PermissionError" in execution.detail
    assert not canary.exists()
    # The kernel layer alone (Landlock), without the audit hook: the write is still refused.
    kernel, _ = run(program, layers=("landlock",))
    if any("landlock unavailable" in layer for layer in kernel.layers):
        pytest.skip("this kernel has no Landlock")
    assert not kernel.passed and "Permission denied" in kernel.detail and not canary.exists()
    # The audit hook alone, where the kernel lacks Landlock.
    hook, _ = run(program, layers=("audit",))
    assert not hook.passed and "outside the working folder" in hook.detail and not canary.exists()
    # Without any layer the same program does write: the layers above are what stopped it.
    unconfined, _ = run(program, layers=())
    assert unconfined.passed and canary.read_text() == "escaped"


def test_files_inside_the_working_folder_are_allowed() -> None:
    execution, _ = run("with open('scratch.txt', 'w') as f:\n    f.write('ok')\nassert open('scratch.txt').read() == 'ok'\n")
    assert execution.passed, execution.detail


def test_no_network_and_no_processes() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        server.setblocking(False)
        port = server.getsockname()[1]
        connect = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
        # All layers; the network namespace alone; Landlock alone (around the audit hook).
        for layers in (None, ("network",), ("landlock",)):
            execution, _ = run(connect, layers=layers)
            assert not execution.passed, layers
        # The kernel queues a completed connection whether or not anyone accepts it: none came.
        with pytest.raises(BlockingIOError):
            server.accept()
        # Unconfined, the same program connects: the layers above are what stopped it.
        unconfined, _ = run(connect, layers=())
        assert unconfined.passed, unconfined.detail
        server.accept()[0].close()
    spawn, _ = run("import subprocess\nsubprocess.run(['true'])\n")
    assert not spawn.passed and "not allowed" in spawn.detail
    fork, _ = run("import os\nos.fork()\n")
    assert not fork.passed


def test_no_secrets_reach_the_program(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HYBRID_LLM_GATEWAY_KEY", "sk-secret")
    execution, _ = run("import os\nassert 'HYBRID_LLM_GATEWAY_KEY' not in os.environ, 'leaked'\n")
    assert execution.passed, execution.detail


def test_leaving_early_is_not_passing() -> None:
    for program in ("import sys\nsys.exit(0)\n", "import os\nos._exit(0)\n", "raise SystemExit\n"):
        execution, _ = run(program)
        assert not execution.passed, program


def test_the_tool_survives_and_good_code_still_passes() -> None:
    async def many() -> list[Execution]:
        hostile = ["while True:\n    pass\n", "x = [0] * (1 << 40)\n", "import time\ntime.sleep(60)\n"]
        good = [check_program(p, p.canonical_solution) for p in humaneval()[:6]]
        return await asyncio.gather(*(run_program(program, LIMITS) for program in hostile + good))

    outcomes = asyncio.run(many())
    assert [e.passed for e in outcomes] == [False] * 3 + [True] * 6


def test_every_canonical_solution_passes_inside_the_limits() -> None:
    """The limits never fail a correct program (the default limits, all 164 problems)."""
    async def all_problems() -> list[tuple[str, Execution]]:
        running = asyncio.Semaphore(os.cpu_count() or 2)

        async def one(problem) -> tuple[str, Execution]:  # type: ignore[no-untyped-def]
            async with running:
                return problem.id, await run_program(check_program(problem, problem.canonical_solution))

        return await asyncio.gather(*(one(p) for p in humaneval()))

    failed = [(name, e.outcome, e.detail) for name, e in asyncio.run(all_problems()) if not e.passed]
    assert failed == []
