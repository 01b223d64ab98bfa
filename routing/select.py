"""Model choice: score + candidates + what the request needs -> one model and its fallbacks.

Pure: every input is a value, nothing is looked up. The least tier comes from
the score and the thresholds; candidates that cannot serve the request are
filtered out; the cheapest by expected cost wins; with no capable candidate in
a tier the next tier up is tried. Costs are exact Decimal micro-dollars
(tokens x USD per 1M tokens), rounded once. ``StickinessTracker`` at the end
is the small store that feeds ``StickyInfo`` in.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from redis.exceptions import RedisError

from pricing.cost import round_micro
from routing.features import content_text, messages_of
from routing.tiers import Score, Thresholds, Tier

if TYPE_CHECKING:
    from redis.asyncio import Redis

_log = logging.getLogger(__name__)

Mode = Literal["off", "auto-only", "downgrade"]
TIERS: tuple[Tier, ...] = ("small", "medium", "large")


@dataclass(frozen=True, slots=True)
class Candidate:
    """A model the proxy may send a request to. Prices are USD per 1M tokens."""

    name: str
    provider: str
    tier: Tier
    context_window: int
    max_output: int
    supports_tools: bool
    supports_vision: bool
    supports_json_schema: bool
    supports_reasoning: bool
    input_price: Decimal
    cached_input_price: Decimal
    output_price: Decimal
    available: bool = True


@dataclass(frozen=True, slots=True)
class Needs:
    """What a request demands of the model serving it."""

    prompt_tokens: int
    max_tokens: int | None = None
    tools: bool = False
    images: bool = False
    json_schema: bool = False
    reasoning: bool = False


@dataclass(frozen=True, slots=True)
class StickyInfo:
    """The model that served this conversation's previous call, and the prefix they share."""

    model_name: str
    shared_prefix_tokens: int


@dataclass(frozen=True, slots=True)
class Decision:
    """The chosen model, its tier, why, and what to try if it fails."""

    model: Candidate
    tier: Tier
    reason: str
    fallbacks: tuple[Candidate, ...]


def _has_images(messages: Sequence[Any]) -> bool:
    for msg in messages:
        content = msg.get("content") if isinstance(msg, Mapping) else None
        if isinstance(content, list) and any(
            isinstance(p, Mapping) and p.get("type") in ("image_url", "input_image", "image")
            for p in content
        ):
            return True
    return False


def needs_of(body: Mapping[str, Any], *, prompt_tokens: int) -> Needs:
    """Derive the request's needs from a chat-completions body."""
    fmt = body.get("response_format")
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    reasoning = body.get("reasoning_effort") is not None or body.get("reasoning") is not None
    return Needs(
        prompt_tokens=prompt_tokens,
        max_tokens=max_tokens if isinstance(max_tokens, int) and max_tokens > 0 else None,
        tools=bool(body.get("tools") or body.get("functions")),
        images=_has_images(messages_of(body)),
        json_schema=isinstance(fmt, Mapping) and fmt.get("type") == "json_schema",
        reasoning=reasoning,
    )


def why_not(candidate: Candidate, needs: Needs) -> str | None:
    """Why ``candidate`` cannot serve a request with ``needs``; None when it can."""
    if not candidate.available:
        return "circuit open"
    wanted_out = needs.max_tokens or 0
    if candidate.context_window < needs.prompt_tokens + wanted_out:
        return "context window too small"
    if needs.max_tokens is not None and candidate.max_output < needs.max_tokens:
        return "max output too small"
    if needs.tools and not candidate.supports_tools:
        return "no tools"
    if needs.images and not candidate.supports_vision:
        return "no vision"
    if needs.json_schema and not candidate.supports_json_schema:
        return "no json schema"
    if needs.reasoning and not candidate.supports_reasoning:
        return "no reasoning"
    return None


def expected_cost_micro(
    candidate: Candidate, *, prompt_tokens: int, output_tokens: int, cached_tokens: int = 0
) -> int:
    """Expected cost of one call in micro-dollars (cached tokens at the cached price)."""
    cached = min(cached_tokens, prompt_tokens)
    exact = (
        (prompt_tokens - cached) * candidate.input_price
        + cached * candidate.cached_input_price
        + output_tokens * candidate.output_price
    )
    return round_micro(exact)


