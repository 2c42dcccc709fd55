"""MER-UniBench emotion metrics over the five emotion wheels: MER hit rate and OV-MER F / P / R.

Both functions take aligned sequences (sample ``i`` of ``predictions`` belongs to sample ``i`` of
``references``); join files by id with :func:`mmaffect.metrics.records.align_by_id`. A label field
is a list of labels or a string (``"happy"``, ``"happy, tense"``, ``"['happy', 'tense']"``), see
:func:`~mmaffect.metrics.emotion_wheel.string_to_label_list`. All scores are fractions in [0, 1];
the paper's tables show them x100.

Documented handling of awkward inputs:

* a reference that maps to nothing on a wheel (``neutral``, or a word outside the vocabulary) is
  left out of that wheel's average - the benchmark scores non-neutral samples only;
* a prediction that is empty, or whose labels all map to nothing, scores 0 (a miss);
* a wheel on which *no* reference maps to anything has no score: a ``ValueError`` is raised.

Protocols (see :mod:`mmaffect.metrics.protocol`; the default of both functions is ``"mmaffect"``,
because the official value can be NaN or, for the hit rate, exceed 1):

* ``"official"`` - AffectGPT's ``wheel.py`` / ``ew_metric.py`` as they run: the hit rate adds
  ``|pred & ref|`` per sample (above 1 for a multi-label reference); a wheel with no scorable
  reference averages an empty list (NaN, and NaN overall); OV-MER's ``F = 2PR / (P + R)`` is NaN
  when ``P + R == 0``; the means over wheels propagate NaN;
* ``"mmaffect"`` - a hit counts once (0/1), ``F`` is 0 when ``P + R == 0``, and a wheel with no
  scorable reference raises a ``ValueError`` naming the wheel.

With single-label references and at least one non-neutral reference per wheel (every MER dataset)
the two protocols give the same numbers.
"""

from __future__ import annotations

import os
from typing import Sequence

from .emotion_wheel import EmotionWheels, LabelsLike, as_wheels
from .protocol import check_protocol

NAN = float("nan")


def _mean(values: Sequence[float]) -> float:
    """``np.mean`` as the official scripts use it: NaN for an empty list, NaN in -> NaN out."""
    return sum(values) / len(values) if values else NAN


def _check_aligned(predictions: Sequence, references: Sequence) -> None:
    if len(predictions) != len(references):
        raise ValueError(
            f"predictions and references differ in length: {len(predictions)} vs {len(references)}"
        )
    if len(references) == 0:
        raise ValueError("no samples to score (empty references)")


def hit_rate(
    predictions: Sequence[LabelsLike],
    references: Sequence[LabelsLike],
    wheels: EmotionWheels | str | os.PathLike | None = None,
    protocol: str | None = None,
) -> dict:
    """MER hit rate (MER2023, MER2024, MELD, IEMOCAP), averaged over the five wheels.

    Per wheel: map the reference and the predicted labels to wheel categories; a sample scores 1
    when the mapped prediction set overlaps the mapped reference set, else 0; average over the
    samples whose reference maps to something. The result is the mean over wheels.

    The reference code adds ``|pred & ref|`` per sample; with single-label references (every MER
    dataset) that is exactly the 0/1 hit used here. For a multi-label reference it could exceed 1,
    which is why this function counts a hit once (``protocol="mmaffect"``, the default);
    ``protocol="official"`` adds the overlap size as the reference code does (see the module doc).

    Returns:
        ``{"hit_rate", "per_wheel": {wheel: rate}, "num_scored": {wheel: n}, "num_samples",
        "protocol"}``.
    """
    _check_aligned(predictions, references)
    protocol = check_protocol(protocol, "hit_rate")
    official = protocol == "official"
    parsed = as_wheels(wheels)
    per_wheel, num_scored = {}, {}
    for index, name in enumerate(parsed.wheel_names):
        hits = []
        for prediction, reference in zip(predictions, references):
            truth = parsed.map_labels(reference, index)
            if not truth:
                continue
            overlap = len(parsed.map_labels(prediction, index) & truth)
            hits.append(float(overlap) if official else (1.0 if overlap else 0.0))
        if not hits and not official:
            raise ValueError(f"no reference label maps onto {name}: the hit rate is undefined (all neutral?)")
        per_wheel[name] = _mean(hits)
        num_scored[name] = len(hits)
    return {
        "hit_rate": _mean(list(per_wheel.values())),
        "per_wheel": per_wheel,
        "num_scored": num_scored,
        "num_samples": len(references),
        "protocol": protocol,
    }


def ov_mer_scores(
    predictions: Sequence[LabelsLike],
    references: Sequence[LabelsLike],
    wheels: EmotionWheels | str | os.PathLike | None = None,
    protocol: str | None = None,
) -> dict:
    """OV-MER (OV-MERD) set-based precision, recall and F-score over the five wheels.

    Per wheel, over samples whose reference maps to something: precision ``|g & p| / |p|`` and
    recall ``|g & p| / |g|`` (both 0 when the prediction maps to nothing), averaged over samples;
    ``F = 2PR / (P + R)`` from the averages (0 when ``P + R == 0``). F, P and R are then averaged over
    the wheels (F is the mean of per-wheel F-scores, not the F of the mean P and R).

    The paper's Table 2 labels this column "WAF"; the benchmark code computes exactly this F-score.
    ``protocol="official"`` keeps the reference code's NaN for ``P + R == 0`` and for a wheel with
    no scorable reference (see the module doc).

    Returns:
        ``{"f1", "precision", "recall", "per_wheel": {wheel: {"f1", "precision", "recall",
        "num_scored"}}, "num_samples", "protocol"}``.
    """
    _check_aligned(predictions, references)
    protocol = check_protocol(protocol, "ov_mer")
    official = protocol == "official"
    parsed = as_wheels(wheels)
    per_wheel = {}
    for index, name in enumerate(parsed.wheel_names):
        precisions, recalls = [], []
        for prediction, reference in zip(predictions, references):
            truth = parsed.map_labels(reference, index)
            if not truth:
                continue
            predicted = parsed.map_labels(prediction, index)
            if not predicted:
                precisions.append(0.0)
                recalls.append(0.0)
                continue
            overlap = len(truth & predicted)
            precisions.append(overlap / len(predicted))
            recalls.append(overlap / len(truth))
        if not precisions and not official:
            raise ValueError(f"no reference label maps onto {name}: OV-MER scores are undefined")
        precision, recall = _mean(precisions), _mean(recalls)
        if precision + recall > 0:
            f1 = 2 * precision * recall / (precision + recall)
        else:  # 0 / 0 (or NaN): numpy's NaN in the reference code
            f1 = NAN if official else 0.0
        per_wheel[name] = {"f1": f1, "precision": precision, "recall": recall, "num_scored": len(precisions)}
    return {
        "f1": _mean([v["f1"] for v in per_wheel.values()]),
        "precision": _mean([v["precision"] for v in per_wheel.values()]),
        "recall": _mean([v["recall"] for v in per_wheel.values()]),
        "per_wheel": per_wheel,
        "num_samples": len(references),
        "protocol": protocol,
    }
