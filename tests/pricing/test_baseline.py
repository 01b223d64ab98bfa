from __future__ import annotations

import pytest

from pricing.baseline import baseline_usage
from pricing.usage import Usage


def test_output_is_what_the_served_call_returned() -> None:
    served = Usage(prompt_tokens=100, completion_tokens=700, reasoning_tokens=500)
    base = baseline_usage(
        served=served, baseline_prompt_tokens=120, baseline_has_prompt_cache=False
    )
    assert base == Usage(
        prompt_tokens=120, completion_tokens=700, reasoning_tokens=500, source="estimated"
    )


def test_no_cache_discount_without_a_shared_prompt_cache() -> None:
    served = Usage(prompt_tokens=1000, cached_prompt_tokens=800, cache_creation_tokens=100)
    base = baseline_usage(
        served=served, baseline_prompt_tokens=1000, baseline_has_prompt_cache=False
    )
    assert (base.cached_prompt_tokens, base.cache_creation_tokens) == (0, 0)
    assert base.uncached_prompt_tokens == 1000


@pytest.mark.parametrize(
    ("served_prompt", "served_cached", "baseline_prompt", "expected"),
    [
        (3, 1, 10, 3),  # 10 x 1/3 = 3.33 -> 3
        (4, 1, 10, 2),  # 10 x 1/4 = 2.5 -> 2 (half to even)
        (4, 1, 14, 4),  # 14 x 1/4 = 3.5 -> 4
        (1000, 1000, 1100, 1100),  # fully cached stays fully cached
        (0, 0, 50, 0),  # no served prompt: nothing to carry over
    ],
)
def test_cached_share_is_proportional(
    served_prompt: int, served_cached: int, baseline_prompt: int, expected: int
) -> None:
    served = Usage(prompt_tokens=served_prompt, cached_prompt_tokens=served_cached)
    base = baseline_usage(
        served=served, baseline_prompt_tokens=baseline_prompt, baseline_has_prompt_cache=True
    )
    assert base.cached_prompt_tokens == expected


def test_cache_write_share_never_exceeds_what_is_left() -> None:
    # served: 3 prompt = 0 uncached + 2 read + 1 written; baseline 5 tokens:
    # read 5 x 2/3 = 3.33 -> 3, written 5 x 1/3 = 1.67 -> 2, 3 + 2 = 5 <= 5
    served = Usage(prompt_tokens=3, cached_prompt_tokens=2, cache_creation_tokens=1)
    base = baseline_usage(served=served, baseline_prompt_tokens=5, baseline_has_prompt_cache=True)
    assert (base.cached_prompt_tokens, base.cache_creation_tokens) == (3, 2)
    # baseline 1 token: read 1 x 2/3 -> 1, written capped at 1 - 1 = 0
    base = baseline_usage(served=served, baseline_prompt_tokens=1, baseline_has_prompt_cache=True)
    assert (base.cached_prompt_tokens, base.cache_creation_tokens) == (1, 0)
    assert base.uncached_prompt_tokens == 0


def test_negative_prompt_is_rejected() -> None:
    with pytest.raises(ValueError, match="baseline_prompt_tokens"):
        baseline_usage(served=Usage(), baseline_prompt_tokens=-1, baseline_has_prompt_cache=False)
