"""The silent-phase check's second half: a phase whose training loss does not fall warns, saying how much it moved
(gradients that change weights are not proof that a phase did anything)."""

import json
import warnings

import pytest

from mmaffect.train.p2e import FlatLossWarning, check_loss_fell


def write_metrics(path, losses):
    path.write_text("".join(json.dumps({"phase": "p", "step": 10 * (i + 1), "loss": v}) + "\n" for i, v in enumerate(losses)))
    return path


def test_a_flat_loss_warns_with_the_size_of_the_move(tmp_path):
    metrics = write_metrics(tmp_path / "train_log.jsonl", [5.75, 5.74, 5.76, 5.73])  # ln(300) = 5.70: the random tiny LM
    with pytest.warns(FlatLossWarning, match=r"phase 'phase1_speech': the training loss did not fall \(first logged 5\.7500, "
                                             r"last 5\.7300: -0\.3% over 4 logged windows; at least -2% expected\)"):
        moved = check_loss_fell("phase1_speech", metrics)
    assert moved == {"first": 5.75, "last": 5.73, "relative_change": pytest.approx(-0.02 / 5.75), "windows": 4}
    with pytest.warns(FlatLossWarning, match=r"\+4\.0%"):  # a rising loss too
        check_loss_fell("p", write_metrics(tmp_path / "up.jsonl", [1.0, 1.04]))


def test_a_falling_loss_is_quiet_and_too_few_windows_are_not_judged(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        moved = check_loss_fell("p", write_metrics(tmp_path / "down.jsonl", [0.28, 0.2, 0.15]))
        assert moved["relative_change"] == pytest.approx(-0.13 / 0.28)
        assert check_loss_fell("p", write_metrics(tmp_path / "one.jsonl", [5.7])) is None
        assert check_loss_fell("p", tmp_path / "missing.jsonl") is None
