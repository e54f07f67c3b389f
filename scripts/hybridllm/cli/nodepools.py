"""Print the `az aks nodepool add` commands for a values file in aks node pool mode: one GPU
pool per serving path, with the GPU taint, the labels the path's InferenceSet selects, the
autoscaler bounds, the GPU driver option and, for spot, the spot priority flags.

  hybrid-llm-nodepools values/spot-batch-aks.yaml
"""

from __future__ import annotations

import argparse
import sys

from hybridllm.errors import UserError
from hybridllm.layout import require_checkout
from hybridllm.nodepools import pool_commands
from hybridllm.profiles import load_profile


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("values", help="profile name in values/ or path to a values file")
    args = parser.parse_args(argv)
    try:
        require_checkout()
        commands = pool_commands(load_profile(args.values))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for command in commands:
        print(f"# {command.path} path: {command.capacity_type} GPU pool")
        print(command.shell())
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
