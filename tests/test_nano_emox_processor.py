"""Nano-EmoX processor: task prompts, placeholder expansion, labels, reasoning split, save/load."""

import numpy as np
import pytest
import torch
from transformers import AutoProcessor

from mmaffect.models.nano_emox import NanoEmoXProcessor, format_task_instruction, split_reasoning
from mmaffect.models.nano_emox.media_nano_emox import FaceTrack
from mmaffect.models.nano_emox.processing_nano_emox import TASK_TEMPLATES, parse_modalities


@pytest.fixture(scope="module")
def processor():
    return NanoEmoXProcessor.tiny()


def test_tiny_tokenizer_matches_the_tiny_config_ids(processor):
    from mmaffect.models.nano_emox import NanoEmoXConfig

    config = NanoEmoXConfig.tiny()
    assert processor.placeholder_token_ids == config.placeholder_token_ids
    assert len(processor.tokenizer) <= config.text_config.vocab_size
    assert processor.tokens_per_modality() == {
        "video": config.num_video_tokens,
        "audio": config.num_audio_tokens,
        "face": config.num_face_tokens,
        "fusion": config.num_fusion_tokens,
    }


@pytest.mark.parametrize(
    "task, identifier",
    [("MER", "[Recognition]"), ("OV-MER", "[Recog_OV]"), ("ERI", "[Inference]"), ("MIR", "[Intent]"), ("ERG", "[Interaction]")],
)
def test_task_identifiers_follow_the_paper(task, identifier):
    labels = ["happy", "sad"] if task in ("MER", "MIR") else None
    instruction = format_task_instruction(task, labels)
    assert instruction.startswith(identifier + " ")
    if labels:
        assert "happy, sad" in instruction


def test_public_code_identifier_style_and_aliases():
    assert format_task_instruction("ov-mer", identifier_style="public_code").startswith("[Recogn_OV] ")
    assert format_task_instruction("[Interaction]") == format_task_instruction("ERG")
    assert "Chain of Empathy" in TASK_TEMPLATES["ERG"] and "Fourthly" in TASK_TEMPLATES["ERG"]
    assert format_task_instruction("MER").endswith("most likely emotional state.")  # no candidate list
    with pytest.raises(ValueError, match="MIR needs candidate_labels"):
        format_task_instruction("MIR")
    with pytest.raises(ValueError, match="unknown task 'MSA-X'"):
        format_task_instruction("MSA-X")
    processor = NanoEmoXProcessor.tiny(task_identifier_style="public_code")
    assert "[Recogn_OV]" in processor.build_prompt("OV-MER")


def test_modalities_select_placeholders(processor):
    assert parse_modalities("AVFMT") == ("fusion", "audio", "face", "video")
    assert parse_modalities("at") == ("audio",)
    assert parse_modalities(["video", "face"]) == ("face", "video")
    with pytest.raises(ValueError, match="unknown modality letters"):
        parse_modalities("AX")
    prompt = processor.build_prompt("ERI", modalities="VF", subtitle="I am fine.")
    assert "<video>" in prompt and "<face>" in prompt and "<audio>" not in prompt and "<fusion>" not in prompt
    # the public code's sentences: face first, then "Meanwhile, ..." the frames; the subtitle in its tags
    assert "We uniformly extract facial informations from video: <Video><face></Video>. Meanwhile, we uniformly sample" in prompt
    assert "The subtitle of this video is: <Subtitle>I am fine.</Subtitle>. Now, please answer my question" in prompt
    assert prompt.startswith("<|im_start|>###Human: ") and prompt.endswith(" ###Assistant: ")
    chatml = NanoEmoXProcessor.tiny(prompt_format="chatml")
    prompt = chatml.build_prompt("ERI", modalities="VF", subtitle="I am fine.")
    assert "The subtitle of this video is: I am fine.\n" in prompt or "The subtitle of this video is: I am fine. " in prompt
    assert "I am fine.." not in prompt  # no second full stop after a punctuated subtitle
    plain = chatml.build_prompt("ERI", modalities="VF", subtitle="I am fine")
    assert "The subtitle of this video is: I am fine." in plain
    assert prompt.endswith("<|im_start|>assistant\n")


