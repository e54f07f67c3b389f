#!/usr/bin/env python3
"""Benchmark the Kubernetes-schema step of the validator against a plain per-document
kubernetes_validate.validate() loop, on the same documents (every built-in object of every
profile, for every listed Kubernetes version), and check that both give the same verdicts.

  python scripts/bench_validate.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import time

import kubernetes_validate

from hybridllm.profiles import load_profile, profile_names
from hybridllm.rendering import render_profile
from hybridllm.validation.kubernetes_schemas import KubernetesSchemas, default_versions


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3, help="times each side runs; the best run counts")
    args = parser.parse_args()
    versions = default_versions()
    documents = [o.obj for name in profile_names() for o in render_profile(load_profile(name)).objects]
    schemas = KubernetesSchemas(versions)
    builtin = [d for d in documents if schemas.is_builtin(d["kind"])]
    # Mutants make sure both sides are compared on failures too, not only on clean documents.
    mutants = []
    for document in builtin[:10]:
        if "spec" in document:
            broken = {**document, "spec": {**document["spec"], "replicaz": 1}}
        else:
            broken = {**document, "dataz": {}}
        mutants.append(broken)
    corpus = builtin + mutants
    checks = len(corpus) * len(versions)

    def naive() -> list[bool]:
        verdicts = []
        for version in versions:
            for document in corpus:
                try:
                    kubernetes_validate.validate(document, version, strict=True)
                    verdicts.append(True)
                except kubernetes_validate.ValidationError:
                    verdicts.append(False)
        return verdicts

    def cached() -> list[bool]:
        return [not schemas.problems(version, document) for version in versions for document in corpus]

    timings = {}
    results = {}
    for name, fn in (("kubernetes_validate.validate per document", naive), ("hybrid-llm cached validators", cached)):
        best = float("inf")
        for _ in range(args.repeat):
            started = time.perf_counter()
            results[name] = fn()
            best = min(best, time.perf_counter() - started)
        timings[name] = best
    naive_name, cached_name = list(timings)
    same = results[naive_name] == results[cached_name]
    print(f"{len(corpus)} documents ({len(mutants)} deliberately broken) x {len(versions)} Kubernetes versions "
          f"= {checks} checks; best of {args.repeat}")
    for name, seconds in timings.items():
        print(f"  {name:<45} {checks / seconds:>10,.0f} documents/s  ({seconds * 1e3:,.0f} ms)")
    print(f"  speed-up: {timings[naive_name] / timings[cached_name]:,.0f}x   "
          f"verdicts identical: {'yes' if same else 'NO'} ({results[cached_name].count(False)} failing checks on each side)")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
