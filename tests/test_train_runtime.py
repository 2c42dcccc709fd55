"""train/runtime.py: one mixed-precision rule for both trainers and inference, and the CPU helpers live outside
the LGSRR trainer (env and the evaluation predictors do not import it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from mmaffect.train import runtime

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _run(script: str) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(("flags", "expected"), [([], "no"), (["avx512_bf16"], "bf16"), (["amx_bf16", "avx512_bf16"], "bf16")])
def test_auto_is_bf16_only_on_cpus_that_run_it_natively(monkeypatch, flags, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(runtime, "cpu_native_bf16_flags", lambda: flags)
    assert runtime.resolve_mixed_precision("auto") == expected
    assert [runtime.resolve_mixed_precision(v) for v in ("no", "fp16", "bf16")] == ["no", "fp16", "bf16"]


def test_p2e_accepts_auto_and_resolves_it_as_lgsrr_does(tmp_path):
    report = _run(f"""
        import json
        from mmaffect.train import lgsrr
        from mmaffect.train.p2e import P2ETrainer
        from mmaffect.train.p2e_phases import build_config, read_config_file
        from mmaffect.train.runtime import resolve_mixed_precision

        raw = read_config_file({str(CONFIGS / "p2e_tiny.yaml")!r})
        config = build_config(raw, ["training.mixed_precision=auto", "output_dir={tmp_path.as_posix()}"])
        trainer = P2ETrainer(config)
        lgsrr_config = lgsrr.config_from_dict({{"mixed_precision": "auto"}})
        print(json.dumps({{"configured": config.training.mixed_precision, "trainer": trainer.config.training.mixed_precision,
                           "accelerator": trainer.accelerator.mixed_precision, "rule": resolve_mixed_precision("auto"),
                           "lgsrr_configured": lgsrr_config.mixed_precision,
                           "lgsrr_rule_is_the_same": lgsrr.resolve_mixed_precision is resolve_mixed_precision}}))
    """)
    assert report["configured"] == "auto" == report["lgsrr_configured"]  # the caller's config is left as written
    assert report["trainer"] == report["accelerator"] == report["rule"] and report["rule"] in ("no", "bf16", "fp16")
    assert report["lgsrr_rule_is_the_same"]


def test_env_and_the_predictors_do_not_import_the_lgsrr_trainer():
    report = _run("""
        import json, sys
        from mmaffect import env
        from mmaffect.evaluation import predictors
        info = env.collect()
        print(json.dumps({"lgsrr_loaded": "mmaffect.train.lgsrr" in sys.modules, "auto": info["mixed_precision_auto"],
                          "native_bf16": info["cpu"]["native_bf16"]}))
    """)
    assert report["lgsrr_loaded"] is False
    assert report["auto"] in ("no", "bf16", "fp16") and isinstance(report["native_bf16"], bool)


def test_report_to_has_one_rule_in_both_trainers(tmp_path):
    from test_train_lgsrr_fixtures import tiny_config

    from mmaffect.train.lgsrr import config_from_dict, load_yaml
    from mmaffect.train.p2e_phases import P2EConfigError, build_config, read_config_file

    assert runtime.report_targets("none") == runtime.report_targets(None) == runtime.report_targets([]) == []
    assert runtime.report_targets("tensorboard") == runtime.report_targets(["tensorboard"]) == ["tensorboard"]
    for bad in (["none"], [""], 3, [3]):
        with pytest.raises(ValueError, match="report_to"):
            runtime.report_targets(bad)
    # LGSRR takes a list as P2E does; P2E takes a single name as LGSRR does; both refuse the same bad value
    values = load_yaml(tiny_config(tmp_path))
    assert runtime.report_targets(config_from_dict(values | {"report_to": ["tensorboard"]}).report_to) == ["tensorboard"]
    with pytest.raises(ValueError, match="report_to"):
        config_from_dict(values | {"report_to": [""]})
    raw = read_config_file(str(CONFIGS / "p2e_tiny.yaml"))
    assert build_config(raw, ["training.report_to=tensorboard"]).training.report_to == ["tensorboard"]
    assert build_config(raw, ["training.report_to=none"]).training.report_to == []
    with pytest.raises(P2EConfigError, match="report_to"):
        build_config(raw, ["training.report_to=['']"])


def test_both_trainers_write_the_same_log_file_name(tmp_path):
    from test_train_lgsrr_fixtures import tiny_config

    from mmaffect.train import cli
    from mmaffect.train.p2e import load_run_config, run_from_config
    from mmaffect.train.p2e_synthetic import make_synthetic_corpus

    assert cli.main(["--config", str(tiny_config(tmp_path, num_train_epochs=1))]) == 0
    lgsrr_lines = [json.loads(line) for line in (tmp_path / "run" / runtime.TRAIN_LOG).read_text().splitlines()]
    assert lgsrr_lines and "train_loss" in lgsrr_lines[0]
    corpus = make_synthetic_corpus(tmp_path / "corpus")
    sets = ["phase_overrides.phase1_speech.max_steps=2", "training.save_steps=0"]
    run_from_config(load_run_config(CONFIGS / "p2e_tiny.yaml", data_root=corpus, output_dir=tmp_path / "p2e", sets=sets),
                    phases=["phase1_speech"])
    p2e_lines = [json.loads(line) for line in (tmp_path / "p2e" / "phase1_speech" / runtime.TRAIN_LOG).read_text().splitlines()]
    assert p2e_lines and "loss" in p2e_lines[0]
