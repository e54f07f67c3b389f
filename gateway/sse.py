"""Relaying an OpenAI-style SSE stream event by event, without buffering the response.

On the way it reads the usage chunk (asked for with stream_options.include_usage), drops it when
the client did not ask for it, renames the backend's model to the public model name, and notes
the closing [DONE]. Most events are forwarded as bytes without being parsed: only events that
carry a usage object are. An event is held only until its separator arrives, and never past
`max_event_bytes`.
"""

from __future__ import annotations

from typing import Any

import orjson

_USAGE_MARKERS = (b'"usage":{', b'"usage": {')
_DONE = b"[DONE]"


class EventTooLarge(Exception):
    """An upstream sent more than the limit without ending the event."""


def _next_boundary(buffer: bytes | bytearray) -> tuple[int, int]:
    """Index and length of the first event separator, or (-1, 0)."""
    lf = buffer.find(b"\n\n")
    crlf = buffer.find(b"\r\n\r\n")
    if crlf != -1 and (lf == -1 or crlf < lf):
        return crlf, 4
    return (lf, 2) if lf != -1 else (-1, 0)


def _data_of(event: bytes) -> bytes:
    """The event's data: its `data:` lines, each without the field name and one optional space."""
    lines = []
    for line in event.splitlines():
        if line.startswith(b"data:"):
            value = line[5:]
            lines.append(value[1:] if value.startswith(b" ") else value)
    return b"\n".join(lines)


def is_done(event: bytes) -> bool:
    """Is this the stream's closing `data: [DONE]` event, however the upstream spelled it
    (`data:[DONE]` is valid SSE too)?"""
    return _DONE in event and _data_of(event).strip() == _DONE


class StreamRelay:
    def __init__(self, model_renames: tuple[tuple[bytes, bytes], ...], forward_usage: bool,
                 max_event_bytes: int = 16 * 1024 * 1024) -> None:
        self._renames = model_renames
        self._forward_usage = forward_usage
        self._max_event = max_event_bytes
        self._buffer = bytearray()
        self.usage: dict[str, Any] | None = None
        self.saw_done = False

    def feed(self, chunk: bytes) -> bytes:
        """Bytes to send to the client now: every complete event in the buffer."""
        if not self._buffer:
            # The common case: the chunk is exactly one event (its first separator ends it).
            at, size = _next_boundary(chunk)
            if at + size == len(chunk):
                return self._event(chunk)
        self._buffer += chunk
        out = bytearray()
        while True:
            at, size = _next_boundary(self._buffer)
            if at == -1:
                break
            event = bytes(self._buffer[: at + size])
            del self._buffer[: at + size]
            out += self._event(event)
        if len(self._buffer) > self._max_event:
            raise EventTooLarge(f"an event over {self._max_event} bytes")
        return bytes(out)

    def finish(self) -> bytes:
        """Whatever is left when the upstream closes (an unterminated last event)."""
        rest, self._buffer = bytes(self._buffer), bytearray()
        return self._event(rest) if rest.strip() else b""

    def _event(self, event: bytes) -> bytes:
        if is_done(event):
            self.saw_done = True
            return event
        if any(marker in event for marker in _USAGE_MARKERS):
            try:
                payload = orjson.loads(_data_of(event))
            except orjson.JSONDecodeError:
                payload = None
            if isinstance(payload, dict) and isinstance(payload.get("usage"), dict):
                self.usage = payload["usage"]
                # Azure and vLLM send usage in a chunk of its own, with empty choices.
                if not self._forward_usage and not payload.get("choices"):
                    return b""
        for old, new in self._renames:
            if old in event:
                event = event.replace(old, new)
        return event


def model_renames(served: str, public: str) -> tuple[tuple[bytes, bytes], ...]:
    if served == public:
        return ()
    old, new = orjson.dumps(served), orjson.dumps(public)
    return ((b'"model":' + old, b'"model":' + new), (b'"model": ' + old, b'"model": ' + new))


def error_event(message: str, code: str) -> bytes:
    """An OpenAI-style error event: clients see an error, never a silently truncated answer."""
    body = {"error": {"message": message, "type": "upstream_error", "code": code, "param": None}}
    return b"data: " + orjson.dumps(body) + b"\n\n"
