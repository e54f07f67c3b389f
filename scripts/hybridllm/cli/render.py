"""Render values profiles through the chart with the real Helm engine.

Writes build/rendered/<profile>.yaml and the GitOps export kaito/<profile>/, runs helm lint, and
prints a summary of each profile. With no profile named, renders every file in values/.

  hybrid-llm-render                    # every profile
  hybrid-llm-render hybrid aoai-only   # some profiles
  hybrid-llm-render my-values.yaml     # any values file (not exported to kaito/)
"""

from __future__ import annotations

import argparse
import sys

from hybridllm import figures, helm, kaito_export, summary
from hybridllm.errors import UserError
from hybridllm.layout import PROFILES_DIR, RENDERED_DIR, display_path, require_checkout
from hybridllm.profiles import load_profile, profile_names
from hybridllm.rendering import lint_profile, render_profile


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("profiles", nargs="*", help="profile names in values/ or paths to values files")
    parser.add_argument("--no-lint", action="store_true", help="skip helm lint")
    args = parser.parse_args(argv)

    try:
        require_checkout()
        if figures.write_chart_figures():
            print("updated charts/hybrid-llm/files/figures.yaml from data/figures.yaml")
        names = args.profiles or profile_names()
        print(f"rendering {len(names)} profile(s) with {helm.engine().name}\n")
        failures = 0
        for name in names:
            profile = load_profile(name)
            try:
                rendering = render_profile(profile)
            except UserError as exc:
                print(f"FAILED {exc}\n", file=sys.stderr)
                failures += 1
                continue
            RENDERED_DIR.mkdir(parents=True, exist_ok=True)
            out = RENDERED_DIR / f"{profile.name}.yaml"
            out.write_text(rendering.to_yaml(), encoding="utf-8")
            print(summary.summarize(rendering))
            print(f"  wrote {display_path(out)}")
            if profile.path.parent.resolve() == PROFILES_DIR.resolve():
                print(f"  wrote {display_path(kaito_export.write_export(rendering))}/")
            if not args.no_lint:
                problems = [m for m in lint_profile(profile) if m.severity in ("warning", "error")]
                for message in problems:
                    print(f"  helm lint {message.severity}: {message.path}: {message.text}", file=sys.stderr)
                failures += bool(problems)
                print(f"  helm lint: {'FAILED' if problems else 'clean'}")
            print()
        return 1 if failures else 0
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
