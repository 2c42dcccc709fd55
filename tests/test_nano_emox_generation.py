"""Nano-EmoX generation beyond greedy: beam search and several return sequences on prompts with media (issue 27),
placeholders never generated (issue 25.1), and a processor that agrees with its model by construction (25.2).

The reference for a generation with media is the language model alone, generating from the multimodal input
embeddings computed once (``get_multimodal_embeddings``): it never sees the media tensors, so it checks that every
expanded row (beam, return sequence) got its own sample's media."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from mmaffect.models.nano_emox import NanoEmoXConfig, NanoEmoXForConditionalGeneration, NanoEmoXProcessor
from mmaffect.models.nano_emox.media_nano_emox import FaceTrack
from mmaffect.models.nano_emox.modeling_nano_emox import PlaceholderWithoutMediaError

LABELS = ["happy", "sad", "angry"]
NEW_TOKENS = 6
DECODINGS = {
    "beams2": dict(num_beams=2),
    "beams3": dict(num_beams=3),
    "beams3_return2": dict(num_beams=3, num_return_sequences=2),
    "sample_return2": dict(do_sample=True, num_return_sequences=2, temperature=2.0),
    "beam_sample_return2": dict(do_sample=True, num_beams=2, num_return_sequences=2),
}


@pytest.fixture(scope="module")
def processor():
    return NanoEmoXProcessor.tiny()


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return NanoEmoXForConditionalGeneration(NanoEmoXConfig.tiny()).eval()


def media(seed):
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (6, 40, 48, 3), dtype=np.uint8)
    wave = (0.1 * rng.standard_normal(6000 + 1000 * seed)).astype(np.float32)
    faces = FaceTrack(crops=rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8), found=[True, False] * 3)
    return frames, wave, faces


def encode(processor, samples):
    """``samples``: ``[(modalities, media seed)]`` -> one left-padded batch."""
    prompts, videos, audio, faces = [], [], [], []
    for modalities, seed in samples:
        frames, wave, face = media(seed)
        prompts.append(processor.build_prompt("MER", modalities=modalities, candidate_labels=LABELS))
        videos.append(frames)
        audio.append(wave)
        faces.append(face)
    return processor(text=prompts, videos=videos, audio=audio, faces=faces)


def generate(model, batch, seed=5, **kwargs):
    torch.manual_seed(seed)
    out = model.generate(**batch, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, **kwargs)
    return out[:, batch["input_ids"].shape[1]:]


def reference(model, batch, seed=5, **kwargs):
    """The same decoding by the language model alone, from the multimodal embeddings of the batch."""
    media_inputs = {k: v for k, v in batch.items() if k not in ("input_ids", "attention_mask")}
    with torch.no_grad():
        embeds, _ = model.get_multimodal_embeddings(batch["input_ids"], **media_inputs)
    position_ids = (batch["attention_mask"].cumsum(-1) - 1).clamp(min=0)
    torch.manual_seed(seed)
    return model.language_model.generate(
        inputs_embeds=embeds, attention_mask=batch["attention_mask"], position_ids=position_ids, max_new_tokens=NEW_TOKENS,
        min_new_tokens=NEW_TOKENS, suppress_tokens=model.generation_config.suppress_tokens, **kwargs,
    )  # fmt: skip


@pytest.mark.parametrize("decoding", sorted(DECODINGS))
@pytest.mark.parametrize("modalities", ["A", "V", "F", "AVFM"])
def test_beams_and_return_sequences_with_media(model, processor, modalities, decoding):
    kwargs = DECODINGS[decoding]
    batch = encode(processor, [(modalities, 0)])
    generated = generate(model, batch, **kwargs)
    assert generated.shape == (kwargs.get("num_return_sequences", 1), NEW_TOKENS)
    assert torch.equal(generated, reference(model, batch, **kwargs))


def test_the_audio_branch_leaves_the_global_rng_alone_in_eval_mode(model, processor):
    # transformers < 5.24's HuBERT draws a LayerDrop number per layer even in eval mode: seeded sampling with audio
    # then drew other tokens than the reference on the minimum versions (the encoders run inside generate())
    batch = encode(processor, [("AVFM", 0)])
    torch.manual_seed(5)
    before = torch.random.get_rng_state()
    with torch.no_grad():
        model(**batch)
    assert torch.equal(torch.random.get_rng_state(), before)


@pytest.mark.parametrize("decoding", ["beams2", "beams3", "beams3_return2"])
def test_batch_with_different_media_gives_each_sample_its_own_rows(model, processor, decoding):
    kwargs = DECODINGS[decoding]
    # sample 0 has no audio: audio_sample_index is [1], so the rows of an item and of a sample differ
    samples = [("VF", 0), ("AVFM", 1)]
    batch = encode(processor, samples)
    assert batch["audio_sample_index"].tolist() == [1]
    generated = generate(model, batch, **kwargs)
    per_sample = kwargs.get("num_return_sequences", 1)
    assert generated.shape[0] == 2 * per_sample
    for index, sample in enumerate(samples):
        alone = generate(model, encode(processor, [sample]), **kwargs)  # greedy beams: deterministic
        assert torch.equal(generated[index * per_sample: (index + 1) * per_sample], alone), f"sample {index}"


@pytest.mark.parametrize("decoding", ["sample_return2", "beam_sample_return2"])
def test_sampled_batch_with_different_media_matches_the_reference(model, processor, decoding):
    batch = encode(processor, [("AF", 2), ("AVFM", 3)])
    generated = generate(model, batch, **DECODINGS[decoding])
    assert generated.shape == (4, NEW_TOKENS)
    assert torch.equal(generated, reference(model, batch, **DECODINGS[decoding]))


def test_media_without_sample_indices_are_expanded_too(model, processor):
    batch = encode(processor, [("AVFM", 0), ("AVFM", 1)])
    implicit = {k: v for k, v in batch.items() if not k.endswith("_sample_index")}  # one item per row
    assert torch.equal(generate(model, implicit, num_beams=2), generate(model, batch, num_beams=2))


# ------------------------------------------------------------------ placeholders are never generated
def test_placeholders_are_suppressed_and_saved_for_remote_code_users(model, processor, tmp_path):
    ids = sorted(model.config.placeholder_token_ids.values())
    assert ids == sorted(processor.placeholder_token_ids.values())
    assert set(ids) <= set(model.generation_config.suppress_tokens)
    model.save_pretrained(tmp_path / "m")
    saved = json.loads((tmp_path / "m" / "generation_config.json").read_text())
    assert set(ids) <= set(saved["suppress_tokens"])
    # a folder saved before the suppression existed (no generation_config.json) gets it at load
    (tmp_path / "m" / "generation_config.json").unlink()
    reloaded = NanoEmoXForConditionalGeneration.from_pretrained(tmp_path / "m")
    assert set(ids) <= set(reloaded.generation_config.suppress_tokens)
    # new placeholder ids (another tokenizer) replace the old ones in the list, other suppressed tokens stay
    reloaded.generation_config.suppress_tokens = [*reloaded.generation_config.suppress_tokens, 9]
    reloaded.config.video_token_id = 100
    assert reloaded.suppress_placeholder_tokens(previous_ids=[3]) == [9, 4, 5, 6, 100]


def test_sampling_at_high_temperature_never_emits_a_placeholder(model, processor):
    batch = encode(processor, [("AVFM", 0)])
    ids = torch.tensor(sorted(model.config.placeholder_token_ids.values()))
    sampling = dict(do_sample=True, temperature=8.0, top_p=1.0, top_k=0, num_return_sequences=8, max_new_tokens=16)
    for seed in range(6):  # 48 sequences x 16 tokens
        torch.manual_seed(seed)
        generated = model.generate(**batch, **sampling)[:, batch["input_ids"].shape[1]:]
        assert not torch.isin(generated, ids).any(), f"seed {seed}"
    # without the suppression the same draws do sample a placeholder: the next step names the sample
    with pytest.raises(PlaceholderWithoutMediaError, match=r"sample\(s\) \[\d+\] of the batch contain <\w+>") as caught:
        for seed in range(6):
            torch.manual_seed(seed)
            model.generate(**batch, suppress_tokens=[], **sampling)
    assert caught.value.sample_rows and all(0 <= row < 8 for row in caught.value.sample_rows)


def test_placeholder_without_media_names_the_samples(model, processor):
    batch = encode(processor, [("", 0), ("", 1)])
    ids = batch["input_ids"].clone()
    ids[1, -1] = model.config.audio_token_id
    with pytest.raises(PlaceholderWithoutMediaError, match=r"sample\(s\) \[1\] of the batch contain <audio>") as caught:
        model(input_ids=ids, attention_mask=batch["attention_mask"])
    assert caught.value.sample_rows == [1]


# ------------------------------------------------------------------ processor and model agree by construction
def six_video_tokens():
    return NanoEmoXConfig.tiny(qformer_config={"num_visual_query_tokens": 6})


def test_processor_reads_its_token_counts_from_the_model_config():
    config = six_video_tokens()
    processor = NanoEmoXProcessor.tiny(config=config)
    assert processor.tokens_per_modality() == {"video": 6, "audio": 3, "face": 2, "fusion": 1}
    model = NanoEmoXForConditionalGeneration(config).eval()
    batch = encode(processor, [("AVFM", 0)])
    assert (batch["input_ids"] == config.video_token_id).sum() == 6
    with torch.no_grad():
        assert torch.isfinite(model(**batch).logits).all()
    with pytest.raises(ValueError, match=r"num_video_tokens=4\) disagrees with the model config \(6\)"):
        NanoEmoXProcessor.tiny(config=config, num_video_tokens=4)
    with pytest.raises(ValueError, match="num_frames: processor 12, more than the model's max_frames 8"):
        NanoEmoXProcessor.tiny(config=config, num_frames=12)


def test_from_pretrained_components_matches_the_processor_and_save_writes_both(tmp_path):
    processor = NanoEmoXProcessor.tiny()  # built for the default tiny counts (4 video tokens)
    model = NanoEmoXForConditionalGeneration.from_pretrained_components(config=six_video_tokens(), processor=processor)
    assert processor.num_video_tokens == 6
    with torch.no_grad():  # before: "sample 0 has 4 <video> tokens but the video branch gives 6" at forward
        model(**encode(processor, [("AVFM", 0)]))
    model.save_pretrained(tmp_path / "both", processor=processor)
    assert json.loads((tmp_path / "both" / "processor_config.json").read_text())["num_video_tokens"] == 6
    reloaded = NanoEmoXProcessor.from_pretrained(tmp_path / "both")
    assert reloaded.num_video_tokens == 6
    NanoEmoXForConditionalGeneration.from_pretrained(tmp_path / "both")
    with pytest.raises(ValueError, match="num_video_tokens: processor 4, model 6"):
        model.save_pretrained(tmp_path / "bad", processor=NanoEmoXProcessor.tiny())


def test_a_mismatched_pair_fails_at_load_not_at_forward(tmp_path):
    model = NanoEmoXForConditionalGeneration(six_video_tokens())
    model.save_pretrained(tmp_path)
    NanoEmoXProcessor.tiny().save_pretrained(tmp_path)  # saved on its own: 4 video tokens
    with pytest.raises(ValueError, match=r"processor does not match the model's config.json .*num_video_tokens: processor 4, model 6"):
        NanoEmoXProcessor.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match="processor_config.json does not match config.json: num_video_tokens: processor 4, model 6"):
        NanoEmoXForConditionalGeneration.from_pretrained(tmp_path)


# ------------------------------------------------------------------ the same through remote code
FRESH_PROCESS = textwrap.dedent(
    """
    import sys
    sys.modules["mmaffect"] = None  # the package must not be needed
    import numpy as np
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    folder, work = sys.argv[1], sys.argv[2]
    model = AutoModelForImageTextToText.from_pretrained(folder, trust_remote_code=True).eval()
    assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
    processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
    media = np.load(work + "/media.npz")
    samples = [("VF", 0), ("AVFM", 1)]

    def encode(chosen):
        return processor(
            text=[processor.build_prompt("MER", modalities=m, candidate_labels=["happy", "sad", "angry"]) for m, _ in chosen],
            videos=[media[f"frames{s}"] for _, s in chosen], audio=[media[f"wave{s}"] for _, s in chosen],
            faces=[media[f"faces{s}"] for _, s in chosen],
        )

    def generate(batch, **kwargs):
        torch.manual_seed(5)
        out = model.generate(**batch, max_new_tokens=6, min_new_tokens=6, **kwargs)
        return out[:, batch["input_ids"].shape[1]:]

    results = {"suppress_tokens": list(model.generation_config.suppress_tokens)}
    for name, kwargs in {"beams2": dict(num_beams=2), "sample2": dict(do_sample=True, num_return_sequences=2, temperature=2.0)}.items():
        results[name] = generate(encode(samples), **kwargs)
        results[name + "_alone"] = [generate(encode([sample]), **kwargs) for sample in samples]
    torch.save(results, work + "/fresh.pt")
    """
)


def test_beams_and_return_sequences_through_remote_code_in_a_fresh_process(model, processor, tmp_path):
    folder = tmp_path / "tiny"
    model.save_pretrained(folder, processor=processor)
    arrays = {}
    for seed in (0, 1):
        frames, wave, faces = media(seed)
        arrays.update({f"frames{seed}": frames, f"wave{seed}": wave, f"faces{seed}": np.asarray(faces.crops)})
    np.savez(tmp_path / "media.npz", **arrays)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", HF_MODULES_CACHE=str(tmp_path / "hf_modules"))
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    result = subprocess.run([sys.executable, "-c", FRESH_PROCESS, str(folder), str(tmp_path)], cwd=outside, env=env,
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    fresh = torch.load(tmp_path / "fresh.pt", weights_only=True)
    assert set(model.config.placeholder_token_ids.values()) <= set(fresh["suppress_tokens"])
    # beams: each sample's rows of the batch equal its run alone, in the remote code as in the package
    assert torch.equal(fresh["beams2"], torch.cat(fresh["beams2_alone"]))
    def encode_arrays(chosen):
        return processor(
            text=[processor.build_prompt("MER", modalities=m, candidate_labels=LABELS) for m, _ in chosen],
            videos=[arrays[f"frames{s}"] for _, s in chosen], audio=[arrays[f"wave{s}"] for _, s in chosen],
            faces=[arrays[f"faces{s}"] for _, s in chosen],
        )

    samples = [("VF", 0), ("AVFM", 1)]
    batch = encode_arrays(samples)
    assert torch.equal(fresh["beams2"], generate(model, batch, num_beams=2))  # the package gives the same rows
    # sampling: the batch and each sample alone equal the language-model reference of the package model
    sampled = DECODINGS["sample_return2"]
    assert torch.equal(fresh["sample2"], reference(model, batch, **sampled))
    for index, sample in enumerate(samples):
        assert torch.equal(fresh["sample2_alone"][index], reference(model, encode_arrays([sample]), **sampled)), f"sample {index}"
