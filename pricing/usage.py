"""Token usage of one call, normalised across providers.

Every provider module turns its upstream's usage report into a ``Usage``;
pricing only ever sees this shape. Counts follow OpenAI's convention:
``prompt_tokens`` is the whole prompt, *including* the cached part and the
part written to a provider-side prompt cache, so that

    uncached input = prompt_tokens - cached_prompt_tokens - cache_creation_tokens

``reasoning_tokens`` are part of ``completion_tokens`` (OpenAI reports them so),
so they are never charged twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

UsageSource = Literal["upstream", "estimated", "none"]


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0
    cache_creation_tokens: int = 0
    reasoning_tokens: int = 0
    source: UsageSource = "upstream"

    @property
    def uncached_prompt_tokens(self) -> int:
        return max(0, self.prompt_tokens - self.cached_prompt_tokens - self.cache_creation_tokens)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


NO_USAGE = Usage(source="none")
