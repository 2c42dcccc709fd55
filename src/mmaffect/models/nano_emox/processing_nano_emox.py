"""Nano-EmoX processor: task prompts, chat formatting, placeholder expansion, video / audio / face preprocessing.

``NanoEmoXProcessor`` bundles

* a tokenizer (Qwen2.5 for the full model) extended with the placeholder tokens ``<video>``, ``<audio>``,
  ``<face>``, ``<fusion>`` (special) and the reasoning tags ``<think>`` / ``</think>`` (kept when decoding);
* a CLIP image processor (the PIL variant, ``CLIPImageProcessorPil``) for the video frames;
* a Wav2Vec2-style feature extractor at 16 kHz for the HuBERT waveform input;
* face crops: OpenCV's bundled Haar cascade (or any detector callable) on the sampled frames, normalised with
  the ImageNet statistics of the Swin face backbone.

Prompt format (``prompt_format``). The paper gives the task instructions (supplement D) but not the wrapper; the
public code's is the default, ``"public_code"``::

    <|im_start|>###Human: The audio and video merged info is: <Multi><fusion></Multi>. The audio content is as
    follows: <Audio><audio></Audio>. Meanwhile, We uniformly extract facial informations from video:
    <Video><face></Video>. Meanwhile, we uniformly sample raw frames from the video: <Video><video></Video>.
    The subtitle of this video is: <Subtitle>...</Subtitle>. Now, please answer my question based on all the
    provided information. [Recognition] Please select ... ###Assistant: {answer}###<|im_end|>

(the sequence starts with the tokenizer's bos token, ``<|im_start|>`` for Qwen2.5 as the public code sets it; the
answer ends with ``###`` and the eos token, both targets; ERG dialogue history is a ``<Dialogue History>`` sentence
of the same turn). ``prompt_format="chatml"`` gives ``<|im_start|>user ...<|im_end|>`` turns with the history as
earlier turns, without any default system prompt (Qwen's own chat template would add "You are Qwen, created by
Alibaba Cloud..."; it is never used unless passed explicitly as ``chat_template``).

Reasoning tags (``think_tokens``): ``"text"`` (default, public code) writes ``<think>`` / ``</think>`` as plain text,
tokenised like any other text. ``"special"`` adds them as two new tokens; their embedding rows are Qwen's untrained
padding rows, so the P2E trainer trains them (PEFT ``trainable_token_indices``, tied with the LM head) in every
phase that uses LoRA, and refuses a non-LoRA phase whose answers contain them.

Prompts carry one placeholder per modality; ``__call__`` expands each into the branch's token count so the model
can write the branch tokens into those positions. A modality whose placeholder is absent is simply not used:
the AT / VT / FT / VFT / AVFT / AVFMT variants of Table 8 are prompt choices (``modalities=``), not code forks.

Task identifiers (supplement D, Table 1): ``[Recognition]`` (MER), ``[Recog_OV]`` (OV-MER), ``[Inference]``
(ERI), ``[Intent]`` (MIR), ``[Interaction]`` (ERG). The public code (and the OV-MER template box of the
supplement) spells OV-MER ``[Recogn_OV]``: ``task_identifier_style="public_code"``.

numpy, PIL, av, soxr, soundfile and cv2 are imported inside the functions that use them.
"""

import os
import re
from dataclasses import dataclass
from collections.abc import Callable, Sequence
from typing import Any

from transformers import ProcessorMixin
from transformers.feature_extraction_utils import BatchFeature

from .configuration_nano_emox import (IGNORE_INDEX, PLACEHOLDER_TOKENS, processor_config_mismatches,
                                      processor_token_counts, read_json_next_to)
from .media_nano_emox import (
    DEFAULT_SAMPLING_RATE,
    FaceTrack,
    HaarCascadeFaceDetector,
    MediaError,
    NoAudioTrackError,
    read_audio,
    read_video_frames,
    resize_frame,
    track_faces,
    uniform_frame_indices,
)

# Token counts of the full-size model (the config defaults), used when neither counts nor a config are given.
FULL_SIZE_TOKEN_COUNTS = {"num_video_tokens": 32, "num_audio_tokens": 32, "num_face_tokens": 4, "num_fusion_tokens": 1}
PLACEHOLDERS = PLACEHOLDER_TOKENS
THINK_START, THINK_END = "<think>", "</think>"
MODALITIES = ("fusion", "audio", "face", "video")  # prompt order (public code: fusion, audio, face, frames)
IMAGENET_MEAN = [0.485, 0.456, 0.406]  # the Swin face backbone is an ImageNet model
IMAGENET_STD = [0.229, 0.224, 0.225]
MIN_AUDIO_SAMPLES = 400  # HuBERT's convolutional front end needs 25 ms for one frame

