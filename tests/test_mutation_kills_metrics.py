"""Metric behaviour the older tests left open (found by mutation testing, ``benchmarks/mutation.sh``).

Both protocols of every protocol-dependent metric, multi-label references actually scored,
the exact error messages a user reads, and the keys of every returned dict.
"""

from __future__ import annotations

import math

import pytest

from mmaffect.metrics import hit_rate, ov_mer_scores
from test_metrics_wheel import toy_wheel_dir  # noqa: F401  (fixture)

# ---------------------------------------------------------------------------------------------
# MER hit rate and OV-MER (mer.py)
# ---------------------------------------------------------------------------------------------
# "happiness, loneliness" maps on the toy wheels (TOY_EXPECTED in test_metrics_wheel.py) to
# w1 {happy, sad}, w2 {sorrow}, w3 {sad}, w4 {blue}, w5 {happy, sad}: every wheel is scored.
MULTI = "happiness, loneliness"


def test_hit_rate_multi_label_reference_under_both_protocols(toy_wheel_dir):
    guarded = hit_rate([MULTI], [MULTI], toy_wheel_dir)
    assert guarded["protocol"] == "mmaffect"  # the default: a hit counts once
    assert guarded["per_wheel"] == {"wheel1": 1.0, "wheel2": 1.0, "wheel3": 1.0, "wheel4": 1.0, "wheel5": 1.0}
    assert guarded["hit_rate"] == 1.0
    official = hit_rate([MULTI], [MULTI], toy_wheel_dir, protocol="official")
    assert official["protocol"] == "official"
    # the reference code adds |pred & ref|: 2 on the wheels where the reference has two categories
    assert official["per_wheel"] == {"wheel1": 2.0, "wheel2": 1.0, "wheel3": 1.0, "wheel4": 1.0, "wheel5": 2.0}
    assert official["hit_rate"] == pytest.approx(7 / 5)
    assert official["num_samples"] == 1
    # a partial overlap of a multi-label reference is still one hit under mmaffect, one under official
    partial = hit_rate(["happiness"], [MULTI], toy_wheel_dir, protocol="official")
    assert partial["per_wheel"]["wheel1"] == 1.0 and partial["per_wheel"]["wheel2"] == 0.0


def test_official_protocol_gives_nan_where_mmaffect_raises(toy_wheel_dir):
    # 'happiness' maps to nothing on wheel2: official averages an empty list (NaN, and NaN overall)
    official = hit_rate(["happiness"], ["happiness"], toy_wheel_dir, protocol="official")
    assert math.isnan(official["per_wheel"]["wheel2"]) and official["num_scored"]["wheel2"] == 0
    assert official["per_wheel"]["wheel1"] == 1.0
    assert math.isnan(official["hit_rate"])
    with pytest.raises(ValueError, match="^no reference label maps onto wheel2: the hit rate is undefined"):
        hit_rate(["happiness"], ["happiness"], toy_wheel_dir, protocol="mmaffect")
    ov = ov_mer_scores(["happiness"], ["happiness"], toy_wheel_dir, protocol="official")
    assert ov["protocol"] == "official" and ov["num_samples"] == 1
    assert ov["per_wheel"]["wheel1"]["f1"] == 1.0 and math.isnan(ov["per_wheel"]["wheel2"]["f1"])
    assert math.isnan(ov["f1"])
    with pytest.raises(ValueError, match="^no reference label maps onto wheel2: OV-MER scores are undefined$"):
        ov_mer_scores(["happiness"], ["happiness"], toy_wheel_dir)


def test_ov_mer_zero_precision_and_recall_is_nan_officially_and_zero_otherwise(toy_wheel_dir):
    references = ["loneliness", "loneliness"]
    predictions = ["happiness", "delight"]  # w1 'happy' vs 'sad': no overlap anywhere
    guarded = ov_mer_scores(predictions, references, toy_wheel_dir)
    assert guarded["protocol"] == "mmaffect" and guarded["num_samples"] == 2
    assert guarded["per_wheel"]["wheel1"] == {"f1": 0.0, "precision": 0.0, "recall": 0.0, "num_scored": 2}
    assert guarded["f1"] == 0.0
    official = ov_mer_scores(predictions, references, toy_wheel_dir, protocol="official")
    assert math.isnan(official["per_wheel"]["wheel1"]["f1"])
    assert official["per_wheel"]["wheel1"]["precision"] == 0.0