def test_erg_prompt_keeps_the_dialogue_history(processor):
    kwargs = dict(modalities="A", user_input="I failed my exam.", dialogue_history=[("Hi.", "Hello! How are you?")], answer="<think>x</think> I'm sorry.")
    # public code (default): one turn, the history as a <Dialogue History> sentence
    messages = processor.build_messages("ERG", **kwargs)
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert "The dialogue history is: <Dialogue History>user: Hi.\nassistant: Hello! How are you?</Dialogue History>." in messages[0]["content"]
    prompt = processor.format_prompt(messages)
    assert prompt.count("###Human: ") == 1 and prompt.count("###Assistant: ") == 1 and "I'm sorry" not in prompt
    # ChatML: the history as earlier turns
    chatml = NanoEmoXProcessor.tiny(prompt_format="chatml")
    messages = chatml.build_messages("ERG", **kwargs)
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]
    assert "Current user input: I failed my exam." in messages[2]["content"]
    assert messages[2]["content"].rstrip().endswith("expressing understanding.")
    prompt = chatml.format_prompt(messages)
    assert prompt.count("<|im_start|>user") == 2 and "I'm sorry" not in prompt
    with pytest.raises(ValueError, match="dialogue_history\\[0\\]"):
        processor.build_messages("ERG", dialogue_history=["just a string"])


# The Qwen2.5 chat template's behaviour that matters here: without a system message it injects its default one.
QWEN_STYLE_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}"
    "{%- else %}{{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}{%- endif %}"
    "{%- for message in messages %}{%- if message.role != 'system' %}"
    "{{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>\n' }}{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}"
)


@pytest.mark.parametrize("prompt_format", ["public_code", "chatml"])
def test_a_qwen_style_tokenizer_template_never_injects_its_system_prompt(prompt_format):
    tiny = NanoEmoXProcessor.tiny()
    tokenizer = tiny.tokenizer
    tokenizer.chat_template = QWEN_STYLE_TEMPLATE  # what AutoTokenizer gives for Qwen/Qwen2.5-1.5B-Instruct
    assert "You are Qwen" in tokenizer.apply_chat_template([{"role": "user", "content": "x"}], tokenize=False)
    processor = NanoEmoXProcessor(tiny.image_processor, tiny.feature_extractor, tokenizer, prompt_format=prompt_format,
                                  num_video_tokens=4, num_audio_tokens=3, num_face_tokens=2)  # fmt: skip
    prompt = processor.build_prompt("MER", candidate_labels=["happy", "sad"], subtitle="Hi.")
    assert "You are Qwen" not in prompt and "system" not in prompt
    if prompt_format == "public_code":
        assert prompt.startswith("<|im_start|>###Human: The audio and video merged info is: <Multi><fusion></Multi>.")
        assert prompt.endswith("candidate labels: happy, sad. ###Assistant: ")
    else:
        assert prompt.startswith("<|im_start|>user\n") and prompt.endswith("<|im_end|>\n<|im_start|>assistant\n")
    # an explicit system prompt is the only system text
    assert "Be brief." in processor.build_prompt("MER", system_prompt="Be brief.")


def test_think_tags_are_text_by_default_and_tokens_only_on_request():
    text = NanoEmoXProcessor.tiny()
    assert "<think>" not in text.tokenizer.get_vocab() and text.think_token_ids == []
    special = NanoEmoXProcessor.tiny(think_tokens="special")
    ids = special.think_token_ids
    assert len(ids) == 2 and all(i >= len(text.tokenizer) for i in ids)
    for processor in (text, special):
        reply = "<think>Firstly, a loss.</think> Take care.###"
        encoded = processor.tokenizer(reply, add_special_tokens=False, return_tensors="pt")["input_ids"]
        split = processor.decode_replies(encoded)[0]
        assert (split.reasoning, split.answer) == ("Firstly, a loss.", "Take care.")
    with pytest.raises(ValueError, match="think_tokens must be one of"):
        NanoEmoXProcessor.tiny(think_tokens="yes")
    with pytest.raises(ValueError, match="prompt_format must be one of"):
        NanoEmoXProcessor.tiny(prompt_format="vicuna")


def test_placeholders_expand_and_media_are_batched(processor):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (7, 30, 20, 3), dtype=np.uint8)
    prompt = processor.build_prompt("OV-MER", modalities="AVFM")
    wave = np.zeros(3000, np.float32)
    faces = FaceTrack(crops=np.zeros((7, 32, 32, 3), np.uint8), found=[True, False, True, False, False, False, True])
    batch = processor(text=[prompt], videos=[frames], audio=[wave], faces=[faces])
    ids = batch["input_ids"][0]
    token_ids = processor.placeholder_token_ids
    for name, count in processor.tokens_per_modality().items():
        assert int((ids == token_ids[name]).sum()) == count
    assert batch["pixel_values_videos"].shape == (1, processor.num_frames, 3, 32, 32)
    assert batch["face_pixel_values"].shape == (1, processor.num_frames, 3, 32, 32)
    # uniform sampling of 7 frames into 4 picks the segment centres 0, 2, 4, 6
    assert batch["face_frame_mask"].tolist() == [[True, True, False, True]]
    assert batch["input_values"].shape == (1, 3000) and batch["audio_attention_mask"].all()
    assert "labels" not in batch