def _tier_index(tier: Tier) -> int:
    return TIERS.index(tier)


def _usd(micro: int) -> str:
    return f"${Decimal(micro) / 1_000_000:.6f}".rstrip("0").rstrip(".")


@dataclass(frozen=True, slots=True)
class _Ctx:
    needs: Needs
    output_tokens: int

    def cost(self, c: Candidate, cached: int = 0) -> int:
        """Expected micro-dollars of this request on ``c``."""
        return expected_cost_micro(
            c,
            prompt_tokens=self.needs.prompt_tokens,
            output_tokens=self.output_tokens,
            cached_tokens=cached,
        )


def _fallbacks(chosen: Candidate, capable: Sequence[Candidate], ctx: _Ctx) -> tuple[Candidate, ...]:
    """Same tier on other providers first, then the same tier's other models, then higher tiers."""
    rank = _tier_index(chosen.tier)
    rest = [c for c in capable if c != chosen and _tier_index(c.tier) >= rank]
    rest.sort(
        key=lambda c: (
            _tier_index(c.tier),
            c.tier == chosen.tier and c.provider == chosen.provider,
            ctx.cost(c),
            c.name,
        )
    )
    return tuple(rest)


def _cheapest(
    capable: Sequence[Candidate], lowest: int, highest: int, ctx: _Ctx
) -> Candidate | None:
    for rank in range(lowest, highest + 1):
        in_tier = [c for c in capable if _tier_index(c.tier) == rank]
        if in_tier:
            return min(in_tier, key=lambda c: (ctx.cost(c), c.name))
    return None


def _sticky_choice(
    best: Candidate,
    sticky: StickyInfo | None,
    capable: Sequence[Candidate],
    lowest: int,
    highest: int,
    ctx: _Ctx,
) -> tuple[Candidate, str | None]:
    """Stay on the previous call's model when its cached prefix makes it cheaper."""
    if sticky is None or sticky.model_name == best.name:
        return best, None
    prev = next((c for c in capable if c.name == sticky.model_name), None)
    if prev is None or not lowest <= _tier_index(prev.tier) <= highest:
        return best, None
    stay = ctx.cost(prev, cached=sticky.shared_prefix_tokens)
    move = ctx.cost(best)
    if stay <= move:
        return (
            prev,
            f"stays on {prev.name}: cached prefix {_usd(stay)} <= {_usd(move)} on {best.name}",
        )
    return best, None


def _describe(score: Score) -> str:
    reasons = f" ({', '.join(score.reasons)})" if score.reasons else ""
    return f"score {score.value:.2f}{reasons}"


def select_model(
    *,
    score: Score,
    candidates: Sequence[Candidate],
    needs: Needs,
    thresholds: Thresholds,
    mode: Mode,
    requested: Candidate | None,
    sticky: StickyInfo | None,
    expected_output_tokens: int,
) -> Decision:
    """Choose the model for one request.

    ``requested`` is the client's model, or None when it asked for "auto".
    Mode "off" and "auto-only" serve a requested model as is ("off" routes only
    "auto", as there is nothing else to serve); "downgrade" may replace it with a
    cheaper capable model of its tier or below when the score allows. Raises
    ``LookupError`` when no candidate can serve the request.
    """
    ctx = _Ctx(needs, expected_output_tokens)
    if requested is not None and mode != "downgrade":
        return Decision(
            requested, requested.tier, f"mode {mode}: {requested.name} as requested", ()
        )
    capable = [c for c in candidates if why_not(c, needs) is None]
    least = thresholds.tier(score.value)
    lowest = _tier_index(least)
    highest = len(TIERS) - 1 if requested is None else _tier_index(requested.tier)
    if requested is not None and lowest > highest:
        return Decision(
            requested, requested.tier, f"{_describe(score)} -> {least}: keeps {requested.name}", ()
        )
    cheapest = _cheapest(capable, lowest, highest, ctx)
    if cheapest is None:
        if requested is not None:
            return Decision(
                requested, requested.tier, f"no cheaper capable model: keeps {requested.name}", ()
            )
        raise LookupError(f"no available model can serve this request (least tier {least})")
    best = cheapest
    if requested in capable and ctx.cost(requested) <= ctx.cost(cheapest):
        best = requested
    chosen, sticky_note = _sticky_choice(best, sticky, capable, lowest, highest, ctx)
    reason = f"{_describe(score)} -> {least}: {chosen.name}"
    if cheapest.tier != least:
        reason += f" ({least} tier unavailable)"
    if best is requested:
        reason += " (requested; nothing cheaper)"
    if sticky_note:
        reason += f"; {sticky_note}"
    fallback_pool = (
        capable if requested is None else [c for c in capable if _tier_index(c.tier) <= highest]
    )
    return Decision(chosen, chosen.tier, reason, _fallbacks(chosen, fallback_pool, ctx))


