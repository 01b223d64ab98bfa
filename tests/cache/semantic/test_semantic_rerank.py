"""The reranker: its shipped model, its features, and the fitter that made it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench.semcache_trees import TreeParams, fit_trees, predict
from cache.semantic.pair_features import FEATURE_NAMES, WordVectors, pair_features, turn_words
from cache.semantic.rerank import MODEL_FILE, RerankModel, load_model
from cache.semantic.service import default_threshold
from proxy.errors import ConfigError
from routing.embedding import TextEmbedder

MODEL_PATH = Path(__file__).resolve().parents[3] / "cache" / "semantic" / MODEL_FILE


def shipped() -> dict[str, object]:
    data: dict[str, object] = json.loads(MODEL_PATH.read_text(encoding="utf-8"))
    return data


def test_the_shipped_model_fits_the_features_and_the_default_threshold() -> None:
    model = load_model()
    assert model.features == FEATURE_NAMES
    assert 0.5 < model.cut < 1.0
    assert model.trees
    # The threshold was fitted with the trees; the cache's default must be that one.
    assert default_threshold("wordllama") == model.threshold
    fit = shipped()["fit"]
    assert isinstance(fit, dict) and fit["half"] == "tune"


def test_serving_scores_equal_the_fitters_scores() -> None:
    data = shipped()
    model = RerankModel.from_dict(data)
    rng = np.random.default_rng(7)
    rows = rng.uniform(0.0, 1.0, size=(200, len(FEATURE_NAMES)))
    rows[:, 2] = rng.integers(0, 12, size=200)  # counts, as the features give them
    rows[:, 13] = rng.integers(0, 3, size=200)
    expected = predict(data, rows)
    served = [model.probability(tuple(float(v) for v in row)) for row in rows]
    assert served == pytest.approx(list(expected), abs=1e-12)


def test_an_unusable_model_file_is_a_config_error(tmp_path: Path) -> None:
    broken = shipped() | {"features": ["cosine"]}
    path = tmp_path / "model.json"
    path.write_text(json.dumps(broken), encoding="utf-8")
    with pytest.raises(ConfigError, match="reranker model unusable"):
        load_model(path)
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError):
        load_model(path)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("How do I learn to play the guitar?", "How can I learn to play guitar?"),
        ("Is Apple better than Samsung?", "Is Samsung better than Apple?"),
        ("What is a bike?", "What bike is this?"),
        ("", "Anything at all?"),
    ],
)
def test_features_are_symmetric(text_embedder: TextEmbedder, a: str, b: str) -> None:
    vectors = WordVectors(text_embedder)
    ab = pair_features(turn_words(a), turn_words(b), similarity=0.9, vectors=vectors)
    ba = pair_features(turn_words(b), turn_words(a), similarity=0.9, vectors=vectors)
    assert len(ab) == len(FEATURE_NAMES)
    assert ab == pytest.approx(ba, abs=1e-6)


def test_features_see_a_swapped_order_and_a_swapped_word(text_embedder: TextEmbedder) -> None:
    vectors = WordVectors(text_embedder)

    def features(a: str, b: str) -> dict[str, float]:
        values = pair_features(turn_words(a), turn_words(b), similarity=0.95, vectors=vectors)
        return dict(zip(FEATURE_NAMES, values, strict=True))

    same = features("Is Apple better than Samsung?", "Is Apple better than Samsung?")
    assert (same["jaccard"], same["unmatched"], same["order"]) == (1.0, 0.0, 1.0)
    swapped = features("Is Apple better than Samsung?", "Is Samsung better than Apple?")
    assert swapped["jaccard"] == 1.0 and swapped["order"] < 1.0
    word = features("Write a poem about the ocean.", "Write a poem about the desert.")
    assert word["unmatched"] == 2.0 and word["align_min"] < 0.9
    person = features("How do I start a company?", "How do you start a company?")
    assert person["changed_first_person"] == 1.0 and person["changed_second_person"] == 1.0


def test_word_vectors_are_memoised_and_bounded(text_embedder: TextEmbedder) -> None:
    vectors = WordVectors(text_embedder, max_words=2)
    first = vectors.matrix(["guitar", "piano"])
    assert first.shape == (2, text_embedder.dim)
    assert np.allclose(first[0], text_embedder.embed("guitar"))
    vectors.matrix(["guitar", "violin", "drums"])
    info = vectors.lookup.cache_info()
    assert info.currsize == 2 and info.hits == 1


def test_the_fitter_learns_a_threshold_and_an_interaction() -> None:
    rng = np.random.default_rng(3)
    x = rng.uniform(0.0, 1.0, size=(4000, 3))
    y = ((x[:, 0] > 0.6) & (x[:, 1] > 0.3)).astype(np.float64)
    model = fit_trees(x, y, TreeParams(rounds=40, depth=3, min_leaf=20))
    p = predict(model, np.array([[0.9, 0.9, 0.5], [0.9, 0.1, 0.5], [0.2, 0.9, 0.5]]))
    assert p[0] > 0.9 and p[1] < 0.1 and p[2] < 0.1
    again = fit_trees(x, y, TreeParams(rounds=40, depth=3, min_leaf=20))
    assert again == model  # deterministic: same rows, same trees
