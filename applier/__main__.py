"""python -m applier --manifests DIR --namespace NS --release NAME [...]
python -m applier --teardown --prune-selector SELECTOR [--keep-inference-set NAME ...] [...]

Exit 0 when every path is applied (or, with --teardown, every InferenceSet to delete is gone), 1
when one failed (the log says why and how to fix it), 2 when the invocation or the manifests are
wrong.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from applier.cluster import Cluster
from applier.converge import Applier, Failed, Settings
from applier.kube import ConfigError, KubeClient
from applier.log import log
from applier.plan import PlanError, read_anchors, read_plan, require_owner
from applier.teardown import Teardown, TeardownSettings


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be more than 0 seconds")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m applier",
        description="Apply the release's KAITO InferenceSets once KAITO will admit them, bringing up each path's "
                    "GPU node with a node anchor first (the chart's hook Job in the nap and aks node pool modes).",
    )
    parser.add_argument("--manifests", required=True, type=Path, metavar="DIR",
                        help="the mounted serving ConfigMap: plan.tsv, <path>.inferenceset.yaml, <path>.node-anchor.yaml")
    parser.add_argument("--teardown", action="store_true",
                        help="delete the InferenceSets matching --prune-selector (but those named by --keep-inference-set), "
                             "each once a node KAITO needs for the deletion is up (the chart's pre-upgrade and pre-delete Jobs)")
    parser.add_argument("--keep-inference-set", action="append", default=[], metavar="NAME",
                        help="with --teardown: an InferenceSet to leave (repeat it)")
    parser.add_argument("--namespace", required=True, help="the release namespace")
    parser.add_argument("--release", required=True,
                        help="the Helm release name (finds the node anchors of paths no longer in the plan)")
    parser.add_argument("--node-timeout-seconds", type=_positive, default=2400.0, metavar="S",
                        help="how long to wait for each path's admissible GPU node (default 2400)")
    parser.add_argument("--pod-timeout-seconds", type=_positive, default=600.0, metavar="S",
                        help="how long, after its InferenceSet is in, a path waits for a vLLM pod to take the anchored node; "
                             "with --teardown, how long a deleted InferenceSet may take to go (default 600)")
    parser.add_argument("--poll-seconds", type=_positive, default=15.0, metavar="S", help="seconds between checks (default 15)")
    parser.add_argument("--field-manager", default="hybrid-llm", help="server-side apply field manager (default hybrid-llm)")
    parser.add_argument("--owner-configmap", default="", metavar="NAME",
                        help="the ConfigMap whose UID replaces the owner UID placeholder in the manifests")
    parser.add_argument("--owner-uid-placeholder", default="", metavar="TEXT",
                        help="the ownerReferences uid the chart writes for the applier to fill in")
    parser.add_argument("--prune-selector", default="", metavar="SELECTOR",
                        help="with --teardown: the label selector of the release's InferenceSets")
    parser.add_argument("--api-server", default="", metavar="URL",
                        help="the API server; default: the in-cluster one (KUBERNETES_SERVICE_HOST/PORT) with the Pod's "
                             "ServiceAccount. For tests, http://127.0.0.1:<port> talks plain HTTP without credentials.")
    args = parser.parse_args(argv)
    if args.teardown and not args.prune_selector:
        parser.error("--teardown needs --prune-selector: the label selector of the release's InferenceSets")
    if not args.teardown and (args.prune_selector or args.keep_inference_set):
        parser.error("--prune-selector and --keep-inference-set go with --teardown (the chart's prune and teardown Jobs)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.teardown:
        return _teardown(args)
    try:
        plan = read_plan(args.manifests)
        require_owner(plan, args.owner_uid_placeholder, args.owner_configmap)
        client = KubeClient.for_server(args.api_server) if args.api_server else KubeClient.in_cluster()
        settings = Settings(
            release=args.release,
            node_timeout=args.node_timeout_seconds,
            pod_timeout=args.pod_timeout_seconds,
            poll=args.poll_seconds,
            owner_config_map=args.owner_configmap,
            owner_uid_placeholder=args.owner_uid_placeholder,
        )
        applier = Applier(Cluster(client, args.namespace, args.field_manager), plan, settings)
        log(f"serving paths of release {args.release} in {args.namespace}: {', '.join(p.name for p in plan) or '(none)'}")
        applier.run()
    except (PlanError, ConfigError) as exc:
        log(f"ERROR: {exc}")
        return 2
    except Failed as failure:
        for line in failure.lines:
            log(line)
        return 1
    return 0


def _teardown(args: argparse.Namespace) -> int:
    try:
        anchors = read_anchors(args.manifests)
        client = KubeClient.for_server(args.api_server) if args.api_server else KubeClient.in_cluster()
        settings = TeardownSettings(
            release=args.release,
            selector=args.prune_selector,
            keep=frozenset(args.keep_inference_set),
            node_timeout=args.node_timeout_seconds,
            gone_timeout=args.pod_timeout_seconds,
            poll=args.poll_seconds,
            owner_config_map=args.owner_configmap,
            owner_uid_placeholder=args.owner_uid_placeholder,
        )
        kept = ", ".join(sorted(settings.keep)) or "(none)"
        log(f"deleting the InferenceSets of release {args.release} in {args.namespace} ({args.prune_selector}); keeping: {kept}")
        Teardown(Cluster(client, args.namespace, args.field_manager), anchors, settings).run()
    except (PlanError, ConfigError) as exc:
        log(f"ERROR: {exc}")
        return 2
    except Failed as failure:
        for line in failure.lines:
            log(line)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
