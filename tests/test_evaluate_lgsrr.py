"""mmaffect evaluate --model DIR (LGSRR): metrics equal to scikit-learn, the report files, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import sklearn.metrics as skm
from datasets import ClassLabel, Dataset, Features, List, Value
from test_train_lgsrr_fixtures import write_tiny_encoder, write_tiny_release

LABELS = ["Agree", "Greet", "Thank", "Warn"]


def _rows(y_true, ranks=None):
    features = {"id": Value("string"), "text": Value("string"), "label": ClassLabel(names=LABELS)}
    data = {"id": [f"dia{i}_utt0" for i in range(len(y_true))], "text": [f"text {i}" for i in range(len(y_true))],
            "label": list(y_true)}
    if ranks is not None:
        features["aspect_ranks"] = List(Value("int32"), length=3)
        data["aspect_ranks"] = ranks
    return Dataset.from_dict(data, features=Features(features))


@pytest.mark.parametrize("case", range(4))
def test_metrics_and_reports_equal_scikit_learn(tmp_path, case):
    from mmaffect.train.evaluate import write_evaluation

    rng = np.random.default_rng(case)
    n = 40
    y_true = rng.integers(0, 4 if case else 3, n)  # case 0: a class that is only ever predicted
    logits = rng.normal(size=(n, 4)) + 2.0 * np.eye(4)[y_true] * (rng.random(n) < 0.6)[:, None]
    order = rng.permutation(n)  # predictions arrive in any row order
    predictions = {"row_index": order, "logits": logits[order], "importance": None}
    metrics = write_evaluation(tmp_path, predictions, _rows(y_true), LABELS, [])
    y_pred = logits.argmax(-1)
    expected = {
        "accuracy": skm.accuracy_score(y_true, y_pred),
        "macro_f1": skm.f1_score(y_true, y_pred, average="macro", zero_division=0),
        "macro_precision": skm.precision_score(y_true, y_pred, average="macro", zero_division=0),
        "macro_recall": skm.recall_score(y_true, y_pred, average="macro", zero_division=0),
        "weighted_f1": skm.f1_score(y_true, y_pred, average="weighted", zero_division=0),
        "weighted_precision": skm.precision_score(y_true, y_pred, average="weighted", zero_division=0),
        "weighted_recall": skm.recall_score(y_true, y_pred, average="weighted", zero_division=0),
    }
    assert metrics == pytest.approx(expected, abs=1e-12)
    assert json.loads((tmp_path / "results.json").read_text())["metrics"] == pytest.approx(expected, abs=1e-12)

    present = sorted(set(y_true) | set(y_pred))
    report = skm.classification_report(y_true, y_pred, labels=present, output_dict=True, zero_division=0)
    for row in json.loads((tmp_path / "per_class_report.json").read_text()):
        ref = report[str(LABELS.index(row["label"]))]
        assert (row["precision"], row["recall"], row["f1"], row["support"]) == \
            pytest.approx((ref["precision"], ref["recall"], ref["f1-score"], ref["support"]))
    matrix = json.loads((tmp_path / "confusion_matrix.json").read_text())
    assert matrix["labels"] == [LABELS[i] for i in present]
    assert matrix["matrix"] == skm.confusion_matrix(y_true, y_pred, labels=present).tolist()
    assert (tmp_path / "confusion_matrix.png").stat().st_size > 1000


def test_predictions_jsonl_carries_scores_and_importance_rankings(tmp_path):
    from mmaffect.train.evaluate import write_evaluation

    logits = np.array([[2.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 3.0]])
    importance = np.array([[0.1, 0.2, 0.3, 0.4], [0.7, 0.1, 0.15, 0.05]])
    rows = _rows([0, 2], ranks=[[2, 0, 1], None])
    write_evaluation(tmp_path, {"row_index": np.array([0, 1]), "logits": logits, "importance": importance}, rows, LABELS,
                     ["actions", "expressions", "interactions"])
    first, second = (json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines())
    assert first["id"] == "dia0_utt0" and first["predicted"] == "Agree" and first["correct"]
    assert first["score"] == pytest.approx(np.exp(2) / (np.exp(2) + 3), abs=1e-6)
    assert first["importance"] == {"text": 0.1, "actions": 0.2, "expressions": 0.3, "interactions": 0.4}
    assert first["importance_ranking"] == ["interactions", "expressions", "actions", "text"]
    assert first["llm_ranking"] == ["expressions", "interactions", "actions"]  # ranks [2, 0, 1]
    assert second["predicted"] == "Warn" and second["label"] == "Thank" and not second["correct"]
    assert second["importance_ranking"][0] == "text" and "llm_ranking" not in second
    assert [t["label"] for t in second["top3"]][0] == "Warn"


@pytest.fixture(scope="module")
def untrained_lgsrr(tmp_path_factory):
    """A freshly wrapped (untrained) LGSRR over the tiny encoder, saved like a training run's best model."""
    from mmaffect import LGSRRForSequenceClassification
    from mmaffect.datasets_scripts import MINTREC2_INTENTS
    from transformers import AutoTokenizer

    root = tmp_path_factory.mktemp("evaluate")
    encoder = write_tiny_encoder(root / "encoder")
    write_tiny_release(root / "release")
    model = LGSRRForSequenceClassification.from_pretrained_encoder(str(encoder), labels=list(MINTREC2_INTENTS),
                                                                   weight_hidden_dim=8)
    model.save_pretrained(root / "model")
    AutoTokenizer.from_pretrained(encoder).save_pretrained(root / "model")
    return root


