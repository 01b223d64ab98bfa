"""Batch scoring: a JSON-lines file of prompts in, the same rows with their route out.

Backs ``spendgate route --jsonl IN.jsonl``. Each input line is a JSON object
with a ``messages`` list (or ``prompt``, as in the routing data sets) and any
other fields, which are passed through; ``score``, ``tier`` and ``model`` are
added.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TextIO

from routing.explain import DEFAULT_EXPECTED_OUTPUT_TOKENS, route_body
from routing.features import messages_of
from routing.scorer import Scorer
from routing.select import Candidate, Mode
from routing.tiers import Thresholds

SCORE_DIGITS = 4


def score_jsonl(
    inp: TextIO,
    out: TextIO,
    *,
    scorer: Scorer,
    candidates: Sequence[Candidate],
    thresholds: Thresholds,
    mode: Mode = "auto-only",
    expected_output_tokens: int = DEFAULT_EXPECTED_OUTPUT_TOKENS,
) -> int:
    """Route every line of ``inp`` and write it to ``out``; returns the number of rows.

    Blank lines are skipped. A line that is not a JSON object with messages
    raises ``ValueError`` naming its line number. ``model`` is null when no
    candidate can serve the row (``tier`` is then the least tier it needs).
    """
    count = 0
    for lineno, line in enumerate(inp, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"line {lineno}: not JSON ({exc.msg})") from None
        if not isinstance(row, dict) or not messages_of(row):
            raise ValueError(f"line {lineno}: expected an object with 'messages' or 'prompt'")
        score, decision = route_body(
            row,
            scorer=scorer,
            candidates=candidates,
            thresholds=thresholds,
            mode=mode,
            expected_output_tokens=expected_output_tokens,
        )
        row["score"] = round(score.value, SCORE_DIGITS)
        row["tier"] = decision.tier if decision else thresholds.tier(score.value)
        row["model"] = decision.model.name if decision else None
        out.write(json.dumps(row, ensure_ascii=False) + "\n")
        count += 1
    return count
