"""The fitted router as files: what ``python -m routing.fit`` writes and the proxy reads.

* ``weights.json``: the model's kind and parameters, the thresholds of every
  quality target, and the validation behind them (``metadata``);
* ``exemplars.npy``: embeddings of training prompts (float16): for the
  neighbour model every one, which it averages over; for the linear model the
  ones explanations quote;
* ``exemplars.json.gz``: for each of them, its source, outcome and opening
  words.

    model = load_model()
    model.operating(0.95).thresholds.tier(0.42)  # -> "medium"
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from routing.tiers import Thresholds

WEIGHTS_FILE = "weights.json"
EXEMPLAR_VECTORS = "exemplars.npy"
EXEMPLAR_NOTES = "exemplars.json.gz"
DEFAULT_QUALITY_TARGET = 0.95


@dataclass(frozen=True, slots=True)
class OperatingPoint:
    """Thresholds for one quality target and what they did on validation prompts."""

    quality_target: float
    thresholds: Thresholds
    shares: Mapping[str, float]
    quality_kept: float
    relative_cost: float


@dataclass(frozen=True, slots=True)
class Exemplar:
    """A training prompt as explanations show it."""

    source: str
    label: str
    target: float
    text: str


@dataclass(frozen=True, slots=True)
class RouterModel:
    """Everything scoring needs, loaded once."""

    kind: Literal["neighbours", "linear"]
    neighbours_k: int
    temperature: float
    intercept: float
    embedding_weights: npt.NDArray[np.float32] | None
    feature_weights: Mapping[str, float]
    feature_centres: Mapping[str, float]
    operating_points: tuple[OperatingPoint, ...]
    vectors: npt.NDArray[np.float32]
    exemplars: tuple[Exemplar, ...]
    targets: npt.NDArray[np.float64]
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def operating(self, quality_target: float) -> OperatingPoint:
        """The operating point of the least listed target at or above ``quality_target``."""
        for point in self.operating_points:
            if point.quality_target >= quality_target - 1e-9:
                return point
        return self.operating_points[-1]


def _operating(raw: Mapping[str, Any]) -> OperatingPoint:
    return OperatingPoint(
        quality_target=float(raw["quality_target"]),
        thresholds=Thresholds(float(raw["small_max"]), float(raw["medium_max"])),
        shares={k: float(v) for k, v in raw["shares"].items()},
        quality_kept=float(raw["quality_kept"]),
        relative_cost=float(raw["relative_cost"]),
    )


def model_from(
    weights: Mapping[str, Any], vectors: npt.NDArray[np.float16], notes: Sequence[Mapping[str, Any]]
) -> RouterModel:
    """Build a model from the three files' contents."""
    if len(notes) != len(vectors):
        raise ValueError(f"{len(vectors)} exemplar vectors but {len(notes)} notes")
    kind = weights["kind"]
    if kind not in ("neighbours", "linear"):
        raise ValueError(f"unknown model kind {kind!r}")
    linear = weights.get("linear") or {}
    emb = linear.get("embedding_weights")
    features = weights["features"]
    return RouterModel(
        kind=kind,
        neighbours_k=int(weights.get("neighbours", {}).get("k", 0)),
        temperature=float(weights.get("neighbours", {}).get("temperature", 0.0)),
        intercept=float(weights["intercept"]),
        embedding_weights=None if emb is None else np.asarray(emb, dtype=np.float32),
        feature_weights={k: float(v["weight"]) for k, v in features.items()},
        feature_centres={k: float(v["centre"]) for k, v in features.items()},
        operating_points=tuple(_operating(p) for p in weights["operating_points"]),
        vectors=np.ascontiguousarray(vectors, dtype=np.float32),
        exemplars=tuple(
            Exemplar(str(n["source"]), str(n["label"]), float(n["target"]), str(n["text"]))
            for n in notes
        ),
        targets=np.asarray([float(n["target"]) for n in notes]),
        metadata=weights.get("metadata", {}),
    )


def load_model(directory: Path | None = None) -> RouterModel:
    """Read the model files from ``directory`` (default: the ones shipped in ``routing``)."""
    if directory is None:
        root = resources.files("routing")
        weights = json.loads(root.joinpath(WEIGHTS_FILE).read_text(encoding="utf-8"))
        vectors = np.load(io.BytesIO(root.joinpath(EXEMPLAR_VECTORS).read_bytes()))
        notes = json.loads(gzip.decompress(root.joinpath(EXEMPLAR_NOTES).read_bytes()))
    else:
        weights = json.loads((directory / WEIGHTS_FILE).read_text(encoding="utf-8"))
        vectors = np.load(directory / EXEMPLAR_VECTORS)
        notes = json.loads(gzip.decompress((directory / EXEMPLAR_NOTES).read_bytes()))
    return model_from(weights, vectors, notes)


def write_model(
    directory: Path,
    weights: Mapping[str, Any],
    vectors: npt.NDArray[np.float16],
    notes: Sequence[Mapping[str, Any]],
) -> None:
    """Write the three files; the same inputs always give the same bytes."""
    (directory / WEIGHTS_FILE).write_text(
        json.dumps(weights, indent=1, sort_keys=True) + "\n", encoding="utf-8"
    )
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(vectors, dtype=np.float16), allow_pickle=False)
    (directory / EXEMPLAR_VECTORS).write_bytes(buffer.getvalue())
    text = json.dumps(list(notes), ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    (directory / EXEMPLAR_NOTES).write_bytes(gzip.compress(text.encode(), 9, mtime=0))
