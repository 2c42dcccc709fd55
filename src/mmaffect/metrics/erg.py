"""Empathetic response generation (AvaMERG): emotion accuracy, coarse hit rate, Dist-1 / Dist-2.

* **Accuracy** (AvaMERG): the predicted speaker emotion equals the reference (lower-cased, stripped).
* **Hit rate** (E3RG): both emotions are mapped to eight coarse classes - neutral, happy,
  surprised, angry, fear, sad, disgusted, contempt - and compared. The mapping
  (:data:`FINE_TO_COARSE`) covers the 32 EmpatheticDialogues emotions of AvaMERG plus the eight
  coarse names. It follows the E3RG code as it runs: that table lists ``embarrassed`` twice (under
  sad and under disgusted) and the later entry wins, so ``embarrassed`` -> ``disgusted`` here too;
  pass ``coarse_map`` to score with another table.
* **Dist-n** (Li et al., 2016): per response, distinct n-grams / n-grams, averaged over responses;
  computed on the reply only, after :func:`strip_think` removes the ``<think>`` reasoning.

Scores are fractions in [0, 1]; the paper's Table 5 shows them x100.

Protocols (see :mod:`mmaffect.metrics.protocol`) - the ``"official"`` side is Nano-EmoX's
``evaluation/eval_merg_exp.py``:

* accuracy - official (default): raw string equality (``"Joyful" != "joyful"``); mmaffect:
  lower-cased and stripped;
* hit rate - official: the coarse table is looked up with the raw strings and an emotion outside it
  is an error (the script raises ``KeyError``); mmaffect (default): lower-cased, stripped, with the
  documented ``unknown_prediction`` choice;
* Dist-n - official (default): ``<think>...</think>`` blocks removed (closed blocks only), replies
  left empty dropped, each reply lower-cased and split on whitespace, replies without an n-gram
  skipped (not scored 0), 0.0 when none is left; mmaffect: :func:`strip_think`, case kept, a reply
  without an n-gram scores 0;
* emotion extraction - official (default): :func:`extract_emotion_from_response` (the "the emotion
  of the speaker is X" sentence inside ``<think>``, else the first keyword of Nano-EmoX's table);
  mmaffect: E3RG's first-candidate rule (:class:`~mmaffect.metrics.label_extraction.ERGEmotionMatcher`).
"""

from __future__ import annotations

import re
from typing import Callable, Mapping, Sequence

from .protocol import check_protocol

COARSE_EMOTION_CLASSES = ("neutral", "happy", "surprised", "angry", "fear", "sad", "disgusted", "contempt")

_COARSE_GROUPS = {
    "happy": ("joyful", "prepared", "content", "caring", "trusting", "faithful", "confident", "hopeful",
              "grateful", "proud", "excited", "anticipating"),
    "sad": ("lonely", "guilty", "anxious", "nostalgic", "disappointed", "sentimental", "ashamed", "devastated"),
    "surprised": ("impressed",),
    "angry": ("furious", "annoyed"),
    "fear": ("afraid", "terrified", "apprehensive"),
    "disgusted": ("embarrassed",),
    "contempt": ("jealous",),
}

#: fine emotion (or coarse name) -> coarse class
FINE_TO_COARSE: dict[str, str] = {name: name for name in COARSE_EMOTION_CLASSES}
for _coarse, _fine_names in _COARSE_GROUPS.items():
    for _fine in _fine_names:
        FINE_TO_COARSE[_fine] = _coarse

#: the order in which E3RG looks for a candidate emotion inside a free-text answer (first match wins)
ERG_CANDIDATE_ORDER = COARSE_EMOTION_CLASSES + (
    "joyful", "prepared", "content", "caring", "trusting", "faithful", "confident", "hopeful", "grateful",
    "proud", "excited", "anticipating", "lonely", "guilty", "anxious", "nostalgic", "embarrassed",
    "disappointed", "sentimental", "ashamed", "devastated", "impressed", "furious", "annoyed", "afraid",
    "terrified", "apprehensive", "jealous",
)

