"""Classification (MIR / LGSRR) and MSA metrics: hand-computed cases and scikit-learn equality."""

from __future__ import annotations

import random

import numpy as np
import pytest
from sklearn import metrics as sk

from mmaffect.metrics import (
    METRIC_NAMES,
    classification_metrics,
    confusion_matrix,
    format_per_class_report,
    msa_scores,
    per_class_report,
    save_confusion_matrix_png,
    sentiment_to_value,
)


def sklearn_metrics(y_true, y_pred, labels=None):
    def prf(average):
        return sk.precision_recall_fscore_support(y_true, y_pred, labels=labels, average=average, zero_division=0)

    macro, weighted = prf("macro"), prf("weighted")
    return {
        "accuracy": sk.accuracy_score(y_true, y_pred),
        "macro_precision": macro[0], "macro_recall": macro[1], "macro_f1": macro[2],
        "weighted_precision": weighted[0], "weighted_recall": weighted[1], "weighted_f1": weighted[2],
    }


def test_hand_computed_mir_case():
    y_true = ["a", "a", "b", "c"]
    y_pred = ["a", "b", "b", "b"]
    result = classification_metrics(y_true, y_pred)
    # a: P=1 R=1/2 F=2/3 (support 2); b: P=1/3 R=1 F=1/2 (1); c: all 0 (1)
    assert result["accuracy"] == 0.5
    assert result["macro_f1"] == pytest.approx((2 / 3 + 1 / 2) / 3)
    assert result["weighted_f1"] == pytest.approx((2 * 2 / 3 + 1 / 2) / 4)
    assert result["weighted_precision"] == pytest.approx((2 * 1 + 1 / 3) / 4)
    assert result["weighted_recall"] == pytest.approx((2 * 1 / 2 + 1) / 4)
    assert set(result) == set(METRIC_NAMES)


FIXED_CASES = [
    ([0, 1, 2, 2, 1, 0], [0, 2, 2, 2, 0, 0], None),
    (["x", "y", "y", "z"], ["x", "y", "w", "w"], None),  # 'w' only predicted
    ([1, 1, 1, 1], [1, 1, 1, 1], None),
    ([0, 1, 2, 3], [3, 2, 1, 0], None),
    ([0, 1, 2, 2, 1], [0, 1, 1, 2, 5], [0, 1, 2]),  # prediction outside labels
    ([0, 1, 1], [0, 1, 0], [0, 1, 7]),  # a label with no samples at all
    ([True, False, True], [True, True, True], None),
]


@pytest.mark.parametrize("y_true, y_pred, labels", FIXED_CASES)
def test_equals_sklearn_on_fixed_cases(y_true, y_pred, labels):
    ours = classification_metrics(y_true, y_pred, labels=labels)
    assert ours == pytest.approx(sklearn_metrics(y_true, y_pred, labels), abs=1e-12)


def test_equals_sklearn_on_random_cases():
    generator = random.Random(0)
    for _ in range(60):
        n_classes = generator.randint(1, 8)
        size = generator.randint(1, 40)
        y_true = [generator.randrange(n_classes) for _ in range(size)]
        y_pred = [generator.randrange(n_classes + 1) for _ in range(size)]
        assert classification_metrics(y_true, y_pred) == pytest.approx(sklearn_metrics(y_true, y_pred), abs=1e-12)


def test_per_class_report_and_confusion_matrix_equal_sklearn():
    y_true = ["greet", "thank", "greet", "ask", "ask", "ask"]
    y_pred = ["greet", "greet", "greet", "ask", "thank", "ask"]
    rows = per_class_report(y_true, y_pred)
    report = sk.classification_report(y_true, y_pred, output_dict=True, zero_division=0)
    for row in rows:
        expected = report[row["label"]]
        assert row["precision"] == pytest.approx(expected["precision"])
        assert row["recall"] == pytest.approx(expected["recall"])
        assert row["f1"] == pytest.approx(expected["f1-score"])
        assert row["support"] == expected["support"]
    assert "greet" in format_per_class_report(rows)
    matrix, labels = confusion_matrix(y_true, y_pred)
    assert labels == ["ask", "greet", "thank"]
    np.testing.assert_array_equal(matrix, sk.confusion_matrix(y_true, y_pred, labels=labels))
    matrix, labels = confusion_matrix(y_true, y_pred, labels=["thank", "greet"])
    np.testing.assert_array_equal(matrix, sk.confusion_matrix(y_true, y_pred, labels=["thank", "greet"]))


