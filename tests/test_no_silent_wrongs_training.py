"""Issue 16, training side: every case that used to end in a silently wrong result, a doubled record or
an unclear error (configs, resume, train_log.jsonl, checkpoints, published folders, CLI errors).

Faults are simulated in-process where a real one cannot be timed: a "kill" is an exception raised at
the exact point (after the epoch's log line, in the middle of a model save); a full disk is a real
``torch.save`` whose bytes go to ``/dev/full`` (every write fails with ENOSPC, so torch raises the very
error it raises on a full disk)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from test_train_lgsrr_fixtures import tiny_config, write_tiny_encoder

from mmaffect.train import cli

REPO = Path(__file__).resolve().parents[1]


def train(config: Path, *extra: str) -> int:
    return cli.main(["--config", str(config), *extra])


def log_lines(run_dir: Path) -> list[str]:
    return (run_dir / "train_log.jsonl").read_text().splitlines()


class SimulatedKill(Exception):
    """Stands for a SIGKILL at the point where it is raised."""


# --------------------------------------------------------------------------- 1. nested model keys
def test_unknown_nested_model_key_is_refused_with_a_suggestion(tmp_path):
    config = tiny_config(tmp_path)
    with pytest.raises(ValueError, match=r"unknown config key\(s\): model\.poolng \(did you mean model\.pooling\?\)"):
        train(config, "--model.poolng", "mean")
    typo = tiny_config(tmp_path, model={"polling": "mean", "weight_hidden_dim": 16})
    with pytest.raises(ValueError, match=r"model\.polling \(did you mean model\.pooling\?\)"):
        train(typo)
    assert not (tmp_path / "run").exists()  # refused before anything was written
    # the text-only baseline used to fall back to mean pooling for any unknown pooling name
    with pytest.raises(ValueError, match=r"model\.pooling='maen'"):
        train(tiny_config(tmp_path, variant="text_only", model={"pooling": "maen"}))


# --------------------------------------------------------------------------- 2. resume with another config
def test_resume_with_changed_config_is_refused_unless_allowed(tmp_path):
    config = tiny_config(tmp_path, num_train_epochs=3)
    assert train(config, "--stop_after_epochs", "1") == 3
    saved = (tmp_path / "run" / "config.yaml").read_text()
    with pytest.raises(ValueError) as error:
        train(config, "--resume_from_checkpoint", "latest", "--seed", "1", "--learning_rate", "2e-3",
              "--train_batch_size", "4", "--model.pooling", "cls")
    message = str(error.value)
    for key in ("seed: 0 -> 1", "learning_rate: 0.001 -> 0.002", "train_batch_size: 8 -> 4",
                "model.pooling: 'mean' -> 'cls'", "--allow_config_change"):
        assert key in message, (key, message)
    assert (tmp_path / "run" / "config.yaml").read_text() == saved  # not overwritten
    # explicitly allowed: continues, and the change is logged in the run folder
    assert train(config, "--resume_from_checkpoint", "latest", "--learning_rate", "2e-3", "--allow_config_change") == 0
    changes = [json.loads(line) for line in (tmp_path / "run" / "config_changes.jsonl").read_text().splitlines()]
    assert len(changes) == 1 and changes[0]["changes"] == {"learning_rate": {"from": 0.001, "to": 0.002}}
    assert changes[0]["checkpoint"].endswith("step_0000005")
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["learning_rate"] == 0.002


def test_resume_check_compares_what_the_run_computes_only():
    import dataclasses

    from mmaffect.train.lgsrr import LGSRRTrainingConfig, config_changes

    saved = dataclasses.asdict(LGSRRTrainingConfig(model={"pooling": "mean"}))
    del saved["group_by_length"]  # a field an older mmaffect did not have: not a change
    now = LGSRRTrainingConfig(model={"pooling": "mean", "fusion": "sum"}, output_dir="elsewhere", stop_after_epochs=2,
                              num_workers=4, resume_from_checkpoint="latest", learning_rate=1e-5)
    assert config_changes(saved, now) == {"learning_rate": (6e-06, 1e-05), "model.fusion": (None, "sum")}


# --------------------------------------------------------------------------- 3. train_log.jsonl after a kill
def test_kill_right_after_the_epoch_log_line_leaves_no_duplicate(tmp_path, monkeypatch):
    from accelerate import Accelerator

    full = tiny_config(tmp_path, output_dir=str(tmp_path / "full"))
    assert train(full) == 0
    killed = tiny_config(tmp_path, output_dir=str(tmp_path / "killed"))
    real_save_state, calls = Accelerator.save_state, []

    def save_state(self, *args, **kwargs):  # the checkpoint of epoch 2 comes after its log line
        calls.append(1)
        if len(calls) == 2:
            raise SimulatedKill("killed before the epoch-2 checkpoint")
        return real_save_state(self, *args, **kwargs)

    monkeypatch.setattr(Accelerator, "save_state", save_state)
    with pytest.raises(SimulatedKill):
        train(killed)
    assert len(log_lines(tmp_path / "killed")) == 2  # epoch 2 logged, not checkpointed
    monkeypatch.setattr(Accelerator, "save_state", real_save_state)
    assert train(killed, "--resume_from_checkpoint", "latest") == 0
    assert log_lines(tmp_path / "killed") == log_lines(tmp_path / "full")


# --------------------------------------------------------------------------- 4. lengths and counts of 0
@pytest.mark.parametrize("key", ["max_text_length", "max_aspect_length", "max_train_samples", "max_eval_samples",
                                 "log_every_steps"])
def test_zero_lengths_and_counts_are_rejected(tmp_path, key):
    with pytest.raises(ValueError, match=rf"config {key}=0: must be >= 1"):
        train(tiny_config(tmp_path), f"--{key}", "0")


def test_evaluate_rejects_a_zero_max_text_length(tmp_path, capsys):
    from mmaffect.evaluation import cli_classifier as evaluate

    with pytest.raises(SystemExit):
        evaluate.main(["--model", str(tmp_path), "--dataset", "mintrec2", "--data-dir", str(tmp_path),
                       "--max-text-length", "0"])
    assert "--max-text-length: must be an integer >= 1, got '0'" in capsys.readouterr().err


# --------------------------------------------------------------------------- 7. checkpoints that do not match
def test_resume_from_a_checkpoint_with_a_missing_tensor_is_refused_naming_it(tmp_path):
    from safetensors.torch import load_file, save_file

    config = tiny_config(tmp_path)
    assert train(config, "--stop_after_epochs", "1") == 3
    checkpoint = next((tmp_path / "run" / "checkpoints").glob("step_*"))
    weights = load_file(str(checkpoint / "model.safetensors"))
    dropped = next(name for name in weights if name.endswith("classifier.weight"))
    del weights[dropped]
    save_file(weights, str(checkpoint / "model.safetensors"))
    with pytest.raises(ValueError, match=rf"{checkpoint}.*missing.*{dropped}"):
        train(config, "--resume_from_checkpoint", "latest")


@pytest.mark.parametrize("damage", ["zero_bytes", "truncated", "random_bytes"])
def test_resume_from_a_corrupt_checkpoint_names_the_file(tmp_path, damage):
    config = tiny_config(tmp_path)
    assert train(config, "--stop_after_epochs", "1") == 3
    path = next((tmp_path / "run" / "checkpoints").glob("step_*")) / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes({"zero_bytes": b"", "truncated": data[: len(data) // 2],
                      "random_bytes": os.urandom(len(data))}[damage])
    with pytest.raises(ValueError, match=rf"{path}: "):
        train(config, "--resume_from_checkpoint", "latest")


# --------------------------------------------------------------------------- 9. published folders
def _interrupted_save(real):
    """A save_pretrained that writes the folder, then truncates its weights and dies (a kill mid-save)."""

    def save(self, folder, *args, **kwargs):
        real(self, folder, *args, **kwargs)
        weights = Path(folder) / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:100])
        raise SimulatedKill(f"killed while writing {weights}")

    return save


def test_kill_during_the_best_model_save_leaves_no_partial_folder(tmp_path, monkeypatch):
    from mmaffect.train.lgsrr import LGSRRTrainingModule

    monkeypatch.setattr(LGSRRTrainingModule, "save_pretrained", _interrupted_save(LGSRRTrainingModule.save_pretrained))
    with pytest.raises(SimulatedKill):
        train(tiny_config(tmp_path))
    run = tmp_path / "run"
    assert not (run / "best_model").exists()  # absent rather than a truncated folder that looks like a model
    assert [p.name for p in run.iterdir() if p.name.startswith(".")] == []  # the staging folder is cleaned up


def test_kill_during_a_checkpoint_save_leaves_no_checkpoint_folder(tmp_path, monkeypatch):
    from accelerate import Accelerator

    real = Accelerator.save_state

    def save_state(self, output_dir=None, *args, **kwargs):
        real(self, output_dir, *args, **kwargs)
        raise SimulatedKill("killed before the checkpoint was complete")

    monkeypatch.setattr(Accelerator, "save_state", save_state)
    with pytest.raises(SimulatedKill):
        train(tiny_config(tmp_path))
    assert list((tmp_path / "run" / "checkpoints").iterdir()) == []


def test_kill_during_a_p2e_phase_save_leaves_no_partial_model_folder(tmp_path, monkeypatch):
    from mmaffect.models.nano_emox import NanoEmoXForConditionalGeneration
    from mmaffect.train.p2e import load_run_config, run_from_config
    from mmaffect.train.p2e_synthetic import make_synthetic_corpus

    corpus = make_synthetic_corpus(tmp_path / "data")
    monkeypatch.setattr(NanoEmoXForConditionalGeneration, "save_pretrained",
                        _interrupted_save(NanoEmoXForConditionalGeneration.save_pretrained))
    config = load_run_config(REPO / "configs" / "p2e_tiny.yaml", data_root=corpus, output_dir=tmp_path / "out", max_steps=1)
    with pytest.raises(SimulatedKill):
        run_from_config(config, phases=["phase1_speech"])
    phase = tmp_path / "out" / "phase1_speech"
    assert not (phase / "model").exists() and not (phase / "DONE.json").exists()
    assert [p.name for p in phase.iterdir() if p.name.startswith(".")] == []


def test_publish_folder_replaces_atomically_and_recovers_an_interrupted_swap(tmp_path):
    from mmaffect.checkpoints import publish_folder, recover_folder

    target = tmp_path / "best_model"
    with publish_folder(target) as staging:
        (staging / "weights").write_text("one")
    with publish_folder(target) as staging:
        (staging / "weights").write_text("two")
    assert (target / "weights").read_text() == "two" and sorted(os.listdir(tmp_path)) == ["best_model"]
    with pytest.raises(SimulatedKill), publish_folder(target) as staging:
        (staging / "weights").write_text("thr")
        raise SimulatedKill()
    assert (target / "weights").read_text() == "two" and sorted(os.listdir(tmp_path)) == ["best_model"]
    # a kill between the two renames of a swap leaves the previous folder as the backup: it comes back
    os.rename(target, tmp_path / ".best_model.old")
    recover_folder(target)
    assert (target / "weights").read_text() == "two" and sorted(os.listdir(tmp_path)) == ["best_model"]


# --------------------------------------------------------------------------- full disk
def test_full_disk_during_a_checkpoint_names_the_file_and_keeps_the_previous_one(tmp_path, monkeypatch, capsys):
    import stat

    from mmaffect.cli import main

    if not (os.path.exists("/dev/full") and stat.S_ISCHR(os.stat("/dev/full").st_mode)):
        pytest.skip("needs the /dev/full device (every write fails with ENOSPC)")
    real_save, calls = torch.save, []

    def save_to_full_disk(obj, f, *args, **kwargs):
        if str(f).endswith("optimizer.bin"):
            calls.append(f)
            if len(calls) == 2:  # the second checkpoint: create the file, its bytes go to a full device
                Path(f).write_bytes(b"")
                return real_save(obj, "/dev/full", *args, **kwargs)
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save_to_full_disk)
    config = tiny_config(tmp_path)
    capsys.readouterr()
    assert main(["train", "--config", str(config)]) == 2
    err = capsys.readouterr().err  # the progress bars of the run, then the error
    assert "Traceback" not in err and [line for line in err.splitlines() if "error:" in line] == [err.splitlines()[-1]]
    err = err.splitlines()[-1]
    assert err.startswith("mmaffect train: error: could not write ") and "optimizer.bin" in err
    assert "no space left on device" in err and "step_0000005 is intact" in err
    checkpoints = tmp_path / "run" / "checkpoints"
    assert [p.name for p in checkpoints.iterdir()] == ["step_0000005"]  # the previous one, complete
    assert (checkpoints / "step_0000005" / "progress_done").exists()


# --------------------------------------------------------------------------- unclear errors
def test_cli_errors_are_one_line_and_exit_2_and_debug_shows_the_traceback(tmp_path, capsys):
    from mmaffect.cli import main

    config = tiny_config(tmp_path)
    capsys.readouterr()
    assert main(["train", "--config", str(config), "--num_train_epochs", "many"]) == 2
    err = capsys.readouterr().err
    assert err == "mmaffect train: error: config num_train_epochs='many': expected an int\n"
    assert main(["evaluate", "--model", str(tmp_path / "nowhere"), "--dataset", "mintrec2", "--data-dir", "x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mmaffect evaluate: error: --model ") and len(err.splitlines()) == 1
    with pytest.raises(ValueError, match="num_train_epochs='many'"):
        main(["--debug", "train", "--config", str(config), "--num_train_epochs", "many"])


def test_train_py_prints_one_line_errors_too(tmp_path):
    proc = subprocess.run([sys.executable, str(REPO / "train.py"), "--config", str(tmp_path / "missing.yaml")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == f"mmaffect train: error: config file {tmp_path / 'missing.yaml'} does not exist"


def test_mixed_precision_no_is_accepted_from_yaml_and_the_command_line(tmp_path):
    from mmaffect.train.lgsrr import config_from_dict, load_yaml

    config = tiny_config(tmp_path)
    values = load_yaml(config)
    assert config_from_dict(cli.merge(values, cli.parse_overrides(["--mixed_precision", "no"]))).mixed_precision == "no"
    path = tmp_path / "no.yaml"
    path.write_text(config.read_text() + "mixed_precision: no\n")
    assert config_from_dict(load_yaml(path)).mixed_precision == "no"
    with pytest.raises(ValueError, match=r"config report_to=False: expected a string"):
        config_from_dict(values | {"report_to": False})


def test_p2e_mixed_precision_no_is_accepted():
    from mmaffect.train.p2e import load_run_config

    config = load_run_config(REPO / "configs" / "p2e_tiny.yaml", sets=["training.mixed_precision=no"])
    assert config.training.mixed_precision == "no"


def test_flags_without_values_are_named(tmp_path):
    config = tiny_config(tmp_path)
    with pytest.raises(ValueError, match=r"config seeds=\[True\]: must be a non-empty list of integers \(--seeds needs values"):
        train(config, "--seeds")
    with pytest.raises(ValueError, match=r"config seed=True: expected an int \(a flag without a value\?\)"):
        train(config, "--seed")


def test_yaml_syntax_error_names_the_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model_type: lgsrr\nmodel: {pooling: mean\nseed: 0\n")
    with pytest.raises(ValueError) as error:
        train(bad)
    assert str(error.value).startswith(f"config file {bad}: invalid YAML at line ") and "<unicode string>" not in str(error.value)


def test_missing_encoder_folder_is_named(tmp_path):
    config = tiny_config(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"encoder '/missing/encoder': the folder /missing/encoder does not exist"):
        train(config, "--encoder", "/missing/encoder")


# --------------------------------------------------------------------------- also: train.py overrides
def test_train_py_applies_overrides_to_the_embedded_demo(tmp_path):
    encoder = write_tiny_encoder(tmp_path / "encoder")
    out = tmp_path / "demo"
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    proc = subprocess.run([sys.executable, str(REPO / "train.py"), "--num_train_epochs", "1", "--encoder", str(encoder),
                           "--model.weight_hidden_dim", "8", "--max_train_samples", "12", "--max_eval_samples", "6",
                           "--mixed_precision", "no", "--output_dir", str(out)],
                          capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads((out / "results.json").read_text())
    assert results["epochs_run"] == 1 and results["finished"]
    assert yaml.safe_load((out / "config.yaml").read_text())["data_dir"] == "${demo_data}/data_text"  # the demo's