def test_mmaffect_evaluate_command(untrained_lgsrr, tmp_path):
    from mmaffect.cli import main

    root = untrained_lgsrr
    argv = ["evaluate", "--model", str(root / "model"), "--dataset", "mintrec2", "--data-dir", str(root / "release/data_text"),
            "--descriptions-dir", str(root / "release/data_desc"), "--split", "dev", "--output-dir", str(tmp_path)]
    assert main(argv) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["split"] == "validation" and results["num_samples"] == 12
    lines = (tmp_path / "predictions.jsonl").read_text().splitlines()
    assert len(lines) == 12 and {json.loads(line)["id"] for line in lines} == {f"dia{200 + i // 2}_utt{i % 2}" for i in range(12)}


def test_old_flag_form_runs_the_classifier_subcommand_with_a_note(untrained_lgsrr, tmp_path, capsys):
    from mmaffect.cli import main

    root = untrained_lgsrr
    argv = ["--model", str(root / "model"), "--dataset", "mintrec2", "--data-dir", str(root / "release/data_text"),
            "--descriptions-dir", str(root / "release/data_desc"), "--split", "dev", "--max-samples", "4"]
    assert main(["evaluate", "classifier", *argv, "--output-dir", str(tmp_path / "new")]) == 0
    assert "note:" not in capsys.readouterr().err
    assert main(["evaluate", *argv, "--output-dir", str(tmp_path / "old")]) == 0
    assert "mmaffect evaluate: note: ran 'mmaffect evaluate classifier'" in capsys.readouterr().err
    for name in ("results.json", "predictions.jsonl", "per_class_report.txt"):
        assert (tmp_path / "old" / name).read_text() == (tmp_path / "new" / name).read_text(), name


def test_evaluate_bad_inputs_name_the_problem(untrained_lgsrr, tmp_path):
    from mmaffect.train.evaluate import evaluate_model

    root = untrained_lgsrr
    with pytest.raises(FileNotFoundError, match="no config.json"):
        evaluate_model(tmp_path, "mintrec2", root / "release/data_text", descriptions_dir=root / "release/data_desc")
    with pytest.raises(ValueError, match="--descriptions-dir"):
        evaluate_model(root / "model", "mintrec2", root / "release/data_text")
    with pytest.raises(ValueError, match="--split 'holdout'"):
        evaluate_model(root / "model", "mintrec2", root / "release/data_text", descriptions_dir=root / "release/data_desc",
                       split="holdout")
    with pytest.raises(ValueError, match="do not match"):  # an IEMOCAP-DA-sized head on MIntRec2.0
        from mmaffect import LGSRRForSequenceClassification

        small = LGSRRForSequenceClassification.from_pretrained_encoder(str(root / "encoder"), labels=["a", "b"])
        small.save_pretrained(tmp_path / "small")
        evaluate_model(tmp_path / "small", "mintrec2", root / "release/data_text", descriptions_dir=root / "release/data_desc")
