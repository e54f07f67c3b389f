"""Validate rendered manifests offline: Kubernetes schemas (strict) for each listed Kubernetes
version, the real CRD schemas, policy (security, resources, probes, images, coverage, secrets,
spot/on-demand placement) and cross-object references. Profiles are rendered first and helm lint
runs on them.

  hybrid-llm-validate build/rendered/hybrid.yaml       # files or directories
  hybrid-llm-validate --profile hybrid --profile aoai-only
  hybrid-llm-validate --all-profiles --format json

Exit codes: 0 clean, 1 findings, 2 usage or I/O error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hybridllm.errors import UserError
from hybridllm.layout import require_checkout
from hybridllm.validation.run import ValidationRequest, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="*", type=Path, help="manifest files or directories")
    parser.add_argument("--profile", action="append", default=[], help="a profile in values/ or a values file; repeatable")
    parser.add_argument("--all-profiles", action="store_true", help="every profile in values/")
    parser.add_argument("--kube-versions", help="comma-separated minors (default: data/kubernetes-versions.yaml)")
    parser.add_argument("--crds", type=Path, help="CRD directory (default: ../shared/crds, else the `make crds` cache)")
    parser.add_argument("--allow-kind", action="append", default=[], help="a kind with no schema that may pass unchecked")
    parser.add_argument("--format", choices=["text", "json"], default="text")
    parser.add_argument("--show-waived", action="store_true", help="list waived findings too (text format)")
    parser.add_argument("--no-lint", action="store_true", help="skip helm lint of rendered profiles")
    args = parser.parse_args(argv)
    if not args.paths and not args.profile and not args.all_profiles:
        parser.print_usage(sys.stderr)
        print(f"{parser.prog}: error: give manifest paths, --profile or --all-profiles", file=sys.stderr)
        return 2
    try:
        require_checkout()
        output, clean = run(ValidationRequest(
            paths=args.paths, profiles=args.profile, all_profiles=args.all_profiles,
            kube_versions=args.kube_versions.split(",") if args.kube_versions else None,
            crds=args.crds, allow_kinds=set(args.allow_kind), output_format=args.format,
            show_waived=args.show_waived, lint=not args.no_lint))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(output)
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
