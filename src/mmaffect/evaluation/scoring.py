"""From replies to scores: per task, read the prediction out of each reply and call the metric
functions of :mod:`mmaffect.metrics` with the chosen protocol.

========  =====================================================  ==================================
task      reply -> prediction                                     metrics (paper columns)
========  =====================================================  ==================================
mer       emotion labels (extractor)                              :func:`~mmaffect.metrics.hit_rate`
ovmer     emotion labels (extractor)                              :func:`~mmaffect.metrics.ov_mer_scores`
msa       labels -> positive / negative / neutral (extractor)     :func:`~mmaffect.metrics.msa_scores`
mir       official: the reply itself; mmaffect: the candidate     :func:`~mmaffect.metrics.classification_metrics`
          label it names (case-insensitive)
erg       official: ``extract_emotion_from_response``;            accuracy, hit rate, Dist-1/2
          mmaffect: E3RG's first candidate
eri       the reply (explanation)                                 :func:`~mmaffect.metrics.eri_overlap_scores`
========  =====================================================  ==================================

MER-UniBench turns every reply into labels with an LLM (Qwen2.5, then a second query for the
sentiment); ``extractor="llm"`` does that with any chat backend. The default ``"lexicon"`` is
deterministic and offline - a proxy, named in every result: emotion-wheel words for MER / OV-MER,
and for MSA the words positive / negative / neutral, else the polarity of the emotions it finds
(:class:`WheelPolarityExtractor`).

A metric that cannot be computed (the official value is undefined, a label is unknown, no judge was
given) does not stop the others: its value is ``None`` and ``errors[metric]`` says why.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from mmaffect.metrics import classification, erg, eri, label_extraction, mer, msa
from mmaffect.metrics.emotion_wheel import as_wheels
from mmaffect.metrics.protocol import check_protocol

#: the processor task each benchmark task is prompted with by default - the public inference
#: script's zero-shot choice: the open-vocabulary question for MER, MSA and OV-MER alike (the
#: labels are then read from the answer), the task's own prompt elsewhere
PROMPT_TASKS = {"mer": "OV-MER", "ovmer": "OV-MER", "msa": "OV-MER", "mir": "MIR", "erg": "ERG", "eri": "ERI"}
#: benchmark tasks asked with an emotion-recognition prompt (MER with candidate labels, or OV-MER)
MER_FAMILY = ("mer", "ovmer", "msa")


def default_prompt_task(task: str, trained_tasks: Sequence[str] | None) -> tuple[str, str]:
    """``(processor task, why)``: the prompt a benchmark ``task`` is asked with when ``--prompt-task`` is not given.

    MER / OV-MER / MSA benchmarks follow the model's ``trained_tasks`` (its config, written by the P2E trainer):
    the open-vocabulary OV-MER question only for a model trained on it, else the MER candidate-label prompt it was
    trained on. A model that records no trained tasks (older folders, other predictors) keeps
    :data:`PROMPT_TASKS` (the public inference script's choice). Other tasks always use their own prompt."""
    default = PROMPT_TASKS[task]
    if task not in MER_FAMILY:
        return default, f"the {task} task's own prompt"
    if trained_tasks is None:
        return default, "the public inference script's default; the model records no trained tasks"
    trained = list(trained_tasks)
    if default in trained:
        return default, f"the model was trained on {default} (trained tasks: {', '.join(trained)})"
    why = "on MER, not on OV-MER" if "MER" in trained else "on neither MER nor OV-MER (MER lists the candidate labels)"
    return "MER", f"the model was trained {why} (trained tasks: {', '.join(trained) or 'none'})"

#: wheel-1 level-1 categories -> polarity, for the offline MSA proxy
WHEEL1_POLARITY = {"happy": 1, "surprised": 0, "sad": -1, "mad": -1, "scared": -1, "disgusted": -1, "angry": -1,
                   "fearful": -1, "fear": -1, "bad": -1}


class WheelPolarityExtractor(label_extraction._BaseExtractor):
    """Offline MSA proxy: the first ``positive`` / ``negative`` / ``neutral`` in the reply, else the
    sign of the summed polarity (:data:`WHEEL1_POLARITY`) of the emotion words found on wheel 1
    (``neutral`` when they cancel out); ``[]`` when the reply has neither."""

    name = "lexicon:sentiment+wheel1-polarity"

    def __init__(self, wheels):
        self.wheels = as_wheels(wheels)
        self.keywords = label_extraction.SentimentKeywordExtractor()
        self.lexicon = label_extraction.LexiconLabelExtractor.from_wheels(self.wheels)

    def extract(self, text: str) -> list[str]:
        found = self.keywords.extract(text)
        if found:
            return found
        labels = self.lexicon.extract(text)
        if not labels:
            return []
        total = sum(WHEEL1_POLARITY.get(self.wheels.map_label(label, 0) or "", 0) for label in labels)
        return ["positive" if total > 0 else "negative" if total < 0 else "neutral"]


class LLMSentimentChain(label_extraction._BaseExtractor):
    """MER-UniBench's MSA extraction with an LLM: reply -> open-set emotions -> one sentiment."""

    def __init__(self, emotions: label_extraction.LLMLabelExtractor, sentiment: label_extraction.LLMLabelExtractor):
        self.emotions, self.sentiment = emotions, sentiment
        self.name = f"{emotions.name}+sentiment"

    def extract(self, text: str) -> list[str]:
        labels = self.emotions.extract(text)
        return self.sentiment.extract(", ".join(labels)) if labels else []


def make_extractor(task: str, kind: str = "lexicon", wheels=None, backend=None, cache_path=None, chat_kwargs=None):
    """The label extractor of ``task`` (mer / ovmer / msa): ``kind="lexicon"`` (offline proxy) or
    ``"llm"`` (the benchmark's LLM step, with ``backend``)."""
    if kind == "lexicon":
        return WheelPolarityExtractor(wheels) if task == "msa" else label_extraction.LexiconLabelExtractor.from_wheels(wheels)
    if kind != "llm":
        raise ValueError(f"extractor must be 'lexicon' or 'llm', got {kind!r}")
    if backend is None:
        raise ValueError("the llm extractor needs a chat backend (--llm-backend)")
    emotions = label_extraction.LLMLabelExtractor(backend, "emotion", cache_path=cache_path, chat_kwargs=chat_kwargs)
    if task != "msa":
        return emotions
    return LLMSentimentChain(emotions, label_extraction.LLMLabelExtractor(backend, "sentiment", cache_path=cache_path,
                                                                          chat_kwargs=chat_kwargs))


def match_candidate_label(reply: str, labels: Sequence[str]) -> str:
    """The label a MIR reply names: the whole reply when it is a label (case-insensitive), else the
    longest label found in it as whole words (earliest on ties); ``""`` when there is none."""
    text = erg.strip_think(reply or "").strip().strip(".!\"' ").lower()
    by_folded = {label.lower(): label for label in labels}
    if text in by_folded:
        return by_folded[text]
    best = None
    for folded, label in by_folded.items():
        match = re.search(rf"(?<![a-z]){re.escape(folded)}(?![a-z])", text)
        if match and (best is None or (len(folded), -match.start()) > (len(best[0]), -best[1])):
            best = (folded, match.start(), label)
    return best[2] if best else ""


def _finite(value):
    return None if isinstance(value, float) and math.isnan(value) else value


def _guarded(errors: dict, name: str, function, *args, **kwargs):
    try:
        return function(*args, **kwargs)
    except ValueError as error:
        errors[name] = str(error)
        return None


def score_task(task: str, ids: Sequence[str], replies: Sequence[str], references: Sequence[Any], *,
               protocol: str | None = None, wheels=None, extractor=None, judge=None,
               candidate_labels: Sequence[str] = (), progress: bool = False) -> dict:
    """Predictions, metrics and the paper-table cells of one task.

    Args:
        protocol: ``"official"`` / ``"mmaffect"`` for every metric, or ``None`` for each metric's
            default (:data:`mmaffect.metrics.DEFAULT_PROTOCOLS`).
        wheels: emotion wheels (folder or parsed) for mer / ovmer / msa.
        extractor: label extractor for mer / ovmer / msa (default: the lexicon proxy).
        judge: an ERI judge (:func:`mmaffect.metrics.make_overlap_judge`); without one ERI is not scored.
        candidate_labels: the MIR label set (reference spelling) for ``protocol="mmaffect"``.

    Returns:
        ``{"predictions": [...], "metrics": {...} | None, "table": {column: value}, "protocols":
        {metric: protocol}, "extractor": name, "errors": {metric: message}}``.
    """
    if len(replies) != len(references) or len(ids) != len(references):
        raise ValueError(f"ids, replies and references differ in length: {len(ids)}, {len(replies)}, {len(references)}")
    errors: dict[str, str] = {}
    protocols: dict[str, str] = {}
    table: dict[str, Any] = {}
    metrics: dict[str, Any] | None = {}
    extractor_name = "none"

    if task in ("mer", "ovmer", "msa"):
        if extractor is None:
            extractor = make_extractor(task, "lexicon", wheels)
        extractor_name = extractor.name
        predictions = [extractor.extract(reply) for reply in replies]
        if task == "msa":
            predictions = [items[0] if items else "" for items in predictions]
            protocols["msa"] = check_protocol(protocol, "msa")
            metrics = _guarded(errors, "msa", msa.msa_scores, predictions, references, protocol=protocols["msa"])
            if metrics:
                table = {"WAF": 100 * metrics["waf"], "Acc": 100 * metrics["accuracy"]}
        elif task == "mer":
            protocols["hit_rate"] = check_protocol(protocol, "hit_rate")
            metrics = _guarded(errors, "hit_rate", mer.hit_rate, predictions, references, wheels, protocol=protocols["hit_rate"])
            if metrics:
                table = {"Hit Rate": 100 * metrics["hit_rate"]}
        else:
            protocols["ov_mer"] = check_protocol(protocol, "ov_mer")
            metrics = _guarded(errors, "ov_mer", mer.ov_mer_scores, predictions, references, wheels, protocol=protocols["ov_mer"])
            if metrics:
                table = {"WAF": 100 * metrics["f1"], "P": 100 * metrics["precision"], "R": 100 * metrics["recall"]}
    elif task == "mir":
        protocols["mir_prediction"] = check_protocol(protocol, "mir_prediction")
        if protocols["mir_prediction"] == "official":
            predictions = [reply for reply in replies]  # eval_merg_exp.py scores the reply as the label
        else:
            predictions = [match_candidate_label(reply, candidate_labels or sorted(set(references))) for reply in replies]
            extractor_name = "candidate-label match"
        metrics = classification.classification_metrics(list(references), predictions)
        table = {"Acc": 100 * metrics["accuracy"], "WF1": 100 * metrics["weighted_f1"], "WP": 100 * metrics["weighted_precision"]}
    elif task == "erg":
        protocols["erg_emotion"] = check_protocol(protocol, "erg_emotion")
        if protocols["erg_emotion"] == "official":
            predictions = [erg.extract_emotion_from_response(reply) for reply in replies]
            extractor_name = "nano-emox:extract_emotion_from_response"
        else:
            matcher = label_extraction.ERGEmotionMatcher()
            predictions = [matcher.extract(reply)[0] for reply in replies]
            extractor_name = matcher.name
        protocols["erg_accuracy"] = check_protocol(protocol, "erg_accuracy")
        protocols["erg_hit_rate"] = check_protocol(protocol, "erg_hit_rate")
        protocols["distinct_n"] = check_protocol(protocol, "distinct_n")
        # an unreadable emotion counts as neutral (E3RG's fallback) unless the official hit rate is asked for
        unknown = "error" if protocols["erg_hit_rate"] == "official" else "neutral"
        metrics = {
            "accuracy": erg.erg_accuracy(predictions, references, protocols["erg_accuracy"]),
            "hit_rate": _guarded(errors, "erg_hit_rate", erg.erg_hit_rate, predictions, references,
                                 unknown_prediction=unknown, protocol=protocols["erg_hit_rate"]),
            "dist_1": erg.distinct_n(replies, 1, protocol=protocols["distinct_n"]),
            "dist_2": erg.distinct_n(replies, 2, protocol=protocols["distinct_n"]),
            "num_samples": len(references),
        }
        hit = "-" if metrics["hit_rate"] is None else f"{100 * metrics['hit_rate']:.2f}"
        table = {"Acc / Hit Rate": f"{100 * metrics['accuracy']:.2f} / {hit}",
                 "Dist-1": 100 * metrics["dist_1"], "Dist-2": 100 * metrics["dist_2"]}
    elif task == "eri":
        protocols["eri"] = check_protocol(protocol, "eri")
        predictions = list(replies)
        if judge is None:
            metrics = None
            errors["eri"] = "not scored: no judge (pass --judge-base-url / --judge-model; the paper used gpt-3.5-turbo-0125)"
        else:
            if getattr(judge, "protocol", protocols["eri"]) != protocols["eri"]:
                raise ValueError(f"the ERI judge follows protocol {judge.protocol!r}, but {protocols['eri']!r} was asked for")
            metrics = _guarded(errors, "eri", eri.eri_overlap_scores, predictions, list(references), judge, ids=list(ids),
                               progress=progress)
            if metrics:
                extractor_name = f"judge:{metrics['judge']}"
                table = {"Clue Overlap": metrics["clue_overlap"], "Label Overlap": metrics["label_overlap"]}
    else:
        raise ValueError(f"unknown task {task!r}")

    table = {key: (None if _finite(value) is None else value) for key, value in table.items()}
    return {"predictions": predictions, "metrics": metrics, "table": table, "protocols": protocols,
            "extractor": extractor_name, "errors": errors}


__all__ = ["MER_FAMILY", "PROMPT_TASKS", "WHEEL1_POLARITY", "LLMSentimentChain", "WheelPolarityExtractor", "default_prompt_task",
           "make_extractor", "match_candidate_label", "score_task"]
