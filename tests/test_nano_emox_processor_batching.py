"""The Nano-EmoX processor tokenises a batch in one tokenizer call and pads with the tokenizer (issue 23, item 5).

``reference_call`` is the processor's ``__call__`` as it was before (one tokenizer call per prompt and per answer,
padding by hand), copied verbatim apart from ``self`` -> ``processor``: every test compares the new outputs with it,
tensor by tensor (values and dtypes), over every modality combination, answers on all / some / no samples, both
padding sides, both prompt formats, special ``<think>`` tokens, ``max_length`` at and over the limit, and a
tokenizer without a pad token.
"""

import itertools

import numpy as np
import pytest
import torch
from transformers.feature_extraction_utils import BatchFeature

from mmaffect.models.nano_emox import NanoEmoXProcessor
from mmaffect.models.nano_emox.media_nano_emox import FaceTrack
from mmaffect.models.nano_emox.processing_nano_emox import IGNORE_INDEX, MODALITIES, PLACEHOLDERS


def reference_call(processor, text=None, videos=None, audio=None, faces=None, answers=None, padding_side="left",
                   max_length=None, return_tensors="pt", **kwargs):  # fmt: skip
    """The pre-issue-23 ``NanoEmoXProcessor.__call__`` (sample-by-sample tokenisation, hand padding)."""
    if kwargs:
        raise TypeError(f"NanoEmoXProcessor got unexpected arguments {sorted(kwargs)}")
    if return_tensors not in ("pt", None):
        raise ValueError(f"return_tensors must be 'pt' (or None for the same tensors), got {return_tensors!r}")
    if text is None:
        raise ValueError("NanoEmoXProcessor needs text (chat-formatted prompts, see build_prompt)")
    texts = [text] if isinstance(text, str) else list(text)
    batch = len(texts)
    videos = processor._per_sample("videos", videos, batch)
    audio = processor._per_sample("audio", audio, batch)
    faces = processor._per_sample("faces", faces, batch)
    answers = processor._per_sample("answers", answers, batch)

    counts = [{name: t.count(tok) for name, tok in PLACEHOLDERS.items()} for t in texts]
    for index, count in enumerate(counts):
        repeated = [PLACEHOLDERS[name] for name, n in count.items() if n > 1]
        if repeated:
            raise ValueError(f"text[{index}] has more than one {repeated}; each modality is used once per sample")

    frames_per_sample = [None] * batch
    video_rows, audio_rows, face_rows = [], [], []
    waveforms, face_tracks = [], []
    for index in range(batch):
        uses = counts[index]
        if uses["video"] or uses["fusion"] or (uses["face"] and faces[index] is None):
            if videos[index] is None:
                needed = [PLACEHOLDERS[m] for m in ("video", "fusion", "face") if uses[m]]
                raise ValueError(f"text[{index}] uses {needed} but videos[{index}] is None")
            frames_per_sample[index] = processor._frames(videos[index], f"videos[{index}]")
        if uses["video"] or uses["fusion"]:
            video_rows.append(index)
        if uses["audio"] or uses["fusion"]:
            if audio[index] is None:
                needed = [PLACEHOLDERS[m] for m in ("audio", "fusion") if uses[m]]
                raise ValueError(f"text[{index}] uses {needed} but audio[{index}] is None")
            waveforms.append(processor._waveform(audio[index], f"audio[{index}]"))
            audio_rows.append(index)
        if uses["face"]:
            face_tracks.append(processor._face_track(faces[index], frames_per_sample[index], f"faces[{index}]"))
            face_rows.append(index)

    data = {}
    if video_rows:
        flat = [frame for row in video_rows for frame in frames_per_sample[row]]
        pixels = processor.image_processor(images=flat, return_tensors="pt")["pixel_values"]
        data["pixel_values_videos"] = pixels.reshape(len(video_rows), processor.num_frames, *pixels.shape[1:])
        data["video_sample_index"] = torch.tensor(video_rows, dtype=torch.long)
    if audio_rows:
        features = processor.feature_extractor(waveforms, sampling_rate=processor.sampling_rate, padding=True,
                                               return_attention_mask=True, return_tensors="pt")  # fmt: skip
        data["input_values"] = features["input_values"]
        data["audio_attention_mask"] = features["attention_mask"]
        data["audio_sample_index"] = torch.tensor(audio_rows, dtype=torch.long)
    if face_rows:
        crops = np.stack([track.crops for track in face_tracks]).astype(np.float32) / 255.0
        mean = np.asarray(processor.face_image_mean, dtype=np.float32)
        std = np.asarray(processor.face_image_std, dtype=np.float32)
        crops = (crops - mean) / std
        data["face_pixel_values"] = torch.from_numpy(crops).permute(0, 1, 4, 2, 3).contiguous()
        data["face_frame_mask"] = torch.tensor([track.found for track in face_tracks], dtype=torch.bool)
        data["face_sample_index"] = torch.tensor(face_rows, dtype=torch.long)

    expanded = []
    for t in texts:
        for name, tok in PLACEHOLDERS.items():
            t = t.replace(tok, tok * processor.tokens_per_modality()[name])
        expanded.append(t)
    eos_id = processor.tokenizer.eos_token_id
    if eos_id is None and any(a is not None for a in answers):
        raise ValueError("the tokenizer has no eos_token: cannot end the answers for training")
    sequences, label_rows = [], []
    for index, t in enumerate(expanded):
        ids = processor.tokenizer(t, add_special_tokens=False)["input_ids"]
        labels = [IGNORE_INDEX] * len(ids)
        if answers[index] is not None:
            answer_ids = processor.tokenizer(answers[index] + processor.answer_suffix, add_special_tokens=False)["input_ids"] + [eos_id]
            ids = ids + answer_ids
            labels = labels + answer_ids
        if max_length is not None and len(ids) > max_length:
            raise ValueError(f"text[{index}] is {len(ids)} tokens long after placeholder expansion, over max_length={max_length}")
        sequences.append(ids)
        label_rows.append(labels)
    pad_id = processor.tokenizer.pad_token_id if processor.tokenizer.pad_token_id is not None else eos_id
    if pad_id is None:
        raise ValueError("the tokenizer has neither pad_token nor eos_token to pad the batch with")
    width = max(len(ids) for ids in sequences)
    input_ids, attention, labels = [], [], []
    for ids, lab in zip(sequences, label_rows):
        pad = width - len(ids)
        if padding_side == "left":
            input_ids.append([pad_id] * pad + ids)
            attention.append([0] * pad + [1] * len(ids))
            labels.append([IGNORE_INDEX] * pad + lab)
        elif padding_side == "right":
            input_ids.append(ids + [pad_id] * pad)
            attention.append([1] * len(ids) + [0] * pad)
            labels.append(lab + [IGNORE_INDEX] * pad)
        else:
            raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
    data["input_ids"] = torch.tensor(input_ids, dtype=torch.long)
    data["attention_mask"] = torch.tensor(attention, dtype=torch.long)
    if any(a is not None for a in answers):
        data["labels"] = torch.tensor(labels, dtype=torch.long)
    return BatchFeature(data=data)


