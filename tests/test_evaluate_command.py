"""One ``mmaffect evaluate``: explicit subcommands (classifier, generate, score), each with its own ``--help``;
the old flag forms run the same code (same results) and name the subcommand in a note; one scoring dispatch."""

from __future__ import annotations

import json

import pytest

from evaluation_support import make_mer2023, save_tiny_nano_emox, write_e2e_wheel_dir
from mmaffect import cli
from mmaffect.evaluation import cli as evaluate_cli
from mmaffect.evaluation import scoring
from mmaffect.metrics.protocol import TASKS

NOTE = "mmaffect evaluate: note: ran 'mmaffect evaluate {}'"


def _help(argv, capsys) -> str:
    capsys.readouterr()
    try:
        code = cli.main(["evaluate", *argv])
    except SystemExit as stop:  # argparse's --help
        code = stop.code
    assert code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("name, own, foreign", [
    ("classifier", ["--descriptions-dir", "--split", "--ranks-file"], ["--predictions", "--suite", "--predictor"]),
    ("generate", ["--suite", "--predictor", "--judge-base-url", "--decoding"], ["--predictions", "--descriptions-dir"]),
    ("score", ["--predictions", "--references", "--extractor", "--per-class"], ["--suite", "--descriptions-dir"]),
])
def test_each_subcommand_has_its_own_stable_help(name, own, foreign, capsys):
    text = _help([name, "--help"], capsys)
    assert text.startswith(f"usage: mmaffect evaluate {name} ")
    assert all(flag in text for flag in own) and not any(flag in text for flag in foreign), text
    # the other flags on the line do not change it
    assert _help([name, "--model", "some/dir", "--task", "mir", "--help"], capsys) == text


def test_the_command_help_lists_the_subcommands_whatever_the_flags(tmp_path, capsys):
    text = _help(["--help"], capsys)
    assert text.startswith("usage: mmaffect evaluate {classifier,generate,score}")
    assert all(f"\n  {name}" in text for name in ("classifier", "generate", "score"))
    lgsrr = tmp_path / "lgsrr"
    lgsrr.mkdir()
    (lgsrr / "config.json").write_text(json.dumps({"model_type": "lgsrr"}))
    for flags in (["--model", str(lgsrr)], ["--task", "mir", "--predictions", "p"], ["--suite", "paper"], ["-h"]):
        assert _help([*flags, "--help"], capsys) == text, flags
    assert "mmaffect evaluate: error" not in capsys.readouterr().err
    assert cli.main(["evaluate"]) == 2  # nothing to run: the same text, on stderr
    assert capsys.readouterr().err.strip() == text.strip()


def test_old_forms_pick_the_subcommand(tmp_path):
    lgsrr, nano = tmp_path / "lgsrr", tmp_path / "nano"
    for folder, model_type in ((lgsrr, "lgsrr"), (nano, "nano_emox")):
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({"model_type": model_type}))
    assert evaluate_cli.legacy_subcommand(["--task", "mer", "--predictions", "p", "--references", "r"]) == "score"
    assert evaluate_cli.legacy_subcommand(["--model", str(lgsrr), "--dataset", "mintrec2"]) == "classifier"
    assert evaluate_cli.legacy_subcommand([f"--model={nano}", "--dataset", "mer2023"]) == "generate"
    assert evaluate_cli.legacy_subcommand(["--predictor", "openai", "--model-name", "m"]) == "generate"
    assert evaluate_cli.legacy_subcommand(["--suite", "paper", "--model", str(lgsrr)]) == "generate"
    assert evaluate_cli.legacy_subcommand(["--dataset", "mer2023"]) is None


def _mir_files(tmp_path):
    references = tmp_path / "refs.jsonl"
    references.write_text("".join(json.dumps({"id": f"s{i}", "label": label}) + "\n"
                                  for i, label in enumerate(["greet", "thank", "greet", "agree"])), encoding="utf-8")
    predictions = tmp_path / "model_a.jsonl"
    predictions.write_text("".join(json.dumps({"id": f"s{i}", "prediction": label}) + "\n"
                                   for i, label in enumerate(["greet", "greet", "greet", "agree"])), encoding="utf-8")
    return ["--task", "mir", "--predictions", str(predictions), "--references", str(references)]


def test_old_score_form_gives_the_same_result_with_a_note(tmp_path, capsys):
    files = _mir_files(tmp_path)
    assert cli.main(["evaluate", "score", *files, "--output", str(tmp_path / "new.json")]) == 0
    new = capsys.readouterr()
    assert cli.main(["evaluate", *files, "--output", str(tmp_path / "old.json")]) == 0
    old = capsys.readouterr()
    assert NOTE.format("score") in old.err and "note:" not in new.err
    assert len([line for line in old.err.splitlines() if "note:" in line]) == 1
    assert old.out.replace("old.json", "new.json") == new.out and "| model_a | 75.00" in new.out
    assert json.loads((tmp_path / "old.json").read_text()) == json.loads((tmp_path / "new.json").read_text())
    # an error stays one line (no note after it)
    assert cli.main(["evaluate", *files[:-1], str(tmp_path / "nowhere.jsonl")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mmaffect evaluate: error:") and len(err.splitlines()) == 1


def test_old_generate_form_gives_the_same_result_with_a_note(tmp_path, capsys):
    model = save_tiny_nano_emox(tmp_path / "tiny")
    data = make_mer2023(tmp_path / "mer2023")
    wheels = write_e2e_wheel_dir(tmp_path / "wheels")
    argv = ["--model", str(model), "--dataset", "mer2023", "--data-dir", str(data), "--wheel-dir", str(wheels),
            "--decoding", "greedy", "--max-new-tokens", "3", "--max-samples", "2", "--quiet"]
    assert cli.main(["evaluate", "generate", *argv, "--output-dir", str(tmp_path / "new")]) == 0
    assert "note:" not in capsys.readouterr().err
    assert cli.main(["evaluate", *argv, "--output-dir", str(tmp_path / "old")]) == 0
    assert NOTE.format("generate") in capsys.readouterr().err
    old, new = (json.loads((tmp_path / name / "results.json").read_text()) for name in ("old", "new"))
    for key in ("replies_file", "predictions_file"):
        assert old.pop(key) != new.pop(key)
    assert old == new and old["num_generated"] == 2
    assert (tmp_path / "old" / "predictions.jsonl").read_text() == (tmp_path / "new" / "predictions.jsonl").read_text()


def test_the_scoring_dispatch_is_one_table_over_every_task():
    assert set(scoring.SCORERS) == set(TASKS)
    for task in TASKS:
        scorer = scoring.scorer_for(task)
        assert callable(scorer.replies) and callable(scorer.files)
    with pytest.raises(ValueError, match="unknown task 'nope'"):
        scoring.scorer_for("nope")


def test_a_task_missing_from_the_table_is_an_error_naming_it(tmp_path, monkeypatch, capsys):
    monkeypatch.delitem(scoring.SCORERS, "mir")
    with pytest.raises(ValueError, match="unknown task 'mir': no scorer for it"):
        scoring.score_task("mir", ["a"], ["greet"], ["greet"])  # generate's path
    assert cli.main(["evaluate", "score", *_mir_files(tmp_path)]) == 2  # score's path
    err = capsys.readouterr().err
    assert err.startswith("mmaffect evaluate: error: unknown task 'mir': no scorer for it") and len(err.splitlines()) == 1
