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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mmaffect.metrics import classification, erg, eri, label_extraction, mer, msa
from mmaffect.metrics.emotion_wheel import as_wheels
from mmaffect.metrics.protocol import check_protocol

from . import score_files

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


@dataclass
class _Replies:
    """What the reply scorers read (the arguments of :func:`score_task`) and fill (``protocols``, ``errors``)."""

    task: str
    ids: Sequence[str]
    replies: Sequence[str]
    references: Sequence[Any]
    protocol: str | None
    wheels: Any
    extractor: Any
    judge: Any
    candidate_labels: Sequence[str]
    progress: bool
    protocols: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def check(self, metric: str) -> str:
        """The protocol ``metric`` is scored with (recorded in ``protocols``)."""
        self.protocols[metric] = check_protocol(self.protocol, metric)
        return self.protocols[metric]


def _score_mer_family_replies(run: _Replies):
    """mer / ovmer / msa: labels read from each reply by the extractor (default: the lexicon proxy)."""
    extractor = run.extractor if run.extractor is not None else make_extractor(run.task, "lexicon", run.wheels)
    predictions = [extractor.extract(reply) for reply in run.replies]
    table: dict[str, Any] = {}
    if run.task == "msa":
        predictions = [items[0] if items else "" for items in predictions]
        metrics = _guarded(run.errors, "msa", msa.msa_scores, predictions, run.references, protocol=run.check("msa"))
        if metrics:
            table = {"WAF": 100 * metrics["waf"], "Acc": 100 * metrics["accuracy"]}
    elif run.task == "mer":
        metrics = _guarded(run.errors, "hit_rate", mer.hit_rate, predictions, run.references, run.wheels,
                           protocol=run.check("hit_rate"))
        if metrics:
            table = {"Hit Rate": 100 * metrics["hit_rate"]}
    else:
        metrics = _guarded(run.errors, "ov_mer", mer.ov_mer_scores, predictions, run.references, run.wheels,
                           protocol=run.check("ov_mer"))
        if metrics:
            table = {"WAF": 100 * metrics["f1"], "P": 100 * metrics["precision"], "R": 100 * metrics["recall"]}
    return predictions, metrics, table, extractor.name


def _score_mir_replies(run: _Replies):
    """mir: official scores the reply as the label; mmaffect the candidate label it names."""
    extractor_name = "none"
    if run.check("mir_prediction") == "official":
        predictions = list(run.replies)  # eval_merg_exp.py scores the reply as the label
    else:
        labels = run.candidate_labels or sorted(set(run.references))
        predictions = [match_candidate_label(reply, labels) for reply in run.replies]
        extractor_name = "candidate-label match"
    metrics = classification.classification_metrics(list(run.references), predictions)
    table = {"Acc": 100 * metrics["accuracy"], "WF1": 100 * metrics["weighted_f1"], "WP": 100 * metrics["weighted_precision"]}
    return predictions, metrics, table, extractor_name


def _score_erg_replies(run: _Replies):
    """erg: the emotion read from each reply, accuracy / hit rate, and Dist-1/2 of the replies."""
    if run.check("erg_emotion") == "official":
        predictions = [erg.extract_emotion_from_response(reply) for reply in run.replies]
        extractor_name = "nano-emox:extract_emotion_from_response"
    else:
        matcher = label_extraction.ERGEmotionMatcher()
        predictions = [matcher.extract(reply)[0] for reply in run.replies]
        extractor_name = matcher.name
    accuracy_protocol, hit_protocol, distinct_protocol = (run.check(m) for m in ("erg_accuracy", "erg_hit_rate", "distinct_n"))
    # an unreadable emotion counts as neutral (E3RG's fallback) unless the official hit rate is asked for
    unknown = "error" if hit_protocol == "official" else "neutral"
    metrics = {
        "accuracy": erg.erg_accuracy(predictions, run.references, accuracy_protocol),
        "hit_rate": _guarded(run.errors, "erg_hit_rate", erg.erg_hit_rate, predictions, run.references,
                             unknown_prediction=unknown, protocol=hit_protocol),
        "dist_1": erg.distinct_n(run.replies, 1, protocol=distinct_protocol),
        "dist_2": erg.distinct_n(run.replies, 2, protocol=distinct_protocol),
        "num_samples": len(run.references),
    }
    hit = "-" if metrics["hit_rate"] is None else f"{100 * metrics['hit_rate']:.2f}"
    table = {"Acc / Hit Rate": f"{100 * metrics['accuracy']:.2f} / {hit}",
             "Dist-1": 100 * metrics["dist_1"], "Dist-2": 100 * metrics["dist_2"]}
    return predictions, metrics, table, extractor_name


