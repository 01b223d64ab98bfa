"""Server-sent events: an incremental decoder and the frame encoder.

The decoder follows the WHATWG event-stream rules that OpenAI and Anthropic
streams use: events are separated by a blank line, ``event:`` names the event,
``data:`` lines are joined with newlines, ``:`` lines are comments. It accepts
LF, CRLF and CR line endings and chunks cut anywhere, including mid-line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

DONE_FRAME = b"data: [DONE]\n\n"


@dataclass(frozen=True, slots=True)
class SSEEvent:
    data: str
    event: str | None = None


class SSEDecoder:
    """Feed raw bytes, get whole events back.

    >>> d = SSEDecoder()
    >>> d.feed(b'data: {"a"') + d.feed(b': 1}\\n\\n')
    [SSEEvent(data='{"a": 1}', event=None)]
    """

    def __init__(self) -> None:
        self._buffer = b""
        self._event: str | None = None
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        self._buffer += chunk
        events: list[SSEEvent] = []
        while True:
            line, found = self._next_line()
            if not found:
                return events
            if not line:
                if self._data or self._event is not None:
                    events.append(SSEEvent("\n".join(self._data), self._event))
                self._event, self._data = None, []
                continue
            self._take_line(line)

    def flush(self) -> list[SSEEvent]:
        """Events left when the stream ends without a final blank line."""
        if self._buffer:
            self._take_line(self._buffer.decode("utf-8", "replace").rstrip("\r"))
            self._buffer = b""
        if self._data:
            event = SSEEvent("\n".join(self._data), self._event)
            self._event, self._data = None, []
            return [event]
        return []

    def _next_line(self) -> tuple[str, bool]:
        buf = self._buffer
        lf, cr = buf.find(b"\n"), buf.find(b"\r")
        if lf < 0 and cr < 0:
            return "", False
        if cr < 0 or 0 <= lf < cr:
            i, end = lf, lf + 1
        else:
            if cr + 1 == len(buf):
                return "", False  # a CR at the end may be half of a CRLF
            i, end = cr, (cr + 2 if buf[cr + 1] == 0x0A else cr + 1)
        self._buffer = buf[end:]
        return buf[:i].decode("utf-8", "replace"), True

    def _take_line(self, line: str) -> None:
        if line.startswith(":"):
            return
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._event = value


def encode_data(payload: dict[str, Any]) -> bytes:
    """One ``data:`` frame holding ``payload`` as compact JSON."""
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def encode_raw(data: str) -> bytes:
    """One ``data:`` frame holding an already-serialised payload."""
    return b"data: " + data.encode() + b"\n\n"
