"""Package the chart into a .tgz with the real Helm engine (`helm package`, or Helm's Go SDK without a
helm binary). A release sets its version and the gateway image it built; the digest then pins the image.

  hybrid-llm-package                                   # build/charts/hybrid-llm-<Chart.yaml version>.tgz
  hybrid-llm-package --version 1.2.3 --image-repository ghcr.io/acme/gateway --image-digest sha256:...

Exit codes: 0 packaged, 2 bad input or Helm refused the chart.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hybridllm.chart_package import Release, package_chart
from hybridllm.errors import UserError
from hybridllm.layout import BUILD_DIR, display_path, require_checkout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--destination", type=Path, default=BUILD_DIR / "charts", help="folder for the .tgz (default build/charts)")
    parser.add_argument("--version", help="chart version and appVersion, and the gateway image's tag (SemVer, no v)")
    parser.add_argument("--image-repository", help="the gateway image's repository, for example ghcr.io/acme/gateway")
    parser.add_argument("--image-digest", help="the gateway image's digest (sha256:...), written to gateway.image.digest")
    args = parser.parse_args(argv)
    try:
        require_checkout()
        package = package_chart(args.destination, Release(args.version, args.image_repository, args.image_digest))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"packaged {package.chart['name']} {package.chart['version']} (appVersion {package.chart['appVersion']}) "
          f"with {package.engine}")
    print(f"  gateway image: {package.gateway_image}")
    print(f"  wrote {display_path(package.path)} (sha256:{package.sha256})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
