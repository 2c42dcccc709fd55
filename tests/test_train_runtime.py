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
