"""ERG metrics (accuracy, coarse hit rate, Dist-n, <think> removal) and the free-text extractors."""

from __future__ import annotations

import pytest

from mmaffect.metrics import (
    COARSE_EMOTION_CLASSES,
    FINE_TO_COARSE,
    ERGEmotionMatcher,
    LexiconLabelExtractor,
    SentimentKeywordExtractor,
    distinct_n,
    erg_accuracy,
    erg_hit_rate,
    erg_scores,
    parse_label_reply,
    strip_think,
)
from test_metrics_wheel import toy_wheel_dir  # noqa: F401  (fixture)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("<think>she is anxious</think> It will be fine.", "It will be fine."),
        ("<THINK>a\nb</THINK>reply<think>x</think> more", "reply  more"),
        ("reasoning only</think>The reply", "The reply"),
        ("The reply <think>cut off", "The reply"),
        ("no reasoning", "no reasoning"),
        (None, ""),
    ],
)
def test_strip_think(text, expected):
    assert strip_think(text) == expected


def test_distinct_n_hand_computed():
    responses = ["<think>I feel sad sad</think> I am am happy", "a b a b", "ok"]
    # package protocol: r1 -> 'I am am happy': dist1 3/4, dist2 3/3; r2: dist1 2/4, dist2 2/3;
    # r3: dist1 1, dist2 no bigram -> 0
    assert distinct_n(responses, 1, protocol="mmaffect") == pytest.approx((3 / 4 + 2 / 4 + 1) / 3)
    assert distinct_n(responses, 2, protocol="mmaffect") == pytest.approx((1 + 2 / 3 + 0) / 3)
    # kept <think>: '<think>I feel sad sad</think> I am am happy' -> 8 tokens, 7 distinct
    assert distinct_n(responses[:1], 1, remove_think=False, protocol="mmaffect") == pytest.approx(7 / 8)
    assert distinct_n(["A a"], 1, tokenizer=lambda t: t.lower().split(), protocol="mmaffect") == 0.5
    # official (default): the same dist1, but 'ok' has no bigram and is skipped instead of scoring 0
    assert distinct_n(responses, 1) == pytest.approx((3 / 4 + 2 / 4 + 1) / 3)
    assert distinct_n(responses, 2) == pytest.approx((1 + 2 / 3) / 2)
    with pytest.raises(ValueError, match="n must be >= 1"):
        distinct_n(responses, 0)
    with pytest.raises(ValueError, match="no responses"):
        distinct_n([], 1)


def test_coarse_map_covers_avamerg_emotions():
    assert set(FINE_TO_COARSE.values()) == set(COARSE_EMOTION_CLASSES)
    assert len(FINE_TO_COARSE) == 8 + 28  # coarse names + 28 other EmpatheticDialogues emotions
    assert FINE_TO_COARSE["embarrassed"] == "disgusted"  # E3RG's duplicated key: the later entry wins
    assert FINE_TO_COARSE["anxious"] == "sad" and FINE_TO_COARSE["jealous"] == "contempt"


def test_erg_accuracy_and_hit_rate_hand_computed():
    references = ["joyful", "anxious", "furious", "afraid"]
    predictions = ["Joyful ", "lonely", "annoyed", "sad"]
    assert erg_accuracy(predictions, references, protocol="mmaffect") == 0.25
    assert erg_accuracy(predictions, references) == 0.0  # official: 'Joyful ' != 'joyful'
    # joyful/joyful happy=happy hit; lonely/anxious sad=sad hit; annoyed/furious angry hit; sad vs afraid(fear) miss
    assert erg_hit_rate(predictions, references) == 0.75
    result = erg_scores(predictions, references, responses=["a b", "a a", "c", "<think>x y</think>d e"], protocol="mmaffect")
    assert result.pop("protocol") == {"accuracy": "mmaffect", "hit_rate": "mmaffect", "dist_n": "mmaffect"}
    assert result == pytest.approx({"accuracy": 0.25, "hit_rate": 0.75, "num_samples": 4,
                                    "dist_1": (1 + 0.5 + 1 + 1) / 4, "dist_2": (1 + 1 + 0 + 1) / 4})


def test_erg_unknown_labels():
    with pytest.raises(ValueError, match=r"reference emotion\(s\) \['bliss'\] are not in the coarse map"):
        erg_hit_rate(["happy"], ["bliss"])
    with pytest.raises(ValueError, match=r"predicted emotion\(s\) \['meh'\]"):
        erg_hit_rate(["meh"], ["sad"])
    # E3RG fallback: an unreadable prediction counts as neutral
    assert erg_hit_rate(["meh", "meh"], ["neutral", "sad"], unknown_prediction="neutral") == 0.5
    assert erg_hit_rate(["glad"], ["joyful"], coarse_map={"glad": "happy", "joyful": "happy"}) == 1.0


def test_erg_matcher_follows_e3rg_order():
    matcher = ERGEmotionMatcher()
    assert matcher.extract("I think the speaker is Furious.") == ["furious"]
    assert matcher.extract("sad and afraid") == ["sad"]  # 'sad' precedes 'afraid' in the candidate order
    assert matcher.extract("no idea") == ["neutral"]
    assert matcher.extract("<think>user feels lonely</think>Hang in there!") == ["lonely"]
    assert ERGEmotionMatcher(remove_think=True).extract("<think>lonely</think>Hang in there!") == ["neutral"]
    assert matcher.name == "lexicon:e3rg"


def test_lexicon_extractor_on_toy_wheels(toy_wheel_dir):
    extractor = LexiconLabelExtractor.from_wheels(toy_wheel_dir)
    text = "<think>happy?</think>He smiles with delight, not merry at all; deep loneliness and grief. Delight!"
    # 'merry' is a synonym only (not a wheel word); 'happy' sits in <think>; repeats are reported once
    assert extractor.extract(text) == ["delight", "loneliness", "grief"]
    assert extractor.extract("He is not at all lonely, never cheerful.") == []
    assert extractor.name == "lexicon:emotion-wheel"
    assert LexiconLabelExtractor(["at a loss", "loss"]).extract("She was at a loss.") == ["at a loss"]
    with pytest.raises(ValueError, match="vocabulary is empty"):
        LexiconLabelExtractor([])


def test_sentiment_keywords_and_reply_parsing():
    assert SentimentKeywordExtractor().extract("Overall: Negative, slightly.") == ["negative"]
    assert SentimentKeywordExtractor().extract("unclear") == []
    assert parse_label_reply("Sure! The emotions are ['Happy', 'relieved'].") == ["happy", "relieved"]
    assert parse_label_reply("<think>[x]</think>happy, relieved.") == ["happy", "relieved"]
    assert parse_label_reply("[]") == []
    assert parse_label_reply("a very long phrase that is clearly not a label, sad") == ["sad"]
