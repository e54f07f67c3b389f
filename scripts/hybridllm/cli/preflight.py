"""Check a live cluster for what a values profile needs before `helm install`: KAITO's version
and install flags (nodeProvisioner, featureGates, spotInstance, GPU feature discovery
tolerations), node auto-provisioning in nap mode, the CRD of every kind the profile renders, the
Hugging Face token Secret and the GPU nodes' labels. Read-only: it only sends GETs.

  hybrid-llm-preflight -f values/hybrid.yaml
  hybrid-llm-preflight --context aks-prod --namespace llm -f values/spot-batch-aks.yaml

Exit codes: 0 every check passed (warnings allowed), 1 a check failed, 2 usage error or the
cluster cannot be used (no kubeconfig, unknown context, unreachable).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hybridllm.errors import UserError
from hybridllm.layout import DEFAULT_NAMESPACE, DEFAULT_RELEASE, require_checkout
from hybridllm.preflight.cluster import ClusterError
from hybridllm.preflight.run import PreflightRequest, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-f", "--values", dest="values", action="append", type=Path, required=True,
                        help="values file (repeatable, like helm -f: later files override earlier ones)")
    parser.add_argument("--context", help="kubeconfig context (default: the current context)")
    parser.add_argument("--kubeconfig", type=Path, help="kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)")
    parser.add_argument("--namespace", "-n", default=DEFAULT_NAMESPACE, help=f"release namespace (default {DEFAULT_NAMESPACE})")
    parser.add_argument("--release", default=DEFAULT_RELEASE, help=f"Helm release name (default {DEFAULT_RELEASE})")
    parser.add_argument("--kaito-namespace", help="where KAITO is installed (default: look in every namespace)")
    parser.add_argument("--format", choices=["text", "json"], default="text")
    args = parser.parse_args(argv)
    try:
        require_checkout()
        report, passed = run(PreflightRequest(
            values_files=args.values, context=args.context, kubeconfig=args.kubeconfig,
            namespace=args.namespace, release=args.release, kaito_namespace=args.kaito_namespace,
            output_format=args.format))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ClusterError as exc:
        print(f"error: {exc.problem}; fix: {exc.fix}", file=sys.stderr)
        return 2
    print(report)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
