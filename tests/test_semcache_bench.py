"""``python -m bench.semcache_eval`` runs end to end on a slice of the pairs.

The README's semantic-cache numbers come from this command on all pairs;
this keeps it from rotting. Only the shape of the output and what must hold
on any slice are asserted: known-wrong edited pairs are never served, and
whitespace rewrites always are.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def evaluation(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    output = tmp_path_factory.mktemp("semcache") / "eval.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.semcache_eval", "--limit", "3000", "--json", str(output)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert "report half at the default" in done.stdout
    doc: dict[str, Any] = json.loads(output.read_text(encoding="utf-8"))
    return doc


def test_reports_every_stage_on_the_report_half(evaluation: dict[str, Any]) -> None:
    assert evaluation["embedder"] == "wordllama"
    assert evaluation["pairs"] == 3000
    for row in evaluation["report"]:
        for stage in ("raw", "guard", "rerank"):
            assert 0.0 <= row[stage]["precision"] <= 1.0
            assert 0.0 <= row[stage]["recall"] <= 1.0
        # Each stage can only remove hits.
        assert row["raw"]["hits"] >= row["guard"]["hits"] >= row["rerank"]["hits"]
    cuts = [row["recall"] for row in evaluation["cut_curve"]]
    assert cuts == sorted(cuts, reverse=True)  # a higher cut never serves more
    assert evaluation["compare"]["embedder"] == "hash"
    assert set(evaluation["cost"]["steps_us"]) >= {"embed (cache call)"}


def test_edited_pairs_with_known_answers(evaluation: dict[str, Any]) -> None:
    adversarial = evaluation["adversarial"]
    for name in ("copy/number", "copy/negation", "copy/name", "copy/word"):
        assert adversarial[name]["hit_rate_final"] == 0.0, name
    assert adversarial["dup/whitespace"]["hit_rate_final"] == 1.0
