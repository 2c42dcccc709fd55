"""Local ``evaluate.Metric`` wrappers of the pure metric functions (nothing is loaded from the Hub).

Use them like any ``evaluate`` metric::

    from mmaffect.metrics.evaluate_modules import MERHitRate
    metric = MERHitRate()
    metric.add_batch(predictions=[["happy", "tense"]], references=["happy"])
    metric.compute(wheel_dir="path/to/emotion_wheel")   # {"hit_rate": 1.0, "hit_rate_wheel1": 1.0, ...}

Each module returns a flat ``dict`` of floats / ints (per-wheel values as ``<metric>_wheelK``).
Options that are not per-sample (wheel folder, label list, judge backend, ``protocol=``) are
``compute`` keyword arguments. Importing this module imports ``evaluate`` (slow: it pulls in transformers), so the
package only loads it on first use.
"""

from __future__ import annotations

import datasets
import evaluate

from .classification import classification_metrics
from .eri import eri_overlap_scores
from .erg import erg_scores
from .mer import hit_rate, ov_mer_scores
from .msa import msa_scores

_CITATION_MER_UNIBENCH = """\
@article{lian2025affectgpt,
  title={AffectGPT: A New Dataset, Model, and Benchmark for Emotion Understanding with Multimodal Large Language Models},
  author={Lian, Zheng and others},
  journal={arXiv preprint arXiv:2501.16566},
  year={2025}
}
"""

_STRING = datasets.Value("string")
_STRING_LIST = datasets.List(datasets.Value("string"))


def _features(*pairs) -> list[datasets.Features]:
    return [datasets.Features({"predictions": p, "references": r}) for p, r in pairs]


class MERHitRate(evaluate.Metric):
    """MER-UniBench hit rate over the five emotion wheels (see :func:`mmaffect.metrics.hit_rate`).

    predictions: list of labels (or one string) per sample; references: the reference label.
    ``compute(wheel_dir=...)``.
    """

    def _info(self):
        return evaluate.MetricInfo(
            description="MER-UniBench emotion-wheel hit rate (MER2023, MER2024, MELD, IEMOCAP).",
            citation=_CITATION_MER_UNIBENCH,
            inputs_description="predictions: list[str] per sample; references: str per sample.",
            features=_features((_STRING_LIST, _STRING), (_STRING, _STRING), (_STRING_LIST, _STRING_LIST)),
        )

    def _compute(self, predictions, references, wheel_dir=None, protocol=None):
        result = hit_rate(predictions, references, wheel_dir, protocol=protocol)
        flat = {"hit_rate": result["hit_rate"], "num_samples": result["num_samples"]}
        for wheel, value in result["per_wheel"].items():
            flat[f"hit_rate_{wheel}"] = value
        return flat


class OVMERScore(evaluate.Metric):
    """OV-MER set-based F / precision / recall over the five wheels (:func:`mmaffect.metrics.ov_mer_scores`).
    ``compute(wheel_dir=...)``."""

    def _info(self):
        return evaluate.MetricInfo(
            description="MER-UniBench OV-MER (OV-MERD) F-score, precision and recall over the emotion wheels.",
            citation=_CITATION_MER_UNIBENCH,
            inputs_description="predictions and references: list[str] (or one comma-separated string) per sample.",
            features=_features((_STRING_LIST, _STRING_LIST), (_STRING, _STRING), (_STRING_LIST, _STRING)),
        )

    def _compute(self, predictions, references, wheel_dir=None, protocol=None):
        result = ov_mer_scores(predictions, references, wheel_dir, protocol=protocol)
        flat = {key: result[key] for key in ("f1", "precision", "recall", "num_samples")}
        for wheel, values in result["per_wheel"].items():
            for key in ("f1", "precision", "recall"):
                flat[f"{key}_{wheel}"] = values[key]
        return flat


class MSAScore(evaluate.Metric):
    """MSA weighted F1 (WAF) and accuracy (:func:`mmaffect.metrics.msa_scores`).

    predictions: ``positive`` / ``negative`` / ``neutral`` or a number as a string; references:
    sentiment scores. ``compute(unknown_prediction="neutral" | "error")``."""

    def _info(self):
        return evaluate.MetricInfo(
            description="MER-UniBench sentiment WAF and accuracy (MOSI, MOSEI, SIMS, SIMSv2).",
            citation=_CITATION_MER_UNIBENCH,
            inputs_description="predictions: str; references: float.",
            features=_features((_STRING, datasets.Value("float64"))),
        )

    def _compute(self, predictions, references, unknown_prediction="neutral", protocol=None):
        return msa_scores(predictions, references, unknown_prediction, protocol=protocol)


class ClassificationScore(evaluate.Metric):
    """Accuracy and macro / weighted F1, precision, recall, identical to scikit-learn
    (:func:`mmaffect.metrics.classification_metrics`; MIR and LGSRR). Integer or string labels.
    ``compute(labels=[...])`` optionally fixes the class list."""

    def _info(self):
        return evaluate.MetricInfo(
            description="Single-label classification metrics with scikit-learn's definitions.",
            citation="",
            inputs_description="predictions and references: int or str per sample.",
            features=_features((datasets.Value("int64"), datasets.Value("int64")), (_STRING, _STRING)),
        )

    def _compute(self, predictions, references, labels=None):
        return classification_metrics(references, predictions, labels=labels)


class ERGScore(evaluate.Metric):
    """AvaMERG emotion accuracy, coarse hit rate and Dist-1/2 (:func:`mmaffect.metrics.erg_scores`).

    predictions / references: emotion words. ``compute(responses=[...])`` adds Dist-1/2 of the
    generated replies (``<think>`` removed); ``unknown_prediction`` and ``coarse_map`` as in
    :func:`~mmaffect.metrics.erg_hit_rate`."""

    def _info(self):
        return evaluate.MetricInfo(
            description="Empathetic response generation: emotion accuracy, 8-class hit rate, Dist-n.",
            citation="",
            inputs_description="predictions and references: str per sample.",
            features=_features((_STRING, _STRING)),
        )

    def _compute(self, predictions, references, responses=None, coarse_map=None, unknown_prediction="error", protocol=None):
        result = erg_scores(predictions, references, responses, coarse_map, unknown_prediction, protocol=protocol)
        return {**result, "protocol": ",".join(f"{k}={v}" for k, v in result["protocol"].items())}


class ERIOverlap(evaluate.Metric):
    """EMER clue / label overlap rated by a judge LLM (:func:`mmaffect.metrics.eri_overlap_scores`).

    ``compute(judge=backend_or_OverlapJudge, cache_path=..., ids=[...])``."""

    def _info(self):
        return evaluate.MetricInfo(
            description="Emotion reason inference: judge-LLM clue overlap and label overlap (1-10).",
            citation="",
            inputs_description="predictions and references: explanation text per sample.",
            features=_features((_STRING, _STRING)),
        )

    def _compute(self, predictions, references, judge=None, cache_path=None, ids=None, protocol=None):
        if judge is None:
            raise ValueError("ERIOverlap.compute needs judge= (a chat backend, an OfficialOverlapJudge or an OverlapJudge)")
        result = eri_overlap_scores(predictions, references, judge, ids=ids, cache_path=cache_path, protocol=protocol)
        return {key: result[key] for key in ("clue_overlap", "label_overlap", "num_samples", "num_queried", "num_cached")}
