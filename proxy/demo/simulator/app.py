"""The simulated provider's ASGI app: OpenAI and Anthropic endpoints, faults, stats.

Every API request goes the same way: parse, check the provider's auth
headers, count it, pick its fault (if any), plan the answer, then deliver it
through ``delivery`` with the pacing and damage the fault asks for. Answers
carry ``x-simulated: true`` so nobody mistakes them for a real model's.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from proxy.demo.simulator import anthropic_api, openai_api, responses_api
from proxy.demo.simulator.delivery import (
    TRANSPORT_KEY,
    CutBody,
    Dropped,
    FrameStream,
    finish_unless_gone,
    status_recorder,
    transport_of,
)
from proxy.demo.simulator.faults import (
    FAULT_HEADER,
    MALFORMED_JSON_BODY,
    Dialect,
    Fault,
    FaultMode,
    corrupt_frames,
    error_body,
    error_headers,
    fault_from_control,
    parse_mode,
    split_model,
)
from proxy.demo.simulator.reply import AnswerIds, BadRequest
from proxy.demo.simulator.state import SimConfig, SimState

SIMULATED_HEADERS = {"x-simulated": "true"}
CONTROL_PREFIX = "/_sim/"


@dataclass(frozen=True, slots=True)
class Answer:
    """A planned answer: a JSON body, or the frames of a stream."""

    body: bytes | None = None
    frames: list[bytes] | None = None


@dataclass(frozen=True, slots=True)
class Call:
    """One parsed API request."""

    body: dict[str, Any]
    model: str  # without any ``@fault=`` suffix
    stream: bool
    dialect: Dialect
    state: SimState


Builder = Callable[[Call], Answer]


def _json(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        body,
        status_code=status,
        media_type="application/json",
        headers={**SIMULATED_HEADERS, **(headers or {})},
    )


def _error(status: int, dialect: Dialect, message: str | None = None) -> Response:
    return _json(error_body(status, dialect, message=message), status, error_headers(status))


def _auth_problem(request: Request, dialect: Dialect) -> str | None:
    if dialect == "anthropic":
        return anthropic_api.missing_auth(request.headers)
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        return "You didn't provide an API key."
    return None


async def _parse(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"null")
    except ValueError as exc:
        raise BadRequest("the request body is not valid JSON") from exc
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise BadRequest("'model' is required")
    return body


def _choose_fault(
    request: Request, state: SimState, model: str, suffix: FaultMode | None
) -> Fault | None:
    header = request.headers.get(FAULT_HEADER)
    if header:
        try:
            return Fault(parse_mode(header))
        except ValueError:
            pass
    if suffix is not None:
        return Fault(suffix)
    return state.faults.take(model)


async def _hold(request: Request, state: SimState, seconds: float) -> bool:
    """Wait ``seconds``; ``False`` (and counted) when the client leaves first."""
    if seconds <= 0:
        return True
    if await finish_unless_gone(asyncio.sleep(seconds), request.receive, state.stopping):
        return True
    if not state.stopping.is_set():
        state.count_cancelled()
    return False


async def _deliver(request: Request, call: Call, answer: Answer, fault: Fault | None) -> Response:
    state = call.state
    mode = fault.mode if fault is not None else None
    slow_s = fault.delay_ms / 1000 if fault is not None and mode is FaultMode.SLOW else 0.0
    delay_s = state.config.delay_ms / 1000
    if answer.frames is not None and mode is not FaultMode.MALFORMED_JSON:
        frames = answer.frames
        if mode is FaultMode.MALFORMED_SSE:
            frames = corrupt_frames(frames, call.dialect)
        return FrameStream(
            frames,
            stop=state.stopping,
            on_cancel=state.count_cancelled,
            headers=SIMULATED_HEADERS,
            first_delay_s=delay_s,
            chunk_delay_s=slow_s,
            cut_after=fault.cut_after
            if fault is not None and mode is FaultMode.CUT_STREAM
            else None,
        )
    if not await _hold(request, state, delay_s + slow_s):
        return Response(status_code=499)  # nobody reads it: the client has gone
    body = answer.body if answer.body is not None else b"".join(answer.frames or [])
    if mode in (FaultMode.MALFORMED_JSON, FaultMode.MALFORMED_SSE):
        return _json(MALFORMED_JSON_BODY)
    if mode is FaultMode.CUT_STREAM:
        return CutBody(body, headers=SIMULATED_HEADERS)
    return _json(body)


async def _serve(request: Request, dialect: Dialect, build: Builder) -> Response:
    state: SimState = request.app.state.sim
    endpoint = request.url.path
    try:
        body = await _parse(request)
    except BadRequest as exc:
        state.record(endpoint, None, stream=False)
        return _error(400, dialect, str(exc))
    model, suffix = split_model(body["model"])
    stream = body.get("stream") is True
    state.record(endpoint, model, stream=stream)
    problem = _auth_problem(request, dialect) if state.config.require_auth else None
    if problem is not None:
        return _error(401, dialect, problem)
    fault = _choose_fault(request, state, model, suffix)
    if fault is not None:
        state.record_fault(fault.mode)
        early = await _early_fault(request, state, fault, dialect)
        if early is not None:
            return early
    call = Call(body, model, stream, dialect, state)
    try:
        answer = build(call)
    except BadRequest as exc:
        return _error(400, dialect, str(exc))
    return await _deliver(request, call, answer, fault)


async def _early_fault(
    request: Request, state: SimState, fault: Fault, dialect: Dialect
) -> Response | None:
    """The answer of a fault that replaces the whole answer, else ``None``."""
    status = fault.mode.status
    if status is not None or fault.mode is FaultMode.DISCONNECT:
        # A failure that takes its time, as a struggling upstream's does.
        if not await _hold(request, state, fault.hold_ms / 1000):
            return Response(status_code=499)  # nobody reads it: the client has gone
        return _error(status, dialect) if status is not None else Dropped()
    if fault.mode is FaultMode.TIMEOUT and not await _hold(request, state, state.config.timeout_s):
        return Response(status_code=499)  # nobody reads it: the client has gone
    return None


def _build_chat(call: Call) -> Answer:
    plan = openai_api.plan_chat(call.body)
    ids = AnswerIds(call.model, call.state.next_id("chatcmpl-"), int(time.time()))
    if not call.stream:
        return Answer(body=openai_api.chat_completion(plan, ids))
    options = call.body.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    return Answer(frames=openai_api.chat_frames(plan, ids, include_usage=include_usage))


def _build_embeddings(call: Call) -> Answer:
    return Answer(body=openai_api.embeddings(call.body, model=call.model))


def _build_response(call: Call) -> Answer:
    plan = responses_api.plan_response(call.body)
    ids = AnswerIds(call.model, call.state.next_id("resp_"), int(time.time()))
    if call.stream:
        return Answer(frames=responses_api.response_frames(plan, call.body, ids))
    return Answer(body=responses_api.response_body(plan, call.body, ids))


def _build_message(call: Call) -> Answer:
    plan = anthropic_api.plan_message(call.body)
    ids = {"model": call.model, "message_id": call.state.next_id("msg_")}
    if call.stream:
        return Answer(frames=anthropic_api.message_frames(plan, **ids))
    return Answer(body=anthropic_api.message_body(plan, **ids))


async def chat_completions(request: Request) -> Response:
    """POST /v1/chat/completions."""
    return await _serve(request, "openai", _build_chat)


async def embeddings(request: Request) -> Response:
    """POST /v1/embeddings."""
    return await _serve(request, "openai", _build_embeddings)


async def responses(request: Request) -> Response:
    """POST /v1/responses."""
    return await _serve(request, "openai", _build_response)


async def messages(request: Request) -> Response:
    """POST /v1/messages (Anthropic)."""
    return await _serve(request, "anthropic", _build_message)


async def models(request: Request) -> Response:
    """GET /v1/models: a fixed list."""
    state: SimState = request.app.state.sim
    state.record(request.url.path, None, stream=False)
    return _json(openai_api.MODELS_BODY)


async def arm_faults(request: Request) -> Response:
    """POST /_sim/faults: arm a fault for the next ``count`` requests."""
    state: SimState = request.app.state.sim
    try:
        fault, count, model = fault_from_control(json.loads(await request.body() or b"null"))
    except ValueError as exc:
        return _error(400, "openai", str(exc))
    state.faults.arm(fault, count=count, model=model)
    return _json(json.dumps({"armed": state.faults.pending()}).encode())


async def stats(request: Request) -> Response:
    """GET /_sim/stats: counters since start or the last reset, and armed faults."""
    state: SimState = request.app.state.sim
    payload = {**state.stats.as_json(), "pending_faults": state.faults.pending()}
    return _json(json.dumps(payload).encode())


async def reset(request: Request) -> Response:
    """POST /_sim/reset: zero the counters and disarm every fault."""
    state: SimState = request.app.state.sim
    state.reset()
    return _json(b'{"reset":true}')


async def health(request: Request) -> Response:
    """GET /_sim/health: whether the simulator is serving."""
    return _json(b'{"status":"ok"}')


class SimulatorApp:
    """The ASGI entry point: the Starlette routes plus two things they cannot see.

    It puts the connection's transport in the scope (so faults can drop the
    connection) and counts the status of every API answer.
    """

    def __init__(self, config: SimConfig | None = None) -> None:
        self.state = SimState(config or SimConfig())
        self.starlette = Starlette(
            routes=[
                Route("/v1/chat/completions", chat_completions, methods=["POST"]),
                Route("/v1/embeddings", embeddings, methods=["POST"]),
                Route("/v1/responses", responses, methods=["POST"]),
                Route("/v1/models", models, methods=["GET"]),
                Route("/v1/messages", messages, methods=["POST"]),
                Route("/_sim/faults", arm_faults, methods=["POST"]),
                Route("/_sim/stats", stats, methods=["GET"]),
                Route("/_sim/reset", reset, methods=["POST"]),
                Route("/_sim/health", health, methods=["GET"]),
            ]
        )
        self.starlette.state.sim = self.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope[TRANSPORT_KEY] = transport_of(send)
            if not scope["path"].startswith(CONTROL_PREFIX):
                send = status_recorder(send, self._record_status)
        await self.starlette(scope, receive, send)

    def _record_status(self, status: int) -> None:
        self.state.stats.by_status[status] += 1


def build_app(config: SimConfig | None = None) -> SimulatorApp:
    """A fresh simulator with its own counters and faults."""
    return SimulatorApp(config)