#: Nano-EmoX's keyword table for reading the speaker's emotion from a reply (``eval_merg_exp.py``):
#: searched in this order, each keyword as a substring of the lower-cased reply; the first hit wins.
OFFICIAL_EMOTION_KEYWORDS: dict[str, tuple[str, ...]] = {
    "angry": ("angry", "anger", "furious", "mad", "irate", "enraged"),
    "annoyed": ("annoyed", "annoyance", "irritated", "irritation", "vexed", "bothered"),
    "caring": ("caring", "compassionate", "empathetic", "kind", "sympathetic", "concern"),
    "content": ("content", "contentment", "satisfied", "pleased", "peaceful", "fulfilled"),
    "disappointed": ("disappointed", "disappointment", "letdown", "discouraged", "disheartened"),
    "excited": ("excited", "excitement", "enthusiastic", "thrilled", "eager", "animated"),
    "faithful": ("faithful", "loyal", "devoted", "dedicated", "steadfast", "fidelity"),
    "frustrated": ("frustrated", "frustration", "exasperated", "aggravated", "irked"),
    "grateful": ("grateful", "gratitude", "thankful", "appreciative", "obliged"),
    "guilty": ("guilty", "guilt", "remorseful", "ashamed", "contrite", "regretful"),
    "hopeful": ("hopeful", "hope", "optimistic", "encouraged", "buoyant", "expectant", "anticipating"),
    "joyful": ("joyful", "joy", "happy", "delighted", "cheerful", "gleeful"),
    "lonely": ("lonely", "loneliness", "lonesome", "isolated", "forlorn", "desolate"),
    "loneliness": ("lonely", "loneliness", "lonesome", "isolated", "forlorn", "desolate"),
    "nostalgic": ("nostalgic", "nostalgia", "sentimental", "wistful", "yearning"),
    "overwhelmed": ("overwhelmed", "overwhelm", "swamped", "burdened", "overloaded"),
    "sad": ("sad", "sadness", "sorrowful", "melancholy", "grief", "depressed"),
    "sadness": ("sad", "sadness", "sorrowful", "melancholy", "grief", "depressed"),
    "surprised": ("surprised", "surprise", "amazed", "astonished", "shocked", "stunned"),
    "terrified": ("terrified", "terror", "frightened", "afraid", "scared", "petrified"),
    "trusting": ("trusting", "trust", "confident", "relying", "believing", "assured", "prepared"),
    "worried": ("worried", "worry", "anxious", "nervous", "concerned", "uneasy", "apprehensive"),
    "anxious": ("anxious", "anxiety", "worried", "nervous", "concerned", "uneasy"),
}
_SPEAKER_EMOTION = re.compile(r"the emotion of the speaker is\s+(\w+)")
_OFFICIAL_THINK_BLOCK = re.compile(r"<think>.*?</think>", flags=re.DOTALL)


def extract_emotion_from_response(response: str | None, emotion_mapping: Mapping[str, str] | None = None) -> str:
    """The speaker emotion in a generated ERG reply, read as Nano-EmoX's evaluation does.

    1. When the reply has both ``<think>`` and ``</think>``, the text between the first of each is
       lower-cased and searched for ``the emotion of the speaker is <word>``: that word is the answer
       (the chain-of-empathy answer format the model was trained on).
    2. Otherwise the lower-cased reply is searched for the keywords of
       :data:`OFFICIAL_EMOTION_KEYWORDS`, emotion by emotion in table order, each as a plain
       substring (so ``"unkind"`` contains ``"kind"`` -> ``caring``): the first hit's emotion.
    3. ``"unknown"`` when nothing matches (also for an empty reply).

    ``emotion_mapping`` optionally renames the result (as the official function's argument does).
    """
    mapping = emotion_mapping or {}
    if not response:
        return "unknown"
    text = str(response)
    if "<think>" in text and "</think>" in text:
        start, end = text.find("<think>"), text.find("</think>")
        match = _SPEAKER_EMOTION.search(text[start + len("<think>"): end].lower())
        if match:
            emotion = match.group(1).strip()
            return mapping.get(emotion, emotion)
    lowered = text.lower()
    for emotion, keywords in OFFICIAL_EMOTION_KEYWORDS.items():
        if any(keyword in lowered for keyword in keywords):
            return mapping.get(emotion, emotion)
    return "unknown"


