"""Running generated code in a confined subprocess, never in the tool's own process.

Each program gets a fresh temporary working folder, a clean environment (no keys, no proxy
settings), its own session (so a timeout kills everything it started) and the limits below; the
child confines itself before the first generated line runs (sandbox_child.py says how). The
tool waits at most `seconds` of wall-clock time, then kills the child's process group.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

CHILD = Path(__file__).with_name("sandbox_child.py")
_VERDICT_BYTES = 64 * 1024  # a verdict is a few hundred bytes; anything past this is noise


@dataclass(frozen=True)
class Limits:
    seconds: float = 10.0  # wall clock, and CPU time
    memory_mib: int = 1024  # address space
    file_mib: int = 16  # the largest file the program may write
    open_files: int = 64
    processes: int = 64  # as nobody: processes and threads of that user

    def as_request(self) -> dict[str, int]:
        return {"cpuSeconds": max(1, round(self.seconds)), "memoryBytes": self.memory_mib << 20,
                "fileBytes": self.file_mib << 20, "openFiles": self.open_files, "processes": self.processes}


@dataclass(frozen=True)
class Execution:
    passed: bool
    outcome: str  # passed, failed, timeout, cpu_limit, killed, no_verdict
    detail: str
    seconds: float
    layers: tuple[str, ...] = ()


def _environment() -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/nonexistent", "OMP_NUM_THREADS": "1"}


async def _read_capped(stream: asyncio.StreamReader) -> bytes:
    kept = bytearray()
    while chunk := await stream.read(65536):
        if len(kept) < _VERDICT_BYTES:
            kept += chunk[: _VERDICT_BYTES - len(kept)]
    return bytes(kept)


async def run_program(program: str, limits: Limits = Limits(), layers: tuple[str, ...] | None = None) -> Execution:
    """Run `program` confined; `layers` (tests only) picks which of the child's layers to apply."""
    nonce = secrets.token_hex(16)
    request = {"nonce": nonce, "program": program, "limits": limits.as_request()}
    if layers is not None:
        request["layers"] = list(layers)
    folder = tempfile.mkdtemp(prefix="compare-exec-")
    started = time.monotonic()
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-I", "-B", str(CHILD), cwd=folder, env=_environment(), stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, start_new_session=True)
        assert process.stdin is not None and process.stdout is not None
        timed_out = False

        async def exchange() -> bytes:
            assert process.stdin is not None and process.stdout is not None
            process.stdin.write(json.dumps(request).encode())
            try:
                await process.stdin.drain()
                process.stdin.close()
            except (BrokenPipeError, ConnectionResetError):
                pass
            out = await _read_capped(process.stdout)
            await process.wait()
            return out

        try:
            out = await asyncio.wait_for(exchange(), limits.seconds + 2)  # + the interpreter's start-up
        except TimeoutError:
            timed_out = True
            # The child leads its own session: this ends it and anything it started.
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            await process.wait()
            out = b""
        return _verdict(out, nonce, process.returncode, timed_out, limits, time.monotonic() - started)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _verdict(out: bytes, nonce: str, returncode: int | None, timed_out: bool, limits: Limits,
             seconds: float) -> Execution:
    if timed_out:
        return Execution(False, "timeout", f"killed after {limits.seconds:g} s of wall-clock time", seconds)
    try:
        verdict = json.loads(out.decode())
    except (UnicodeDecodeError, ValueError):
        verdict = None
    if isinstance(verdict, dict) and verdict.get("nonce") == nonce:
        layers = tuple(str(layer) for layer in verdict.get("layers", ()))
        if verdict.get("status") == "passed":
            return Execution(True, "passed", "", seconds, layers)
        return Execution(False, "failed", str(verdict.get("error", "")), seconds, layers)
    if returncode is not None and returncode < 0:
        name = signal.Signals(-returncode).name if -returncode in signal.Signals._value2member_map_ else str(-returncode)
        if -returncode in (signal.SIGXCPU, signal.SIGKILL):
            return Execution(False, "cpu_limit", f"{name}: over {limits.as_request()['cpuSeconds']} s of CPU", seconds)
        return Execution(False, "killed", f"ended by {name}", seconds)
    return Execution(False, "no_verdict", f"exited with code {returncode} before its tests finished", seconds)
