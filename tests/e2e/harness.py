"""What the end-to-end tests share beyond the processes: constants, the proxy's
ledger as its clients see it, and the official SDKs pointed at the servers.

The processes themselves (simulator and proxy) come from ``tests.support``.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import anthropic
import httpx
import openai

from tests.support.servers import Proxy as ServedProxy
from tests.support.servers import Simulator

T = TypeVar("T")

SIM_KEY = "sim-key"
# How long the simulator's ``timeout`` fault holds a request: longer than the
# short read timeout the proxy is given, short enough not to stall teardown.
SIM_HOLD_S = 5.0


def unique(text: str) -> str:
    """``text`` with a fresh tag, so the proxy's exact cache never answers it."""
    return f"[{uuid.uuid4().hex[:12]}] {text}"


@dataclass
class Proxy(ServedProxy):
    """A ``spendgate serve`` process whose ledger is ``ledger.db`` in its work folder."""

    def ledger_row(self, request_id: str, *, timeout_s: float = 10.0) -> dict[str, Any]:
        """The ledger row of ``request_id``, once the proxy's writer has stored it."""
        deadline = time.monotonic() + timeout_s
        while True:
            with contextlib.closing(sqlite3.connect(self.workdir / "ledger.db")) as db:
                db.row_factory = sqlite3.Row
                try:
                    row = db.execute(
                        "SELECT * FROM ledger_rows WHERE request_id = ?", (request_id,)
                    ).fetchone()
                except sqlite3.OperationalError:  # the table is not there yet
                    row = None
            if row is not None:
                return dict(row)
            if time.monotonic() > deadline:
                raise AssertionError(f"no ledger row for {request_id} after {timeout_s} s")
            time.sleep(0.05)


def sse_data(body: str) -> list[str]:
    """The ``data:`` payloads of an SSE body, in order."""
    return [line[len("data:") :].strip() for line in body.splitlines() if line.startswith("data:")]


def _strip_credentials(request: Any) -> None:
    for name in ("authorization", "x-api-key"):
        request.headers.pop(name, None)


def keyless_http_client(factory: Callable[..., T]) -> T:
    """An SDK's HTTP client (``factory``: its ``DefaultHttpxClient``) that sends no credentials.

    The SDKs refuse to start without an api_key; this drops it from every request.
    """
    return factory(event_hooks={"request": [_strip_credentials]})


def error_message(exc: Any) -> str:
    """The ``message`` of an SDK status error's body (the SDKs prefix their own text)."""
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body = body["error"]  # Anthropic's shape keeps the envelope
    assert isinstance(body, dict), f"no JSON error body: {exc!r}"
    message = body["message"]
    assert isinstance(message, str)
    return message


def anthropic_message(sim: Simulator, **params: Any) -> anthropic.types.Message:
    """The simulator's own Messages API answer, through the anthropic SDK."""
    with (
        anthropic.Anthropic(base_url=sim.base_url, api_key=SIM_KEY, max_retries=0) as client,
        # The SDK warns of some models' retirement dates; not these tests' concern.
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore", DeprecationWarning)
        message: anthropic.types.Message = client.messages.create(**params)
    return message


OPENAI_MODEL = "gpt-4o"
CLAUDE_MODEL = "claude-sonnet"
CLAUDE_UPSTREAM = "claude-sonnet-4-5"


def direct_text(sim: Simulator, model: str, prompt: str) -> str:
    """The simulator's own answer to ``prompt``, through the matching official SDK."""
    if model == CLAUDE_MODEL:
        message = anthropic_message(
            sim,
            model=CLAUDE_UPSTREAM,
            max_tokens=1024,
            messages=[{"role": "user", "content": prompt}],
        )
        block = message.content[0]
        assert block.type == "text"
        return block.text
    with openai.OpenAI(base_url=sim.openai_base_url, api_key=SIM_KEY, max_retries=0) as client:
        completion = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": prompt}]
        )
    text = completion.choices[0].message.content
    assert text is not None
    return text


def raw_stream(proxy: Proxy, body: dict[str, Any]) -> tuple[httpx.Response, list[str]]:
    """POST a streamed chat request with plain httpx: the answer and its ``data:`` payloads."""
    with httpx.Client(timeout=10.0) as http:
        response = http.post(
            f"{proxy.openai_base_url}/chat/completions",
            json=body,
            headers={"authorization": "Bearer any"},
        )
    return response, sse_data(response.text)
