"""P2E phases as data: the shipped configs, config validation, and per-phase trainability on the tiny model
(exactly the named modules require grad, and only they change after optimizer steps)."""

from pathlib import Path

import numpy as np
import pytest
import torch

from mmaffect.train.p2e_phases import (
    P2EConfigError,
    build_config,
    canonical_name,
    is_lora_parameter,
    load_config,
    read_config_file,
)

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
ADAPTERS = {
    "speech": ("speech_qformer.", "audio_projector."),
    "visual": ("visual_qformer.", "video_projector."),
    "face": ("face_temporal.", "no_face_embedding.", "face_projector."),
    "fusion": ("fusion.", "fusion_projector."),
}
# The tiny model's face multi-scale fusion is random (no FaceXFormer weights): it trains wherever the face adapter does.
RANDOM_FACE_FUSION = ("face_encoder.stage_projections.", "face_encoder.fuse.")
FACE = ADAPTERS["face"] + RANDOM_FACE_FUSION
# Written out from the paper (Sec. 3.2 / 4.1), independently of the code's module groups.
EXPECTED = {
    "phase1_speech": (ADAPTERS["speech"], False),
    "phase1_visual": (ADAPTERS["visual"] + FACE, False),
    "phase2_fusion": (ADAPTERS["speech"] + ADAPTERS["visual"] + FACE + ADAPTERS["fusion"], False),
    "phase3_multitask": (ADAPTERS["speech"] + ADAPTERS["visual"] + FACE + ADAPTERS["fusion"], True),
}
NEVER = ("vision_tower.", "audio_tower.", "face_encoder.backbone.", "language_model.")


def tiny_config(name="p2e_nano_emox.yaml", **overrides):
    raw = read_config_file(CONFIGS / name)
    tiny = read_config_file(CONFIGS / "p2e_tiny.yaml")  # inherits the full config: take its tiny settings
    for key in ("model", "lora", "training", "phase_overrides", "data_root"):
        raw[key] = tiny[key]
    return build_config(raw, overrides)


def test_paper_curriculum_config():
    config = load_config(CONFIGS / "p2e_nano_emox.yaml")
    phases = {p.name: p for p in config.phases}
    assert [p.name for p in config.phases] == ["phase1_speech", "phase1_visual", "phase2_fusion", "phase3_multitask"]
    assert [p.stage for p in config.phases] == [1, 1, 2, 3]
    assert (phases["phase1_speech"].learning_rate, phases["phase1_speech"].max_steps) == (3e-4, 15000)
    assert (phases["phase1_visual"].learning_rate, phases["phase1_visual"].max_steps) == (3e-4, 25000)
    assert (phases["phase2_fusion"].learning_rate, phases["phase2_fusion"].max_steps) == (1e-5, 5000)
    p3 = phases["phase3_multitask"]
    assert (p3.learning_rate, p3.max_steps, p3.uses_lora) == (8e-6, 300000, True)
    assert p3.mixture == {"MER": 18, "OV-MER": 28, "MIR": 5, "ERI": 31, "ERG": 18}
    assert {r.dataset for r in phases["phase1_speech"].data["MER"]} == {"crema_d", "m3ed"}
    assert {r.dataset for r in phases["phase1_visual"].data["MER"]} == {"ferv39k", "caer"}
    assert {r.dataset for r in phases["phase2_fusion"].data["MIR"]} == {"mintrec", "mintrec2"}
    assert not any(p.uses_lora for p in config.phases[:3])
    assert config.lora["preset"] == "paper" and config.training.per_device_batch_size == 3
    assert config.training.gradient_accumulation_steps == 4
    assert config.data_root == "data" and config.datasets["caer"].path == "data/CAER"


def test_baselines_are_configs():
    jo_t = load_config(CONFIGS / "p2e_jo_t.yaml")
    assert [p.name for p in jo_t.phases] == ["joint"] and jo_t.strategy == "jo_t"
    assert jo_t.phases[0].max_steps == 345000 == 25000 + 15000 + 5000 + 300000
    assert set(jo_t.phases[0].mixture) == {"MER", "OV-MER", "MIR", "ERI", "ERG"} and jo_t.phases[0].uses_lora
    reverse = load_config(CONFIGS / "p2e_reverse.yaml")
    assert [p.name for p in reverse.phases] == ["phase3_multitask", "phase2_fusion", "phase1_visual", "phase1_speech"]
    assert reverse.strategy == "reverse_p2e"
    tiny = load_config(CONFIGS / "p2e_tiny.yaml", data_root="/somewhere")
    assert all(p.max_steps == 4 for p in tiny.phases) and tiny.model["init"] == "random"
    assert tiny.datasets["avamerg"].path == "/somewhere/AvaMERG/train.json"


def test_overrides_and_variables():
    config = load_config(CONFIGS / "p2e_nano_emox.yaml", ["training.per_device_batch_size=2", "phase_overrides.*.max_steps=7"],
                         data_root="/d", output_dir="/o")  # fmt: skip
    assert config.training.per_device_batch_size == 2 and all(p.max_steps == 7 for p in config.phases)
    assert config.output_dir == "/o" and config.datasets["mintrec"].options["media_dir"] == "/d/MIntRec/video"