_THINK_BLOCK = re.compile(r"<think>.*?</think>", flags=re.DOTALL | re.IGNORECASE)
_THINK_OPEN = re.compile(r"<think>", flags=re.IGNORECASE)
_THINK_CLOSE = re.compile(r"</think>", flags=re.IGNORECASE)


def strip_think(text: str) -> str:
    """Remove ``<think>...</think>`` reasoning from a generated answer.

    Closed blocks are removed; a dangling ``</think>`` (the chat template opened the block) drops
    everything before it; an unclosed ``<think>`` (generation cut off) drops everything after it.
    """
    if text is None:
        return ""
    text = _THINK_BLOCK.sub(" ", str(text))
    closes = list(_THINK_CLOSE.finditer(text))
    if closes:
        text = text[closes[-1].end():]
    opened = _THINK_OPEN.search(text)
    if opened:
        text = text[: opened.start()]
    return text.strip()


def _check_aligned(predictions: Sequence, references: Sequence) -> None:
    if len(predictions) != len(references):
        raise ValueError(f"predictions and references differ in length: {len(predictions)} vs {len(references)}")
    if len(references) == 0:
        raise ValueError("no samples to score (empty references)")


def _normalize(label) -> str:
    if label is None or (isinstance(label, float) and label != label):
        return ""
    return str(label).lower().strip()


def erg_accuracy(predictions: Sequence[str], references: Sequence[str], protocol: str | None = None) -> float:
    """Fraction of samples whose predicted emotion equals the reference: raw strings with
    ``protocol="official"`` (default), lower-cased and stripped with ``"mmaffect"``."""
    _check_aligned(predictions, references)
    if check_protocol(protocol, "erg_accuracy") == "official":
        return sum(p == r for p, r in zip(predictions, references)) / len(references)
    return sum(_normalize(p) == _normalize(r) for p, r in zip(predictions, references)) / len(references)


def erg_hit_rate(
    predictions: Sequence[str],
    references: Sequence[str],
    coarse_map: Mapping[str, str] | None = None,
    unknown_prediction: str = "error",
    protocol: str | None = None,
) -> float:
    """Fraction of samples whose predicted emotion falls in the reference's coarse class.

    Args:
        coarse_map: fine -> coarse table (default :data:`FINE_TO_COARSE`).
        unknown_prediction: ``"error"`` (default) raises for a predicted emotion outside the table;
            ``"neutral"`` maps it to neutral, as E3RG does for answers it cannot read.
        protocol: ``"mmaffect"`` (default) compares lower-cased, stripped labels; ``"official"``
            looks the raw strings up, as ``eval_merg_exp.py`` does (where an unknown label is a
            ``KeyError``: the official hit rate is undefined, so this raises too unless
            ``unknown_prediction="neutral"``).

    Raises:
        ValueError: a reference (or, with ``"error"``, a prediction) is not in the table; the
            message lists the offending labels and the known ones.
    """
    _check_aligned(predictions, references)
    if unknown_prediction not in ("error", "neutral"):
        raise ValueError(f"unknown_prediction must be 'error' or 'neutral', got {unknown_prediction!r}")
    if check_protocol(protocol, "erg_hit_rate") == "official":
        return _official_hit_rate(predictions, references, dict(coarse_map or FINE_TO_COARSE), unknown_prediction)
    table = {_normalize(k): _normalize(v) for k, v in (coarse_map or FINE_TO_COARSE).items()}
    unknown_refs = sorted({_normalize(r) for r in references if _normalize(r) not in table})
    if unknown_refs:
        raise ValueError(f"reference emotion(s) {unknown_refs} are not in the coarse map; known: {sorted(table)}")
    unknown_preds = sorted({_normalize(p) for p in predictions if _normalize(p) not in table})
    if unknown_preds and unknown_prediction == "error":
        raise ValueError(
            f"predicted emotion(s) {unknown_preds[:10]} are not in the coarse map (pass "
            f"unknown_prediction='neutral' for the E3RG fallback); known: {sorted(table)}"
        )
    hits = 0
    for prediction, reference in zip(predictions, references):
        predicted = table.get(_normalize(prediction), "neutral")
        hits += predicted == table[_normalize(reference)]
    return hits / len(references)


