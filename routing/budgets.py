"""Spend budgets per tenant, key, workflow, agent or run, in integer micro-dollars.

A budget is a scope (fields that must match the request; "*" means "each
distinct value separately"), a period (hour, day and month windows in UTC, or
one run named by the x-spendgate-run header) and a limit.

Overspend is prevented by reservation: before the upstream call the
estimated cost is added to every matching budget in one atomic step, and only
if all of them stay within their limit; afterwards the reservation is settled
to the actual cost (or released on failure). Concurrent requests, in one
process or many sharing Redis, can then exceed a limit only by how much one
request's actual cost exceeds its estimate. Counters live in this process
(``MemoryBudgetLedger``) or in Redis (``routing.budgets_redis``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Literal, Protocol, cast
from urllib.parse import quote, unquote

from proxy.errors import BudgetExceededError, ConfigError

if TYPE_CHECKING:
    pass

_log = logging.getLogger(__name__)

Period = Literal["hour", "day", "month", "run"]
SCOPE_FIELDS = ("tenant", "key_id", "workflow", "agent")
# How long a window's counter outlives its start; at least the window's length.
PERIOD_TTL_S: Mapping[str, int] = {
    "hour": 2 * 3600,
    "day": 2 * 86400,
    "month": 63 * 86400,
    "run": 7 * 86400,
}
_MICRO = Decimal(1_000_000)


@dataclass(frozen=True, slots=True)
class BudgetContext:
    """Who is spending: the request's tenant, key and the optional x-spendgate-* labels."""

    tenant: str
    key_id: str | None = None
    workflow: str | None = None
    agent: str | None = None
    run_id: str | None = None


@dataclass(frozen=True, slots=True)
class Budget:
    """One configured budget; ``scope`` holds sorted (field, value) pairs."""

    name: str
    period: Period
    limit_micro: int
    scope: tuple[tuple[str, str], ...]

    @classmethod
    def from_config(cls, entry: Mapping[str, Any], *, path: str = "budgets") -> Budget:
        """Parse one config entry such as ``{tenant: team-b, period: day, limit_usd: 50}``."""
        problems = []
        scope = tuple(sorted((f, str(entry[f])) for f in SCOPE_FIELDS if entry.get(f) is not None))
        if not scope:
            problems.append(f"{path}: needs one of {', '.join(SCOPE_FIELDS)}")
        period = entry.get("period")
        if period not in PERIOD_TTL_S:
            problems.append(f"{path}.period: one of {', '.join(PERIOD_TTL_S)}")
        limit = _micro_of(entry.get("limit_usd"))
        if limit is None:
            problems.append(f"{path}.limit_usd: a non-negative amount in USD")
        unknown = set(entry) - {*SCOPE_FIELDS, "period", "limit_usd", "name"}
        if unknown:
            problems.append(f"{path}: unknown keys {', '.join(sorted(unknown))}")
        if problems or limit is None or period not in PERIOD_TTL_S:
            raise ConfigError(problems)
        checked_period = cast(Period, period)
        default_name = ",".join(f"{f}={v}" for f, v in scope) + f"/{period}"
        return cls(str(entry.get("name") or default_name), checked_period, limit, scope)

    def subject(self, ctx: BudgetContext) -> str | None:
        """The counter this request charges within the budget, or None when it does not apply."""
        parts = []
        for field_name, wanted in self.scope:
            actual = getattr(ctx, field_name)
            if actual is None or (wanted != "*" and actual != wanted):
                return None
            parts.append(f"{field_name}={quote(actual, safe='')}")
        return ",".join(parts)

    def window(self, ctx: BudgetContext, now: datetime) -> str | None:
        """The current period window's label, or None (a run budget without a run id)."""
        if self.period == "run":
            return None if ctx.run_id is None else quote(ctx.run_id, safe="")
        return now.astimezone(UTC).strftime(
            {"hour": "%Y-%m-%dT%H", "day": "%Y-%m-%d", "month": "%Y-%m"}[self.period]
        )


