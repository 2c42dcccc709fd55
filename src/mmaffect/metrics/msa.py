"""MER-UniBench multimodal sentiment analysis (MOSI, MOSEI, SIMS, SIMSv2): WAF and accuracy.

The model's answer is reduced to a sentiment (``positive`` -> 1, ``negative`` -> -1,
``neutral`` -> 0; numbers are used as they are). Samples whose reference score is exactly 0 are
dropped; the rest are scored as a binary problem ``reference > 0`` vs ``prediction > 0`` (so a
``neutral`` prediction counts as "not positive"): WAF is scikit-learn's weighted F1, accuracy the
plain accuracy. Both are fractions in [0, 1].

Protocols (see :mod:`mmaffect.metrics.protocol`):

* ``"official"`` (default) - MER-UniBench's ``evaluation.py``: an answer counts as a sentiment only
  when it is exactly ``positive``, ``negative`` or ``neutral``; everything else (``Positive``,
  ``positive.``, ``[negative]``, ``"0.8"``, a number) is an "error sample" scored as neutral (0);
* ``"mmaffect"`` - :func:`sentiment_to_value`: case, spaces, quotes, brackets and a final period are
  ignored, and numbers (also as strings) are used as they are.
"""

from __future__ import annotations

import math
from typing import Sequence, Union

from .classification import classification_metrics
from .protocol import check_protocol

SENTIMENT_VALUES = {"positive": 1.0, "negative": -1.0, "neutral": 0.0}

SentimentLike = Union[str, float, int, None]


def sentiment_to_value(prediction: SentimentLike) -> float | None:
    """``positive``/``negative``/``neutral`` (any case, surrounding spaces/quotes/period ignored) or
    a number (also as a string) -> float; anything else -> ``None``."""
    if prediction is None:
        return None
    if isinstance(prediction, bool):
        return None
    if isinstance(prediction, (int, float)):
        return None if math.isnan(float(prediction)) else float(prediction)
    if not isinstance(prediction, str):
        return None
    text = prediction.strip().strip("'\"[]. ").lower()
    if text in SENTIMENT_VALUES:
        return SENTIMENT_VALUES[text]
    try:
        value = float(text)
    except ValueError:
        return None
    return None if math.isnan(value) else value


def official_sentiment_value(prediction: SentimentLike) -> float | None:
    """MER-UniBench's reading of a sentiment answer: exact ``positive`` / ``negative`` / ``neutral``
    (``==``, so case and punctuation matter); anything else -> ``None`` (scored as neutral)."""
    if isinstance(prediction, str) and prediction in SENTIMENT_VALUES:
        return SENTIMENT_VALUES[prediction]
    return None


def msa_scores(
    predictions: Sequence[SentimentLike],
    references: Sequence[float],
    unknown_prediction: str = "neutral",
    protocol: str | None = None,
    reference_names: Sequence[str] | None = None,
) -> dict:
    """WAF and accuracy of sentiment predictions against continuous reference scores.

    Args:
        predictions: sentiment words or numbers, aligned with ``references``.
        references: reference sentiment scores (sign matters; 0 = neutral, dropped).
        unknown_prediction: ``"neutral"`` (benchmark behaviour: an answer that is not a sentiment
            counts as neutral, i.e. 0) or ``"error"`` (raise ``ValueError`` naming the samples).
        protocol: ``"official"`` (default; exact match) or ``"mmaffect"`` (lenient parsing), see the
            module docstring.
        reference_names: where each reference was read (``"refs.csv:4"``), named by the error for a
            reference that is not a number or is NaN (default ``reference #i``).

    Returns:
        ``{"waf", "accuracy", "num_scored", "num_samples", "num_unparsed_predictions",
        "num_treated_as_neutral", "protocol"}``; ``num_treated_as_neutral`` counts the predictions
        (NaN, ``"abc"``, ...) that were scored as neutral because they are not a sentiment.
    """
    protocol = check_protocol(protocol, "msa")
    read = official_sentiment_value if protocol == "official" else sentiment_to_value
    if unknown_prediction not in ("neutral", "error"):
        raise ValueError(f"unknown_prediction must be 'neutral' or 'error', got {unknown_prediction!r}")
    if len(predictions) != len(references):
        raise ValueError(f"predictions and references differ in length: {len(predictions)} vs {len(references)}")
    if len(references) == 0:
        raise ValueError("no samples to score (empty references)")
    values, unparsed = [], []
    for index, prediction in enumerate(predictions):
        value = read(prediction)
        if value is None:
            unparsed.append(index)
            value = 0.0
        values.append(value)
    if unparsed and unknown_prediction == "error":
        shown = ", ".join(f"#{i}: {predictions[i]!r}" for i in unparsed[:5])
        wanted = "exactly 'positive', 'negative' or 'neutral'" if protocol == "official" else "positive/negative/neutral or a number"
        raise ValueError(f"{len(unparsed)} prediction(s) are not {wanted}: {shown}")
    truths = []
    for index, reference in enumerate(references):
        label = f"{reference_names[index]}: reference" if reference_names is not None else f"reference #{index}"
        try:
            truth = float(reference)
        except (TypeError, ValueError):
            raise ValueError(f"{label} is not a number: {reference!r}") from None
        if math.isnan(truth):
            raise ValueError(f"{label} is NaN")
        truths.append(truth)
    kept = [i for i, truth in enumerate(truths) if truth != 0]
    if not kept:
        raise ValueError("every reference score is 0 (neutral): WAF is undefined")
    scores = classification_metrics([truths[i] > 0 for i in kept], [values[i] > 0 for i in kept])
    return {
        "waf": scores["weighted_f1"],
        "accuracy": scores["accuracy"],
        "num_scored": len(kept),
        "num_samples": len(references),
        "num_unparsed_predictions": len(unparsed),
        "num_treated_as_neutral": len(unparsed),
        "protocol": protocol,
    }
