"""``mmaffect evaluate``: the prompt a model is asked with is the one it was trained with (issue 25.3), a sample
whose generation fails is recorded and the run goes on (25.1), and ``--num-beams`` (issue 27)."""

from __future__ import annotations

import json

import pytest

from evaluation_support import make_mer2023, save_tiny_nano_emox, write_e2e_wheel_dir
from mmaffect import cli
from mmaffect.evaluation import cli as evaluate_cli
from mmaffect.evaluation import evaluate_benchmark
from mmaffect.evaluation.scoring import default_prompt_task
from mmaffect.models.nano_emox.modeling_nano_emox import PlaceholderWithoutMediaError

MER_IDS = ["sample_00000001", "sample_00000002", "sample_00000003"]


@pytest.fixture(scope="module")
def wheel_dir(tmp_path_factory):
    return write_e2e_wheel_dir(tmp_path_factory.mktemp("wheels"))


@pytest.fixture(scope="module")
def mer2023(tmp_path_factory):
    return make_mer2023(tmp_path_factory.mktemp("layouts") / "mer2023")


class RecordingPredictor:
    """Replies "happy"; records each request's task and labels; ``fail`` ids raise like a generated placeholder."""

    name = "recording"
    batch_size = 2

    def __init__(self, trained_tasks=None, fail=()):
        self.trained_tasks, self.fail = trained_tasks, set(fail)
        self.asked: list[tuple[str, str, tuple]] = []

    def fingerprint(self):
        return {"predictor": "recording", "trained_tasks": self.trained_tasks}

    def required_media(self):
        return set()

    def predict(self, requests):
        self.asked += [(r.id, r.task, r.candidate_labels) for r in requests]
        rows = [i for i, r in enumerate(requests) if r.id in self.fail]
        if rows:
            raise PlaceholderWithoutMediaError(rows, "<video>", "video")
        return ["happy" for _ in requests]


@pytest.mark.parametrize(
    ("task", "trained", "expected"),
    [
        ("mer", None, "OV-MER"),  # nothing recorded: the public inference script's choice
        ("mer", ["MER", "MIR"], "MER"),
        ("ovmer", ["MER"], "MER"),
        ("msa", ["MER", "OV-MER"], "OV-MER"),
        ("mer", ["MIR", "ERI"], "MER"),  # neither: the prompt that lists the candidates
        ("mer", [], "MER"),
        ("mir", ["MER"], "MIR"),  # other tasks: their own prompt
        ("erg", None, "ERG"),
    ],
)
def test_default_prompt_task_follows_the_trained_tasks(task, trained, expected):
    prompt, reason = default_prompt_task(task, trained)
    assert prompt == expected and reason


@pytest.mark.parametrize(
    ("trained", "asked", "expected", "because"),
    [
        (["MER", "ERI"], None, "MER", "trained on MER, not on OV-MER"),
        (["OV-MER", "MER"], None, "OV-MER", "trained on OV-MER"),
        (None, None, "OV-MER", "records no trained tasks"),
        (["MER"], "OV-MER", "OV-MER", "asked for (--prompt-task)"),
    ],
)
def test_mer_benchmarks_are_asked_with_the_trained_prompt(trained, asked, expected, because, mer2023, wheel_dir, tmp_path, capsys):
    predictor = RecordingPredictor(trained)
    result = evaluate_benchmark(predictor, "mer2023", tmp_path, data_dir=mer2023, wheel_dir=wheel_dir, prompt_task=asked)
    assert {task for _, task, _ in predictor.asked} == {expected}
    # the candidate-label prompt lists the benchmark's labels, the open question none
    assert all((len(labels) > 1) == (expected == "MER") for _, _, labels in predictor.asked)
    assert result["prompt_task"] == expected and because in result["prompt_task_reason"]
    assert f"MER2023: prompting with the {expected} task (" in capsys.readouterr().err
    assert f"prompt task: {expected} (" in (tmp_path / "summary.md").read_text()


def test_a_sample_whose_generation_fails_is_recorded_and_the_run_goes_on(mer2023, wheel_dir, tmp_path):
    predictor = RecordingPredictor(["MER"], fail=[MER_IDS[1]])
    result = evaluate_benchmark(predictor, "mer2023", tmp_path, data_dir=mer2023, wheel_dir=wheel_dir, progress=False)
    # the failing batch is retried one sample at a time: only its own sample is lost
    assert [sample for sample, _, _ in predictor.asked] == [MER_IDS[0], MER_IDS[1], MER_IDS[0], MER_IDS[1], MER_IDS[2]]
    assert list(result["generation_errors"]) == [MER_IDS[1]]
    assert "sample(s) [0] of the batch contain <video>" in result["generation_errors"][MER_IDS[1]]
    replies = {r["id"]: r for r in map(json.loads, (tmp_path / "replies.jsonl").read_text().splitlines())}
    assert replies[MER_IDS[1]]["reply"] == "" and "PlaceholderWithoutMediaError" in replies[MER_IDS[1]]["error"]
    assert replies[MER_IDS[0]]["reply"] == replies[MER_IDS[2]]["reply"] == "happy" and "error" not in replies[MER_IDS[0]]
    assert result["num_samples"] == 3 and "generation failed for 1 sample(s)" in (tmp_path / "summary.md").read_text()
    # a rerun keeps the recorded failure instead of generating it again
    again = RecordingPredictor(["MER"], fail=[MER_IDS[1]])
    assert evaluate_benchmark(again, "mer2023", tmp_path, data_dir=mer2023, wheel_dir=wheel_dir, progress=False)["num_cached"] == 3
    assert again.asked == []


def test_errors_that_name_no_sample_still_stop_the_run(mer2023, wheel_dir, tmp_path):
    class Broken(RecordingPredictor):
        def predict(self, requests):
            raise ValueError("the processor rejects every prompt")

    with pytest.raises(ValueError, match="rejects every prompt"):
        evaluate_benchmark(Broken(), "mer2023", tmp_path, data_dir=mer2023, wheel_dir=wheel_dir, progress=False)


def test_cli_num_beams_and_the_trained_prompt_with_a_real_model(mer2023, wheel_dir, tmp_path, capsys):
    folder = save_tiny_nano_emox(tmp_path / "tiny")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "trained_tasks": ["MER", "MIR"]}))
    base = ["--model", str(folder), "--dataset", "mer2023", "--data-dir", str(mer2023), "--wheel-dir", str(wheel_dir),
            "--max-new-tokens", "3", "--decoding", "greedy", "--batch-size", "2"]  # fmt: skip
    for beams in (1, 2):  # before: beams crashed on the first prompt with media ("sample 1 has <video> tokens ...")
        out = tmp_path / f"beams{beams}"
        assert evaluate_cli.main([*base, "--num-beams", str(beams), "--output-dir", str(out)]) == 0
        captured = capsys.readouterr()
        assert "MER2023: prompting with the MER task (the model was trained on MER, not on OV-MER" in captured.err
        assert "prompt task: MER (the model was trained on MER" in captured.out
        result = json.loads((out / "results.json").read_text())
        assert result["predictor_fingerprint"]["num_beams"] == beams and result["prompt_task"] == "MER"
        assert result["generation_errors"] == {} and result["num_generated"] == 3
    assert cli.main(["evaluate", "--predictor", "openai", "--base-url", "http://127.0.0.1:9/v1", "--model-name", "m",
                     "--num-beams", "2", "--dataset", "mer2023", "--data-dir", str(mer2023)]) == 2
    assert "--num-beams is a nano-emox option" in capsys.readouterr().err
