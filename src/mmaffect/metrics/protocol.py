"""Scoring protocols: ``"official"`` (the published scripts, exactly) and ``"mmaffect"`` (guarded).

Every metric whose published script scores differently from the package takes ``protocol=``:

* ``"official"`` reproduces the benchmark's own script bit for bit - AffectGPT's MER-UniBench code
  (``wheel.py`` / ``ew_metric.py`` / ``evaluation.py``) and Nano-EmoX's ``eval_merg_exp.py`` /
  ``eval_ovmerd.py`` - including its rough edges (exact string comparison, NaN where it divides by
  zero, a hit rate above 1 for multi-label references), so numbers compare with published tables;
* ``"mmaffect"`` keeps the package's guarded choices (case-insensitive parsing, 0/1 hits, 0 instead
  of NaN, errors naming the offending labels).

The default is ``"official"``, except for the metrics whose official value can be undefined (NaN,
or a crash of the script) or outside [0, 1]; there :data:`DEFAULT_PROTOCOLS` picks ``"mmaffect"``.
``docs/metrics.md`` lists every difference with a one-line example.
"""

from __future__ import annotations

PROTOCOLS = ("official", "mmaffect")
#: the scored task families (``mmaffect evaluate score --task``); the processor spells its prompt tasks
#: ``MER``, ``OV-MER``, ... (``processing_nano_emox.TASKS``; ``evaluation.scoring.PROMPT_TASKS`` maps one to the other)
TASKS = ("mer", "ovmer", "msa", "mir", "erg", "eri")

#: the default protocol of every protocol-dependent metric (see the module docstring for the rule)
DEFAULT_PROTOCOLS = {
    "msa": "official",           # exact 'positive'/'negative'/'neutral' match
    "distinct_n": "official",    # lower-cased, empty / n-gram-less replies dropped
    "erg_accuracy": "official",  # raw string equality
    "erg_emotion": "official",   # Nano-EmoX's extract_emotion_from_response
    "mir_prediction": "official",  # the raw reply is the predicted label
    "eri": "official",           # gpt-3.5-turbo-0125, Chinese prompts, first number
    "hit_rate": "mmaffect",      # official: can exceed 1 (multi-label reference), NaN on an empty wheel
    "ov_mer": "mmaffect",        # official: NaN when P + R = 0 on a wheel or a wheel has no reference
    "erg_hit_rate": "mmaffect",  # official: KeyError on an emotion outside the coarse table
}


def check_protocol(protocol: str | None, metric: str | None = None) -> str:
    """``protocol``, or the metric's default when it is ``None``; raises for an unknown name."""
    if protocol is None:
        if metric is None:
            raise ValueError("protocol is None and no metric was named to take the default from")
        return DEFAULT_PROTOCOLS[metric]
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    return protocol
