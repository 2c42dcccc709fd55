"""Emotion reason inference (EMER): clue overlap and label overlap rated by a judge LLM.

Following EMER / Emotion-LLaMA, a judge LLM compares each generated explanation with the reference
explanation twice and answers an integer from 1 to 10:

* **clue overlap** - how many of the reference's emotion clues (face, voice, words, situation)
  the prediction also gives;
* **label overlap** - how well the emotions the prediction concludes match the reference's.

The reported numbers are the means over samples (1-10, higher is better; Table 3 of the paper).
The prompts live in ``mmaffect/metrics/prompts/eri_*.txt``. The judge is any object with
``chat(messages, **kwargs) -> str`` (the published numbers used GPT-3.5-Turbo through the OpenAI
API; a local transformers model works the same way, with different numbers).

Every verdict is appended to a JSONL cache as soon as it arrives (keyed by judge name, prompt text,
prediction and reference; the judge's ``fingerprint()`` - model and generation settings - when
it has one), so an interrupted run resumes and a rerun asks nothing again.

Two judges, one per protocol (see :mod:`mmaffect.metrics.protocol`; :func:`make_overlap_judge`):

* :class:`OfficialOverlapJudge` (``protocol="official"``, the default) - Nano-EmoX's
  ``eval_ovmerd.py``: gpt-3.5-turbo-0125 at temperature 0 with the official Chinese prompts; label
  overlap is scored after each text is first summarised into emotion words; the **first** number
  in the reply is the score (0.0 when there is none); every prediction is sent, empty ones too.
* :class:`OverlapJudge` (``protocol="mmaffect"``) - the package's English prompts
  (``prompts/eri_*.txt``), the **last** ``Score: N`` (1-10) in the reply, up to ``max_attempts``
  queries for a malformed reply, and an empty prediction scores 1 without a query.

The official script reads the references from ``gt-eng.csv`` (column ``reasons``) and the
predictions from the ``chi_reasons`` column of a ``names,pred_label,chi_reasons`` CSV (the file
Nano-EmoX's inference writes); :func:`read_official_eri_files` does the same.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, Sequence

from ._llm import JsonlCache, backend_fingerprint, backend_name, cache_key, chat_text, check_backend, load_prompt
from .erg import strip_think
from .protocol import check_protocol

OVERLAP_KINDS = ("clue_overlap", "label_overlap")
MIN_SCORE, MAX_SCORE = 1.0, 10.0

_SCORE_AFTER_WORD = re.compile(r"score\s*(?:is)?\s*[:=\uff1a]?\s*\**\s*(\d+(?:\.\d+)?)", re.IGNORECASE)
_BARE_SCORE = re.compile(r"^\**\s*(\d+(?:\.\d+)?)\s*\**\s*(?:/\s*10)?\s*\.?$")


def parse_judge_score(reply: str) -> float:
    """The 1-10 score in a judge reply: the last ``Score: N`` in it, or a reply that is only a number
    (``"7"``, ``"7/10"``). Raises ``ValueError`` (quoting the reply) when there is none or it is
    outside 1-10."""
    text = strip_think(reply or "")
    matches = _SCORE_AFTER_WORD.findall(text)
    if matches:
        value = float(matches[-1])
    else:
        bare = _BARE_SCORE.match(text.strip())
        if not bare:
            raise ValueError(f"judge reply has no 'Score: N': {reply[:200]!r}")
        value = float(bare.group(1))
    if not MIN_SCORE <= value <= MAX_SCORE:
        raise ValueError(f"judge score {value} is outside {MIN_SCORE:g}-{MAX_SCORE:g}: {reply[:200]!r}")
    return value


class OverlapJudge:
    """Judge LLM for the ERI overlap scores (``protocol="mmaffect"``), with a resumable JSONL cache.

    Args:
        backend: any object with ``chat(messages, **kwargs) -> str``.
        cache_path: JSONL file of verdicts (created on first use; ``None`` = in-memory only); keyed
            by the backend's ``fingerprint()`` (or name), the chat kwargs and the full prompt.
        name: recorded with the scores; default the backend's ``name``/``model`` or class name.
        chat_kwargs: passed to ``backend.chat`` (e.g. ``{"temperature": 0}``).
        max_attempts: queries per verdict before a malformed reply becomes an error.
    """

    protocol = "mmaffect"

    def __init__(self, backend: Any, cache_path: str | os.PathLike | None = None, name: str | None = None,
                 chat_kwargs: dict | None = None, max_attempts: int = 3):
        check_backend(backend, "judge")
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
        self.backend = backend
        self.name = name or backend_name(backend)
        self.fingerprint = backend_fingerprint(backend)
        self.chat_kwargs = dict(chat_kwargs or {})
        self.max_attempts = max_attempts
        self.templates = {kind: load_prompt(f"eri_{kind}") for kind in OVERLAP_KINDS}
        self.cache = JsonlCache(cache_path)
        self.num_queried = 0
        self.num_cached = 0

    def score(self, kind: str, prediction: str, reference: str, sample_id: str | None = None) -> float:
        """One verdict (1-10) of ``kind`` in :data:`OVERLAP_KINDS`."""
        if kind not in self.templates:
            raise ValueError(f"kind must be one of {OVERLAP_KINDS}, got {kind!r}")
        label = f"sample {sample_id!r}" if sample_id is not None else "sample"
        if not isinstance(reference, str) or not reference.strip():
            raise ValueError(f"{label}: the reference explanation is empty")
        prediction = strip_think(prediction if isinstance(prediction, str) else "")
        if not prediction.strip():
            return MIN_SCORE
        prompt = self.templates[kind].format(prediction=prediction.strip(), reference=reference.strip())
        key = cache_key("eri", kind, self.fingerprint, json.dumps(self.chat_kwargs, sort_keys=True, default=str), prompt)
        cached = self.cache.get(key)
        if cached is not None:
            self.num_cached += 1
            return float(cached["score"])
        replies = []
        for _ in range(self.max_attempts):
            reply = chat_text(self.backend, [{"role": "user", "content": prompt}], self.chat_kwargs, "judge")
            self.num_queried += 1
            replies.append(reply)
            try:
                value = parse_judge_score(reply)
            except ValueError:
                continue
            self.cache.put({"key": key, "id": sample_id, "kind": kind, "judge": self.name, "score": value, "reply": reply})
            return value
        raise ValueError(
            f"{label}, {kind}: the judge gave no 1-10 score in {self.max_attempts} attempt(s); last reply: {replies[-1][:200]!r}"
        )


# ------------------------------------------------------------------------------------------------
# the official protocol (eval_ovmerd.py)
# ------------------------------------------------------------------------------------------------
OFFICIAL_JUDGE_MODEL = "gpt-3.5-turbo-0125"
OFFICIAL_CHAT_KWARGS = {"temperature": 0}

# The prompts of eval_ovmerd.py, character for character (its f-strings keep the source indentation).
OFFICIAL_CLUE_PROMPT = (
    "\n                下面给出人物的《真实描述》以及《预测描述》。请按照以下步骤计算《预测描述》的得分，得分范围为1-10。"
    "最终仅输出预测分数的数值大小，并给出原因。\n\n"
    "                1.请总结《真实描述》中有关人物的情感状态描述\n\n"
    "                2.请总结《预测描述》中有关人物的情感状态描述\n\n"
    "                3.计算《预测描述》与《真实描述》之间的重叠度，重叠度越高，返回的分数越高。\n\n"
    "                4.输出格式为: '预测分数'：预测分数；'原因'：原因、\n"
    "                \n"
    "                输入：\n\n"
    "                《真实描述》：{reference}\n\n"
    "                《预测描述》：{prediction}\n\n"
    "                输出：\n\n"
    "                "
)
OFFICIAL_SUMMARY_PROMPT = (
    "\n              请根据以下视频描述，推测视频中人物最有可能的情感状态，仅输出情感词：\n"
    "              \n"
    "              视频描述：他虽然看起来很高兴，但是实际上很焦虑\n"
    "              \n"
    "              输出结果：焦虑\n\n"
    "              视频描述：{text}\n\n"
    "              输出结果：\n"
    "              "
)
OFFICIAL_LABEL_PROMPT = (
    "\n                下面给出人物的《真实情感》以及《预测情感》。请计算《预测情感》与《真实情感》之间的重叠度，"
    "重叠度越高，返回的分数越高。得分范围为1-10。最终仅输出预测分数的数值大小，并给出原因。\n"
    "                \n"
    "                输出格式为: '预测分数'：预测分数；'原因'：原因\n"
    "                \n"
    "                输入：\n\n"
    "                《真实情感》：{reference}\n\n"
    "                《预测情感》：{prediction}\n\n"
    "                输出：\n\n"
    "                "
)
_FIRST_NUMBER = re.compile(r"[\d][.]*[\d]*")


def parse_official_score(reply: str | None) -> float:
    """``eval_ovmerd.py``'s score: the first match of ``[\\d][.]*[\\d]*`` in the reply as a float, 0.0
    when the reply has no digit (or is empty/None, as after a failed API call). A match that is not a
    number (``"1..2"``) makes the official script crash; here it raises ``ValueError`` quoting it."""
    if not reply:
        return 0.0
    match = _FIRST_NUMBER.search(reply)
    if match is None:
        return 0.0
    try:
        return float(match.group(0))
    except ValueError:
        raise ValueError(f"the first number {match.group(0)!r} in the judge reply is not a float: {reply[:200]!r}") from None


class OfficialOverlapJudge:
    """The ERI judge of Nano-EmoX's ``eval_ovmerd.py``, on any chat backend, with a JSONL cache.

    * clue overlap: one query, :data:`OFFICIAL_CLUE_PROMPT` with the reference and the prediction;
    * label overlap: the reference and the prediction are each summarised into emotion words
      (:data:`OFFICIAL_SUMMARY_PROMPT`), then :data:`OFFICIAL_LABEL_PROMPT` scores the two summaries;
    * every reply is scored with :func:`parse_official_score` (first number, 0.0 when none); the
      prediction is sent as it is, even when empty.

    The published numbers used ``gpt-3.5-turbo-0125`` (:data:`OFFICIAL_JUDGE_MODEL`) at temperature 0
    (:data:`OFFICIAL_CHAT_KWARGS`): build the backend with that model; ``is_official_model`` says
    whether it is.

    One deliberate difference: the official ``get_completion`` turns a failed API call into ``''``
    (score 0.0). Here the backend's error propagates and nothing is cached, so the next run asks
    again instead of recording an outage as a judgement.
    """

    protocol = "official"

    def __init__(self, backend: Any, cache_path: str | os.PathLike | None = None, name: str | None = None,
                 chat_kwargs: dict | None = None):
        check_backend(backend, "judge")
        self.backend = backend
        self.name = name or backend_name(backend)
        self.fingerprint = backend_fingerprint(backend)
        self.chat_kwargs = dict(OFFICIAL_CHAT_KWARGS if chat_kwargs is None else chat_kwargs)
        self.cache = JsonlCache(cache_path)
        self.num_queried = 0
        self.num_cached = 0

    @property
    def is_official_model(self) -> bool:
        model = getattr(self.backend, "model_id", None) or getattr(self.backend, "model", None)
        return model == OFFICIAL_JUDGE_MODEL and self.chat_kwargs == OFFICIAL_CHAT_KWARGS

    def _ask(self, kind: str, prompt: str, sample_id: str | None) -> str:
        key = cache_key("eri-official", kind, self.fingerprint, json.dumps(self.chat_kwargs, sort_keys=True, default=str), prompt)
        cached = self.cache.get(key)
        if cached is not None:
            self.num_cached += 1
            return cached["reply"]
        reply = chat_text(self.backend, [{"role": "user", "content": prompt}], self.chat_kwargs, "judge")
        self.num_queried += 1
        self.cache.put({"key": key, "id": sample_id, "kind": kind, "judge": self.name, "reply": reply})
        return reply

    def summarize(self, text: str, sample_id: str | None = None) -> str:
        """The official ``get_summarized_emotions``: the emotion words the judge reads in ``text``."""
        return self._ask("summary", OFFICIAL_SUMMARY_PROMPT.format(text=_as_text(text)), sample_id)

    def score(self, kind: str, prediction: str, reference: str, sample_id: str | None = None) -> float:
        """One verdict of ``kind`` in :data:`OVERLAP_KINDS` (first number of the reply; 0.0 if none)."""
        if kind not in OVERLAP_KINDS:
            raise ValueError(f"kind must be one of {OVERLAP_KINDS}, got {kind!r}")
        prediction, reference = _as_text(prediction), _as_text(reference)
        if kind == "clue_overlap":
            prompt = OFFICIAL_CLUE_PROMPT.format(reference=reference, prediction=prediction)
        else:
            gt_emotion = self.summarize(reference, sample_id)
            pred_emotion = self.summarize(prediction, sample_id)
            prompt = OFFICIAL_LABEL_PROMPT.format(reference=gt_emotion, prediction=pred_emotion)
        return parse_official_score(self._ask(kind, prompt, sample_id))


def _as_text(value) -> str:
    """The official ``func_gain_name2value``: NaN / None -> ``""``; anything else as text."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return str(value)