def test_ov_mer_an_empty_prediction_does_not_end_the_wheel(toy_wheel_dir):
    # the empty prediction comes first: the samples after it are still scored
    result = ov_mer_scores(["", "loneliness", "loneliness"], ["loneliness"] * 3, toy_wheel_dir)
    assert result["per_wheel"]["wheel1"] == pytest.approx(
        {"f1": 2 / 3, "precision": 2 / 3, "recall": 2 / 3, "num_scored": 3})
    assert hit_rate(["", "loneliness"], ["loneliness"] * 2, toy_wheel_dir)["per_wheel"]["wheel1"] == 0.5


def test_mer_length_and_empty_checks_name_the_problem(toy_wheel_dir):
    for metric in (hit_rate, ov_mer_scores):
        with pytest.raises(ValueError, match="^no samples to score \\(empty references\\)$"):
            metric([], [], toy_wheel_dir)
        with pytest.raises(ValueError, match="^predictions and references differ in length: 2 vs 1$"):
            metric(["happiness", "delight"], ["happiness"], toy_wheel_dir)
        with pytest.raises(ValueError, match="differ in length: 1 vs 2"):
            metric(["happiness"], ["happiness", "delight"], toy_wheel_dir)


# ---------------------------------------------------------------------------------------------
# MSA (msa.py)
# ---------------------------------------------------------------------------------------------
from mmaffect.metrics.msa import msa_scores, official_sentiment_value, sentiment_to_value  # noqa: E402


@pytest.mark.parametrize("value, expected", [
    (None, None), (True, None), (False, None), (float("nan"), None), ("nan", None), (3, 3.0), (-0.5, -0.5),
    ("Positive", 1.0), (" NEGATIVE. ", -1.0), ('"neutral"', 0.0), ("[positive]", 1.0), ("-1.5", -1.5),
    (["positive"], None), ("positively", None), ("", None), ("Xpositive", None), ("negativeX", None),
])
def test_sentiment_reading_of_the_mmaffect_protocol(value, expected):
    assert sentiment_to_value(value) == expected


@pytest.mark.parametrize("value, expected", [
    ("positive", 1.0), ("negative", -1.0), ("neutral", 0.0), ("Positive", None), ("positive.", None), (1.0, None),
])
def test_official_sentiment_reading_is_exact(value, expected):
    assert official_sentiment_value(value) == expected


def test_msa_every_returned_key_and_both_protocols():
    predictions = ["Positive", "negative", "positive", "1"]
    references = [2.0, -1.0, -3.0, 0.5]
    official = msa_scores(predictions, references)
    # official: "Positive" and "1" are unparsed -> neutral (not positive); truth T F F T, pred F F T F:
    # class T F=0, class F P=1/3 R=1/2 F=0.4, weighted by support 2 and 2 -> 0.2
    assert official == {"waf": pytest.approx(0.2), "accuracy": 0.25, "num_scored": 4, "num_samples": 4,
                        "num_unparsed_predictions": 2, "num_treated_as_neutral": 2, "protocol": "official"}
    guarded = msa_scores(predictions, references, protocol="mmaffect")
    assert guarded["accuracy"] == 0.75 and guarded["num_unparsed_predictions"] == 0
    assert guarded["protocol"] == "mmaffect"
    # negative number predictions are read as negative, not as unparsed
    assert msa_scores([-0.2, 0.2], [-1, 1], protocol="mmaffect")["accuracy"] == 1.0