# ----------------------------------------------------------------------------------------------------
# Tasks (supplement D and Table 1)
# ----------------------------------------------------------------------------------------------------
TASK_IDENTIFIERS = {
    "paper": {"MER": "[Recognition]", "OV-MER": "[Recog_OV]", "ERI": "[Inference]", "MIR": "[Intent]", "ERG": "[Interaction]"},
    "public_code": {"MER": "[Recognition]", "OV-MER": "[Recogn_OV]", "ERI": "[Inference]", "MIR": "[Intent]", "ERG": "[Interaction]"},
}
TASK_TEMPLATES = {
    "MER": "Please select the label that can best describe the person's emotional state from the provided "
    "candidate labels: {labels}.",
    "OV-MER": "Recognize all the possible emotional states the character might be feeling in this context.",
    "ERI": "From the combined evidence of speech, tone, and visual expression, construct a detailed summary of the "
    "subject's emotional journey and final inferred state.",
    "MIR": "Recognize speaker's intention from the provided candidate labels: {labels}.",
    "ERG": "You are an empathetic listener, your goal is to understand the user's emotions and intentions, and "
    "respond or comfort them with appropriate language that helps them feel understood and cared for. Please "
    "analyze using Chain of Empathy:\n"
    "First, Reflect on the event scenarios that arise from the ongoing dialogue.\n"
    "Secondly, Analyze both the implicit and explicit emotions conveyed by the user.\n"
    "Thirdly, Infer the underlying reasons for the user's emotions.\n"
    "Fourthly, Determine the goal of your response in this particular instance, such as alleviating anxiety, "
    "offering reassurance, or expressing understanding.",
}
TASKS = tuple(TASK_TEMPLATES)  # MER, OV-MER, ERI, MIR, ERG
# MER without a candidate list (the public code's "onehot_wo_candidates" question).
MER_OPEN_TEMPLATE = "Please recognize the character's most likely emotional state."
TASK_ALIASES = {
    "mer": "MER", "recognition": "MER",
    "ov-mer": "OV-MER", "ovmer": "OV-MER", "ov_mer": "OV-MER", "recog_ov": "OV-MER", "recogn_ov": "OV-MER",
    "eri": "ERI", "inference": "ERI",
    "mir": "MIR", "intent": "MIR",
    "erg": "ERG", "interaction": "ERG",
}
# The modality sentences of the ChatML format (this package's own wording).
MODALITY_SENTENCES = {
    "fusion": "The audio and video merged info is: {token}.",
    "audio": "The audio content is as follows: {token}.",
    "face": "The facial expressions over time are: {token}.",
    "video": "We uniformly sample raw frames from the video: {token}.",
}
# The public code's sentences (its full-modality prompt), with its plain-text tags; "Meanwhile, " joins the face and
# frame sentences to what precedes them.
PUBLIC_CODE_SENTENCES = {
    "fusion": "The audio and video merged info is: <Multi>{token}</Multi>.",
    "audio": "The audio content is as follows: <Audio>{token}</Audio>.",
    "face": "We uniformly extract facial informations from video: <Video>{token}</Video>.",
    "video": "We uniformly sample raw frames from the video: <Video>{token}</Video>.",
}
PUBLIC_CODE_SUBTITLE = "The subtitle of this video is: <Subtitle>{}</Subtitle>."
PUBLIC_CODE_HISTORY = "The dialogue history is: <Dialogue History>{}</Dialogue History>."
PUBLIC_CODE_QUESTION = "Now, please answer my question based on all the provided information."
HUMAN, ASSISTANT, ANSWER_END = "###Human: ", "###Assistant: ", "###"
PROMPT_FORMATS = ("public_code", "chatml")
THINK_TOKEN_STYLES = ("text", "special")
MODALITY_LETTERS = {"a": "audio", "v": "video", "f": "face", "m": "fusion"}


def canonical_task(task: str) -> str:
    """``"recognition"`` / ``"mer"`` / ``"[Recognition]"`` -> ``"MER"`` etc."""
    key = task.strip().strip("[]").lower()
    if key.upper() in TASK_TEMPLATES:
        return key.upper()
    if key not in TASK_ALIASES:
        raise ValueError(f"unknown task {task!r}; expected one of {sorted(TASK_TEMPLATES)} or {sorted(TASK_ALIASES)}")
    return TASK_ALIASES[key]


