"""Nano-EmoX model with tiny random weights: forward, backward, loss masking, generation with any modality subset."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmaffect.models.nano_emox import NanoEmoXConfig, NanoEmoXForConditionalGeneration, NanoEmoXProcessor
from mmaffect.models.nano_emox.media_nano_emox import FaceTrack

LABELS = ["happy", "sad", "angry"]


@pytest.fixture(scope="module")
def processor():
    return NanoEmoXProcessor.tiny()


@pytest.fixture()
def model():
    torch.manual_seed(0)
    return NanoEmoXForConditionalGeneration(NanoEmoXConfig.tiny()).eval()


def media(seed=0, num_frames=6, seconds=0.75, faces_found=None):
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (num_frames, 40, 48, 3), dtype=np.uint8)
    wave = (0.1 * rng.standard_normal(int(16000 * seconds))).astype(np.float32)
    found = faces_found if faces_found is not None else [True] * num_frames
    faces = FaceTrack(crops=rng.integers(0, 256, (num_frames, 32, 32, 3), dtype=np.uint8), found=found)
    return frames, wave, faces


def encode(processor, modalities="AVFM", seed=0, answer=None, task="MER", **media_kwargs):
    frames, wave, faces = media(seed, **media_kwargs)
    prompt = processor.build_prompt(task, modalities=modalities, candidate_labels=LABELS)
    return processor(text=[prompt], videos=[frames], audio=[wave], faces=[faces], answers=None if answer is None else [answer])


def test_forward_backward_trains_only_the_new_modules(model, processor):
    batch = encode(processor, answer="The most likely label is happy.")
    model.train()
    out = model(**batch)
    assert out.logits.shape == (1, batch["input_ids"].shape[1], model.config.text_config.vocab_size)
    assert torch.isfinite(out.loss)
    assert out.fusion_gate_weights.shape == (1, 3)
    torch.testing.assert_close(out.fusion_gate_weights.sum(-1), torch.ones(1))
    out.loss.backward()
    grads = {name: p.grad for name, p in model.named_parameters() if p.requires_grad}
    for prefix in ("visual_qformer", "speech_qformer", "face_temporal", "fusion.", "video_projector", "audio_projector", "face_projector", "fusion_projector"):
        touched = [g for name, g in grads.items() if name.startswith(prefix)]
        assert touched and all(g is not None for g in touched), prefix
        assert any(g.abs().sum() > 0 for g in touched), prefix
    frozen = [p for name, p in model.named_parameters() if name.split(".")[0] in ("vision_tower", "audio_tower", "face_encoder", "language_model")]
    assert frozen and all(not p.requires_grad and p.grad is None for p in frozen)


def test_frozen_encoders_stay_in_eval_mode(model):
    model.train()
    assert model.visual_qformer.training and model.fusion.training
    assert not model.vision_tower.training and not model.audio_tower.training and not model.face_encoder.training
    model.face_encoder.requires_grad_(True)
    model.train()
    assert model.face_encoder.training


def test_labels_cover_only_the_answer(model, processor):
    answer = "The most likely label is sad."
    batch = encode(processor, answer=answer)
    labels, ids = batch["labels"][0], batch["input_ids"][0]
    kept = labels != -100
    assert torch.equal(labels[kept], ids[kept])
    # the kept span is exactly the answer followed by the end-of-turn token, at the end of the sequence
    assert processor.tokenizer.decode(ids[kept]) == answer + processor.answer_suffix + processor.tokenizer.eos_token
    assert kept.nonzero().min() == len(ids) - int(kept.sum())
    out = model(**batch)
    logits = out.logits[0, :-1]
    manual = F.cross_entropy(logits[kept[1:]], ids[1:][kept[1:]])
    torch.testing.assert_close(out.loss, manual)


def test_placeholder_positions_are_never_targets(model, processor):
    batch = encode(processor)
    ids = batch["input_ids"]
    out = model(**batch, labels=ids.clone())  # unmasked labels: branch-token positions must still be ignored
    targets = ids[0, 1:].clone()
    placeholder = torch.zeros_like(targets, dtype=torch.bool)
    for token_id in model.config.placeholder_token_ids.values():
        placeholder |= targets == token_id
    config = model.config
    assert placeholder.sum() == config.num_video_tokens + config.num_audio_tokens + config.num_face_tokens + config.num_fusion_tokens
    manual = F.cross_entropy(out.logits[0, :-1][~placeholder], targets[~placeholder])
    torch.testing.assert_close(out.loss, manual)


@pytest.mark.parametrize("modalities", ["", "A", "V", "F", "M", "VF", "AVF", "AVFM"])
def test_generate_with_any_subset_of_modalities(model, processor, modalities):
    calls = {"vision_tower": 0, "audio_tower": 0, "face_encoder": 0}
    hooks = [getattr(model, name).register_forward_hook(lambda *a, n=name: calls.__setitem__(n, calls[n] + 1)) for name in calls]
    batch = encode(processor, modalities)
    generated = model.generate(**batch, max_new_tokens=4, min_new_tokens=4, do_sample=False)
    for hook in hooks:
        hook.remove()
    assert generated.shape == (1, batch["input_ids"].shape[1] + 4)
    assert torch.equal(generated[:, : batch["input_ids"].shape[1]], batch["input_ids"])
    letters = set(modalities.upper())
    # every branch runs once (the prefill), and only when its tokens are in the prompt
    assert calls["vision_tower"] == (1 if letters & {"V", "M"} else 0)
    assert calls["audio_tower"] == (1 if letters & {"A", "M"} else 0)
    assert calls["face_encoder"] == (1 if "F" in letters else 0)


def test_generate_with_and_without_cache_and_the_installed_cache_name(model, processor):
    from mmaffect.models.nano_emox.modeling_nano_emox import CACHE_NAME

    batch = encode(processor, "AVFM")
    with torch.no_grad():
        out = model(**batch, use_cache=True)
        # the output follows the installed transformers release's field name for the cache
        assert getattr(out, CACHE_NAME) is not None and getattr(out, CACHE_NAME).get_seq_length() == batch["input_ids"].shape[1]
        # the pre-5.24 keyword is still accepted as input
        legacy = model(**batch, past_key_values=None, use_cache=False)
    torch.testing.assert_close(legacy.logits, out.logits)
    cached = model.generate(**batch, max_new_tokens=5, min_new_tokens=5, do_sample=False, use_cache=True)
    uncached = model.generate(**batch, max_new_tokens=5, min_new_tokens=5, do_sample=False, use_cache=False)
    assert torch.equal(cached, uncached)


@pytest.mark.parametrize("modality", ["V", "A", "F", "M"])
def test_each_branch_changes_the_output_and_absent_ones_do_not(model, processor, modality):
    with torch.no_grad():
        base = model(**encode(processor, modality, seed=0)).logits[0, -1]
        other_media = model(**encode(processor, modality, seed=1)).logits[0, -1]
        assert not torch.allclose(base, other_media)  # the branch tokens reach the LM
        text_only = model(**encode(processor, "", seed=0)).logits[0, -1]
        text_only_other_media = model(**encode(processor, "", seed=1)).logits[0, -1]
    torch.testing.assert_close(text_only, text_only_other_media, rtol=0, atol=0)  # unused media are ignored


def test_mixed_batch_matches_single_samples(model, processor):
    frames, wave, faces = media(0)
    samples = [
        (processor.build_prompt("MER", modalities="AVFM", candidate_labels=LABELS), frames, wave, faces),
        (processor.build_prompt("MIR", modalities="A", candidate_labels=["thank", "complain"]), None, wave[:5000], None),
        (processor.build_prompt("ERG", modalities="VF", user_input="I lost my job."), frames[:3], None, faces),
        (processor.build_prompt("OV-MER", modalities=""), None, None, None),
    ]
    batch = processor(
        text=[s[0] for s in samples], videos=[s[1] for s in samples], audio=[s[2] for s in samples], faces=[s[3] for s in samples]
    )
    assert batch["video_sample_index"].tolist() == [0, 2]
    assert batch["audio_sample_index"].tolist() == [0, 1]
    assert batch["face_sample_index"].tolist() == [0, 2]
    with torch.no_grad():
        batched = model(**batch).logits[:, -1]
        for row, (prompt, video, audio, face) in enumerate(samples):
            single = model(**processor(text=[prompt], videos=[video], audio=[audio], faces=[face])).logits[0, -1]
            torch.testing.assert_close(batched[row], single, rtol=1e-4, atol=1e-5)


def test_clip_without_a_face_uses_the_learned_no_face_embedding(model, processor):
    no_face = [False] * 6
    with torch.no_grad():
        first = model(**encode(processor, "F", seed=0, faces_found=no_face)).logits[0, -1]
        second = model(**encode(processor, "F", seed=1, faces_found=no_face)).logits[0, -1]
        torch.testing.assert_close(first, second, rtol=0, atol=0)  # crops are ignored without faces
        tokens = model.get_face_features(torch.zeros(1, 4, 3, 32, 32), torch.zeros(1, 4, dtype=torch.bool))
        expected = model.face_projector(model.no_face_embedding.weight)[None]
    torch.testing.assert_close(tokens, expected)
    batch = encode(processor, "F", faces_found=no_face, answer="neutral")
    model.train()
    model(**batch).loss.backward()
    assert model.no_face_embedding.weight.grad.abs().sum() > 0


def test_placeholder_errors_name_the_problem(model, processor):
    batch = encode(processor, "V")
    with pytest.raises(ValueError, match="<video>.*no video input"):
        model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    ids = batch["input_ids"].clone()
    first_video = (ids[0] == model.config.video_token_id).nonzero()[0, 0]
    ids[0, first_video] = 10  # one <video> token short of the branch's 4
    with pytest.raises(ValueError, match="sample 0 has 3 <video> tokens but the video branch gives 4"):
        model(**{**batch, "input_ids": ids})


def test_gradient_checkpointing_gives_the_same_loss_and_gradients(processor):
    torch.manual_seed(0)
    config = NanoEmoXConfig.tiny(qformer_config={"dropout": 0.0, "attention_dropout": 0.0}, fusion_encoder_config={"dropout": 0.0},
                                 face_adapter_dropout=0.0)
    model = NanoEmoXForConditionalGeneration(config).train()
    batch = encode(processor, answer="happy")
    model(**batch).loss.backward()
    reference = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    # transformers >= 5.x renamed gradient_checkpointing_enable to activation_checkpointing_enable
    enable = getattr(model, "activation_checkpointing_enable", model.gradient_checkpointing_enable)
    enable()
    assert model.visual_qformer.layers[0].gradient_checkpointing
    model(**batch).loss.backward()
    for name, grad in reference.items():
        torch.testing.assert_close(dict(model.named_parameters())[name].grad, grad, msg=name)


def test_bfloat16_forward_backward(processor):
    torch.manual_seed(0)
    model = NanoEmoXForConditionalGeneration(NanoEmoXConfig.tiny()).to(torch.bfloat16).train()
    out = model(**encode(processor, answer="happy"))
    assert out.logits.dtype == torch.bfloat16 and torch.isfinite(out.loss)
    out.loss.backward()
    assert model.fusion_projector.linear_1.weight.grad.dtype == torch.bfloat16


@pytest.mark.filterwarnings("ignore::FutureWarning")  # peft calls a deprecated transformers alias
def test_peft_lora_targets_only_the_language_model(processor):
    peft = pytest.importorskip("peft")
    torch.manual_seed(0)
    model = NanoEmoXForConditionalGeneration(NanoEmoXConfig.tiny())
    lora_model = peft.get_peft_model(model, peft.LoraConfig(**model.config.get_lora_kwargs()))
    lora_names = [name for name, _ in lora_model.named_parameters() if "lora_" in name]
    layers, projections = model.config.text_config.num_hidden_layers, 7
    assert len(lora_names) == layers * projections * 2  # A and B of q/k/v/o/gate/up/down in every layer
    assert all(".language_model." in name for name in lora_names)
    out = lora_model(**encode(processor, answer="happy"))
    out.loss.backward()
    assert all(p.grad is not None for n, p in lora_model.named_parameters() if "lora_B" in n)
