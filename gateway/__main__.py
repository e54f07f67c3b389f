"""python -m gateway --config FILE [--host H] [--port P]"""

from __future__ import annotations

import argparse
import logging
import sys

from . import config as gateway_config
from . import logs
from .app import Gateway
from .server import GatewayServer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway", description="hybrid-llm gateway")
    parser.add_argument("--config", required=True, help="gateway YAML config")
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logs.configure(args.log_level)
    try:
        gateway = Gateway(gateway_config.load(args.config))
    except gateway_config.ConfigError as exc:
        print(f"gateway: config error:\n{exc}", file=sys.stderr)
        return 2
    server = GatewayServer(gateway, args.host, args.port)
    logging.getLogger("gateway").info("starting", extra={"fields": {
        "host": args.host, "port": args.port, "backends": sorted(gateway.backends)}})
    server.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