def test_msa_errors_name_the_argument_and_the_samples():
    with pytest.raises(ValueError, match="^unknown_prediction must be 'neutral' or 'error', got 'skip'$"):
        msa_scores(["positive"], [1], unknown_prediction="skip")
    with pytest.raises(ValueError, match="^predictions and references differ in length: 1 vs 2$"):
        msa_scores(["positive"], [1, 2])
    with pytest.raises(ValueError, match="^predictions and references differ in length: 2 vs 1$"):
        msa_scores(["positive", "negative"], [1])
    with pytest.raises(ValueError, match="^no samples to score \\(empty references\\)$"):
        msa_scores([], [])
    with pytest.raises(ValueError, match="^reference #1 is NaN$"):
        msa_scores(["positive", "negative"], [1, float("nan")])
    with pytest.raises(ValueError, match="^reference #0 is not a number: None$"):
        msa_scores(["positive"], [None])
    with pytest.raises(ValueError, match="^every reference score is 0 \\(neutral\\): WAF is undefined$"):
        msa_scores(["positive", "negative"], [0, 0.0])
    # at most five unparsed samples are shown, all of them counted
    bad = [f"x{i}" for i in range(7)]
    with pytest.raises(ValueError) as error:
        msa_scores(bad, [1] * 7, unknown_prediction="error", protocol="mmaffect")
    assert str(error.value) == ("7 prediction(s) are not positive/negative/neutral or a number: "
                                "#0: 'x0', #1: 'x1', #2: 'x2', #3: 'x3', #4: 'x4'")
    # 'error' with every prediction readable raises nothing
    assert msa_scores(["positive"], [1], unknown_prediction="error")["accuracy"] == 1.0


# ---------------------------------------------------------------------------------------------
# classification metrics (classification.py)
# ---------------------------------------------------------------------------------------------
import numpy as np  # noqa: E402

from mmaffect.metrics.classification import (  # noqa: E402
    classification_metrics,
    confusion_matrix,
    format_per_class_report,
    per_class_report,
)