def with_availability(
    candidates: Sequence[Candidate], *, available: Callable[[Candidate], bool]
) -> list[Candidate]:
    """Copies of ``candidates`` with ``available`` set, e.g. from the circuit breakers:

    ``with_availability(cs, available=lambda c: registry.available(breaker_key(c.provider, c.name)))``
    """
    return [replace(c, available=available(c)) for c in candidates]


def _message_key(msg: Any) -> list[str]:
    if not isinstance(msg, Mapping):
        return ["", ""]
    return [str(msg.get("role", "")), content_text(msg.get("content"))]


def previous_prompt(messages: Sequence[Any]) -> Sequence[Any]:
    """The prompt of the call that preceded this one in the same conversation.

    The new input (the trailing user or tool messages) is dropped, then the
    previous answer (the assistant messages before it); what remains is what the
    previous call was sent, i.e. the prefix both calls share.
    """
    end = len(messages)
    while end and _message_key(messages[end - 1])[0] != "assistant":
        end -= 1
    while end and _message_key(messages[end - 1])[0] == "assistant":
        end -= 1
    return messages[:end]


def conversation_key(tenant: str, messages: Sequence[Any]) -> str:
    """A stable hash of a tenant's message list (roles and texts only)."""
    payload = json.dumps([tenant, [_message_key(m) for m in messages]], separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


class StickinessTracker:
    """Which model served a conversation's last call, kept for ``ttl_s`` seconds.

    In memory by default; shared through Redis when given a client. Redis
    errors never fail a request: the tracker then answers from memory.
    """

    def __init__(
        self,
        *,
        ttl_s: float = 3600.0,
        redis: Redis | None = None,
        key_prefix: str = "spendgate:sticky:",
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl_s = ttl_s
        self._redis = redis
        self._prefix = key_prefix
        self._max_entries = max_entries
        self._clock = clock
        self._local: OrderedDict[str, tuple[str, int, float]] = OrderedDict()

    async def lookup(self, tenant: str, messages: Sequence[Any]) -> StickyInfo | None:
        """The previous call's model for this conversation, if known and fresh."""
        prefix = previous_prompt(messages)
        if not prefix:
            return None
        key = conversation_key(tenant, prefix)
        if self._redis is not None:
            try:
                raw = await self._redis.get(self._prefix + key)
            except (RedisError, OSError):
                _log.warning("stickiness lookup in redis failed; using local state")
            else:
                if raw is None:
                    return None
                data = json.loads(raw)
                return StickyInfo(str(data["model"]), int(data["prompt_tokens"]))
        entry = self._local.get(key)
        if entry is None or entry[2] <= self._clock():
            return None
        return StickyInfo(entry[0], entry[1])

    async def record(
        self, tenant: str, messages: Sequence[Any], *, model_name: str, prompt_tokens: int
    ) -> None:
        """Remember that ``model_name`` served ``messages`` (a prompt of ``prompt_tokens``)."""
        key = conversation_key(tenant, messages)
        self._local[key] = (model_name, prompt_tokens, self._clock() + self._ttl_s)
        self._local.move_to_end(key)
        while len(self._local) > self._max_entries:
            self._local.popitem(last=False)
        if self._redis is not None:
            value = json.dumps({"model": model_name, "prompt_tokens": prompt_tokens})
            try:
                await self._redis.set(self._prefix + key, value, ex=max(1, int(self._ttl_s)))
            except (RedisError, OSError):
                _log.warning("stickiness record in redis failed; kept locally")
