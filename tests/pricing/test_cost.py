"""Cost, savings and fee arithmetic with hand-computed micro-dollar results.

Unit prices are USD per 1M tokens, so tokens x price = micro-dollars.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from pricing.baseline import baseline_usage
from pricing.catalog import Catalog
from pricing.cost import (
    UnitPrices,
    cost_micro,
    exact_cost,
    fee_micro,
    period_fee_micro,
    round_micro,
    savings_micro,
)
from pricing.usage import Usage


def _cost(catalog: Catalog, model: str, usage: Usage) -> int:
    quote = catalog.quote(model, prompt_tokens=usage.prompt_tokens)
    assert quote.known, model
    cost = quote.cost_micro(usage)
    assert cost is not None
    return cost


def test_plain_call(catalog: Catalog) -> None:
    # gpt-4o-mini: 1234 x 0.15 = 185.1; 567 x 0.60 = 340.2; sum 525.3 -> 525
    usage = Usage(prompt_tokens=1234, completion_tokens=567)
    assert _cost(catalog, "gpt-4o-mini", usage) == 525


def test_openai_cached_tokens_are_charged_at_the_cached_price(catalog: Catalog) -> None:
    # gpt-4o, 2000 prompt of which 1536 cached, 300 out:
    # 464 x 2.50 = 1160; 1536 x 1.25 = 1920; 300 x 10.00 = 3000; total 6080
    # (at full price it would be 2000 x 2.50 + 3000 = 8000)
    usage = Usage(prompt_tokens=2000, completion_tokens=300, cached_prompt_tokens=1536)
    assert _cost(catalog, "gpt-4o", usage) == 6080


def test_reasoning_tokens_are_part_of_completion_and_charged_once(catalog: Catalog) -> None:
    # o4-mini, 500 in, 1200 out of which 1000 reasoning:
    # 500 x 1.10 = 550; 1200 x 4.40 = 5280; total 5830 (not 5830 + 1000 x 4.40)
    usage = Usage(prompt_tokens=500, completion_tokens=1200, reasoning_tokens=1000)
    assert _cost(catalog, "o4-mini", usage) == 5830


def test_anthropic_cache_write_and_read(catalog: Catalog) -> None:
    # claude-sonnet-4-5: 100 uncached + 5000 read + 2000 written = 7100 prompt, 400 out:
    # 100 x 3.00 = 300; 5000 x 0.30 = 1500; 2000 x 3.75 = 7500; 400 x 15.00 = 6000
    # total 15300
    usage = Usage(
        prompt_tokens=7100,
        completion_tokens=400,
        cached_prompt_tokens=5000,
        cache_creation_tokens=2000,
    )
    assert _cost(catalog, "claude-sonnet-4-5-20250929", usage) == 15300


def test_long_context_tier_above_200k(catalog: Catalog) -> None:
    # gemini-2.5-pro, 250000 in (> 200000: tier prices), 1000 out:
    # 250000 x 2.50 = 625000; 1000 x 15.00 = 15000; total 640000
    assert _cost(catalog, "gemini-2.5-pro", Usage(250_000, 1000)) == 640_000
    # exactly 200000 is not above the threshold: base prices
    # 200000 x 1.25 = 250000; 1000 x 10.00 = 10000; total 260000
    assert _cost(catalog, "gemini-2.5-pro", Usage(200_000, 1000)) == 260_000


def test_anthropic_long_context_tier_applies_to_cache_reads_too(catalog: Catalog) -> None:
    # claude-haiku-5-5, 210000 in of which 10000 cache reads, 500 out, all at the >100k tier:
    # 200000 x 0.50 = 100000; 10000 x 0.05 = 500; 500 x 2.50 = 1250; total 101750
    usage = Usage(prompt_tokens=210_000, completion_tokens=500, cached_prompt_tokens=10_000)
    assert _cost(catalog, "claude-haiku-5-5", usage) == 101_750


@pytest.mark.parametrize(
    ("cached", "expected"),
    [
        (20, 0),  # 20 x 0.025 = 0.5 -> 0 (half to even)
        (60, 2),  # 60 x 0.025 = 1.5 -> 2
        (100, 2),  # 100 x 0.025 = 2.5 -> 2
        (140, 4),  # 140 x 0.025 = 3.5 -> 4
    ],
)
def test_rounding_is_once_per_row_half_to_even(
    catalog: Catalog, cached: int, expected: int
) -> None:
    usage = Usage(prompt_tokens=cached, cached_prompt_tokens=cached)
    assert _cost(catalog, "gpt-4.1-nano", usage) == expected


def test_exact_cost_keeps_fractions_until_rounding() -> None:
    prices = UnitPrices(Decimal("0.15"), Decimal("0.60"), Decimal("0.075"), Decimal("0.15"))
    # 3 x 0.15 + 1 x 0.075 (cached) + 1 x 0.60 = 0.45 + 0.075 + 0.60 = 1.125
    usage = Usage(prompt_tokens=4, completion_tokens=1, cached_prompt_tokens=1)
    assert exact_cost(usage, prices) == Decimal("1.125")
    assert cost_micro(usage, prices) == 1
    assert round_micro(Decimal("2.5")) == 2
    assert round_micro(Decimal("-2.5")) == -2


def test_cache_hit_costs_nothing_and_baseline_is_full(catalog: Catalog) -> None:
    # Served from Spendgate's cache: no upstream call, cost 0. The requested gpt-4o
    # would have read 1200 prompt tokens and returned the cached 250:
    # 1200 x 2.50 = 3000; 250 x 10.00 = 2500; baseline 5500, savings 5500
    cached_response_usage = Usage(prompt_tokens=1180, completion_tokens=250)
    baseline = baseline_usage(
        served=cached_response_usage, baseline_prompt_tokens=1200, baseline_has_prompt_cache=False
    )
    baseline_cost = _cost(catalog, "gpt-4o", baseline)
    assert baseline_cost == 5500
    assert savings_micro(baseline_cost, 0) == 5500


def test_routed_within_provider_carries_the_cached_share(catalog: Catalog) -> None:
    # Requested gpt-4o, served gpt-4o-mini: 2000 prompt (1000 cached), 200 out.
    # served: 1000 x 0.15 = 150; 1000 x 0.075 = 75; 200 x 0.60 = 120; cost 345
    served = Usage(prompt_tokens=2000, completion_tokens=200, cached_prompt_tokens=1000)
    cost = _cost(catalog, "gpt-4o-mini", served)
    assert cost == 345
    # baseline prompt 2010 tokens, cached share 1000/2000 -> 1005 cached:
    # 1005 x 2.50 = 2512.5; 1005 x 1.25 = 1256.25; 200 x 10.00 = 2000; 5768.75 -> 5769
    baseline = baseline_usage(
        served=served, baseline_prompt_tokens=2010, baseline_has_prompt_cache=True
    )
    assert baseline.cached_prompt_tokens == 1005
    baseline_cost = _cost(catalog, "gpt-4o", baseline)
    assert baseline_cost == 5769
    assert savings_micro(baseline_cost, cost) == 5424  # 5769 - 345


def test_routed_across_providers_gets_no_cache_discount(catalog: Catalog) -> None:
    # Requested claude-sonnet-4-5, served gpt-4o-mini (cost 345 as above).
    # baseline: 2100 x 3.00 = 6300; 200 x 15.00 = 3000; 9300; savings 9300 - 345 = 8955
    served = Usage(prompt_tokens=2000, completion_tokens=200, cached_prompt_tokens=1000)
    baseline = baseline_usage(
        served=served, baseline_prompt_tokens=2100, baseline_has_prompt_cache=False
    )
    assert baseline.cached_prompt_tokens == 0
    baseline_cost = _cost(catalog, "claude-sonnet-4-5", baseline)
    assert baseline_cost == 9300
    assert savings_micro(baseline_cost, _cost(catalog, "gpt-4o-mini", served)) == 8955


def test_anthropic_baseline_carries_cache_writes_too(catalog: Catalog) -> None:
    # Requested claude-opus-4-1, served claude-haiku-4-5: 100 + 5000 read + 2000 written, 400 out
    # served: 100 x 1.00 = 100; 5000 x 0.10 = 500; 2000 x 1.25 = 2500; 400 x 5.00 = 2000; 5100
    # baseline: 100 x 15 = 1500; 5000 x 1.50 = 7500; 2000 x 18.75 = 37500; 400 x 75 = 30000
    #           = 76500; savings 76500 - 5100 = 71400
    served = Usage(7100, 400, cached_prompt_tokens=5000, cache_creation_tokens=2000)
    baseline = baseline_usage(
        served=served, baseline_prompt_tokens=7100, baseline_has_prompt_cache=True
    )
    cost = _cost(catalog, "claude-haiku-4-5", served)
    baseline_cost = _cost(catalog, "claude-opus-4-1", baseline)
    assert (cost, baseline_cost) == (5100, 76500)
    assert savings_micro(baseline_cost, cost) == 71400


def test_fallback_to_a_pricier_model_gives_negative_savings(catalog: Catalog) -> None:
    # Requested gpt-4o-mini; it failed and the call fell back to gpt-4o: 1000 in, 100 out.
    # served gpt-4o: 1000 x 2.50 + 100 x 10.00 = 3500
    # baseline gpt-4o-mini: 1000 x 0.15 + 100 x 0.60 = 150 + 60 = 210
    served = Usage(prompt_tokens=1000, completion_tokens=100)
    baseline = baseline_usage(
        served=served, baseline_prompt_tokens=1000, baseline_has_prompt_cache=True
    )
    cost = _cost(catalog, "gpt-4o", served)
    baseline_cost = _cost(catalog, "gpt-4o-mini", baseline)
    assert savings_micro(baseline_cost, cost) == -3290  # 210 - 3500


def test_fee_over_a_period_nets_negative_rows_against_positive_ones() -> None:
    rows = [5424, 8955, -3290, 0, 5500]
    # net = 5424 + 8955 - 3290 + 0 + 5500 = 16589; x 0.10 = 1658.9 -> 1659
    assert period_fee_micro(rows, Decimal("0.10")) == 1659
    # clamping rows first would give (5424 + 8955 + 5500) x 0.10 = 1987.9 -> 1988: not what we bill
    assert period_fee_micro(rows, Decimal("0.10")) != 1988


def test_fee_is_never_below_zero() -> None:
    # net = 1000 - 5000 = -4000 -> no fee, and no credit
    assert period_fee_micro([1000, -5000], Decimal("0.10")) == 0
    assert fee_micro(0, Decimal("0.10")) == 0
    assert period_fee_micro([], Decimal("0.10")) == 0


@pytest.mark.parametrize(
    ("net", "expected"),
    [
        (12345, 1234),  # 1234.5 -> 1234 (half to even)
        (12355, 1236),  # 1235.5 -> 1236
        (12346, 1235),  # 1234.6 -> 1235
        (7, 1),  # 0.7 -> 1
    ],
)
def test_fee_rounds_half_to_even(net: int, expected: int) -> None:
    assert fee_micro(net, Decimal("0.1")) == expected


def test_negative_fee_rate_is_rejected() -> None:
    with pytest.raises(ValueError, match="fee_rate"):
        fee_micro(100, Decimal("-0.1"))
