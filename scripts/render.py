#!/usr/bin/env python3
"""`python scripts/render.py` in a checkout: the same command as `hybrid-llm-render`, whose code is
hybridllm/cli/render.py (`--help` says what it does)."""

import sys

from hybridllm.cli.render import main

if __name__ == "__main__":
    sys.exit(main())
