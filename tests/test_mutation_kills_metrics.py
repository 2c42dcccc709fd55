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
                        "num_unparsed_predictions": 2, "protocol": "official"}
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
