"""python -m gateway --config FILE [--host H] [--port P]"""

from __future__ import annotations

import argparse
import logging
import sys

import uvicorn

from . import config as gateway_config
from . import logs
from .app import Gateway, create_app


class _DrainingServer(uvicorn.Server):
    """On SIGTERM, report not-ready first; uvicorn then stops accepting and lets in-flight
    requests and streams finish within the grace period."""

    def __init__(self, config: uvicorn.Config, gateway: Gateway) -> None:
        super().__init__(config)
        self._gateway = gateway

    def handle_exit(self, sig: int, frame: object) -> None:
        self._gateway.draining = True
        super().handle_exit(sig, frame)


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
    server = _DrainingServer(
        uvicorn.Config(create_app(gateway), host=args.host, port=args.port, access_log=False, log_config=None,
                       loop="auto", http="auto", timeout_graceful_shutdown=gateway.config.server.shutdown_grace_seconds),
        gateway,
    )
    logging.getLogger("gateway").info("starting", extra={"fields": {
        "host": args.host, "port": args.port, "backends": sorted(gateway.backends)}})
    server.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
