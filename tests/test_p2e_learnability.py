"""The whole chain learns: a synthetic MER2023 corpus whose emotion is recoverable only from the media (a frame
colour per label; random subtitles), the tiny model trained by the P2E trainer (configs/p2e_learnable_tiny.yaml:
phase 3's recipe on a tiny LM pre-trained briefly on the corpus's text) and scored by ``mmaffect evaluate`` on the
held-out split of the same process. Controls: media shuffled across the test samples (the answers follow the media,
chance against the true labels), black frames and silence (chance), and ``--modalities`` (the signal is in the
video frames, not in the audio branch or the text). About a minute of CPU on an idle machine."""

import json
from pathlib import Path

import pytest

from mmaffect.evaluation.cli import main as evaluate_main
from mmaffect.train.p2e import load_run_config, run_from_config
from mmaffect.train.p2e_synthetic import derive_corpus, make_learnable_corpus
from mmaffect.train.p2e_tiny_lm import pretrain_tiny_language_model

pytestmark = pytest.mark.slow
CONFIG = Path(__file__).resolve().parents[1] / "configs" / "p2e_learnable_tiny.yaml"
LABELS = 4  # chance: 25 %


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("learnable")
    corpus = make_learnable_corpus(root / "mer2023", train_per_label=40, test_per_label=10, num_labels=LABELS)
    pretrain_tiny_language_model(corpus / "tiny_language_model", corpus)
    summary = run_from_config(load_run_config(CONFIG, data_root=corpus, output_dir=root / "run"))
    return corpus, Path(summary["phases"][-1]["model"]), root


def evaluate(model: Path, data: Path, output: Path, modalities: str = "V") -> list[dict]:
    code = evaluate_main(["--model", str(model), "--dataset", "mer2023", "--data-dir", str(data), "--wheel-dir",
                          str(data / "emotion_wheel"), "--prompt-task", "MER", "--decoding", "greedy",
                          "--modalities", modalities, "--max-new-tokens", "10", "--batch-size", "8", "--device", "cpu",
                          "--output-dir", str(output), "--quiet"])  # fmt: skip
    assert code == 0
    return [json.loads(line) for line in (output / "predictions.jsonl").read_text().splitlines()]


def accuracy(rows: list[dict], truth: dict[str, str] | None = None) -> float:
    return sum((truth or {}).get(r["id"], r["reference"]) in r["prediction"] for r in rows) / len(rows)


def test_held_out_accuracy_of_the_trained_chain_is_at_least_90_percent(trained):
    corpus, model, root = trained
    rows = evaluate(model, corpus, root / "eval_real")
    assert len(rows) == 10 * LABELS
    assert accuracy(rows) >= 0.9, [(r["reference"], r["reply"]) for r in rows]
    results = json.loads((root / "eval_real" / "results.json").read_text())
    assert results["table"]["Hit Rate"] >= 90.0  # one wheel category per label: the hit rate is the accuracy
    done = json.loads((model.parent / "DONE.json").read_text())
    assert done["loss_movement"]["relative_change"] < -0.1  # the phase's loss fell visibly (no FlatLossWarning)


def test_shuffled_media_move_the_answers_with_them(trained):
    corpus, model, root = trained
    media_labels = derive_corpus(corpus, root / "shuffled" / "mer2023", media="shuffle", seed=1)
    rows = evaluate(model, root / "shuffled" / "mer2023", root / "eval_shuffled")
    matching = sum(media_labels[r["id"]] == r["reference"] for r in rows) / len(rows)  # the permutation's own chance
    assert accuracy(rows, media_labels) >= 0.9
    assert accuracy(rows) <= matching + 0.1 and accuracy(rows) <= 0.5


def test_black_frames_and_silence_fall_to_chance(trained):
    corpus, model, root = trained
    derive_corpus(corpus, root / "blank" / "mer2023", media="blank")
    rows = evaluate(model, root / "blank" / "mer2023", root / "eval_blank")
    assert accuracy(rows) <= 0.5  # identical media for every sample: only the (random) subtitles differ


@pytest.mark.parametrize("modalities", ["A", "T"])
def test_the_signal_is_in_the_video_frames(trained, modalities):
    corpus, model, root = trained
    rows = evaluate(model, corpus, root / f"eval_{modalities}", modalities=modalities)
    assert accuracy(rows) <= 0.5, f"--modalities {modalities} should be near chance without the frames"