def test_labels_outside_the_given_list_are_not_counted_but_still_score_accuracy():
    y_true = ["a", "b", "c", "a", "b"]
    y_pred = ["a", "c", "c", "b", "x"]  # 'x' is outside labels
    matrix, labels = confusion_matrix(y_true, y_pred, labels=["b", "a"])
    assert labels == ["b", "a"]
    assert matrix.tolist() == [[0, 0], [1, 1]]  # rows true b, a; 'c' and 'x' left out
    rows = per_class_report(y_true, y_pred, labels=["a", "b"])
    assert rows == [
        {"label": "a", "precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2},
        {"label": "b", "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2},
    ]
    scores = classification_metrics(y_true, y_pred, labels=["a", "b"])
    assert scores["accuracy"] == pytest.approx(2 / 5)  # accuracy counts every sample
    assert scores["macro_f1"] == pytest.approx(1 / 3)
    assert scores["weighted_precision"] == pytest.approx(0.5)


def test_a_label_never_true_has_zero_support_and_zero_weight():
    scores = classification_metrics([1, 1, 2], [1, 3, 2], labels=[1, 2, 3])
    # class 3: predicted once, never true -> P=R=F=0 in the macro mean, no weight in the weighted mean
    assert scores["macro_precision"] == pytest.approx((1 + 1 + 0) / 3)
    assert scores["macro_recall"] == pytest.approx((0.5 + 1 + 0) / 3)
    assert scores["weighted_recall"] == pytest.approx((2 * 0.5 + 1 * 1) / 3)
    assert scores["weighted_f1"] == pytest.approx((2 * 2 / 3 + 1) / 3)
    # only labels nobody has: every weighted score is 0 (no division by zero)
    none = classification_metrics([1, 2], [2, 1], labels=[5])
    assert none["weighted_f1"] == 0.0 and none["weighted_precision"] == 0.0 and none["macro_f1"] == 0.0


def test_numpy_inputs_and_inferred_labels_are_sorted():
    matrix, labels = confusion_matrix(np.array([3, 1, 2]), np.array([1, 1, 2]))
    assert labels == [1, 2, 3]
    assert matrix.tolist() == [[1, 0, 0], [0, 1, 0], [1, 0, 0]]
    assert matrix.dtype == np.int64


def test_classification_error_messages():
    with pytest.raises(ValueError, match=r"^y_true and y_pred differ in length: 1 vs 2$"):
        classification_metrics([1], [1, 2])
    with pytest.raises(ValueError, match=r"^y_true and y_pred differ in length: 2 vs 1$"):
        classification_metrics([1, 2], [1])
    with pytest.raises(ValueError, match=r"^no samples to score \(empty y_true\)$"):
        classification_metrics([], [])
    with pytest.raises(ValueError, match=r"^y_true\[1\] is missing \(nan\)$"):
        classification_metrics([1.0, float("nan")], [1.0, 2.0])
    with pytest.raises(ValueError, match=r"^y_pred\[0\] is missing \(None\)$"):
        classification_metrics([1], [None])
    with pytest.raises(ValueError, match=r"^y_true\[0\] is a tuple; single-label classification expects one label per sample$"):
        classification_metrics([(1, 2)], [1])
    with pytest.raises(ValueError, match=r"^labels mix strings and numbers: \[\"'1'\", '2'\]$"):
        classification_metrics(["1"], [2])
    with pytest.raises(ValueError, match=r"^labels is empty$"):
        classification_metrics([1], [1], labels=[])
    with pytest.raises(ValueError, match=r"^labels has duplicates: \[1, 1\]$"):
        classification_metrics([1], [1], labels=[1, 1])
    for container in ([1], {1}, {1: 2}):
        with pytest.raises(ValueError, match=f"is a {type(container).__name__};"):
            per_class_report([container], [1])


def test_format_per_class_report_is_an_aligned_table():
    rows = per_class_report(["cat", "cat", "dog"], ["cat", "dog", "dog"])
    text = format_per_class_report(rows, digits=2)
    assert text.splitlines() == [
        "label  precision     recall         f1    support",
        "cat         1.00       0.50       0.67          2",
        "dog         0.50       1.00       0.67          1",
    ]
    long = format_per_class_report([{"label": "a_long_label", "precision": 1, "recall": 1, "f1": 1, "support": 3}])
    assert long.splitlines()[1] == "a_long_label     1.0000     1.0000     1.0000          3"
    assert long.splitlines()[0].startswith("label         precision")


def test_a_single_sample_is_weighted_fully():
    assert classification_metrics(["a"], ["a"])["weighted_f1"] == 1.0
    assert classification_metrics(["a"], ["b"])["weighted_recall"] == 0.0


def test_mixed_label_kinds_show_at_most_ten_labels():
    y_true = [str(i) for i in range(11)] + [3]
    with pytest.raises(ValueError) as error:
        classification_metrics(y_true, y_true)
    shown = str(error.value).split(": ", 1)[1]
    assert shown == str(sorted(map(repr, set(y_true)))[:10])


# ---------------------------------------------------------------------------------------------
# ERG (erg.py)
# ---------------------------------------------------------------------------------------------
from mmaffect.metrics.erg import (  # noqa: E402
    distinct_n,
    erg_accuracy,
    erg_hit_rate,
    erg_scores,
    extract_emotion_from_response,
)


@pytest.mark.parametrize("reply, expected", [
    (None, "unknown"), ("", "unknown"), ("nothing to see", "unknown"),
    # the chain-of-empathy sentence inside <think> wins over any keyword
    ("<think>The emotion of the speaker is Grateful. so sad</think> I am angry", "grateful"),
    # the sentence outside <think> is not read; keywords are searched in table order: angry before sad
    ("the emotion of the speaker is proud, sad and angry", "angry"),
    # only the first <think> ... </think> span is searched for the sentence
    ("<think>no sentence</think> the emotion of the speaker is calm <think>x</think>", "unknown"),
    ("<think>the emotion of the speaker is calm", "unknown"),  # unclosed: keywords only, none here
    ("He seems UNKIND to me", "caring"),  # plain substrings of the lower-cased reply
    ("<think>thinking</think> I feel thankful", "grateful"),
    ("so much melancholy", "sad"),
])
def test_official_emotion_extraction(reply, expected):
    assert extract_emotion_from_response(reply) == expected


def test_official_emotion_extraction_renames_with_the_mapping():
    mapping = {"grateful": "thankful", "angry": "furious"}
    assert extract_emotion_from_response("<think>the emotion of the speaker is grateful</think>", mapping) == "thankful"
    assert extract_emotion_from_response("very angry", mapping) == "furious"
    assert extract_emotion_from_response("very sad", mapping) == "sad"  # not in the mapping: unchanged
    assert extract_emotion_from_response("", mapping) == "unknown"


def test_official_hit_rate_looks_up_raw_strings():
    table = {"joyful": "happy", "glad": "happy", "sad": "sad"}
    assert erg_hit_rate(["glad", "sad", "joyful"], ["joyful", "joyful", "sad"], coarse_map=table, protocol="official") \
        == pytest.approx(1 / 3)
    # raw strings: 'Joyful' is not a key, so officially it is an error ...
    with pytest.raises(ValueError) as error:
        erg_hit_rate(["Joyful", "x"], ["joyful", "sad"], coarse_map=table, protocol="official")
    assert str(error.value) == (
        "predicted emotion(s) [\"'Joyful'\", \"'x'\"] are not keys of the coarse map: the official script raises "
        "KeyError, its hit rate is undefined (pass unknown_prediction='neutral' to count them as neutral, or "
        "protocol='mmaffect')")
    # ... or neutral with the fallback (neutral is no hit against happy / sad) ...
    assert erg_hit_rate(["Joyful", "glad"], ["joyful", "joyful"], coarse_map={**table, "neutral": "neutral"},
                        unknown_prediction="neutral", protocol="official") == 0.5
    # ... while mmaffect lower-cases and strips
    assert erg_hit_rate(["Joyful ", "glad"], ["joyful", "JOYFUL"], coarse_map=table) == 1.0
    with pytest.raises(ValueError) as error:
        erg_hit_rate(["glad"], ["Glad"], coarse_map=table, protocol="official")
    assert str(error.value) == (
        "reference emotion(s) [\"'Glad'\"] are not keys of the coarse map: the official script raises KeyError, "
        "its hit rate is undefined; known: ['glad', 'joyful', 'sad']")
    assert erg_hit_rate(["furious"], ["annoyed"], protocol="official") == 1.0  # default table: both angry


def test_erg_hit_rate_messages_and_the_fallback():
    with pytest.raises(ValueError, match="^unknown_prediction must be 'error' or 'neutral', got 'skip'$"):
        erg_hit_rate(["sad"], ["sad"], unknown_prediction="skip")
    table = {"Glad": "Happy", "sad": "sad", "neutral": "neutral"}
    with pytest.raises(ValueError) as error:
        erg_hit_rate(["meh"], ["sad"], coarse_map=table)
    assert str(error.value) == ("predicted emotion(s) ['meh'] are not in the coarse map (pass "
                                "unknown_prediction='neutral' for the E3RG fallback); known: ['glad', 'neutral', 'sad']")
    with pytest.raises(ValueError, match=r"^reference emotion\(s\) \['bliss'\] are not in the coarse map; known: \['glad', 'neutral', 'sad'\]$"):
        erg_hit_rate(["sad"], ["bliss"], coarse_map=table)
    # the table's keys and values are normalised too; an unknown prediction is neutral and hits 'neutral'
    assert erg_hit_rate(["GLAD", "meh"], ["glad", "neutral"], coarse_map=table, unknown_prediction="neutral") == 1.0
    assert erg_hit_rate([None], ["neutral"], coarse_map=table, unknown_prediction="neutral") == 1.0
    assert erg_hit_rate([float("nan")], ["sad"], coarse_map=table, unknown_prediction="neutral") == 0.0


def test_erg_length_checks_both_directions():
    for call in (lambda p, r: erg_accuracy(p, r), lambda p, r: erg_hit_rate(p, r)):
        with pytest.raises(ValueError, match="^predictions and references differ in length: 2 vs 1$"):
            call(["sad", "sad"], ["sad"])
        with pytest.raises(ValueError, match="^predictions and references differ in length: 1 vs 2$"):
            call(["sad"], ["sad", "sad"])
        with pytest.raises(ValueError, match="^no samples to score \\(empty references\\)$"):
            call([], [])
    with pytest.raises(ValueError, match="^responses and references differ in length: 1 vs 2$"):
        erg_scores(["sad", "sad"], ["sad", "sad"], responses=["a"])
    with pytest.raises(ValueError, match="^responses and references differ in length: 3 vs 2$"):
        erg_scores(["sad", "sad"], ["sad", "sad"], responses=["a", "b", "c"])


def test_erg_scores_default_protocols_and_official_everything():
    result = erg_scores(["Sad", "joyful"], ["sad", "joyful"])
    assert result == {"accuracy": 0.5, "hit_rate": 1.0, "num_samples": 2,
                      "protocol": {"accuracy": "official", "hit_rate": "mmaffect"}}
    responses = ["<think>a a</think>B b", "<think>only thinking</think>", "x"]
    official = erg_scores(["sad", "joyful", "sad"], ["sad", "joyful", "sad"], responses=responses, protocol="official")
    assert official["protocol"] == {"accuracy": "official", "hit_rate": "official", "dist_n": "official"}
    # official Dist: reply 2 is empty after removal (dropped); lower-cased 'b b' -> dist1 1/2; 'x' -> 1; no bigram in 'x'
    assert official["dist_1"] == pytest.approx((1 / 2 + 1) / 2)
    assert official["dist_2"] == pytest.approx(1.0)
    assert official["accuracy"] == 1.0 and official["hit_rate"] == 1.0 and official["num_samples"] == 3
    default = erg_scores(["sad"], ["sad"], responses=["B b"])
    assert default["protocol"]["dist_n"] == "official" and default["dist_1"] == 0.5


def test_distinct_n_official_edge_cases():
    assert distinct_n(["<think>all</think>", None, "  "], 1) == 0.0  # nothing left to score
    assert distinct_n(["one"], 2) == 0.0  # no bigram anywhere
    # an unclosed <think> is kept by the official removal (closed blocks only)
    assert distinct_n(["<think> a a"], 1) == pytest.approx(2 / 3)
    assert distinct_n(["A a b"], 1, tokenizer=str.split) == pytest.approx(2 / 3)  # lower-cased before the tokenizer
    assert distinct_n(["a b a b a"], 3) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="^n must be >= 1, got 0$"):
        distinct_n(["a"], 0)
    with pytest.raises(ValueError, match="^no responses to score$"):
        distinct_n([], 1)
    # mmaffect keeps case and scores a reply without an n-gram 0
    assert distinct_n(["A a", "x"], 2, protocol="mmaffect") == pytest.approx(0.5)
    assert distinct_n([None, "a b"], 1, remove_think=False, protocol="mmaffect") == pytest.approx(0.5)


def test_erg_accuracy_reads_missing_labels_as_empty():
    # mmaffect: None and NaN are the empty label; a number is compared as its text
    assert erg_accuracy([None, float("nan"), 1.0], ["", " ", "1.0"], protocol="mmaffect") == 1.0
    assert erg_accuracy([None], ["none"], protocol="mmaffect") == 0.0


# ---------------------------------------------------------------------------------------------
# emotion wheels (emotion_wheel.py)
# ---------------------------------------------------------------------------------------------
import pandas as pd  # noqa: E402

from mmaffect.metrics.emotion_wheel import (  # noqa: E402
    load_emotion_wheels,
    map_to_wheels,
    resolve_wheel_dir,
    string_to_label_list,
)
from test_metrics_wheel import TOY_EXPECTED, write_toy_wheel_dir  # noqa: E402


@pytest.mark.parametrize("value, expected", [
    (np.array(["happy", " sad "]), ["happy", "sad"]),
    ("[happy, tense]", ["happy", "tense"]),
    ("[happy]", ["happy"]),
    ("happy]", ["happy"]),
    ("[", []),
    (("a", "", " b"), ["a", "b"]),
])
def test_label_fields_are_parsed(value, expected):
    assert string_to_label_list(value) == expected


def test_unreadable_label_fields_are_errors():
    with pytest.raises(TypeError, match="^a label field must be a string or a list of strings, got int: 5$"):
        string_to_label_list(5)

    class Opaque:  # comparing it raises: it is not a missing value, so it must be refused by type
        def __ne__(self, other):
            raise RuntimeError("no comparison")

    with pytest.raises(TypeError, match="got Opaque"):
        string_to_label_list(Opaque())


def test_parsed_wheels_are_accepted_as_they_are_and_map_to_wheels(toy_wheel_dir):
    wheels = load_emotion_wheels(toy_wheel_dir)
    assert hit_rate(["happiness"], ["happiness, loneliness"], wheels, protocol="official")["num_samples"] == 1
    assert map_to_wheels(["gladness", "neutral"], wheels) == {
        "gladness": TOY_EXPECTED["gladness"], "neutral": TOY_EXPECTED["neutral"]}
    assert map_to_wheels(["grieving"], toy_wheel_dir) == {"grieving": TOY_EXPECTED["grieving"]}
    assert wheels.vocabulary() == sorted({form for _, forms in
                                          [("x", f) for f in ("glad,gladly,gladness cheerful,cheery merry,merriment "
                                                              "lonely,loneliness alone calm,calmness serene,serenity "
                                                              "delighted,delight content,contentment grief,grieving "
                                                              "mourning,mourn sorrow,sorrowful happy,happiness").split()]
                                          for form in forms.split(",")})
    assert wheels.map_label("delight", 4) == "happy"
    with pytest.raises(ValueError, match=r"^wheel index 5 out of range 0\.\.4$"):
        wheels.map_label("delight", 5)
    with pytest.raises(ValueError, match=r"^wheel index -1 out of range 0\.\.4$"):
        wheels.map_label("delight", -1)


def test_format_rows_with_blank_cells_and_bases_outside_their_own_list(tmp_path):
    folder = write_toy_wheel_dir(tmp_path / "w")
    pd.DataFrame([("delighted", "delight"),  # the base word is not in its own list: still maps to itself
                  ("stranger", "strangers"),  # a base word no wheel or synonym knows: maps to nothing
                  ("calm", None),              # no forms listed
                  (None, "orphan")],           # no base word
                 columns=["name", "format"]).to_csv(folder / "format.csv", index=False)
    wheels = load_emotion_wheels(folder)
    assert wheels.vocabulary() == ["calm", "delight", "delighted", "orphan", "stranger", "strangers"]
    assert wheels.map_label_all("delighted") == wheels.map_label_all("delight") == ("happy", "joy", None, None, "happy")
    assert wheels.map_label_all("strangers") == (None,) * 5
    assert wheels.map_label_all("orphan") == (None,) * 5
    assert wheels.candidates("calm") == ["calm"]


def test_a_blank_first_row_cell_adds_no_wheel_word(tmp_path):
    folder = write_toy_wheel_dir(tmp_path / "w")
    pd.DataFrame([("Happy", "Joyful", None), (None, None, "Delighted"), ("Sad", "Lonely", "Grief")],
                 columns=["level1", "level2", "level3"]).to_excel(folder / "wheel2.xlsx", index=False)
    wheels = load_emotion_wheels(folder)
    assert {word for word in wheels.wheel_maps[1] if word} == {"happy", "joyful", "delighted", "sad", "lonely", "grief"}
    assert wheels.wheel_maps[1]["delighted"] == "happy" and wheels.wheel_maps[1]["grief"] == "sad"
    # blank level1 / level2 cells on the first row: no invented word appears either
    pd.DataFrame([(None, None, "Delighted"), ("Sad", "Lonely", "Grief")],
                 columns=["level1", "level2", "level3"]).to_excel(folder / "wheel3.xlsx", index=False)
    wheels = load_emotion_wheels(folder)
    assert {word for word in wheels.wheel_maps[2] if word} == {"delighted", "sad", "lonely", "grief"}


def test_bad_wheel_cells_name_file_row_and_column(tmp_path):
    folder = write_toy_wheel_dir(tmp_path / "cell")
    pd.DataFrame([("Happy", "Joyful", "Cheerful"), ("Sad", 5, "Lonely")],
                 columns=["level1", "level2", "level3"]).to_excel(folder / "wheel4.xlsx", index=False)
    with pytest.raises(ValueError, match=r"^.*wheel4\.xlsx: row 3, column level2: expected a word, got 5$"):
        load_emotion_wheels(folder)


def test_bad_synonym_and_format_files_name_the_problem(tmp_path):
    def broken(name, frame, writer):
        folder = write_toy_wheel_dir(tmp_path / name)
        writer(frame, folder)
        return folder

    to_syn = lambda frame, folder: frame.to_excel(folder / "synonym.xlsx", index=False)  # noqa: E731
    folder = broken("noruns", pd.DataFrame({"words": ["calm"]}), to_syn)
    with pytest.raises(ValueError, match=r"synonym\.xlsx: no 'word_runK' columns; found \['words'\]$"):
        load_emotion_wheels(folder)
    folder = broken("nosyn", pd.DataFrame({"word_run1": ["calm"]}), to_syn)
    with pytest.raises(ValueError, match=r"synonym\.xlsx: column 'word_run1' has no matching 'synonym_run1'$"):
        load_emotion_wheels(folder)
    folder = broken("number", pd.DataFrame({"word_run1": ["calm", 7], "synonym_run1": ["serene", "x"]}), to_syn)
    with pytest.raises(ValueError, match=r"synonym\.xlsx: row 3, column word_run1: expected a wheel word, got 7$"):
        load_emotion_wheels(folder)
    # runs numbered past 9 are read too
    folder = broken("run10", pd.DataFrame({"word_run10": ["calm"], "synonym_run10": ["tranquil"],
                                           "word_run2": ["lonely"], "synonym_run2": ["solitary"]}), to_syn)
    pd.DataFrame([("tranquil", "tranquil"), ("solitary", "solitary")],
                 columns=["name", "format"]).to_csv(folder / "format.csv", index=False)
    wheels = load_emotion_wheels(folder)
    assert wheels.map_label("tranquil", 0) == "happy" and wheels.map_label("solitary", 0) == "sad"
    folder = write_toy_wheel_dir(tmp_path / "forms")
    pd.DataFrame({"name": ["calm"], "formats": ["calm"]}).to_csv(folder / "format.csv", index=False)
    with pytest.raises(ValueError, match=r"format\.csv: missing column 'format'; found \['name', 'formats'\]$"):
        load_emotion_wheels(folder)


def test_wheel_folder_resolution_messages(tmp_path, monkeypatch):
    monkeypatch.delenv("MMAFFECT_WHEEL_DIR", raising=False)
    with pytest.raises(ValueError) as error:
        resolve_wheel_dir(None)
    assert str(error.value) == ("no emotion-wheel folder given: pass wheel_dir (CLI: --wheel-dir) or set "
                                "$MMAFFECT_WHEEL_DIR to the folder holding wheel1..5.xlsx, synonym.xlsx and format.csv")
    folder = write_toy_wheel_dir(tmp_path / "w")
    (folder / "format.csv").unlink()
    (folder / "wheel5.xlsx").unlink()
    with pytest.raises(FileNotFoundError, match=r"lacks \['wheel5.xlsx', 'format.csv'\]$"):
        resolve_wheel_dir(folder)
    complete = write_toy_wheel_dir(tmp_path / "ok")
    monkeypatch.setenv("MMAFFECT_WHEEL_DIR", str(complete))
    assert resolve_wheel_dir(None) == complete.resolve()


def test_official_extraction_reads_only_the_first_think_block():
    assert extract_emotion_from_response(
        "I say the emotion of the speaker is angry <think>the emotion of the speaker is calm</think>") == "calm"
    assert extract_emotion_from_response(
        "<think>the emotion of the speaker is calm</think> later <think>more") == "calm"


def test_unknown_prediction_lists_show_ten_labels_under_both_protocols():
    unknown = [f"w{i:02d}" for i in range(12)]
    for protocol in ("mmaffect", "official"):
        with pytest.raises(ValueError) as error:
            erg_hit_rate(unknown, ["sad"] * 12, protocol=protocol)
        listed = str(error.value).split("[", 1)[1].split("]", 1)[0]
        assert listed.count(",") == 9  # ten labels shown


def test_official_fallback_counts_an_unknown_prediction_as_neutral():
    assert erg_hit_rate(["meh", "sad"], ["neutral", "neutral"], unknown_prediction="neutral", protocol="official") == 0.5


def test_official_distinct_n_lower_cases_before_the_tokenizer():
    seen = []
    distinct_n(["Hello World"], 1, tokenizer=lambda text: seen.append(text) or text.split())
    assert seen == ["hello world"]


def test_erg_scores_passes_the_map_and_the_protocols_on():
    table = {"glad": "happy", "joyful": "happy"}
    assert erg_scores(["glad"], ["joyful"], coarse_map=table)["hit_rate"] == 1.0
    official = erg_scores(["Joyful"], ["joyful"], protocol="official", unknown_prediction="neutral")
    assert official["hit_rate"] == 0.0 and official["accuracy"] == 0.0
    guarded = erg_scores(["Joyful"], ["joyful"], protocol="mmaffect", responses=["A a"])
    assert guarded["hit_rate"] == 1.0 and guarded["accuracy"] == 1.0
    assert guarded["dist_1"] == 1.0  # case kept: 'A' and 'a' differ (official would lower-case: 0.5)
    assert erg_scores(["sad"], ["sad"], protocol="official", responses=["A a"])["dist_1"] == 0.5
