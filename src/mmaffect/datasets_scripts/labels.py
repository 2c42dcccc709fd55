"""Official label lists, in the official order (the order is part of every checkpoint's contract:
``config.id2label[i]`` of a trained model is ``LABELS[i]``), and the LGSRR aspect names.

Sources:

* MIntRec2.0 - ``benchmarks['MIntRec2.0']['intent_labels']`` of the MIntRec2.0 / LGSRR code (30 intents,
  alphabetical, "Acknowledge" ... "Warn").
* IEMOCAP-DA - ``benchmarks['IEMOCAP-DA']`` of the LGSRR code: 12 dialogue acts and the codes of the
  ``DA`` column that map onto them.
* MIntRec - ``benchmarks['MIntRec']['intent_labels']`` of the MIntRec code (20 intents, grouped as
  "express emotions or attitudes" then "achieve goals"; the data spells "Apologise").
* MELD - the label indices documented in the MELD README: emotions ``neutral 0, surprise 1, fear 2,
  sadness 3, joy 4, disgust 5, anger 6``; sentiments ``neutral 0, positive 1, negative 2``.
"""

from __future__ import annotations

MINTREC2_INTENTS: tuple[str, ...] = (
    "Acknowledge", "Advise", "Agree", "Apologise", "Arrange",
    "Ask for help", "Asking for opinions", "Care", "Comfort", "Complain",
    "Confirm", "Criticize", "Doubt", "Emphasize", "Explain",
    "Flaunt", "Greet", "Inform", "Introduce", "Invite",
    "Joke", "Leave", "Oppose", "Plan", "Praise",
    "Prevent", "Refuse", "Taunt", "Thank", "Warn",
)  # fmt: skip

IEMOCAP_DA_ACTS: tuple[str, ...] = (
    "Greeting", "Question", "Answer", "Statement Opinion", "Statement Non Opinion",
    "Apology", "Command", "Agreement", "Disagreement",
    "Acknowledge", "Backchannel", "Others",
)  # fmt: skip

# code in the ``DA`` column of IEMOCAP-DA -> act name
IEMOCAP_DA_CODES: dict[str, str] = {
    "g": "Greeting", "q": "Question", "ans": "Answer", "o": "Statement Opinion",
    "s": "Statement Non Opinion", "ap": "Apology", "c": "Command", "ag": "Agreement",
    "dag": "Disagreement", "a": "Acknowledge", "b": "Backchannel", "oth": "Others",
}  # fmt: skip

MINTREC_INTENTS: tuple[str, ...] = (
    "Complain", "Praise", "Apologise", "Thank", "Criticize",
    "Agree", "Taunt", "Flaunt", "Joke", "Oppose",
    "Comfort", "Care", "Inform", "Advise", "Arrange",
    "Introduce", "Leave", "Prevent", "Greet", "Ask for help",
)  # fmt: skip

MELD_EMOTIONS: tuple[str, ...] = ("neutral", "surprise", "fear", "sadness", "joy", "disgust", "anger")
MELD_SENTIMENTS: tuple[str, ...] = ("neutral", "positive", "negative")

# How the LGSRR release names them in rank values (CoT step 3).
ASPECT_RELEASE_NAMES: dict[str, str] = {
    "actions": "Speakers' Actions",
    "expressions": "Emotions and Facial Expressions",
    "interactions": "Interaction with Others",
}


def __getattr__(name: str):
    """``ASPECTS``: the LGSRR aspects in the order of ``LGSRRConfig.aspects`` (the model's default). Their
    home is the remote-code config, which cannot import this package; read on first use, since it loads
    transformers and the label lists must stay light (semantic extraction reads them)."""
    if name == "ASPECTS":
        from mmaffect.models.lgsrr.configuration_lgsrr import DEFAULT_ASPECTS

        return DEFAULT_ASPECTS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _aspect_key(name: str) -> str:
    """Lower-case, drop apostrophes (ASCII and typographic), collapse whitespace."""
    name = name.replace("'", "").replace("\u2019", "").lower()
    return " ".join(name.split())


# Every spelling of an aspect the releases use: rank values say "Speakers' Actions", the MIntRec2.0
# description header says "Speakers Actions", the IEMOCAP-DA one "Speakers' Actions". The short
# names are accepted too (files written by mmaffect's own extraction).
ASPECT_ALIASES: dict[str, str] = {
    _aspect_key(alias): aspect
    for aspect, names in {
        "actions": ("Speakers' Actions", "Speakers Actions", "Speaker's Actions", "actions"),
        "expressions": ("Emotions and Facial Expressions", "Facial Expressions", "expressions"),
        "interactions": ("Interaction with Others", "Interactions with Others", "interactions"),
    }.items()
    for alias in names
}


def aspect_from_name(name: str) -> str | None:
    """The aspect (``"actions"`` ...) that ``name`` spells, or None when it names none."""
    return ASPECT_ALIASES.get(_aspect_key(name))


__all__ = [
    "ASPECTS",
    "ASPECT_ALIASES",
    "ASPECT_RELEASE_NAMES",
    "IEMOCAP_DA_ACTS",
    "IEMOCAP_DA_CODES",
    "MELD_EMOTIONS",
    "MELD_SENTIMENTS",
    "MINTREC2_INTENTS",
    "MINTREC_INTENTS",
    "aspect_from_name",
]