# Every subset of the four modalities (the empty one is text only): 16 prompts in one batch.
SUBSETS = [combo for size in range(len(MODALITIES) + 1) for combo in itertools.combinations(MODALITIES, size)]
ANSWERS = ["happy", " sad and tired", "<think>a loss</think> Take care.", "neutral!", None, "worried, nervous"]


def batch_inputs(processor, answers_on: str = "some"):
    """One sample per modality subset with media of varied sizes; faces: detected, a FaceTrack or ready crops."""
    rng = np.random.default_rng(7)
    size = processor.face_size
    text, videos, audio, faces, answers = [], [], [], [], []
    for index, subset in enumerate(SUBSETS):
        task = ("MER", "OV-MER", "ERI", "MIR", "ERG")[index % 5]
        labels = ["happy", "sad", "angry"] if task in ("MER", "MIR") else None
        text.append(processor.build_prompt(task, modalities=list(subset), candidate_labels=labels,
                                           subtitle="I can't believe it" * (index % 3), user_input="hi" if task == "ERG" else None))  # fmt: skip
        videos.append(rng.integers(0, 256, (3 + index % 6, 24 + 2 * index, 30, 3), dtype=np.uint8))
        audio.append(rng.standard_normal(300 + 173 * index).astype(np.float32))
        crops = rng.integers(0, 256, (5, size, size, 3), dtype=np.uint8)
        faces.append((None, FaceTrack(crops=crops, found=[True, False, True, True, False]), crops)[index % 3])
        answers.append({"all": ANSWERS[index % 4], "some": ANSWERS[index % len(ANSWERS)], "none": None}[answers_on])
    return dict(text=text, videos=videos, audio=audio, faces=faces, answers=answers)


