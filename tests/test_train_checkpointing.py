"""The shared training layer (train/checkpointing.py, train/runtime.py): both trainers' checkpoint folders - as
earlier versions wrote them - are found and resumed by one policy; one parameter-group rule; one log format."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from test_train_lgsrr_fixtures import tiny_config

from mmaffect.train import cli
from mmaffect.train.checkpointing import LGSRR_LAYOUT, P2E_LAYOUT, resolve_resume
from mmaffect.train.runtime import append_log_line, parameter_groups, stdout_logger

REPO = Path(__file__).resolve().parents[1]


def _folder(path, marker=None, text="x"):
    path.mkdir(parents=True)
    if marker:
        (path / marker).write_text(text)
    return path


def test_old_lgsrr_checkpoint_folders_are_found_by_the_shared_policy(tmp_path):
    """LGSRR's layout as every version wrote it: checkpoints/step_%07d, complete once progress_done exists."""
    parent = tmp_path / "checkpoints"
    _folder(parent / "step_0000003", "progress_done", json.dumps({"epoch": 1, "step": 3}))
    newest = _folder(parent / "step_0000012", "progress_done", json.dumps({"epoch": 2, "step": 12}))
    half = _folder(parent / "step_0000020")  # killed while saving: no marker
    _folder(parent / ".step_0000030.partial", "progress_done")  # a staging folder is never a checkpoint
    _folder(parent / "step-40", "COMPLETE")  # the other trainer's name
    assert LGSRR_LAYOUT.complete(parent) == [parent / "step_0000003", newest]
    assert resolve_resume("latest", parent, LGSRR_LAYOUT) == newest
    assert resolve_resume(str(newest), parent, LGSRR_LAYOUT) == newest
    assert resolve_resume(None, parent, LGSRR_LAYOUT) is None
    with pytest.raises(ValueError, match="not a complete checkpoint"):
        resolve_resume(str(half), parent, LGSRR_LAYOUT)
    assert LGSRR_LAYOUT.folder(parent, 12) == newest


def test_old_p2e_checkpoint_folders_are_found_and_their_state_reads(tmp_path):
    """P2E's layout: <phase>/checkpoints/step-N + COMPLETE + p2e_trainer_state.pt (plain values)."""
    from mmaffect.train.p2e import TRAINER_STATE, _write_trainer_state, complete_checkpoints, read_trainer_state

    parent = tmp_path / "phase1" / "checkpoints"
    _folder(parent / "step-4", "COMPLETE", "phase1 step 4\n")
    _folder(parent / "step-12", "COMPLETE", "phase1 step 12\n")
    _folder(parent / "step-20")  # half-written
    _folder(parent / "step_0000030", "progress_done")  # the other trainer's name
    state = {"phase": "phase1", "step": 12, "micro_batches": 24, "sampler": {"position": 48, "seed": 3}}
    torch.save(state, parent / "step-12" / TRAINER_STATE)  # as earlier versions wrote it
    assert complete_checkpoints(parent) == [parent / "step-4", parent / "step-12"] == P2E_LAYOUT.complete(parent)
    assert resolve_resume("latest", parent, P2E_LAYOUT) == parent / "step-12"
    assert read_trainer_state(parent / "step-12" / TRAINER_STATE) == state
    # today's writer gives the same files
    _write_trainer_state(state, _folder(tmp_path / "new"))
    assert read_trainer_state(tmp_path / "new" / TRAINER_STATE) == state
    assert (tmp_path / "new" / "COMPLETE").read_text() == "phase1 step 12\n"


def test_an_lgsrr_checkpoint_from_before_its_config_copy_resumes_and_still_checks_the_config(tmp_path):
    """Checkpoints written before training_config.json was saved with them: the run's config.yaml stands in."""
    config = tiny_config(tmp_path, num_train_epochs=2)
    assert cli.main(["--config", str(config), "--stop_after_epochs", "1"]) == 3
    (checkpoint,) = LGSRR_LAYOUT.complete(tmp_path / "run" / "checkpoints")
    (checkpoint / "training_config.json").unlink()
    with pytest.raises(ValueError, match="learning_rate"):
        cli.main(["--config", str(config), "--resume_from_checkpoint", "latest", "--learning_rate", "0.5"])
    assert cli.main(["--config", str(config), "--resume_from_checkpoint", str(checkpoint)]) == 0
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["finished"] and results["epochs_run"] == 2 and len(results["history"]) == 2
    lines = (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]