def _one_phase(**fields):
    phase = {"name": "x", "trainable": ["fusion"], "learning_rate": 1e-4, "max_steps": 1, "mixture": {"MER": 1}, "data": {"MER": ["caer"]}}
    phase.update(fields)
    return {"phases": [phase]}


@pytest.mark.parametrize(
    "change, message",
    [
        (_one_phase(trainable=["nope"]), "unknown module group 'nope'"),
        (_one_phase(trainable=["encoders"]), "stays frozen"),
        (_one_phase(mixture={"ERG": 1}), r"task\(s\) \['ERG'\] have a mixture weight but no 'data'"),
        (_one_phase(data={"MER": ["nowhere"]}), "names dataset 'nowhere'"),
        (_one_phase(epochs=3), r"unknown field\(s\) \['epochs'\]"),
        (_one_phase(mixture={"XYZ": 1}, data={"XYZ": ["caer"]}), r"unknown task\(s\) \['XYZ'\]"),
        (_one_phase(mixture={"ERI": 1}, data={"ERI": ["avamerg"]}), "read for tasks"),
        (_one_phase(max_steps=0), "max_steps must be >= 1"),
        ({"model_type": "lgsrr"}, "model_type must be 'nano_emox'"),
        ({"phase_order": ["phase9"]}, "phase_order names unknown phase"),
        ({"datasets": {"caer": {"reader": "nope", "path": "x"}}}, "reader 'nope' is unknown"),
    ],
)
def test_bad_configs_name_the_problem(change, message):
    raw = read_config_file(CONFIGS / "p2e_nano_emox.yaml")
    raw.update(change)
    with pytest.raises(P2EConfigError, match=message):
        build_config(raw)


def test_canonical_names_fold_peft_wrappers():
    assert canonical_name("base_model.model.fusion.modules_to_save.default.gate.0.weight") == "fusion.gate.0.weight"
    assert canonical_name("base_model.model.fusion.original_module.gate.0.weight") is None
    name = "base_model.model.language_model.model.layers.0.self_attn.q_proj.base_layer.weight"
    assert canonical_name(name) == "language_model.model.layers.0.self_attn.q_proj.weight"
    assert is_lora_parameter(canonical_name("base_model.model.language_model.model.layers.0.mlp.up_proj.lora_A.default.weight"))


def _batch(processor):
    """Two samples using all four branches; one clip has faces, the other none (no-face embedding path)."""
    from mmaffect.models.nano_emox.media_nano_emox import FaceTrack

    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (4, 32, 32, 3), dtype=np.uint8) for _ in range(2)]
    audio = [rng.standard_normal(4000).astype(np.float32) * 0.1 for _ in range(2)]
    faces = [FaceTrack(crops=frames[0], found=[True] * 4), FaceTrack(crops=np.zeros_like(frames[1]), found=[False] * 4)]
    prompts = [processor.build_prompt("MER", candidate_labels=["happy", "sad"], subtitle=f"sample {i}") for i in range(2)]
    return processor(text=prompts, videos=frames, audio=audio, faces=faces, answers=["happy", "sad"], padding_side="right")


@pytest.mark.parametrize("phase_name", list(EXPECTED))
def test_exactly_the_named_modules_train_and_only_they_change(phase_name):
    from mmaffect.train.p2e import forward_loss, prepare_phase_model

    torch.manual_seed(0)
    config = tiny_config(**{f"phase_overrides.{phase_name}.learning_rate": 1e-2})
    phase = config.phase(phase_name)
    model, processor, groups = prepare_phase_model(config, phase)
    prefixes, lora = EXPECTED[phase_name]

    params = {}
    for name, p in model.named_parameters():
        plain = canonical_name(name)
        params[name] = (plain, p)
    trainable = {plain for plain, p in params.values() if plain is not None and p.requires_grad}
    expected = {plain for plain, _ in params.values() if plain is not None and (plain.startswith(prefixes) or (lora and is_lora_parameter(plain)))}
    assert trainable == expected
    assert not any(plain.startswith(NEVER) and not is_lora_parameter(plain) for plain in trainable)
    assert any(is_lora_parameter(n) for n in trainable) == lora
    assert all(not p.requires_grad for plain, p in params.values() if plain is None)  # PEFT's original copies

    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.05)
    batch = dict(_batch(processor))
    model.train()
    for _ in range(2):  # two steps: LoRA B starts at zero, so LoRA A only gets gradients from the second step
        loss, per_row = forward_loss(model, batch)
        assert torch.isfinite(loss) and per_row.shape == (2,)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    changed = {params[name][0] or name for name, p in model.named_parameters() if not torch.equal(before[name], p.detach())}
    assert changed <= trainable, f"frozen parameters changed: {sorted(changed - trainable)[:5]}"
    for module in {".".join(n.split(".")[:2]) if n.startswith("face_encoder.") else n.split(".")[0] for n in trainable if not is_lora_parameter(n)}:
        assert any(n.startswith(module + ".") for n in changed), f"no parameter of {module} changed"
    if lora:
        assert any(is_lora_parameter(n) and ".lora_A." in n for n in changed) and any(".lora_B." in n for n in changed)