def test_left_padding_and_labels_in_a_batch(processor):
    short = processor.build_prompt("OV-MER", modalities="")
    long = processor.build_prompt("MER", modalities="", candidate_labels=["a", "b", "c"], subtitle="long subtitle here")
    batch = processor(text=[short, long], answers=["calm", None])
    mask, labels = batch["attention_mask"], batch["labels"]
    assert mask[0, 0] == 0 and mask[1].all()  # left padding
    assert (labels[1] == -100).all()  # no answer, nothing to learn
    kept = labels[0] != -100
    assert processor.tokenizer.decode(batch["input_ids"][0][kept]) == "calm###" + processor.tokenizer.eos_token
    right = processor(text=[short, long], padding_side="right")
    assert right["attention_mask"][0, -1] == 0


def test_missing_media_and_bad_arguments_are_named(processor):
    prompt = processor.build_prompt("OV-MER", modalities="AV")
    with pytest.raises(ValueError, match=r"text\[0\] uses \['<video>'\] but videos\[0\] is None"):
        processor(text=[prompt], audio=[np.zeros(800, np.float32)])
    with pytest.raises(ValueError, match=r"text\[0\] uses \['<audio>'\] but audio\[0\] is None"):
        processor(text=[prompt], videos=[np.zeros((2, 8, 8, 3), np.uint8)])
    with pytest.raises(ValueError, match="videos has 2 entries for 1 prompts"):
        processor(text=[prompt], videos=[None, None])
    with pytest.raises(ValueError, match="more than one"):
        processor(text=[prompt + "<audio>"])
    with pytest.raises(ValueError, match=r"audio\[0\] must be a mono 1-D waveform"):
        processor(text=[prompt], videos=[np.zeros((2, 8, 8, 3), np.uint8)], audio=[np.zeros((2, 800), np.float32)])


def test_split_reasoning():
    split = split_reasoning("<think>The user is sad because of the exam.</think>\n I'm sorry to hear that.")
    assert split.reasoning == "The user is sad because of the exam."
    assert split.answer == "I'm sorry to hear that."
    assert split_reasoning("happy").reasoning is None and split_reasoning("happy").answer == "happy"
    unfinished = split_reasoning("<think>First, the event")
    assert unfinished.reasoning == "First, the event" and unfinished.answer == ""
    assert split_reasoning("<think>a</think><answer>joy</answer>").answer == "joy"


def test_decode_replies_keeps_think_tags_through_the_tokenizer(processor):
    reply = "<think>Firstly, a loss.</think> Take care."
    ids = processor.tokenizer(reply, add_special_tokens=False)["input_ids"]
    prompt = processor.tokenizer("<|im_start|>assistant\n", add_special_tokens=False)["input_ids"]
    generated = torch.tensor([prompt + ids + [processor.tokenizer.eos_token_id]])
    (split,) = processor.decode_replies(generated, prompt_length=len(prompt))
    assert split.reasoning == "Firstly, a loss." and split.answer == "Take care."


def test_processor_save_and_load(processor, tmp_path):
    processor.save_pretrained(tmp_path)
    loaded = AutoProcessor.from_pretrained(tmp_path)
    assert type(loaded) is NanoEmoXProcessor
    for field in ("num_video_tokens", "num_audio_tokens", "num_face_tokens", "num_frames", "face_size", "task_identifier_style", "face_input"):
        assert getattr(loaded, field) == getattr(processor, field)
    assert loaded.placeholder_token_ids == processor.placeholder_token_ids
    rng = np.random.default_rng(1)
    inputs = dict(
        text=[processor.build_prompt("MER", candidate_labels=["a", "b"])],
        videos=[rng.integers(0, 256, (5, 24, 24, 3), dtype=np.uint8)],
        audio=[rng.standard_normal(4000).astype(np.float32)],
        faces=[rng.integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)],
        answers=["a"],
    )
    before, after = processor(**inputs), loaded(**inputs)
    assert set(before) == set(after)
    for key in before:
        assert torch.equal(before[key], after[key]), key