def _official_hit_rate(predictions, references, table: dict, unknown_prediction: str) -> float:
    unknown_refs = sorted({repr(r) for r in references if r not in table})
    if unknown_refs:
        raise ValueError(
            f"reference emotion(s) {unknown_refs} are not keys of the coarse map: the official script "
            f"raises KeyError, its hit rate is undefined; known: {sorted(table)}"
        )
    unknown_preds = sorted({repr(p) for p in predictions if p not in table})
    if unknown_preds and unknown_prediction == "error":
        raise ValueError(
            f"predicted emotion(s) {unknown_preds[:10]} are not keys of the coarse map: the official script "
            "raises KeyError, its hit rate is undefined (pass unknown_prediction='neutral' to count them "
            "as neutral, or protocol='mmaffect')"
        )
    hits = sum(table.get(p, "neutral") == table[r] for p, r in zip(predictions, references))
    return hits / len(references)


def _whitespace_tokens(text: str) -> list[str]:
    return text.split()


def distinct_n(
    responses: Sequence[str],
    n: int,
    tokenizer: Callable[[str], list[str]] | None = None,
    remove_think: bool = True,
    protocol: str | None = None,
) -> float:
    """Dist-n: per response ``#distinct n-grams / #n-grams``, averaged over responses.

    Args:
        tokenizer: text -> tokens; default whitespace split.
        remove_think: (``"mmaffect"``) apply :func:`strip_think` first (default).
        protocol: ``"official"`` (default) - ``eval_merg_exp.py``: closed ``<think>...</think>``
            blocks removed, replies left empty dropped, every reply lower-cased, replies without an
            n-gram skipped, 0.0 when none is left. ``"mmaffect"`` - :func:`strip_think` (when
            ``remove_think``), case kept, and a response with no n-gram (empty, or shorter than ``n``
            tokens) scores 0.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if len(responses) == 0:
        raise ValueError("no responses to score")
    tokenize = tokenizer or _whitespace_tokens
    if check_protocol(protocol, "distinct_n") == "official":
        scores = []
        for response in responses:
            text = _OFFICIAL_THINK_BLOCK.sub("", "" if response is None else str(response)).strip()
            if not text:
                continue  # the official script keeps only replies that are non-empty after removal
            tokens = tokenize(text.strip().lower())
            grams = [tuple(tokens[i: i + n]) for i in range(len(tokens) - n + 1)]
            if grams:
                scores.append(len(set(grams)) / len(grams))
        return sum(scores) / len(scores) if scores else 0.0
    total = 0.0
    for response in responses:
        text = strip_think(response) if remove_think else ("" if response is None else str(response))
        tokens = tokenize(text)
        grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
        total += len(set(grams)) / len(grams) if grams else 0.0
    return total / len(responses)


def erg_scores(
    predictions: Sequence[str],
    references: Sequence[str],
    responses: Sequence[str] | None = None,
    coarse_map: Mapping[str, str] | None = None,
    unknown_prediction: str = "error",
    protocol: str | None = None,
) -> dict:
    """Table 5 row: ``{"accuracy", "hit_rate", "dist_1", "dist_2", "num_samples", "protocol"}``
    (Dist only when ``responses`` are given). ``protocol`` applies to every metric; ``None`` (default)
    takes each metric's own default (``protocol["accuracy"]`` etc. in the result say which)."""
    used = {"accuracy": check_protocol(protocol, "erg_accuracy"), "hit_rate": check_protocol(protocol, "erg_hit_rate")}
    result = {
        "accuracy": erg_accuracy(predictions, references, used["accuracy"]),
        "hit_rate": erg_hit_rate(predictions, references, coarse_map, unknown_prediction, used["hit_rate"]),
        "num_samples": len(references),
    }
    if responses is not None:
        if len(responses) != len(references):
            raise ValueError(f"responses and references differ in length: {len(responses)} vs {len(references)}")
        used["dist_n"] = check_protocol(protocol, "distinct_n")
        result["dist_1"] = distinct_n(responses, 1, protocol=used["dist_n"])
        result["dist_2"] = distinct_n(responses, 2, protocol=used["dist_n"])
    result["protocol"] = used
    return result