def test_confusion_matrix_png(tmp_path):
    matrix, labels = confusion_matrix([0, 1, 1, 2], [0, 1, 2, 2])
    path = save_confusion_matrix_png(matrix, labels, tmp_path / "cm.png", title="toy")
    assert (tmp_path / "cm.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.endswith("cm.png")
    with pytest.raises(ValueError, match="does not match 2 labels"):
        save_confusion_matrix_png(matrix, [0, 1], tmp_path / "bad.png")


def test_classification_errors():
    with pytest.raises(ValueError, match="differ in length: 2 vs 1"):
        classification_metrics([1, 2], [1])
    with pytest.raises(ValueError, match="empty"):
        classification_metrics([], [])
    with pytest.raises(ValueError, match=r"y_pred\[1\] is missing"):
        classification_metrics([1, 2], [1, None])
    with pytest.raises(ValueError, match="mix strings and numbers"):
        classification_metrics([1, 2], ["1", 2])
    with pytest.raises(ValueError, match="duplicates"):
        classification_metrics([1, 2], [1, 2], labels=[1, 1])
    with pytest.raises(ValueError, match="single-label"):
        classification_metrics([[1], [2]], [1, 2])


# ---------------------------------------------------------------------------------------------
# MSA
# ---------------------------------------------------------------------------------------------
def test_msa_hand_computed():
    references = [1.2, -0.8, 0.0, 2.0, -1.5, 0.4]
    predictions = ["positive", "negative", "positive", "neutral", "negative", "Negative."]
    # reference 0 dropped; truth>0 = T F T F T, pred>0 = T F F F F
    # class T: P=1 R=1/3 F=1/2 (support 3); class F: P=1/2 R=1 F=2/3 (support 2)
    result = msa_scores(predictions, references)
    assert result["waf"] == pytest.approx((3 * 1 / 2 + 2 * 2 / 3) / 5)
    assert result["accuracy"] == pytest.approx(3 / 5)
    assert result["num_scored"] == 5 and result["num_samples"] == 6
    truth = [r > 0 for r in references if r != 0]
    preds = [sentiment_to_value(p) > 0 for p, r in zip(predictions, references) if r != 0]
    assert result["waf"] == pytest.approx(sk.f1_score(truth, preds, average="weighted"))


def test_msa_numbers_unknown_and_errors():
    assert sentiment_to_value(" 0.7 ") == 0.7
    assert sentiment_to_value("['positive']") == 1.0
    assert sentiment_to_value("happy") is None
    # numbers are used as they are by the package's protocol ...
    result = msa_scores([0.3, "mixed feelings", -2], [1, 1, -1], protocol="mmaffect")
    assert result["num_unparsed_predictions"] == 1  # counted as neutral -> not positive -> wrong
    assert result["accuracy"] == pytest.approx(2 / 3) and result["protocol"] == "mmaffect"
    with pytest.raises(ValueError, match=r"#1: 'mixed feelings'"):
        msa_scores([0.3, "mixed feelings", -2], [1, 1, -1], unknown_prediction="error", protocol="mmaffect")
    # ... while the official script reads only the exact words (the default): every answer here is neutral
    official = msa_scores([0.3, "mixed feelings", -2], [1, 1, -1])
    assert official["num_unparsed_predictions"] == 3 and official["protocol"] == "official"
    assert official["accuracy"] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match=r"not exactly 'positive', 'negative' or 'neutral': #0: 0.3"):
        msa_scores([0.3, "mixed feelings", -2], [1, 1, -1], unknown_prediction="error")
    with pytest.raises(ValueError, match="every reference score is 0"):
        msa_scores(["positive"], [0])
    with pytest.raises(ValueError, match="reference #0 is not a number"):
        msa_scores(["positive"], ["abc"])
    with pytest.raises(ValueError, match="differ in length"):
        msa_scores(["positive"], [1, 2])
