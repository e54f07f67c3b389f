#!/usr/bin/env python3
"""Compare the gateway's backends side by side on the same evaluation set (HumanEval pass@1,
schema-strict instruction following, first-token latency, streaming tokens/s, errors, tokens and
cost), or on live traffic from the gateway's Prometheus metrics.

  python scripts/compare.py --gateway http://127.0.0.1:8080 --key sk-... --backends vllm-customer,azure-openai
  python scripts/compare.py --gateway ... --suite humaneval --limit 20 --concurrency 8 --format json
  python scripts/compare.py --gateway ... --plot docs/img/compare.png
  python scripts/compare.py --prometheus http://prometheus:9090 --window 1d [--route customer]

The parts live in scripts/hybridllm/compare/; `python scripts/compare.py --help` lists every flag.
"""

from __future__ import annotations

import sys

from hybridllm.compare.cli import main

if __name__ == "__main__":
    sys.exit(main())
