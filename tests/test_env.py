"""mmaffect env: the fields a bug report needs, as Markdown and as JSON."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import torch
import transformers

from mmaffect import __version__, cli
from mmaffect.train.runtime import resolve_mixed_precision


def env_json(capsys, *args) -> dict:
    assert cli.main(["env", "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_json_fields_match_this_environment(capsys):
    info = env_json(capsys)
    assert info["mmaffect"] == __version__ and info["python"] == platform.python_version()
    assert info["torch"]["version"] == torch.__version__
    assert info["torch"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    deps = info["dependencies"]
    assert deps["transformers"] == transformers.__version__ and deps["torch"] == torch.__version__
    assert deps["pytest"] == metadata.version("pytest")  # the dev extra is listed too
    assert {"datasets", "accelerate", "peft", "safetensors", "av", "soundfile", "gradio"} <= set(deps)
    assert "mmaffect" not in deps  # the dev extra's mmaffect[demo] is no dependency of itself
    cpuinfo = Path("/proc/cpuinfo").read_text().split() if Path("/proc/cpuinfo").exists() else []
    assert info["cpu"]["native_bf16"] == ("amx_bf16" in cpuinfo or "avx512_bf16" in cpuinfo)
    assert info["mixed_precision_auto"] == resolve_mixed_precision("auto")
    assert len(info["gpus"]) == (torch.cuda.device_count() if torch.cuda.is_available() else 0)
    assert info["environment"].get("OMP_NUM_THREADS") == os.environ.get("OMP_NUM_THREADS")


def test_markdown_report_has_the_same_facts(capsys):
    assert cli.main(["env"]) == 0
    text = capsys.readouterr().out
    info = env_json(capsys)
    assert f"- mmaffect version: {__version__}" in text
    assert f"- torch CPU capability: {info['torch']['cpu_capability']}" in text
    assert f"    - transformers: {transformers.__version__}" in text
    assert f"- mixed_precision: auto resolves to: {info['mixed_precision_auto']}" in text
    assert ("- CPU native bf16: yes" in text) == info["cpu"]["native_bf16"]


@pytest.mark.skipif(torch.backends.cpu.get_cpu_capability() not in ("AVX512", "AVX512_BF16"),
                    reason="needs a CPU above AVX2 to show the capability being lowered")
def test_reports_the_capability_torch_actually_dispatches_to():
    out = subprocess.run([sys.executable, "-m", "mmaffect.env", "--json"], capture_output=True, text=True, check=True,
                         env=dict(os.environ, ATEN_CPU_CAPABILITY="avx2"))
    info = json.loads(out.stdout)
    assert info["torch"]["cpu_capability"] == "AVX2" and info["environment"]["ATEN_CPU_CAPABILITY"] == "avx2"
