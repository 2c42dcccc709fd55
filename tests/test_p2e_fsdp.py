"""FSDP for P2E: ``accelerate launch --config_file configs/accelerate/p2e_fsdp.yaml`` with 2 CPU processes (gloo) trains
phase 3 (LoRA + modules_to_save, frozen encoders and LM base weights sharded with FSDP2) and saves the same model
as a 1-process run of the same global batch (batch 1 x accumulation 2), within float tolerance.

Accelerate enables FSDP only on accelerator devices (on CPU it runs the launch as DDP); ``MMAFFECT_FSDP_ON_CPU=1`` lets
the trainer shard with torch's FSDP2 on CPU, which is what makes this test possible without GPUs."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mmaffect.train.p2e import load_run_config, run_from_config

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "p2e_tiny.yaml"
FSDP_CONFIG = REPO / "configs" / "accelerate" / "p2e_fsdp.yaml"
# phase 3 alone, two optimizer steps, no dropout anywhere (the two runs must see the same computation)
SETS = [
    "phase_order=[phase3_multitask]", "training.per_device_batch_size=1", "training.step_unit=optimizer_step",
    "phase_overrides.phase3_multitask.max_steps=2", "phase_overrides.phase3_multitask.learning_rate=0.01",
    "training.save_steps=0", "lora.dropout=0.0",
    "model.config={preset: tiny, qformer_config: {dropout: 0.0, attention_dropout: 0.0}, fusion_encoder_config: {dropout: 0.0}, face_adapter_dropout: 0.0}",
]  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from mmaffect.train.p2e_synthetic import make_synthetic_corpus

    return make_synthetic_corpus(tmp_path_factory.mktemp("p2e_fsdp_data"))


def test_fsdp_two_cpu_processes_save_the_model_of_a_single_process_run(corpus, tmp_path):
    fsdp_out, single_out = tmp_path / "fsdp", tmp_path / "single"
    env = dict(os.environ, ACCELERATE_USE_CPU="1", MMAFFECT_FSDP_ON_CPU="1", OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1",
               TOKENIZERS_PARALLELISM="false")  # fmt: skip
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(FSDP_CONFIG), "--num_processes", "2",
        "--mixed_precision", "no", "--main_process_port", str(_free_port()),
        "-m", "mmaffect.train.p2e", "--config", str(TINY), "--data-root", str(corpus), "--output-dir", str(fsdp_out),
        "--set", "training.gradient_accumulation_steps=1", *[arg for s in SETS for arg in ("--set", s)],
    ]  # fmt: skip
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    done = json.loads((fsdp_out / "phase3_multitask" / "DONE.json").read_text())
    assert (done["distributed_type"], done["world_size"], done["optimizer_steps"]) == ("FSDP", 2, 2)

    # the same two optimizer steps on one process: 2 micro-batches of 1 = the 2 processes' samples, in draw order
    run_from_config(load_run_config(TINY, data_root=corpus, output_dir=single_out, sets=["training.gradient_accumulation_steps=2", *SETS]))
    single = json.loads((single_out / "phase3_multitask" / "DONE.json").read_text())
    assert (single["world_size"], single["samples"]) == (1, done["samples"]) == (1, 4)

    for file in ("model/model.safetensors", "lora_adapter/adapter_model.safetensors"):
        a, b = (load_file(str(out / "phase3_multitask" / file)) for out in (fsdp_out, single_out))
        assert a.keys() == b.keys(), file
        for key in a:
            torch.testing.assert_close(a[key], b[key], atol=2e-5, rtol=1e-4, msg=key)
    lora = load_file(str(fsdp_out / "phase3_multitask" / "lora_adapter" / "adapter_model.safetensors"))
    assert max(v.abs().max().item() for k, v in lora.items() if "lora_B" in k) > 1e-3  # it trained (LoRA B starts at 0)