def test_one_parameter_group_rule_for_both_trainers():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4), torch.nn.Linear(4, 2))
    model[2].weight.requires_grad_(False)
    named = list(model.named_parameters())
    # P2E: every 1-d tensor undecayed; both groups always there, decay first (the optimizer state of old checkpoints)
    p2e = parameter_groups(named, 0.1, no_decay="one_dimensional", parts=("params",))
    assert [(g["name"], g["weight_decay"], len(g["params"])) for g in p2e] == [("params", 0.1, 1), ("params_no_decay", 0.0, 4)]
    assert all("lr" not in g for g in p2e)
    # LGSRR: by name, with the head learning rate as a group option
    lgsrr = parameter_groups(named, 0.1, part_of=lambda name, p: "encoder" if name.startswith("0.") else "head",
                             learning_rates={"encoder": 1e-5, "head": 1e-3})
    assert [(g["name"], g.get("lr"), len(g["params"])) for g in lgsrr] == [
        ("encoder", 1e-5, 1), ("encoder_no_decay", 1e-5, 1), ("head", 1e-3, 1), ("head_no_decay", 1e-3, 2)]  # LayerNorm "1.*" is decayed by name
    assert len(torch.optim.AdamW(p2e, lr=1e-3).param_groups) == 2


def test_one_log_format_and_p2e_reports_go_through_logging(tmp_path, capsys):
    path = tmp_path / "log.jsonl"
    append_log_line(path, {"step": 1, "loss": 0.5})
    append_log_line(path, {"step": 2, "loss": 0.25})
    assert [json.loads(line) for line in path.read_text().splitlines()] == [{"step": 1, "loss": 0.5}, {"step": 2, "loss": 0.25}]
    report = stdout_logger("mmaffect.p2e")
    assert stdout_logger("mmaffect.p2e") is report
    assert sum(type(h).__name__ == "_CurrentStdout" for h in report.handlers) == 1  # one stdout handler, however often asked
    report.info("[p2e] phase 1/3")
    assert capsys.readouterr().out == "[p2e] phase 1/3\n"
    assert logging.getLogger("mmaffect.p2e").propagate is False


def test_p2e_resume_is_explicit_when_asked_and_refuses_a_changed_config(tmp_path):
    """P2E's one resume policy, spelled as LGSRR's: latest (its default), a PATH, or null; other settings refused."""
    from mmaffect.train.p2e import SimulatedInterruption, load_run_config, main, run_from_config
    from mmaffect.train.p2e_phases import P2EConfigError
    from mmaffect.train.p2e_synthetic import make_synthetic_corpus

    corpus, out = make_synthetic_corpus(tmp_path / "data"), tmp_path / "out"
    tiny = REPO / "configs" / "p2e_tiny.yaml"

    def config(*sets):
        return load_run_config(tiny, data_root=corpus, output_dir=out, sets=["phase_overrides.*.max_steps=8", "training.save_steps=2", *sets])

    with pytest.raises(SimulatedInterruption):
        run_from_config(config(), phases=["phase1_speech"], interrupt_after_steps={"phase1_speech": 6})
    checkpoints = out / "phase1_speech" / "checkpoints"
    step4 = checkpoints / "step-4"
    assert [p.name for p in P2E_LAYOUT.complete(checkpoints)] == ["step-4", "step-6"]
    with pytest.raises(ValueError, match=r"phase\.learning_rate: .*--training\.allow_config_change"):
        run_from_config(config("phase_overrides.*.learning_rate=0.5"), phases=["phase1_speech"])
    with pytest.raises(P2EConfigError, match="earlier run of phase 'phase1_speech'"):
        run_from_config(config("training.resume_from_checkpoint=null"), phases=["phase1_speech"])
    with pytest.raises(ValueError, match="not a complete checkpoint"):
        run_from_config(config(f"training.resume_from_checkpoint={checkpoints / 'step-9'}"), phases=["phase1_speech"])
    # the run option, as LGSRR spells it: continue from step 4 although step 6 is newer
    assert main(["--config", str(tiny), "--data_root", str(corpus), "--output_dir", str(out), "--max_steps", "8",
                 "--training.save_steps", "2", "--phases", "phase1_speech", "--resume_from_checkpoint", str(step4)]) == 0
    steps = [json.loads(line)["step"] for line in (out / "phase1_speech" / "train_log.jsonl").read_text().splitlines()]
    assert steps == [2, 4, 6, 6, 8]  # (2 micro-batches per optimizer step) logged again from step 4 on
    assert (out / "phase1_speech" / "DONE.json").is_file()


def test_the_trainers_read_top_to_bottom_no_function_over_80_lines():
    """Each trainer is setup steps + a loop + save (issue: loops that read top to bottom)."""
    import ast

    train = REPO / "src" / "mmaffect" / "train"
    long = []
    for name in ("lgsrr.py", "p2e.py", "p2e_phases.py", "checkpointing.py", "runtime.py"):
        for node in ast.walk(ast.parse((train / name).read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 80:
                long.append(f"{name}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)")
    assert long == []
