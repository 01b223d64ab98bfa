"""Cost arithmetic: tokens x unit prices -> integer micro-dollars.

Unit prices are USD per 1M tokens, as Decimal. Because
``tokens * (USD per 1M tokens) == micro-dollars``, a row's cost is the exact
Decimal sum of its token classes times their prices, rounded once, half to
even, to whole micro-dollars. Nothing here touches a float.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

from pricing.usage import Usage

_ONE = Decimal(1)


@dataclass(frozen=True, slots=True)
class UnitPrices:
    """USD per 1M tokens for each token class of one model (at one prompt size)."""

    input: Decimal
    output: Decimal
    cached_input: Decimal
    cache_write: Decimal


def round_micro(amount: Decimal) -> int:
    """Round an exact micro-dollar amount to an int, half to even."""
    return int(amount.quantize(_ONE, rounding=ROUND_HALF_EVEN))


def exact_cost(usage: Usage, prices: UnitPrices) -> Decimal:
    """Exact (unrounded) cost of ``usage`` in micro-dollars."""
    return (
        usage.uncached_prompt_tokens * prices.input
        + usage.cached_prompt_tokens * prices.cached_input
        + usage.cache_creation_tokens * prices.cache_write
        + usage.completion_tokens * prices.output
    )


def cost_micro(usage: Usage, prices: UnitPrices) -> int:
    """Cost of ``usage`` at ``prices`` in integer micro-dollars.

    >>> p = UnitPrices(Decimal("2.5"), Decimal("10"), Decimal("1.25"), Decimal("2.5"))
    >>> cost_micro(Usage(prompt_tokens=1000, completion_tokens=100), p)
    3500
    """
    return round_micro(exact_cost(usage, prices))


def savings_micro(baseline_cost: int, cost: int) -> int:
    """What a call saved against its baseline, in micro-dollars.

    Negative when the served call cost more than the baseline would have
    (e.g. a fallback to a pricier model); such rows offset positive ones in
    the period's net savings rather than being clamped per row.
    """
    return baseline_cost - cost


def fee_micro(net_savings_micro: int, fee_rate: Decimal) -> int:
    """The fee on a period's net savings: ``net * fee_rate``, half to even, never below 0.

    ``net_savings_micro`` is the sum of the period's per-row savings, so
    negative rows have already offset positive ones.

    >>> fee_micro(1_234_565, Decimal("0.1"))
    123456
    >>> fee_micro(-500, Decimal("0.1"))
    0
    """
    if fee_rate < 0:
        raise ValueError("fee_rate must not be negative")
    if net_savings_micro <= 0:
        return 0
    return round_micro(net_savings_micro * fee_rate)


def period_fee_micro(savings_rows: Iterable[int], fee_rate: Decimal) -> int:
    """The fee for a period given each row's savings (which may be negative)."""
    return fee_micro(sum(savings_rows), fee_rate)


def format_micro(amount: int) -> str:
    """Integer micro-dollars as a fixed-point USD string with six places.

    >>> format_micro(1234567), format_micro(-5), format_micro(0)
    ('1.234567', '-0.000005', '0.000000')
    """
    sign = "-" if amount < 0 else ""
    whole, frac = divmod(abs(amount), 1_000_000)
    return f"{sign}{whole}.{frac:06d}"