def make_overlap_judge(backend: Any, protocol: str | None = None, cache_path: str | os.PathLike | None = None,
                       chat_kwargs: dict | None = None):
    """The ERI judge of ``protocol`` (default ``"official"``) around a chat backend."""
    if check_protocol(protocol, "eri") == "official":
        return OfficialOverlapJudge(backend, cache_path=cache_path, chat_kwargs=chat_kwargs)
    return OverlapJudge(backend, cache_path=cache_path, chat_kwargs=chat_kwargs)


def read_official_eri_files(predictions_csv: str | os.PathLike, references_csv: str | os.PathLike) -> tuple[list[str], list[str], list[str]]:
    """``(names, predictions, references)`` as ``eval_ovmerd.py`` reads them: predictions from the
    ``chi_reasons`` column, references from ``reasons`` (``gt-eng.csv``), both keyed by ``names``, empty
    cells as ``""``, the samples present in both files (in reference order)."""
    import pandas as pd

    def read(path, column):
        frame = pd.read_csv(path)
        for needed in ("names", column):
            if needed not in frame.columns:
                raise ValueError(f"{path}: no column {needed!r}; columns: {list(frame.columns)}")
        return {str(name): _as_text(value) for name, value in zip(frame["names"], frame[column])}

    predictions = read(predictions_csv, "chi_reasons")
    references = read(references_csv, "reasons")
    names = [name for name in references if name in predictions]
    if not names:
        raise ValueError(f"{predictions_csv} and {references_csv} share no sample name")
    return names, [predictions[n] for n in names], [references[n] for n in names]


