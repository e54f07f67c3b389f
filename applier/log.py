"""The applier's output: plain lines, each with a UTC timestamp, read with `kubectl logs job/...`."""

from __future__ import annotations

import sys
import time


def log(message: str) -> None:
    # Flushed per line: the Job may be killed at its deadline, and what it said up to then is
    # the diagnosis.
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {message}", file=sys.stdout, flush=True)
