"""The policy every model endpoint goes through, in one place.

``/v1/chat/completions``, ``/v1/embeddings`` and ``/v1/responses`` each read
their own body and speak their own wire format, but what the proxy promises
about a call is the same for all three, and is implemented here once:

1. **admit**: authenticate the proxy key, read and check the body (size
   limit, JSON, the endpoint's own light check), tags, the key's ``rpm`` /
   ``tpm`` limits, and that the model exists;
2. **plan**: the routing stage picks the target and its fallbacks (within
   the requested model's tier, among models able to serve the endpoint) and
   reserves the estimated cost against every matching budget, refusing an
   unpriced model under a budget;
3. **call**: the attempts, with retries, backoff, fallbacks and circuit
   breakers (``routing.retry``), cancelled if the client disconnects;
4. **settle** or **fail**: price the exchange and write its ledger row
   (which also settles the budget reservation), success or not.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import Response

from proxy.pipeline.auth import Authenticator, presented_key
from proxy.pipeline.disconnect import unless_disconnected
from proxy.pipeline.exchange import Exchange, RequestIds, Target
from proxy.pipeline.ratelimit import RateLimiter
from proxy.pipeline.render import as_spendgate_error, error_response
from proxy.pipeline.request import parse_object, read_body, tags_of
from proxy.pipeline.stages import AccountingStage, RouterStage

T = TypeVar("T")
BodyCheck = Callable[[Mapping[str, Any]], None]


class EndpointPolicy:
    """Admission, plan, attempts and accounting, shared by every model endpoint."""

    def __init__(
        self,
        *,
        auth: Authenticator,
        limiter: RateLimiter,
        router: RouterStage,
        accounting: AccountingStage,
        max_body_bytes: int,
        ids: RequestIds,
    ) -> None:
        self._auth = auth
        self._limiter = limiter
        self._router = router
        self._accounting = accounting
        self._max_body = max_body_bytes
        self._ids = ids

    def exchange(self, endpoint: str) -> Exchange:
        """A fresh exchange for one request to ``endpoint``."""
        return Exchange(endpoint, self._ids())

    async def admit(self, ex: Exchange, request: Request, *, check: BodyCheck) -> None:
        """Who is calling, what they sent, whether they may: raises the error to render."""
        headers = request.headers
        ex.principal = self._auth.authenticate(headers)
        ex.client_key = presented_key(headers)
        ex.headers = {
            k: v for k, v in headers.items() if k.startswith(("x-spendgate-", "cache-control"))
        }
        ex.raw = await read_body(request, limit=self._max_body)
        ex.body = parse_object(ex.raw)
        check(ex.body)
        ex.requested_model = ex.body["model"]
        ex.stream = ex.body.get("stream") is True
        ex.tags = tags_of(headers, ex.body)
        await self._limiter.check(ex.principal, body_bytes=len(ex.raw))
        self._router.resolve(ex)

    async def plan(self, ex: Exchange) -> None:
        """Target, fallbacks and the budget reservation (see ``RouterStage.plan``)."""
        await self._router.plan(ex)

    async def call(
        self, ex: Exchange, request: Request, attempt: Callable[[Target], Awaitable[T]]
    ) -> T:
        """``attempt`` over the plan with retries and fallbacks; 499 if the client leaves.

        For a stream, ``attempt`` returns once the first event is in hand, so
        the watch ends before the first byte goes to the client.
        """
        return await unless_disconnected(request.receive, lambda: self._router.run(ex, attempt))

    def settle(self, ex: Exchange) -> None:
        """Price the finished exchange and record it (ledger row, metrics, budgets)."""
        self._accounting.charge(ex)
        self._accounting.record(ex)

    def fail(self, ex: Exchange, exc: BaseException) -> Response:
        """The request's one error boundary: render the error, and still account."""
        error = as_spendgate_error(exc)
        ex.status, ex.error_type = error.http_status, error.type
        if ex.principal is not None:
            self.settle(ex)
        return error_response(error, ex)