def parse_modalities(modalities: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"AVFM"`` / ``"AVFMT"`` / ``["audio", "video"]`` -> canonical modality names in prompt order."""
    if modalities is None:
        return MODALITIES
    if isinstance(modalities, str):
        letters = modalities.lower().replace("t", "")
        unknown = sorted(set(letters) - set(MODALITY_LETTERS))
        if unknown:
            raise ValueError(f"unknown modality letters {unknown} in {modalities!r}; use A, V, F, M (and T)")
        names = {MODALITY_LETTERS[c] for c in letters}
    else:
        names = set(modalities)
        unknown = sorted(names - set(MODALITIES))
        if unknown:
            raise ValueError(f"unknown modalities {unknown}; expected a subset of {list(MODALITIES)}")
    return tuple(m for m in MODALITIES if m in names)


def format_task_instruction(
    task: str,
    candidate_labels: Sequence[str] | str | None = None,
    identifier_style: str = "paper",
) -> str:
    """``"[Identifier] template"`` for one of the five trained tasks (supplement D)."""
    task = canonical_task(task)
    if identifier_style not in TASK_IDENTIFIERS:
        raise ValueError(f"identifier_style must be one of {sorted(TASK_IDENTIFIERS)}, got {identifier_style!r}")
    identifier = TASK_IDENTIFIERS[identifier_style][task]
    template = TASK_TEMPLATES[task]
    if "{labels}" in template:
        if candidate_labels is None or len(candidate_labels) == 0:
            if task != "MER":
                raise ValueError(f"task {task} needs candidate_labels (its template lists them)")
            template = MER_OPEN_TEMPLATE
        else:
            labels = candidate_labels if isinstance(candidate_labels, str) else ", ".join(candidate_labels)
            template = template.format(labels=labels)
    return f"{identifier} {template}"


@dataclass
class ReasoningSplit:
    """A generated reply split at the ``<think>`` block."""

    reasoning: str | None
    answer: str


def split_reasoning(text: str) -> ReasoningSplit:
    """Split ``"<think>...</think> reply"`` into the reasoning and the final reply.

    A reply without ``<think>`` has ``reasoning=None``; an unclosed ``<think>`` (generation stopped early) puts
    everything after it in ``reasoning`` and leaves ``answer`` empty; ``<answer>...</answer>`` tags (used by some
    public-code prompts) are stripped from the reply.
    """
    start = text.find(THINK_START)
    if start < 0:
        reasoning, answer = None, text
    else:
        end = text.find(THINK_END, start)
        if end < 0:
            reasoning, answer = text[start + len(THINK_START) :], ""
        else:
            reasoning = text[start + len(THINK_START) : end]
            answer = text[:start] + text[end + len(THINK_END) :]
    match = re.search(r"<answer>(.*?)(</answer>|$)", answer, flags=re.DOTALL)
    if match:
        answer = match.group(1)
    return ReasoningSplit(reasoning=reasoning.strip() if reasoning is not None else None, answer=answer.strip())


# ChatML, the format of the Qwen2.5 chat template (without Qwen's default system prompt).
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


class NanoEmoXProcessor(ProcessorMixin):
    r"""Tokenizer + CLIP image processor + 16 kHz feature extractor + face cropping for Nano-EmoX.

    Args:
        image_processor: a CLIP image processor (``CLIPImageProcessorPil`` of ``openai/clip-vit-large-patch14``).
        feature_extractor: a ``Wav2Vec2FeatureExtractor`` at 16 kHz (HuBERT-Large's).
        tokenizer: the language model's tokenizer; the placeholder and ``<think>`` tokens are added if missing.
        chat_template: Jinja chat template of the ``"chatml"`` format (defaults to plain ChatML without a system
            prompt, never to the tokenizer's own template).
        num_video_tokens, num_audio_tokens, num_face_tokens, num_fusion_tokens: tokens each placeholder expands
            to; must equal the model's (``config.num_video_tokens`` ...). Default: ``config``'s, else the full-size
            model's (32, 32, 4, 1).
        config (`NanoEmoXConfig`, optional): the model's config. The token counts are read from it, and a
            disagreement (explicit counts, ``num_frames`` above ``max_frames``, placeholder ids of the tokenizer) is
            a ValueError here. ``from_pretrained`` checks against the folder's ``config.json`` the same way.
        num_frames (`int`, defaults to 8): frames sampled uniformly per clip (public code).
        sampling_rate (`int`, defaults to 16000): audio rate expected by the audio tower.
        max_audio_seconds (`float`, optional): audio longer than this is cut.
        face_size (`int`, defaults to 224): side of the face crops (the face backbone's image size).
        face_margin (`float`, defaults to 0.25): margin around a detected box, as a fraction of its side.
        face_input (`str`, defaults to "crop"): ``"crop"`` detects and crops faces (paper: an enhanced facial
            encoder on faces); ``"full_frame"`` feeds the whole sampled frames (public code).
        face_image_mean, face_image_std: normalisation of face crops (ImageNet).
        task_identifier_style (`str`, defaults to "paper"): ``"paper"`` (``[Recog_OV]``) or ``"public_code"``
            (``[Recogn_OV]``).
        prompt_format (`str`, defaults to "public_code"): ``"public_code"`` (``###Human: ... ###Assistant: ``,
            answers end with ``###``) or ``"chatml"`` (``<|im_start|>user`` turns, no injected system prompt); see the
            module docstring.
        think_tokens (`str`, defaults to "text"): ``"text"`` (plain-text ``<think>`` tags, public code) or
            ``"special"`` (two added tokens whose embedding rows the P2E trainer trains).
        face_detector (callable, optional): ``frame -> [(x, y, w, h)]``; default: OpenCV Haar cascade. Not saved.
    """

    def __init__(
        self,
        image_processor=None,
        feature_extractor=None,
        tokenizer=None,
        chat_template=None,
        num_video_tokens: int | None = None,
        num_audio_tokens: int | None = None,
        num_face_tokens: int | None = None,
        num_fusion_tokens: int | None = None,
        num_frames: int = 8,
        sampling_rate: int = DEFAULT_SAMPLING_RATE,
        max_audio_seconds: float | None = None,
        face_size: int = 224,
        face_margin: float = 0.25,
        face_input: str = "crop",
        face_image_mean: Sequence[float] = tuple(IMAGENET_MEAN),
        face_image_std: Sequence[float] = tuple(IMAGENET_STD),
        task_identifier_style: str = "paper",
        prompt_format: str = "public_code",
        think_tokens: str = "text",
        face_detector: Callable | None = None,
        config=None,
        **kwargs,
    ):
        if prompt_format not in PROMPT_FORMATS:
            raise ValueError(f"prompt_format must be one of {PROMPT_FORMATS}, got {prompt_format!r}")
        if think_tokens not in THINK_TOKEN_STYLES:
            raise ValueError(f"think_tokens must be one of {THINK_TOKEN_STYLES}, got {think_tokens!r}")
        if tokenizer is not None:
            self.add_nano_emox_tokens(tokenizer, think_tokens=think_tokens)
        # Never the tokenizer's own template: Qwen's injects a default system prompt into every prompt.
        super().__init__(image_processor, feature_extractor, tokenizer, chat_template=chat_template or CHATML_TEMPLATE, **kwargs)
        if face_input not in ("crop", "full_frame"):
            raise ValueError(f"face_input must be 'crop' or 'full_frame', got {face_input!r}")
        if task_identifier_style not in TASK_IDENTIFIERS:
            raise ValueError(f"task_identifier_style must be one of {sorted(TASK_IDENTIFIERS)}, got {task_identifier_style!r}")
        given = {"num_video_tokens": num_video_tokens, "num_audio_tokens": num_audio_tokens,
                 "num_face_tokens": num_face_tokens, "num_fusion_tokens": num_fusion_tokens}  # fmt: skip
        counts = processor_token_counts(config) if config is not None else dict(FULL_SIZE_TOKEN_COUNTS)
        for field, value in given.items():
            if value is not None and config is not None and int(value) != counts[field]:
                raise ValueError(f"NanoEmoXProcessor({field}={value}) disagrees with the model config ({counts[field]}); "
                                 "leave it out to take the config's")
            setattr(self, field, int(value) if value is not None else counts[field])
        self.num_frames = int(num_frames)
        self.sampling_rate = int(sampling_rate)
        self.max_audio_seconds = max_audio_seconds
        self.face_size = int(face_size)
        self.face_margin = float(face_margin)
        self.face_input = face_input
        self.face_image_mean = [float(v) for v in face_image_mean]
        self.face_image_std = [float(v) for v in face_image_std]
        self.task_identifier_style = task_identifier_style
        self.prompt_format = prompt_format
        self.think_tokens = think_tokens
        self._face_detector = face_detector
        if config is not None:
            self.check_model_config(config, "the model config")

    # ------------------------------------------------------------------ agreement with the model
    def match_model_config(self, config) -> "NanoEmoXProcessor":
        """Take the token counts of ``config`` (a ``NanoEmoXConfig``) and check the rest; returns ``self``."""
        for field, value in processor_token_counts(config).items():
            setattr(self, field, value)
        self.check_model_config(config, "the model config")
        return self

    def check_model_config(self, config, where: str) -> None:
        """ValueError naming every field where this processor and the model ``config`` (object or ``config.json``
        dict) disagree: token counts, frames per clip, placeholder ids."""
        values = {field: getattr(self, field) for field in (*FULL_SIZE_TOKEN_COUNTS, "num_frames")}
        ids = self.placeholder_token_ids if self.tokenizer is not None else None
        problems = processor_config_mismatches(config, values, ids)
        if problems:
            raise ValueError(f"the Nano-EmoX processor does not match {where}: {'; '.join(problems)} (build the processor "
                             "with config=model.config, or processor.match_model_config(model.config), and save both)")

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """``ProcessorMixin.from_pretrained``, then a check against the model's ``config.json`` when the folder has
        one: a processor saved for another model size fails here, not at the first forward."""
        processor = super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        model_config = read_json_next_to(pretrained_model_name_or_path, "config.json", kwargs)
        if model_config is not None and model_config.get("model_type") == "nano_emox":
            processor.check_model_config(model_config, f"the model's config.json in {pretrained_model_name_or_path}")
        return processor

    # ------------------------------------------------------------------ tokens
    @staticmethod
    def add_nano_emox_tokens(tokenizer, think_tokens: str = "text") -> dict[str, int]:
        """Add ``<video> <audio> <face> <fusion>`` (special) to ``tokenizer`` if missing, and with
        ``think_tokens="special"`` also ``<think> </think>`` (kept when decoding); returns the placeholder ids.
        Idempotent."""
        vocab = tokenizer.get_vocab()
        missing = [tok for tok in PLACEHOLDERS.values() if tok not in vocab]
        if missing:
            tokenizer.add_tokens(missing, special_tokens=True)
        missing_think = [tok for tok in (THINK_START, THINK_END) if tok not in vocab]
        if think_tokens == "special" and missing_think:
            tokenizer.add_tokens(missing_think, special_tokens=False)
        return {name: tokenizer.convert_tokens_to_ids(tok) for name, tok in PLACEHOLDERS.items()}

    @property
    def think_token_ids(self) -> list[int]:
        """Ids of ``<think>`` / ``</think>`` when they are tokens of their own (``think_tokens="special"``), else []."""
        if self.think_tokens != "special":
            return []
        return [self.tokenizer.convert_tokens_to_ids(tok) for tok in (THINK_START, THINK_END)]

    @property
    def sequence_start(self) -> str:
        """Text every ``public_code`` prompt starts with: the tokenizer's bos token, or ``<|im_start|>`` when the
        tokenizer has no bos but knows that token (Qwen2.5, as the public code sets it), else nothing."""
        bos = getattr(self.tokenizer, "bos_token", None)
        if bos:
            return bos
        return "<|im_start|>" if "<|im_start|>" in self.tokenizer.get_vocab() else ""

    @property
    def answer_suffix(self) -> str:
        """Text appended to every target answer before the eos token (``###`` in the public-code format)."""
        return ANSWER_END if self.prompt_format == "public_code" else ""

    @property
    def placeholder_token_ids(self) -> dict[str, int]:
        return {name: self.tokenizer.convert_tokens_to_ids(tok) for name, tok in PLACEHOLDERS.items()}

    def tokens_per_modality(self) -> dict[str, int]:
        return {
            "video": self.num_video_tokens,
            "audio": self.num_audio_tokens,
            "face": self.num_face_tokens,
            "fusion": self.num_fusion_tokens,
        }

    @property
    def face_detector(self) -> Callable:
        if self._face_detector is None:
            self._face_detector = HaarCascadeFaceDetector()
        return self._face_detector

    @face_detector.setter
    def face_detector(self, detector: Callable | None) -> None:
        self._face_detector = detector

    # ------------------------------------------------------------------ prompts
    def build_messages(
        self,
        task: str | None = None,
        *,
        modalities: str | Sequence[str] | None = None,
        subtitle: str | None = None,
        candidate_labels: Sequence[str] | str | None = None,
        instruction: str | None = None,
        user_input: str | None = None,
        dialogue_history: Sequence[Any] | None = None,
        system_prompt: str | None = None,
        answer: str | None = None,
    ) -> list[dict[str, str]]:
        """Chat messages for one sample.

        The user turn holds one placeholder per modality in ``modalities`` (``"AVFM"``, ``["audio", "video"]``,
        default all four), the subtitle, the user's utterance (ERG) and the task instruction
        (``format_task_instruction``; ``instruction=`` replaces it). ``dialogue_history`` (ERG, turn-based
        AvaMERG) is a list of ``(user, assistant)`` pairs or of ``{"role", "content"}`` dicts placed before the
        current turn. ``answer`` adds the assistant turn.
        """
        if instruction is None:
            if task is None:
                raise ValueError("build_messages needs a task (MER, OV-MER, ERI, MIR, ERG) or an explicit instruction")
            instruction = format_task_instruction(task, candidate_labels, self.task_identifier_style)
        history: list[dict[str, str]] = []
        for turn_index, turn in enumerate(dialogue_history or []):
            if isinstance(turn, dict):
                if turn.get("role") not in ("user", "assistant", "system") or "content" not in turn:
                    raise ValueError(f"dialogue_history[{turn_index}] needs 'role' (user/assistant) and 'content', got {turn}")
                history.append({"role": turn["role"], "content": str(turn["content"])})
            elif isinstance(turn, (tuple, list)) and len(turn) == 2:
                history.append({"role": "user", "content": str(turn[0])})
                history.append({"role": "assistant", "content": str(turn[1])})
            else:
                raise ValueError(f"dialogue_history[{turn_index}] must be a (user, assistant) pair or a message dict, got {turn!r}")
        public = self.prompt_format == "public_code"
        parts = []
        for m in parse_modalities(modalities):
            if public:
                sentence = PUBLIC_CODE_SENTENCES[m].format(token=PLACEHOLDERS[m])
                parts.append(f"Meanwhile, {sentence[0].lower()}{sentence[1:]}" if m in ("face", "video") and parts else sentence)
            else:
                parts.append(MODALITY_SENTENCES[m].format(token=PLACEHOLDERS[m]))
        if subtitle:
            if public:
                parts.append(PUBLIC_CODE_SUBTITLE.format(subtitle.strip()))
            else:
                ending = "" if subtitle.rstrip()[-1:] in {".", "!", "?", "…"} else "."
                parts.append(f"The subtitle of this video is: {subtitle.rstrip()}{ending}")
        if public and history:  # the public code writes the history into the current turn (AvaMERG)
            parts.append(PUBLIC_CODE_HISTORY.format("\n".join(f"{t['role']}: {t['content']}" for t in history)))
            history = []
        if user_input:
            parts.append(f"Current user input: {user_input}")
        if public:
            parts.append(PUBLIC_CODE_QUESTION)
        parts.append(instruction)
        messages: list[dict[str, str]] = []
        if system_prompt:
            messages.append({"role": "system", "content": system_prompt})
        messages.extend(history)
        messages.append({"role": "user", "content": " ".join(parts)})
        if answer is not None:
            messages.append({"role": "assistant", "content": answer})
        return messages

    def format_prompt(self, messages: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        """Chat-template the messages (without tokenising). A final assistant message is dropped from the prompt:
        pass its content as ``answers=`` to ``__call__`` to get labels."""
        if messages and messages[-1]["role"] == "assistant":
            messages = messages[:-1]
        if self.prompt_format == "chatml":
            return self.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=add_generation_prompt, chat_template=self.chat_template
            )
        text = self.sequence_start
        for message in messages:
            if message["role"] == "system":
                text += message["content"] + " "
            elif message["role"] == "user":
                text += HUMAN + message["content"] + " "
            else:
                text += ASSISTANT + message["content"] + ANSWER_END
        return text + ASSISTANT if add_generation_prompt else text

    def build_prompt(self, task: str | None = None, **kwargs) -> str:
        """``format_prompt(build_messages(task, **kwargs))``: the generation prompt of one sample."""
        kwargs.pop("answer", None)
        return self.format_prompt(self.build_messages(task, **kwargs))

    # ------------------------------------------------------------------ media loading
    def load_clip(
        self,
        path: str | os.PathLike,
        *,
        load_video: bool = True,
        load_audio: bool = True,
        detect_faces: bool = True,
        missing_audio: str = "error",
    ) -> dict[str, Any]:
        """Read one clip: ``num_frames`` uniformly sampled frames (PyAV), the audio track at ``sampling_rate``
        (soxr) and face crops of the sampled frames.

        ``missing_audio``: ``"error"`` (default) raises ``NoAudioTrackError`` naming the file when the clip has no
        audio track; ``"omit"`` returns ``audio=None`` so the audio and fusion branches are left out of the prompt.
        Missing files, corrupt containers and zero-length clips always raise (``FileNotFoundError`` /
        ``MediaError``) with the file name.
        """
        if missing_audio not in ("error", "omit"):
            raise ValueError(f"missing_audio must be 'error' or 'omit', got {missing_audio!r}")
        path = os.fspath(path)
        clip: dict[str, Any] = {"path": path, "frames": None, "audio": None, "faces": None}
        if load_video or detect_faces:
            video = read_video_frames(path, self.num_frames)
            clip["frames"] = video.frames
            clip["timestamps"] = video.timestamps
        if load_audio:  # before face detection: problems with the file come first
            try:
                clip["audio"] = read_audio(path, self.sampling_rate, self.max_audio_seconds)
            except NoAudioTrackError:
                if missing_audio == "error":
                    raise
        if detect_faces:
            clip["faces"] = self.track_faces(clip["frames"])
        return clip

    def track_faces(self, frames) -> FaceTrack:
        """Face crops of ``frames`` following ``face_input`` (``"crop"``: detector; ``"full_frame"``: whole frames)."""
        full = self.face_input == "full_frame"
        return track_faces(frames, None if full else self.face_detector, self.face_size, self.face_margin, full_frame=full)

    def prepare_clip(
        self,
        path: str | os.PathLike,
        task: str | None = None,
        *,
        modalities: str | Sequence[str] | None = None,
        answer: str | None = None,
        missing_audio: str = "error",
        return_tensors: str = "pt",
        **prompt_kwargs,
    ) -> BatchFeature:
        """One call from a video file to model inputs: read the clip, build the task prompt with the requested
        modalities (default all), expand placeholders, and return a batch of one (with labels if ``answer``).

        With ``missing_audio="omit"`` a clip without an audio track drops the audio and fusion branches."""
        wanted = parse_modalities(modalities)
        needs_audio = "audio" in wanted or "fusion" in wanted
        needs_frames = "video" in wanted or "fusion" in wanted
        clip = self.load_clip(
            path,
            load_video=needs_frames,
            load_audio=needs_audio,
            detect_faces="face" in wanted,
            missing_audio=missing_audio,
        )
        if needs_audio and clip["audio"] is None:
            wanted = tuple(m for m in wanted if m not in ("audio", "fusion"))
        prompt = self.build_prompt(task, modalities=wanted, **prompt_kwargs)
        return self(
            text=[prompt],
            videos=[clip["frames"] if needs_frames else None],
            audio=[clip["audio"]],
            faces=[clip["faces"]],
            answers=None if answer is None else [answer],
            return_tensors=return_tensors,
        )

    # ------------------------------------------------------------------ main entry point
    def __call__(
        self,
        text: str | Sequence[str] | None = None,
        videos: Sequence[Any] | None = None,
        audio: Sequence[Any] | None = None,
        faces: Sequence[Any] | None = None,
        answers: Sequence[str | None] | None = None,
        padding_side: str = "left",
        max_length: int | None = None,
        return_tensors: str | None = "pt",
        **kwargs,
    ) -> BatchFeature:
        """Tokenise chat-formatted prompts and preprocess the media of each sample.

        Args:
            text: prompts (from ``build_prompt``) with at most one ``<video>``/``<audio>``/``<face>``/``<fusion>``
                each.
            videos: per sample ``None``, a file path, or frames (``(T, H, W, 3)`` uint8 array or a list of PIL
                images / arrays); resampled uniformly to ``num_frames``.
            audio: per sample ``None``, a file path, or a mono waveform at ``sampling_rate``.
            faces: per sample ``None`` (crops are taken from the sample's video when its prompt has ``<face>``),
                a ``FaceTrack``, or a ``(T, S, S, 3)`` array of ready crops.
            answers: per sample target text (or ``None``); the answer, ``answer_suffix`` (``###`` in the public-code
                format) and the eos token are appended and become the only non-ignored ``labels``.
            padding_side: ``"left"`` (default, what batched generation needs) or ``"right"``.
            max_length: error when a sample is longer (placeholders must never be cut).

        Returns:
            ``BatchFeature`` with ``input_ids``, ``attention_mask`` (and ``labels``), and per modality only for the
            samples that use it: ``pixel_values_videos`` ``(Nv, T, 3, H, W)`` + ``video_sample_index`` ``(Nv,)``;
            ``input_values`` ``(Na, L)`` + ``audio_attention_mask`` + ``audio_sample_index``;
            ``face_pixel_values`` ``(Nf, T, 3, S, S)`` + ``face_frame_mask`` ``(Nf, T)`` + ``face_sample_index``.
            A video is kept when the prompt has ``<video>`` or ``<fusion>``, audio when it has ``<audio>`` or
            ``<fusion>``, faces when it has ``<face>``.
        """
        if kwargs:
            raise TypeError(f"NanoEmoXProcessor got unexpected arguments {sorted(kwargs)}")
        if return_tensors not in ("pt", None):
            raise ValueError(f"return_tensors must be 'pt' (or None for the same tensors), got {return_tensors!r}")
        if text is None:
            raise ValueError("NanoEmoXProcessor needs text (chat-formatted prompts, see build_prompt)")
        texts = [text] if isinstance(text, str) else list(text)
        if not texts:
            raise ValueError("NanoEmoXProcessor needs at least one prompt")
        batch = len(texts)
        videos = self._per_sample("videos", videos, batch)
        audio = self._per_sample("audio", audio, batch)
        faces = self._per_sample("faces", faces, batch)
        answers = self._per_sample("answers", answers, batch)
        media = self._collect_media(self._placeholder_counts(texts), videos, audio, faces)
        data = self._media_tensors(media)
        data.update(self._text_tensors(texts, answers, padding_side, max_length))
        return BatchFeature(data=data)

    # ------------------------------------------------------------------ __call__ steps
    @staticmethod
    def _placeholder_counts(texts: list[str]) -> list[dict[str, int]]:
        """How often each prompt names each modality's placeholder; more than once is an error."""
        counts = [{name: t.count(tok) for name, tok in PLACEHOLDERS.items()} for t in texts]
        for index, count in enumerate(counts):
            repeated = [PLACEHOLDERS[name] for name, n in count.items() if n > 1]
            if repeated:
                raise ValueError(f"text[{index}] has more than one {repeated}; each modality is used once per sample")
        return counts

    def _collect_media(self, counts, videos: list, audio: list, faces: list) -> dict[str, list]:
        """Read and check the media each prompt uses: the sample rows of each modality and their inputs."""
        media: dict[str, list] = {"video_rows": [], "frames": [], "audio_rows": [], "waveforms": [],
                                  "face_rows": [], "face_tracks": []}  # fmt: skip
        for index, uses in enumerate(counts):
            frames = None
            if uses["video"] or uses["fusion"] or (uses["face"] and faces[index] is None):
                if videos[index] is None:
                    needed = [PLACEHOLDERS[m] for m in ("video", "fusion", "face") if uses[m]]
                    raise ValueError(f"text[{index}] uses {needed} but videos[{index}] is None")
                frames = self._frames(videos[index], f"videos[{index}]")
            if uses["video"] or uses["fusion"]:
                media["video_rows"].append(index)
                media["frames"].append(frames)
            if uses["audio"] or uses["fusion"]:
                if audio[index] is None:
                    needed = [PLACEHOLDERS[m] for m in ("audio", "fusion") if uses[m]]
                    raise ValueError(f"text[{index}] uses {needed} but audio[{index}] is None")
                media["waveforms"].append(self._waveform(audio[index], f"audio[{index}]"))
                media["audio_rows"].append(index)
            if uses["face"]:
                media["face_tracks"].append(self._face_track(faces[index], frames, f"faces[{index}]"))
                media["face_rows"].append(index)
        return media

    def _media_tensors(self, media: dict[str, list]) -> dict[str, Any]:
        """Model inputs of the collected media: CLIP pixels, padded waveforms, normalised face crops + row indices."""
        import numpy as np
        import torch

        data: dict[str, Any] = {}
        if media["video_rows"]:
            flat = [frame for frames in media["frames"] for frame in frames]
            pixels = self.image_processor(images=flat, return_tensors="pt")["pixel_values"]
            data["pixel_values_videos"] = pixels.reshape(len(media["video_rows"]), self.num_frames, *pixels.shape[1:])
            data["video_sample_index"] = torch.tensor(media["video_rows"], dtype=torch.long)
        if media["audio_rows"]:
            features = self.feature_extractor(
                media["waveforms"],
                sampling_rate=self.sampling_rate,
                padding=True,
                return_attention_mask=True,
                return_tensors="pt",
            )
            data["input_values"] = features["input_values"]
            data["audio_attention_mask"] = features["attention_mask"]
            data["audio_sample_index"] = torch.tensor(media["audio_rows"], dtype=torch.long)
        if media["face_rows"]:
            tracks = media["face_tracks"]
            crops = np.stack([track.crops for track in tracks]).astype(np.float32) / 255.0
            mean = np.asarray(self.face_image_mean, dtype=np.float32)
            std = np.asarray(self.face_image_std, dtype=np.float32)
            crops = (crops - mean) / std  # (Nf, T, S, S, 3)
            data["face_pixel_values"] = torch.from_numpy(crops).permute(0, 1, 4, 2, 3).contiguous()
            data["face_frame_mask"] = torch.tensor([track.found for track in tracks], dtype=torch.bool)
            data["face_sample_index"] = torch.tensor(media["face_rows"], dtype=torch.long)
        return data

    def _expand_placeholders(self, text: str) -> str:
        """Each placeholder repeated as many times as its branch has tokens."""
        for name, count in self.tokens_per_modality().items():
            text = text.replace(PLACEHOLDERS[name], PLACEHOLDERS[name] * count)
        return text

    def _text_tensors(self, texts: list[str], answers: list, padding_side: str, max_length: int | None) -> dict[str, Any]:
        """``input_ids``, ``attention_mask`` (and ``labels``): all prompts and answers tokenised in one tokenizer
        call, padded by the tokenizer. Prompt and answer are tokenised apart (as two texts) so the answer's first
        token never merges with the prompt's last; the eos id follows each answer."""
        import torch

        eos_id = self.tokenizer.eos_token_id
        if eos_id is None and any(a is not None for a in answers):
            raise ValueError("the tokenizer has no eos_token: cannot end the answers for training")
        prompts = [self._expand_placeholders(t) for t in texts]
        targets = [answer + self.answer_suffix for answer in answers if answer is not None]
        encoded = self.tokenizer(prompts + targets, add_special_tokens=False)["input_ids"]
        target_ids = iter(encoded[len(prompts) :])
        sequences, answer_lengths = [], []
        for index, (ids, answer) in enumerate(zip(encoded[: len(prompts)], answers)):
            answer_ids = [] if answer is None else [*next(target_ids), eos_id]
            ids = [*ids, *answer_ids]
            if max_length is not None and len(ids) > max_length:
                raise ValueError(f"text[{index}] is {len(ids)} tokens long after placeholder expansion, over max_length={max_length}")
            sequences.append(ids)
            answer_lengths.append(len(answer_ids))
        padded = self._pad(sequences, padding_side)
        data = {"input_ids": padded["input_ids"].long(), "attention_mask": padded["attention_mask"].long()}
        if any(a is not None for a in answers):
            # The answer is the last `answer_lengths[row]` real tokens of each row, whichever side the padding is.
            real = data["attention_mask"].bool()
            tokens_from_here = data["attention_mask"].flip(-1).cumsum(-1).flip(-1)
            in_answer = real & (tokens_from_here <= torch.tensor(answer_lengths, dtype=torch.long)[:, None])
            data["labels"] = data["input_ids"].masked_fill(~in_answer, IGNORE_INDEX)
        return data

    def _pad(self, sequences: list[list[int]], padding_side: str):
        """``tokenizer.pad`` to the longest row; a tokenizer without a pad token pads with its eos token."""
        tokenizer = self.tokenizer
        pad_token = tokenizer.pad_token
        if pad_token is None and tokenizer.eos_token is None:
            raise ValueError("the tokenizer has neither pad_token nor eos_token to pad the batch with")
        if padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
        if pad_token is None:  # borrowed for this call only; the tokenizer is left as it was given
            tokenizer.pad_token = tokenizer.eos_token
        try:
            return tokenizer.pad({"input_ids": sequences}, padding=True, padding_side=padding_side,
                                 return_attention_mask=True, return_tensors="pt")  # fmt: skip
        finally:
            tokenizer.pad_token = pad_token

    def to_dict(self) -> dict[str, Any]:
        # The face detector is a runtime object (an OpenCV classifier cannot be copied or saved).
        detector = self.__dict__.pop("_face_detector", None)
        try:
            return super().to_dict()
        finally:
            self._face_detector = detector

    # ------------------------------------------------------------------ decoding
    def batch_decode(self, *args, **kwargs):
        return self.tokenizer.batch_decode(*args, **kwargs)

    def decode(self, *args, **kwargs):
        return self.tokenizer.decode(*args, **kwargs)

    def decode_replies(self, generated_ids, prompt_length: int | None = None) -> list[ReasoningSplit]:
        """Decode generated sequences (dropping the first ``prompt_length`` tokens) and split each at ``<think>``."""
        if prompt_length is not None:
            generated_ids = generated_ids[:, prompt_length:]
        texts = self.tokenizer.batch_decode(generated_ids, skip_special_tokens=True)
        if self.prompt_format == "public_code":  # the answer ends at "###" (anything after would be a next turn)
            texts = [t.split(ANSWER_END, 1)[0] for t in texts]
        return [split_reasoning(t) for t in texts]

    split_reasoning = staticmethod(split_reasoning)

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _per_sample(name: str, values, batch: int) -> list:
        if values is None:
            return [None] * batch
        if isinstance(values, (str, bytes)) or not isinstance(values, (list, tuple)):
            values = [values]
        values = list(values)
        if len(values) != batch:
            raise ValueError(f"{name} has {len(values)} entries for {batch} prompts (use None for samples without it)")
        return values

    def _frames(self, video, where: str):
        import numpy as np

        if isinstance(video, (str, os.PathLike)):
            return read_video_frames(video, self.num_frames).frames
        frames = [np.asarray(frame.convert("RGB")) if hasattr(frame, "convert") else np.asarray(frame) for frame in video]
        if not frames:
            raise MediaError(f"{where} has no frames (zero-length clip)")
        for i, frame in enumerate(frames):
            if frame.ndim != 3 or frame.shape[-1] != 3:
                raise ValueError(f"{where} frame {i} must be (H, W, 3) RGB, got shape {tuple(frame.shape)}")
            if frame.dtype.kind in "fc" and not np.isfinite(frame).all():  # uint8 casting would hide them
                raise MediaError(f"{where} frame {i} has non-finite values (NaN or Inf)")
        indices = uniform_frame_indices(len(frames), self.num_frames)
        return np.stack([frames[i].astype(np.uint8, copy=False) for i in indices])

    def _waveform(self, waveform, where: str):
        import numpy as np

        if isinstance(waveform, (str, os.PathLike)):
            waveform = read_audio(waveform, self.sampling_rate, self.max_audio_seconds)
        waveform = np.asarray(waveform, dtype=np.float32)
        if waveform.ndim != 1:
            raise ValueError(f"{where} must be a mono 1-D waveform at {self.sampling_rate} Hz, got shape {tuple(waveform.shape)}")
        if waveform.size == 0:
            raise MediaError(f"{where} is empty (zero-length audio)")
        finite = np.isfinite(waveform)
        if not finite.all():  # one NaN sample turns every HuBERT feature of the clip into NaN
            bad = np.flatnonzero(~finite)
            raise MediaError(f"{where} has {bad.size} non-finite sample(s) (NaN or Inf), first at index {int(bad[0])}")
        if self.max_audio_seconds is not None:
            waveform = waveform[: int(self.max_audio_seconds * self.sampling_rate)]
        if waveform.size < MIN_AUDIO_SAMPLES:  # shorter than one HuBERT frame: pad with silence
            waveform = np.pad(waveform, (0, MIN_AUDIO_SAMPLES - waveform.size))
        return waveform

    def _face_track(self, faces, frames, where: str) -> FaceTrack:
        import numpy as np

        if faces is None:
            return self.track_faces(frames)
        if isinstance(faces, FaceTrack):
            track = faces
        else:
            crops = np.asarray(faces)
            if crops.ndim != 4 or crops.shape[-1] != 3:
                raise ValueError(f"{where} must be a FaceTrack or (T, S, S, 3) crops, got shape {tuple(crops.shape)}")
            track = FaceTrack(crops=crops, found=[True] * len(crops))
        crops = np.asarray(track.crops)
        if crops.dtype.kind in "fc" and not np.isfinite(crops).all():
            raise MediaError(f"{where} has non-finite values (NaN or Inf)")
        if len(track.crops) == 0:
            raise ValueError(f"{where} has no frames")
        indices = uniform_frame_indices(len(track.crops), self.num_frames)
        crops = np.asarray(track.crops)
        if crops.shape[1:3] != (self.face_size, self.face_size):
            crops = np.stack([resize_frame(c.astype(np.uint8), self.face_size) for c in crops])
        return FaceTrack(crops=crops[indices], found=[bool(track.found[i]) for i in indices])

    # ------------------------------------------------------------------ tiny preset
    @classmethod
    def tiny(cls, **kwargs) -> "NanoEmoXProcessor":
        """A processor matching ``NanoEmoXConfig.tiny()``: a byte-level BPE tokenizer trained in milliseconds on a
        few affective sentences (special tokens first: 0 ``<|endoftext|>``, 1 ``<|im_start|>``, 2 ``<|im_end|>``,
        3..6 the placeholders), 32-px CLIP preprocessing, 32-px face crops. For tests and smoke runs; nothing is
        downloaded."""
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
        from transformers import CLIPImageProcessorPil, PreTrainedTokenizerFast, Wav2Vec2FeatureExtractor

        specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", *PLACEHOLDERS.values()]
        corpus = [
            "The person looks happy and relaxed while talking to a friend.",
            "She sounds angry, her voice is loud and tense; he seems sad and tired.",
            "Please select the label that can best describe the person's emotional state from the candidate labels.",
            "Recognize speaker's intention: thank, apologize, complain, agree, praise, inform, ask for help.",
            "You are an empathetic listener. Reflect, analyze emotions, infer reasons, respond with care.",
            "The subtitle of this video is: I can't believe you did that! neutral surprise fear disgust joy",
            "user assistant system 0123456789 , . ! ? : ; ' \" ( ) [ ] < > / \n",
            "###Human: ###Assistant: <Audio></Audio> <Video></Video> <Multi></Multi> <Subtitle></Subtitle> <think></think>",
            "Meanwhile, we uniformly extract facial informations from video. Now, please answer my question based on "
            "all the provided information. The audio and video merged info is. The dialogue history is.",
        ]
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=kwargs.pop("vocab_size", 300),
            special_tokens=specials,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        tok.train_from_iterator(corpus, trainer=trainer)
        tokenizer = PreTrainedTokenizerFast(
            tokenizer_object=tok,
            eos_token="<|im_end|>",
            pad_token="<|endoftext|>",
            bos_token=None,
            additional_special_tokens=list(PLACEHOLDERS.values()),
            chat_template=CHATML_TEMPLATE,
        )
        image_processor = CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
        feature_extractor = Wav2Vec2FeatureExtractor(
            feature_size=1, sampling_rate=DEFAULT_SAMPLING_RATE, do_normalize=True, return_attention_mask=True
        )
        defaults = dict(num_frames=4, face_size=32)
        if kwargs.get("config") is None:  # with a config, the counts come from it
            defaults.update(num_video_tokens=4, num_audio_tokens=3, num_face_tokens=2, num_fusion_tokens=1)
        defaults.update(kwargs)
        return cls(image_processor=image_processor, feature_extractor=feature_extractor, tokenizer=tokenizer, **defaults)


__all__ = ["NanoEmoXProcessor", "ReasoningSplit", "canonical_task", "format_task_instruction", "split_reasoning"]
