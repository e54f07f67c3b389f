"""Serving the gateway with uvicorn: one place that builds the server, for `python -m gateway`
and the tests alike.

uvicorn's HTTP protocol puts no bound on a request's head, and none on how long a client may
take to send a request: a huge header is parsed at ever greater cost while every other request on
the worker waits, and a trickling client holds its connection for ever. `limited_protocol` adds
these limits (server.maxHeaderBytes; server.uploadTimeoutSeconds for the head, then again for the
body) and answers each with an OpenAI-style JSON error. The body's size is checked by the proxy,
which reads it.
"""

from __future__ import annotations

from typing import Any

import orjson
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .app import Gateway, create_app
from .metrics import GatewayMetrics

# uvicorn's own deadline for in-flight work comes this long after the gateway's, so that the
# gateway ends its streams with an error event before uvicorn cancels them.
_FORCE_MARGIN_SECONDS = 1.0
# After refusing a request, keep reading (and dropping) what the client still sends for this
# long before closing: closing with unread input resets the connection, and the client would
# lose the error it was sent.
_LINGER_SECONDS = 2.0


def _raw_error(status: int, reason: str, code: str, message: str) -> bytes:
    body = orjson.dumps({"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}})
    return (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
            "connection: close\r\n\r\n").encode() + body


def limited_protocol(max_header_bytes: int, upload_timeout: float, metrics: GatewayMetrics) -> type[HttpToolsProtocol]:
    too_large = _raw_error(431, "Request Header Fields Too Large", "header_too_large",
                           f"the request line and headers are over {max_header_bytes} bytes (server.maxHeaderBytes)")
    head_too_slow = _raw_error(408, "Request Timeout", "upload_timeout", f"the request headers did not arrive "
                               f"within {upload_timeout:g} s (server.uploadTimeoutSeconds)")
    body_too_slow = _raw_error(408, "Request Timeout", "upload_timeout", f"the request body did not arrive "
                               f"within {upload_timeout:g} s (server.uploadTimeoutSeconds)")

    class LimitedHttpToolsProtocol(HttpToolsProtocol):
        """The head of each request is counted as it is fed to the parser, which never sees more
        than the limit. One clock runs from the connection's start (or a request's first byte) to
        the end of the headers, another from there to the end of the body. A clock is only armed
        when a read ends inside a head or a body, so the usual request, which arrives in one
        read, costs no timer."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._in_head = True       # the next bytes belong to a request's head
            self._head_started = False  # ...and some of them have arrived
            self._head_bytes = 0
            self._head_timer: Any = None
            self._in_body = False
            self._body_timer: Any = None
            self._refused = False

        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._head_timer = self.loop.call_later(upload_timeout, self._head_timed_out)

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_head_timer()
            self._cancel_body_timer()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self._refused:
                return
            if self._in_head:
                room = max_header_bytes - self._head_bytes
                if len(data) > room:
                    # Only what the limit allows; the head may well end inside it.
                    self._head_bytes = max_header_bytes
                    super().data_received(data[:room])
                    if self.transport.is_closing():
                        return
                    if self._in_head:
                        metrics.rejected["header_too_large"].inc()
                        self._refuse(too_large)
                        return
                    data = data[room:]
                else:
                    self._head_bytes += len(data)
            super().data_received(data)
            if self.transport.is_closing():
                return
            if self._head_started and self._head_timer is None:
                self._head_timer = self.loop.call_later(upload_timeout, self._head_timed_out)
            elif self._in_body and self._body_timer is None:
                self._body_timer = self.loop.call_later(upload_timeout, self._body_timed_out)

        def on_message_begin(self) -> None:
            self._head_started = True
            super().on_message_begin()

        def on_headers_complete(self) -> None:
            self._in_head = self._head_started = False
            self._in_body = True
            self._head_bytes = 0
            self._cancel_head_timer()
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._in_head, self._in_body = True, False
            self._cancel_body_timer()
            super().on_message_complete()

        def _cancel_body_timer(self) -> None:
            if self._body_timer is not None:
                self._body_timer.cancel()
                self._body_timer = None

        def _body_timed_out(self) -> None:
            self._body_timer = None
            if self.transport.is_closing() or not self._in_body:
                return
            cycle = self.cycle
            if cycle is None or cycle.response_started:
                self.transport.close()  # answered already; the rest of the body is not wanted
                return
            # The request's handler is waiting for the body: it hears that the client is gone
            # (and what it answers is dropped), while the client hears why.
            metrics.rejected["upload_timeout"].inc()
            cycle.disconnected = True
            cycle.message_event.set()
            self._refuse(body_too_slow)

        def _cancel_head_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timed_out(self) -> None:
            self._head_timer = None
            if self.transport.is_closing() or not self._in_head:
                return
            if self._head_started:
                metrics.rejected["header_timeout"].inc()
                self._refuse(head_too_slow)
            else:
                self.transport.close()  # nothing was asked, so nothing is answered

        def _refuse(self, response: bytes) -> None:
            self._in_head = self._in_body = False
            self._refused = True
            self.transport.write(response)
            if self.transport.can_write_eof():
                self.transport.write_eof()
            self.loop.call_later(_LINGER_SECONDS, self.transport.close)

    return LimitedHttpToolsProtocol


class GatewayServer(uvicorn.Server):
    """uvicorn serving one gateway. On SIGTERM the gateway turns not-ready; uvicorn stops accepting
    and in-flight requests and streams get `shutdown_grace` seconds to finish, after which the
    gateway ends the remaining streams with an error event."""

    def __init__(self, gateway: Gateway, host: str, port: int, shutdown_grace: float | None = None) -> None:
        server = gateway.config.server
        self._gateway = gateway
        self.grace = server.shutdown_grace_seconds if shutdown_grace is None else shutdown_grace
        protocol = limited_protocol(server.max_header_bytes, server.upload_timeout_seconds, gateway.metrics)
        super().__init__(uvicorn.Config(
            create_app(gateway), host=host, port=port, access_log=False, log_config=None, loop="auto",
            http=protocol, timeout_graceful_shutdown=self.grace + _FORCE_MARGIN_SECONDS))

    def handle_exit(self, sig: int, frame: Any) -> None:
        self._gateway.begin_drain(self.grace)
        super().handle_exit(sig, frame)
