"""P2E trainer end to end on the tiny model and the synthetic multimodal corpus (frames + audio + text written
with PyAV / soundfile / Pillow): all phases, artifacts, frozen weights, mergeable LoRA, resume after a kill,
the Jo-T and Reverse P2E baselines from their configs, and a real 2-process CPU launch."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mmaffect.train.p2e import SimulatedInterruption, load_run_config, run_from_config

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
TINY = CONFIGS / "p2e_tiny.yaml"
PHASES = ["phase1_speech", "phase1_visual", "phase2_fusion", "phase3_multitask"]


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def part(tensors, prefix):
    return {k: v for k, v in tensors.items() if k.startswith(prefix)}


def same(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from mmaffect.train.p2e_synthetic import make_synthetic_corpus

    return make_synthetic_corpus(tmp_path_factory.mktemp("p2e_data"))


@pytest.fixture(scope="module")
def p2e_run(corpus, tmp_path_factory):
    """The whole curriculum (4 phases, 3 stages) on the tiny model; timed."""
    out = tmp_path_factory.mktemp("p2e_out")
    start = time.perf_counter()
    summary = run_from_config(load_run_config(TINY, data_root=corpus, output_dir=out))
    return out, summary, time.perf_counter() - start


def test_all_three_stages_run_and_write_their_artifacts(p2e_run):
    out, summary, seconds = p2e_run
    assert seconds < 180, f"the tiny end-to-end run took {seconds:.0f}s"
    assert [p["name"] for p in summary["phases"]] == PHASES
    assert [p["phase"]["stage"] for p in summary["phases"]] == [1, 1, 2, 3]
    for name in PHASES:
        folder = out / name
        model = folder / "model"
        for file in ("config.json", "model.safetensors", "modeling_nano_emox.py", "configuration_nano_emox.py",
                     "processing_nano_emox.py", "processor_config.json", "tokenizer.json"):  # fmt: skip
            assert (model / file).is_file(), f"{name}: {file} missing"
        assert json.loads((model / "config.json").read_text())["auto_map"]["AutoModel"].startswith("modeling_nano_emox.")
        report = (folder / "trainable_parameters.txt").read_text()
        assert report.startswith(f"Phase {name}: trainable vs frozen parameters")
        done = json.loads((folder / "DONE.json").read_text())
        assert done["steps"] == 4 and done["world_size"] == 1
        # the budget counts micro-batches (paper, public code): 4 micro-batches of 2 = 2 optimizer steps of 2 x 2
        assert (done["step_unit"], done["micro_batches"], done["optimizer_steps"], done["samples"]) == ("micro_batch", 4, 2, 8)
        metrics = [json.loads(line) for line in (folder / "train_log.jsonl").read_text().splitlines()]
        assert [m["step"] for m in metrics] == [2, 4] and [m["optimizer_steps"] for m in metrics] == [1, 2]
        assert all(m["loss"] > 0 for m in metrics)
        assert not (folder / "checkpoints").exists()  # removed once the phase is done
    phase3_tasks = {k for m in (out / "phase3_multitask" / "train_log.jsonl").read_text().splitlines() for k in json.loads(m) if k.startswith("loss/")}
    assert phase3_tasks and phase3_tasks <= {"loss/MER", "loss/OV-MER", "loss/MIR", "loss/ERI", "loss/ERG"}
    assert json.loads((out / "phase1_speech" / "train_log.jsonl").read_text().splitlines()[0])["samples/MER"] == 4  # 2 x 2 accumulation
    assert (out / "phase3_multitask" / "lora_adapter" / "adapter_config.json").is_file()
    assert not (out / "phase2_fusion" / "lora_adapter").exists()
    card = (out / "phase3_multitask" / "model" / "README.md").read_text()
    assert "# Nano-EmoX (P2E curriculum)" in card and "| 4 | phase3_multitask | 3 |" in card and "$" not in card.split("```")[0]
    assert summary["final_model"] == str(out / "phase3_multitask" / "model")


def test_each_phase_model_records_the_task_prompts_trained_so_far(p2e_run):
    from mmaffect.datasets_scripts.instruction_data import TASKS
    from mmaffect.evaluation.scoring import default_prompt_task

    out, summary, _ = p2e_run
    seen: set[str] = set()
    for record in summary["phases"]:
        seen |= {task for task, weight in record["phase"]["mixture"].items() if weight > 0}
        config = json.loads((out / record["name"] / "model" / "config.json").read_text())
        assert config["trained_tasks"] == [t for t in TASKS if t in seen], record["name"]
    assert json.loads((out / PHASES[0] / "model" / "config.json").read_text())["trained_tasks"] == ["MER"]
    card = (out / PHASES[-1] / "model" / "README.md").read_text()
    prompt = default_prompt_task("mer", sorted(seen))[0]
    assert f"Trained task prompts: {', '.join(t for t in TASKS if t in seen)}" in card and f"**{prompt}** prompt" in card


def test_frozen_parts_never_change_and_each_phase_trains_its_modules(p2e_run):
    out, _, _ = p2e_run
    w = {name: weights(out / name / "model") for name in PHASES}
    for encoder in ("vision_tower.", "audio_tower.", "face_encoder.backbone."):
        assert all(same(part(w[PHASES[0]], encoder), part(w[name], encoder)) for name in PHASES[1:]), encoder
    # the tiny model's face fusion is random (no FaceXFormer weights): it trains with the face adapter, never frozen
    fusion_layers = ("face_encoder.stage_projections.", "face_encoder.fuse.")
    assert all(not same(part(w["phase1_speech"], p), part(w["phase1_visual"], p)) for p in fusion_layers)
    # LM base frozen in phases 1-2; phase 3 merges its LoRA into the attention / MLP projections only
    lm = [part(w[name], "language_model.") for name in PHASES]
    assert same(lm[0], lm[1]) and same(lm[1], lm[2])
    changed = {k for k in lm[2] if not torch.equal(lm[2][k], lm[3][k])}
    assert changed and all(k.split(".")[-2] in {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"} for k in changed)
    # phase1_visual trains the visual/face branches and leaves the speech branch of phase1_speech untouched
    assert same(part(w["phase1_speech"], "speech_qformer."), part(w["phase1_visual"], "speech_qformer."))
    assert not same(part(w["phase1_speech"], "visual_qformer."), part(w["phase1_visual"], "visual_qformer."))
    assert not same(part(w["phase1_speech"], "face_projector."), part(w["phase1_visual"], "face_projector."))
    assert same(part(w["phase1_speech"], "fusion."), part(w["phase1_visual"], "fusion."))  # fusion waits for phase 2
    assert not same(part(w["phase1_visual"], "fusion."), part(w["phase2_fusion"], "fusion."))


def test_lora_adapter_is_a_peft_adapter_that_merges_into_the_final_model(p2e_run):
    from peft import PeftModel

    from mmaffect.models.nano_emox import NanoEmoXForConditionalGeneration

    out, _, _ = p2e_run
    base = NanoEmoXForConditionalGeneration.from_pretrained(out / "phase2_fusion" / "model", dtype=torch.float32)
    before = {k: v.clone() for k, v in base.state_dict().items()}
    merged = PeftModel.from_pretrained(base, out / "phase3_multitask" / "lora_adapter").merge_and_unload().state_dict()
    final = NanoEmoXForConditionalGeneration.from_pretrained(out / "phase3_multitask" / "model", dtype=torch.float32).state_dict()
    assert merged.keys() == final.keys()
    for key, value in final.items():
        assert torch.allclose(merged[key], value, atol=1e-6), key
    # the adapter carries phase 3's LoRA and its other trained modules (modules_to_save)
    assert not torch.equal(final["fusion_projector.linear_1.weight"], before["fusion_projector.linear_1.weight"])
    q = "language_model.model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(final[q], before[q])


def test_final_model_loads_with_remote_code(p2e_run):
    from transformers import AutoModel, AutoProcessor

    out, _, _ = p2e_run
    model = AutoModel.from_pretrained(out / "phase3_multitask" / "model", trust_remote_code=True)
    processor = AutoProcessor.from_pretrained(out / "phase3_multitask" / "model", trust_remote_code=True)
    assert type(model).__name__ == "NanoEmoXForConditionalGeneration" and processor.num_video_tokens == model.config.num_video_tokens


def _copy_done_phases(source: Path, target: Path, names):
    for name in names:
        shutil.copytree(source / name, target / name)


def test_resume_after_a_kill_gives_the_weights_of_an_uninterrupted_run(p2e_run, corpus, tmp_path):
    out, _, _ = p2e_run
    sets = ["phase_overrides.phase3_multitask.max_steps=8", "training.save_steps=4"]  # 4 optimizer steps, a checkpoint after 2
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    for target in (straight, killed):
        _copy_done_phases(out, target, PHASES[:3])  # phases 1-2 done: both runs start phase 3 from the same model
    run_from_config(load_run_config(TINY, data_root=corpus, output_dir=straight, sets=sets))

    config = load_run_config(TINY, data_root=corpus, output_dir=killed, sets=sets)
    with pytest.raises(SimulatedInterruption):
        run_from_config(config, interrupt_after_steps={"phase3_multitask": 6})
    checkpoints = killed / "phase3_multitask" / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["step-4"]  # step 6 was lost with the "kill"
    (checkpoints / "step-6").mkdir()  # a checkpoint half-written when the process died: no COMPLETE marker
    (checkpoints / "step-6" / "optimizer.bin").write_bytes(b"truncated")
    assert not (killed / "phase3_multitask" / "DONE.json").exists()

    summary = run_from_config(load_run_config(TINY, data_root=corpus, output_dir=killed, sets=sets))
    assert [p["name"] for p in summary["phases"]] == PHASES
    a, b = weights(straight / "phase3_multitask" / "model"), weights(killed / "phase3_multitask" / "model")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    adapters = [load_file(str(d / "phase3_multitask" / "lora_adapter" / "adapter_model.safetensors")) for d in (straight, killed)]
    assert all(torch.equal(adapters[0][k], adapters[1][k]) for k in adapters[0])
    steps = [json.loads(line)["step"] for line in (killed / "phase3_multitask" / "train_log.jsonl").read_text().splitlines()]
    assert steps == [2, 4, 6, 6, 8]  # step 6 logged by the killed run, then again after resuming from step 4


def test_a_changed_phase_definition_is_refused(p2e_run, corpus, tmp_path):
    out, _, _ = p2e_run
    _copy_done_phases(out, tmp_path, PHASES[:1])
    from mmaffect.train.p2e_phases import P2EConfigError

    config = load_run_config(TINY, data_root=corpus, output_dir=tmp_path, sets=["phase_overrides.phase1_speech.learning_rate=0.1"])
    with pytest.raises(P2EConfigError, match="different definition of phase 'phase1_speech'"):
        run_from_config(config)


def test_jo_t_runs_from_its_config(corpus, tmp_path):
    config = load_run_config(CONFIGS / "p2e_jo_t.yaml", [TINY], data_root=corpus, output_dir=tmp_path, max_steps=2)
    summary = run_from_config(config)
    assert [p["name"] for p in summary["phases"]] == ["joint"] and config.strategy == "jo_t"
    assert (tmp_path / "joint" / "lora_adapter" / "adapter_model.safetensors").is_file()
    report = json.loads((tmp_path / "joint" / "trainable_parameters.json").read_text())
    assert set(report["groups"]) == {"speech_adapter", "visual_adapter", "face_adapter", "fusion", "lora", "face_fusion"}
    assert "Jo-T joint training" in (tmp_path / "joint" / "model" / "README.md").read_text()


def test_reverse_p2e_runs_from_its_config(corpus, tmp_path):
    config = load_run_config(CONFIGS / "p2e_reverse.yaml", [TINY], data_root=corpus, output_dir=tmp_path, max_steps=1)
    summary = run_from_config(config)
    assert [p["name"] for p in summary["phases"]] == list(reversed(PHASES))
    w = {name: weights(tmp_path / name / "model") for name in PHASES}
    # LoRA phase first; its merged LM stays frozen through the later phases
    assert (tmp_path / "phase3_multitask" / "lora_adapter").is_dir()
    assert same(part(w["phase3_multitask"], "language_model."), part(w["phase1_speech"], "language_model."))
    assert summary["final_model"] == str(tmp_path / "phase1_speech" / "model")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_cpu_launch(corpus, tmp_path):
    """``accelerate launch --cpu --num_processes 2`` runs ONE process; this is the launch that gives two."""
    env = dict(os.environ, ACCELERATE_USE_CPU="1", OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(_free_port()),
        "-m", "mmaffect.train.p2e", "--config", str(TINY), "--data-root", str(corpus), "--output-dir", str(tmp_path),
        "--phases", "phase1_speech", "--max-steps", "4",
    ]  # fmt: skip
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    done = json.loads((tmp_path / "phase1_speech" / "DONE.json").read_text())
    assert done["world_size"] == 2
    metrics = [json.loads(line) for line in (tmp_path / "phase1_speech" / "train_log.jsonl").read_text().splitlines()]
    # per optimizer step: 2 processes x batch 2 x accumulation 2 samples, each process on its own shard
    assert [m["samples/MER"] for m in metrics] == [8, 8]
    assert not (tmp_path / "phase1_visual").exists()


def test_components_and_pretrained_init_from_local_folders(corpus, tmp_path):
    """The Hub code paths (pretrained parts by id, a saved Nano-EmoX by id) against local folders."""
    from transformers import AutoModel, AutoModelForCausalLM

    from mmaffect.models.nano_emox import NanoEmoXConfig, NanoEmoXProcessor
    from mmaffect.datasets_scripts.instruction_data import P2ECollator, read_dataset
    from mmaffect.train.p2e import build_initial_model, forward_loss

    cfg = NanoEmoXConfig.tiny()
    parts = {
        "vision": AutoModel.from_config(cfg.vision_config),
        "audio": AutoModel.from_config(cfg.audio_config),
        "face": AutoModel.from_config(cfg.face_config.backbone_config),
        "language_model": AutoModelForCausalLM.from_config(cfg.text_config),
    }
    for name, module in parts.items():
        module.save_pretrained(tmp_path / name)
    tiny = NanoEmoXProcessor.tiny()
    tiny.tokenizer.save_pretrained(tmp_path / "tokenizer")
    tiny.image_processor.save_pretrained(tmp_path / "image_processor")
    tiny.feature_extractor.save_pretrained(tmp_path / "feature_extractor")
    spec = {
        "init": "components",
        "components": {name: str(tmp_path / name) for name in parts},
        "config": {"preset": "tiny"},
        "processor": {name: str(tmp_path / name) for name in ("tokenizer", "image_processor", "feature_extractor")}
        | {"kwargs": {"num_frames": 4, "face_size": 32, "face_input": "full_frame"}},
    }
    model, processor = build_initial_model(spec)
    lm = parts["language_model"].state_dict()
    assert all(torch.equal(model.language_model.state_dict()[k], v) for k, v in lm.items())
    assert model.config.placeholder_token_ids == processor.placeholder_token_ids
    record = read_dataset("mer_caption_plus", corpus / "MER-Caption+", tasks=["ERI"])[0]
    loss, _ = forward_loss(model, dict(P2ECollator(processor)([record])["inputs"]))
    assert torch.isfinite(loss)

    model.save_pretrained(tmp_path / "saved")
    processor.save_pretrained(tmp_path / "saved")
    again, again_processor = build_initial_model({"init": "pretrained", "pretrained": str(tmp_path / "saved"), "processor": {"tokenizer": "ignored"}})
    assert again_processor.num_frames == 4 and torch.equal(again.fusion_projector.linear_1.weight, model.fusion_projector.linear_1.weight)