def _micro_of(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        return None
    try:
        amount = Decimal(str(value)) * _MICRO
    except InvalidOperation:
        return None
    if not amount.is_finite() or amount < 0:
        return None
    return int(amount.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def budgets_from_config(entries: Sequence[Mapping[str, Any]]) -> list[Budget]:
    """Parse the ``budgets`` config list, reporting every problem at once."""
    budgets, problems = [], []
    for i, entry in enumerate(entries):
        try:
            budgets.append(Budget.from_config(entry, path=f"budgets[{i}]"))
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    return budgets


@dataclass(frozen=True, slots=True)
class Charge:
    """One counter a request charges: a budget, the subject within it, and the window."""

    budget: Budget
    subject: str
    window: str

    @property
    def key(self) -> str:
        """The counter's storage key (budget name, subject and window, escaped)."""
        return f"{quote(self.budget.name, safe='')}|{self.subject}|{self.window}"


@dataclass(frozen=True, slots=True)
class Reservation:
    """An estimate held against every matching budget until settled."""

    charges: tuple[Charge, ...]
    estimated_micro: int


@dataclass(frozen=True, slots=True)
class BudgetUsage:
    """One counter's state, for GET /admin/budgets."""

    name: str
    subject: str
    period: str
    window: str
    limit_micro: int
    used_micro: int
    remaining_micro: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "remaining_micro", max(0, self.limit_micro - self.used_micro))


def charges_for(budgets: Sequence[Budget], ctx: BudgetContext, now: datetime) -> tuple[Charge, ...]:
    """The counters a request in ``ctx`` charges at ``now``."""
    charges = []
    for budget in budgets:
        subject = budget.subject(ctx)
        window = budget.window(ctx, now)
        if subject is not None and window is not None:
            charges.append(Charge(budget, subject, window))
    return tuple(charges)


def exceeded(charge: Charge, used: int, estimated_micro: int) -> BudgetExceededError:
    """The error for a request that would take ``charge`` past its limit."""
    b = charge.budget
    remaining = max(0, b.limit_micro - used)
    return BudgetExceededError(
        f"budget '{b.name}' ({b.period} {unquote(charge.window)}) is exhausted: "
        f"limit ${Decimal(b.limit_micro) / _MICRO}, remaining ${Decimal(remaining) / _MICRO}, "
        f"this request needs about ${Decimal(estimated_micro) / _MICRO}"
    )


class BudgetLedger(Protocol):
    """Where budget counters live (memory for one process, Redis for many)."""

    async def check(self, ctx: BudgetContext, estimated_micro: int) -> None:
        """Raise ``BudgetExceededError`` if ``estimated_micro`` more would pass a limit."""

    async def reserve(self, ctx: BudgetContext, estimated_micro: int) -> Reservation:
        """Hold ``estimated_micro`` against every matching budget, atomically, or raise."""

    async def commit(self, reservation: Reservation, actual_micro: int) -> None:
        """Settle a reservation to the call's actual cost."""

    async def release(self, reservation: Reservation) -> None:
        """Give a reservation back (the call failed and cost nothing)."""

    async def usage(self) -> list[BudgetUsage]:
        """Every live counter of the current windows."""


def utc_now() -> datetime:
    """The current time in UTC (the default clock of the ledgers)."""
    return datetime.now(UTC)


class MemoryBudgetLedger:
    """Budget counters in this process; atomic because nothing awaits mid-update."""

    def __init__(self, budgets: Sequence[Budget], *, now: Callable[[], datetime] = utc_now) -> None:
        self._budgets = tuple(budgets)
        self._now = now
        self._used: dict[str, tuple[Charge, int]] = {}
        self._expires: dict[str, datetime] = {}
        self._prune_above = 1024
        self._next_prune = datetime.min.replace(tzinfo=UTC)

    def _used_of(self, charge: Charge) -> int:
        entry = self._used.get(charge.key)
        return 0 if entry is None else entry[1]

    async def check(self, ctx: BudgetContext, estimated_micro: int) -> None:
        """See ``BudgetLedger.check``."""
        for charge in charges_for(self._budgets, ctx, self._now()):
            used = self._used_of(charge)
            if used + estimated_micro > charge.budget.limit_micro:
                raise exceeded(charge, used, estimated_micro)

    async def reserve(self, ctx: BudgetContext, estimated_micro: int) -> Reservation:
        """See ``BudgetLedger.reserve``."""
        charges = charges_for(self._budgets, ctx, self._now())
        for charge in charges:
            used = self._used_of(charge)
            if used + estimated_micro > charge.budget.limit_micro:
                raise exceeded(charge, used, estimated_micro)
        now = self._now()
        for charge in charges:
            self._used[charge.key] = (charge, self._used_of(charge) + estimated_micro)
            self._expires.setdefault(
                charge.key, now + timedelta(seconds=PERIOD_TTL_S[charge.budget.period])
            )
        if len(self._used) > self._prune_above or now >= self._next_prune:
            self._prune(now)
        return Reservation(charges, estimated_micro)

    def _prune(self, now: datetime) -> None:
        """Forget counters past their TTL, as Redis would, so memory stays bounded."""
        for key in [k for k, at in self._expires.items() if at <= now]:
            del self._used[key], self._expires[key]
        self._prune_above = max(1024, 2 * len(self._used))
        self._next_prune = now + timedelta(minutes=10)

    async def commit(self, reservation: Reservation, actual_micro: int) -> None:
        """See ``BudgetLedger.commit``."""
        delta = actual_micro - reservation.estimated_micro
        for charge in reservation.charges:
            self._used[charge.key] = (charge, self._used_of(charge) + delta)

    async def release(self, reservation: Reservation) -> None:
        """See ``BudgetLedger.release``."""
        await self.commit(reservation, 0)

    async def usage(self) -> list[BudgetUsage]:
        """See ``BudgetLedger.usage``; counters of past windows are left out."""
        now = self._now()
        rows = []
        for charge, used in self._used.values():
            b = charge.budget
            if b.period != "run" and charge.window != b.window(BudgetContext(""), now):
                continue
            rows.append(
                BudgetUsage(b.name, charge.subject, b.period, charge.window, b.limit_micro, used)
            )
        return merge_static(self._budgets, rows, now)


def merge_static(
    budgets: Sequence[Budget], rows: list[BudgetUsage], now: datetime
) -> list[BudgetUsage]:
    """Add zero rows for fixed-scope budgets nothing has charged yet this window."""
    seen = {(r.name, r.subject, r.window) for r in rows}
    for b in budgets:
        if b.period == "run" or any(v == "*" for _, v in b.scope):
            continue
        subject = ",".join(f"{f}={quote(v, safe='')}" for f, v in b.scope)
        window = b.window(BudgetContext(""), now)
        if window is not None and (b.name, subject, window) not in seen:
            rows.append(BudgetUsage(b.name, subject, b.period, window, b.limit_micro, 0))
    return sorted(rows, key=lambda u: (u.name, u.subject, u.window))