def _score_eri_replies(run: _Replies):
    """eri: the reply is the explanation, rated by the judge; without a judge ERI is not scored."""
    protocol = run.check("eri")
    predictions = list(run.replies)
    if run.judge is None:
        run.errors["eri"] = "not scored: no judge (pass --judge-base-url / --judge-model; the paper used gpt-3.5-turbo-0125)"
        return predictions, None, {}, "none"
    if getattr(run.judge, "protocol", protocol) != protocol:
        raise ValueError(f"the ERI judge follows protocol {run.judge.protocol!r}, but {protocol!r} was asked for")
    metrics = _guarded(run.errors, "eri", eri.eri_overlap_scores, predictions, list(run.references), run.judge,
                       ids=list(run.ids), progress=run.progress)
    if not metrics:
        return predictions, metrics, {}, "none"
    table = {"Clue Overlap": metrics["clue_overlap"], "Label Overlap": metrics["label_overlap"]}
    return predictions, metrics, table, f"judge:{metrics['judge']}"


@dataclass(frozen=True)
class TaskScorer:
    """How one task is scored: ``replies`` from generated replies (``mmaffect evaluate generate``,
    :func:`score_task`), ``files`` from prediction files (``mmaffect evaluate score``)."""

    replies: Callable[[_Replies], tuple]
    files: Callable[..., tuple]


#: the one scoring dispatch: task -> its scorers (both commands look the task up here, nowhere else)
SCORERS: dict[str, TaskScorer] = {
    "mer": TaskScorer(_score_mer_family_replies, score_files.score_mer_files),
    "ovmer": TaskScorer(_score_mer_family_replies, score_files.score_mer_files),
    "msa": TaskScorer(_score_mer_family_replies, score_files.score_msa_files),
    "mir": TaskScorer(_score_mir_replies, score_files.score_mir_files),
    "erg": TaskScorer(_score_erg_replies, score_files.score_erg_files),
    "eri": TaskScorer(_score_eri_replies, score_files.score_eri_files),
}


def scorer_for(task: str) -> TaskScorer:
    """The scorers of ``task``; a task without an entry in :data:`SCORERS` is an error naming it."""
    try:
        return SCORERS[task]
    except KeyError:
        raise ValueError(f"unknown task {task!r}: no scorer for it (scored tasks: {', '.join(SCORERS)})") from None


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
    scorer = scorer_for(task)
    run = _Replies(task, ids, replies, references, protocol, wheels, extractor, judge, candidate_labels, progress)
    predictions, metrics, table, extractor_name = scorer.replies(run)
    table = {key: (None if _finite(value) is None else value) for key, value in table.items()}
    return {"predictions": predictions, "metrics": metrics, "table": table, "protocols": run.protocols,
            "extractor": extractor_name, "errors": run.errors}


__all__ = ["MER_FAMILY", "PROMPT_TASKS", "SCORERS", "WHEEL1_POLARITY", "TaskScorer", "LLMSentimentChain", "WheelPolarityExtractor", "default_prompt_task",
           "make_extractor", "match_candidate_label", "score_task", "scorer_for"]