def eri_overlap_scores(
    predictions: Sequence[str],
    references: Sequence[str],
    judge: OverlapJudge | Any,
    ids: Sequence[str] | None = None,
    cache_path: str | os.PathLike | None = None,
    progress: bool = False,
    protocol: str | None = None,
) -> dict:
    """Mean clue overlap and label overlap (1-10) of generated explanations.

    Args:
        judge: an :class:`OfficialOverlapJudge` / :class:`OverlapJudge`, or a bare chat backend
            (wrapped with ``cache_path`` by :func:`make_overlap_judge` for ``protocol``).
        ids: sample ids, written into the cache and error messages.
        protocol: which judge wraps a bare backend (default ``"official"``); ignored for a judge.

    Returns:
        ``{"clue_overlap", "label_overlap", "num_samples", "judge", "protocol", "num_queried",
        "num_cached", "per_sample": [{"id", "clue_overlap", "label_overlap"}]}``.
    """
    if len(predictions) != len(references):
        raise ValueError(f"predictions and references differ in length: {len(predictions)} vs {len(references)}")
    if len(references) == 0:
        raise ValueError("no samples to score (empty references)")
    if ids is not None and len(ids) != len(references):
        raise ValueError(f"ids and references differ in length: {len(ids)} vs {len(references)}")
    if not isinstance(judge, (OverlapJudge, OfficialOverlapJudge)):
        judge = make_overlap_judge(judge, protocol, cache_path=cache_path)
    queried_before, cached_before = judge.num_queried, judge.num_cached
    rows = range(len(references))
    if progress:
        from tqdm.auto import tqdm

        rows = tqdm(rows, desc=f"ERI judge ({judge.name})", unit="sample")
    per_sample = []
    for index in rows:
        sample_id = ids[index] if ids is not None else str(index)
        per_sample.append({
            "id": sample_id,
            **{kind: judge.score(kind, predictions[index], references[index], sample_id) for kind in OVERLAP_KINDS},
        })
    count = len(per_sample)
    return {
        "clue_overlap": sum(row["clue_overlap"] for row in per_sample) / count,
        "label_overlap": sum(row["label_overlap"] for row in per_sample) / count,
        "num_samples": count,
        "judge": judge.name,
        "protocol": judge.protocol,
        "num_queried": judge.num_queried - queried_before,
        "num_cached": judge.num_cached - cached_before,
        "per_sample": per_sample,
    }