def assert_same_outputs(new, old):
    assert sorted(new) == sorted(old)
    for key in old:
        assert new[key].dtype == old[key].dtype, key
        assert new[key].shape == old[key].shape, key
        assert torch.equal(new[key], old[key]), key


@pytest.fixture(scope="module")
def processors():
    return {
        "public_code": NanoEmoXProcessor.tiny(),
        "chatml": NanoEmoXProcessor.tiny(prompt_format="chatml"),
        "special_think": NanoEmoXProcessor.tiny(think_tokens="special"),
    }


@pytest.mark.parametrize("answers_on", ["all", "some", "none"])
@pytest.mark.parametrize("padding_side", ["left", "right"])
@pytest.mark.parametrize("kind", ["public_code", "chatml", "special_think"])
def test_every_modality_combination_gives_the_old_outputs(processors, kind, padding_side, answers_on):
    processor = processors[kind]
    inputs = batch_inputs(processor, answers_on)
    new = processor(**inputs, padding_side=padding_side)
    assert_same_outputs(new, reference_call(processor, **inputs, padding_side=padding_side))
    assert len(set(new["attention_mask"].sum(-1).tolist())) > 1  # the batch really is padded
    assert ("labels" in new) == (answers_on != "none")


@pytest.mark.parametrize("padding_side", ["left", "right"])
def test_single_samples_and_small_batches_give_the_old_outputs(processors, padding_side):
    processor = processors["public_code"]
    inputs = batch_inputs(processor, "some")
    for rows in ([0], [15], [4, 9], [1, 2, 3]):
        sub = {key: [value[row] for row in rows] for key, value in inputs.items()}
        assert_same_outputs(processor(**sub, padding_side=padding_side),
                            reference_call(processor, **sub, padding_side=padding_side))
    # a plain string prompt, no answers
    prompt = processor.build_prompt("MER", modalities="")
    assert_same_outputs(processor(text=prompt), reference_call(processor, text=prompt))


def test_max_length_at_and_over_the_limit(processors):
    processor = processors["public_code"]
    inputs = batch_inputs(processor, "all")
    longest = int(reference_call(processor, **inputs)["attention_mask"].sum(-1).max())
    assert_same_outputs(processor(**inputs, max_length=longest), reference_call(processor, **inputs, max_length=longest))
    with pytest.raises(ValueError) as new_error:
        processor(**inputs, max_length=longest - 1)
    with pytest.raises(ValueError) as old_error:
        reference_call(processor, **inputs, max_length=longest - 1)
    assert str(new_error.value) == str(old_error.value)
    assert f"over max_length={longest - 1}" in str(new_error.value)


def test_bad_padding_side_and_missing_tokens_fail_as_before():
    processor = NanoEmoXProcessor.tiny()
    prompt = processor.build_prompt("MER", modalities="")
    with pytest.raises(ValueError, match="padding_side must be 'left' or 'right', got 'middle'"):
        processor(text=[prompt], padding_side="middle")
    with pytest.raises(ValueError, match="needs at least one prompt"):  # before: "max() arg is an empty sequence"
        processor(text=[])
    tokenizer = processor.tokenizer
    tokenizer.pad_token = None  # pads with eos, as before, and the tokenizer keeps no pad token afterwards
    texts = [prompt, processor.build_prompt("MIR", modalities="", candidate_labels=["thank", "complain"])]
    for side in ("left", "right"):
        assert_same_outputs(processor(text=texts, answers=["calm", None], padding_side=side),
                            reference_call(processor, text=texts, answers=["calm", None], padding_side=side))
    assert tokenizer.pad_token is None
    tokenizer.eos_token = None
    with pytest.raises(ValueError, match="the tokenizer has no eos_token: cannot end the answers"):
        processor(text=texts, answers=["calm", None])
    with pytest.raises(ValueError, match="the tokenizer has neither pad_token nor eos_token"):
        processor(text=texts)


def test_one_tokenizer_call_per_batch_and_the_tokenizer_pads(processors, monkeypatch):
    processor = processors["public_code"]
    inputs = batch_inputs(processor, "some")
    tokenizer_class = type(processor.tokenizer)
    calls = {"__call__": 0, "pad": 0}
    for name in calls:
        original = getattr(tokenizer_class, name)

        def counted(self, *args, _original=original, _name=name, **kwargs):
            calls[_name] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(tokenizer_class, name, counted)
    processor(**inputs, padding_side="right")
    assert calls == {"__call__": 1, "pad": 1}
