"""The affective evaluation suite: pure metric functions, local ``evaluate`` modules and a CLI.

========================  ====================================================================
Task (paper table)        Functions
========================  ====================================================================
MER hit rate (Table 2)    :func:`hit_rate` over :func:`load_emotion_wheels`
OV-MER F / P / R (T. 2)   :func:`ov_mer_scores`
MSA WAF (Table 2)         :func:`msa_scores`
MIR (Table 4), LGSRR      :func:`classification_metrics`, :func:`per_class_report`,
                          :func:`confusion_matrix`, :func:`save_confusion_matrix_png`
ERI (Table 3)             :class:`OverlapJudge`, :func:`eri_overlap_scores`
ERG (Table 5)             :func:`erg_scores`, :func:`erg_accuracy`, :func:`erg_hit_rate`,
                          :func:`distinct_n`, :func:`strip_think`
free text -> labels       :class:`LexiconLabelExtractor`, :class:`LLMLabelExtractor`, ...
========================  ====================================================================

Metrics whose published scripts score differently take ``protocol="official" | "mmaffect"``
(:mod:`mmaffect.metrics.protocol`, :data:`DEFAULT_PROTOCOLS`); the official side reproduces the
MER-UniBench / Nano-EmoX evaluation scripts exactly.

The ``evaluate.Metric`` wrappers (``MERHitRate``, ``OVMERScore``, ``MSAScore``,
``ClassificationScore``, ``ERGScore``, ``ERIOverlap``) are importable from here too; they load
``evaluate`` on first access only. Command line: ``mmaffect evaluate score --task ...`` (see
``docs/metrics.md``).
"""

from importlib import import_module

from .classification import (
    METRIC_NAMES,
    classification_metrics,
    confusion_matrix,
    format_per_class_report,
    per_class_report,
    save_confusion_matrix_png,
)
from .emotion_wheel import (
    WHEEL_NAMES,
    EmotionWheels,
    load_emotion_wheels,
    map_to_wheels,
    normalize_labels,
    string_to_label_list,
)
from .erg import (
    COARSE_EMOTION_CLASSES,
    ERG_CANDIDATE_ORDER,
    FINE_TO_COARSE,
    OFFICIAL_EMOTION_KEYWORDS,
    distinct_n,
    erg_accuracy,
    erg_hit_rate,
    erg_scores,
    extract_emotion_from_response,
    strip_think,
)
from .eri import (
    OFFICIAL_JUDGE_MODEL,
    OVERLAP_KINDS,
    OfficialOverlapJudge,
    OverlapJudge,
    eri_overlap_scores,
    make_overlap_judge,
    parse_judge_score,
    parse_official_score,
    read_official_eri_files,
)
from .label_extraction import (
    ERGEmotionMatcher,
    LabelExtractor,
    LexiconLabelExtractor,
    LLMLabelExtractor,
    SentimentKeywordExtractor,
    parse_label_reply,
)
from .mer import hit_rate, ov_mer_scores
from .msa import msa_scores, official_sentiment_value, sentiment_to_value
from .protocol import DEFAULT_PROTOCOLS, PROTOCOLS, check_protocol
from .records import align_by_id, read_records

_EVALUATE_MODULES = ("MERHitRate", "OVMERScore", "MSAScore", "ClassificationScore", "ERGScore", "ERIOverlap")

__all__ = [
    "DEFAULT_PROTOCOLS", "OFFICIAL_EMOTION_KEYWORDS", "OFFICIAL_JUDGE_MODEL", "OfficialOverlapJudge", "PROTOCOLS",
    "check_protocol", "extract_emotion_from_response", "make_overlap_judge", "official_sentiment_value",
    "parse_official_score", "read_official_eri_files",
    "COARSE_EMOTION_CLASSES", "ERG_CANDIDATE_ORDER", "FINE_TO_COARSE", "METRIC_NAMES", "OVERLAP_KINDS",
    "WHEEL_NAMES", "ERGEmotionMatcher", "EmotionWheels", "LLMLabelExtractor", "LabelExtractor",
    "LexiconLabelExtractor", "OverlapJudge", "SentimentKeywordExtractor", "align_by_id",
    "classification_metrics", "confusion_matrix", "distinct_n", "eri_overlap_scores", "erg_accuracy",
    "erg_hit_rate", "erg_scores", "format_per_class_report", "hit_rate", "load_emotion_wheels",
    "map_to_wheels", "msa_scores", "normalize_labels", "ov_mer_scores", "parse_judge_score",
    "parse_label_reply", "per_class_report", "read_records", "save_confusion_matrix_png",
    "sentiment_to_value", "string_to_label_list", "strip_think", *_EVALUATE_MODULES,
]


def __getattr__(name):
    if name in _EVALUATE_MODULES:
        value = getattr(import_module(".evaluate_modules", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
