"""How a router is judged: quality recovered as more traffic goes to the strong tier.

A router ranks prompts; sending the top share to the strong tier and the rest
to the cheap one gives a quality between the cheap tier's and the strong
tier's. PGR (performance gap recovered) is where it lands in that gap; APGR
averages it over every share from 0 to 1, as in RouteLLM. A random router
scores 0.5; one that knows each prompt's outcome scores up to 1.

Leave-one-source-out validation trains on every source but one and scores
only the one left out, so no number comes from a prompt the model saw.

    apgr(scores, cheap_quality, strong_quality)  # -> 0.5 for a random ranking
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

Vector = npt.NDArray[np.float64]


def apgr(
    scores: Sequence[float] | Vector, cheap: Sequence[float], strong: Sequence[float]
) -> float:
    """Average performance gap recovered when the highest scores go to the strong tier.

    Ties in ``scores`` share their gain evenly, so a constant score gets 0.5.
    """
    s = np.asarray(scores, dtype=np.float64)
    gain = np.asarray(strong, dtype=np.float64) - np.asarray(cheap, dtype=np.float64)
    total = gain.sum()
    if len(s) == 0 or total == 0:
        return float("nan")
    order = np.argsort(-s, kind="stable")
    s_sorted, g_sorted = s[order], gain[order]
    # Within a run of equal scores the order is arbitrary: use the run's mean gain.
    _, starts, counts = np.unique(-s_sorted, return_index=True, return_counts=True)
    run_mean = np.add.reduceat(g_sorted, starts) / counts
    g_even = np.repeat(run_mean, counts)
    pgr = np.concatenate([[0.0], np.cumsum(g_even)]) / total
    return float(np.trapezoid(pgr, dx=1.0 / len(s)))


def auc(scores: Sequence[float] | Vector, positives: Sequence[bool]) -> float:
    """P(a random positive scores above a random negative); ties count half."""
    s = np.asarray(scores, dtype=np.float64)
    pos = np.asarray(positives, dtype=bool)
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if not n_pos or not n_neg:
        return float("nan")
    order = np.argsort(s, kind="stable")
    ranked = s[order]
    _, starts, counts = np.unique(ranked, return_index=True, return_counts=True)
    mid = np.repeat(starts + (counts + 1) / 2.0, counts)
    ranks = np.empty(len(s))
    ranks[order] = mid
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


ScoreHeldOut = Callable[[npt.NDArray[np.intp], npt.NDArray[np.intp]], Vector]
"""``score(train_rows, held_out_rows) -> scores of held_out_rows``."""


def leave_one_out(
    keys: Sequence[str], trainable: Sequence[bool], held_out: Sequence[str], score: ScoreHeldOut
) -> dict[str, Vector]:
    """For each key in ``held_out``: scores of its rows from a model trained without it.

    ``keys[i]`` is row i's source (or family); only ``trainable`` rows train.
    """
    key_arr = np.asarray(keys)
    train_ok = np.asarray(trainable, dtype=bool)
    result: dict[str, Vector] = {}
    for key in held_out:
        test = np.flatnonzero(key_arr == key)
        train = np.flatnonzero(train_ok & (key_arr != key))
        result[key] = score(train, test)
    return result


def mean_and_error(values: Sequence[float]) -> tuple[float, float]:
    """Mean and its standard error (``values`` treated as independent)."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) < 2:
        return float(v.mean()), float("nan")
    return float(v.mean()), float(v.std(ddof=1) / np.sqrt(len(v)))
