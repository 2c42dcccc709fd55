"""Predictors: what the harness asks for a reply to each benchmark sample.

A predictor is any object with

* ``name`` (a short readable name), ``batch_size`` (samples per :meth:`predict` call),
* ``fingerprint() -> dict`` (everything that changes the replies: part of the reply-cache key),
* ``required_media() -> set[str]`` (``"video"`` / ``"audio"``: the files a sample must have),
* ``predict(requests: Sequence[EvalRequest]) -> list[str]`` (one reply per request, in order).

Two ship with the package:

* :class:`NanoEmoXPredictor` - a Nano-EmoX folder (or Hub id): the processor builds each task prompt
  (``build_prompt``) and reads the media, the model generates a batch at a time, in bf16 where the
  hardware runs it natively (:func:`mmaffect.train.runtime.resolve_mixed_precision`).
* :class:`OpenAIChatPredictor` - any OpenAI-compatible chat server (vLLM, llama.cpp, a hosted API)
  through :class:`mmaffect.semantic_extraction.backends.OpenAICompatibleBackend`: the same task
  instruction as text, the clip as uniformly sampled frames, so other MLLMs are scored on the same
  footing (as MER-UniBench does).

Decoding: the paper gives no decoding settings; the public inference script samples
(``do_sample=True, temperature=1, top_p=0.9, max_new_tokens=1200``), which is the default here
(``decoding="sample"``), seeded per batch so a rerun with the same batches repeats itself.
``decoding="greedy"`` is deterministic regardless of batching.
"""

from __future__ import annotations

import os
import re
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

#: the public inference script's sampling settings (inference_hybird.py)
PUBLIC_CODE_SAMPLING = {"do_sample": True, "temperature": 1.0, "top_p": 0.9}
PUBLIC_CODE_MAX_NEW_TOKENS = 1200
DECODINGS = ("sample", "greedy")
_ALL_MODALITIES = ("fusion", "audio", "face", "video")
_NEEDS = {"video": {"video"}, "face": {"video"}, "audio": {"audio"}, "fusion": {"video", "audio"}}


@dataclass
class EvalRequest:
    """One sample as a predictor sees it.

    ``task`` is the processor's task name (``"MER"``, ``"OV-MER"``, ``"MIR"``, ``"ERI"``, ``"ERG"``);
    ``dialogue_history`` holds ``{"role": "user"|"assistant", "content"}`` turns (ERG).
    """

    id: str
    task: str
    subtitle: str = ""
    video: str | None = None
    audio: str | None = None
    candidate_labels: tuple[str, ...] = ()
    user_input: str | None = None
    dialogue_history: list[dict[str, str]] = field(default_factory=list)


@runtime_checkable
class Predictor(Protocol):
    name: str
    batch_size: int

    def fingerprint(self) -> dict[str, Any]: ...

    def required_media(self) -> set[str]: ...

    def predict(self, requests: Sequence[EvalRequest]) -> list[str]: ...


def _check_decoding(decoding: str, max_new_tokens: int, batch_size: int) -> None:
    if decoding not in DECODINGS:
        raise ValueError(f"decoding must be one of {DECODINGS}, got {decoding!r}")
    if max_new_tokens < 1 or batch_size < 1:
        raise ValueError(f"max_new_tokens and batch_size must be >= 1, got {max_new_tokens}, {batch_size}")


def _modality_names(modalities) -> tuple[str, ...]:
    from mmaffect.models.nano_emox.processing_nano_emox import parse_modalities

    return parse_modalities(modalities)


_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")


def _load_config(model, trust_remote_code: bool):
    """The checkpoint's config; a missing folder or unreachable Hub id is one clear error naming ``--model``."""
    from transformers import AutoConfig

    text = os.fspath(model)
    if not Path(text).is_dir() and not _HUB_ID.fullmatch(text):
        raise FileNotFoundError(f"--model {text}: no such folder (expected a Nano-EmoX folder written by save_pretrained, "
                                "an LGSRR folder, or a Hub id)")
    try:
        return AutoConfig.from_pretrained(text, trust_remote_code=trust_remote_code)
    except OSError as error:
        from mmaffect.errors import one_line

        raise FileNotFoundError(f"--model {text}: cannot load its config ({one_line(error)})") from None


class NanoEmoXPredictor:
    """Batched generation with a Nano-EmoX checkpoint.

    Args:
        model: a folder written by ``save_pretrained`` (or a Hub id), or a loaded model.
        processor: a ``NanoEmoXProcessor``; default: loaded from ``model``'s folder.
        batch_size: samples per ``generate`` call (left-padded by the processor).
        decoding: ``"sample"`` (public code: temperature 1.0, top-p 0.9) or ``"greedy"``.
        num_beams: beam search width (1: none). With ``"greedy"`` it is deterministic beam search, with
            ``"sample"`` beam sampling.
        max_new_tokens: generation budget (public code: 1200).
        seed: base seed of the per-batch sampling seed.
        precision: ``"auto"`` (bf16 on GPUs that have it and on CPUs with native bf16 matmuls, fp32
            elsewhere), ``"bf16"``, ``"fp16"`` or ``"no"`` (fp32).
        modalities: modalities of every prompt (``"AVFM"`` = all, the default; ``"AV"``, ``"T"`` ...).
            A sample without a video drops video / face / fusion, one without audio drops audio / fusion.
        trust_remote_code: load the folder's own code instead of the installed package's classes.
        device: ``"cpu"``, ``"cuda"`` ... (default: CUDA when available).
    """

    def __init__(self, model, processor=None, *, batch_size: int = 4, decoding: str = "sample",
                 max_new_tokens: int = PUBLIC_CODE_MAX_NEW_TOKENS, seed: int = 0, precision: str = "auto",
                 modalities: str | Sequence[str] | None = None, trust_remote_code: bool = False,
                 device: str | None = None, num_beams: int = 1):
        import torch

        import mmaffect.models.nano_emox  # noqa: F401  (registers the Auto classes)
        from mmaffect.train.runtime import resolve_mixed_precision

        _check_decoding(decoding, max_new_tokens, batch_size)
        if int(num_beams) < 1:
            raise ValueError(f"num_beams must be >= 1, got {num_beams}")
        self.precision = resolve_mixed_precision(precision)
        if self.precision not in ("bf16", "fp16", "no"):
            raise ValueError(f"precision must be auto, bf16, fp16 or no, got {precision!r}")
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "no": torch.float32}[self.precision]
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.source = os.fspath(model) if isinstance(model, (str, os.PathLike)) else getattr(model, "name_or_path", "")
        if isinstance(model, (str, os.PathLike)):
            from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor

            config = _load_config(model, trust_remote_code)
            if getattr(config, "model_type", None) != "nano_emox":
                raise ValueError(
                    f"--model {model}: model_type {getattr(config, 'model_type', None)!r} is not a Nano-EmoX checkpoint "
                    "(use --predictor openai for other multimodal LMs behind an OpenAI-compatible server)"
                )
            if Path(model).is_dir():  # a truncated / corrupt weights file: an error naming it, not safetensors' own
                from mmaffect.checkpoints import check_weight_files

                check_weight_files(model)
            if processor is None:
                processor = AutoProcessor.from_pretrained(model, trust_remote_code=trust_remote_code)
            model = AutoModelForImageTextToText.from_pretrained(model, trust_remote_code=trust_remote_code, dtype=dtype)
        elif processor is None:
            raise ValueError("pass the processor together with a loaded model")
        self.model = model.to(device=self.device, dtype=dtype).eval()
        self.processor = processor
        self.batch_size, self.decoding, self.max_new_tokens, self.seed = int(batch_size), decoding, int(max_new_tokens), int(seed)
        self.modalities = _modality_names(modalities)
        self.num_beams = int(num_beams)
        # the P2E trainer records the task prompts the model saw; the harness picks MER prompts from them
        self.trained_tasks = getattr(self.model.config, "trained_tasks", None)
        self.name = Path(self.source).name or "nano-emox"

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def fingerprint(self) -> dict[str, Any]:
        weights = {}
        folder = Path(self.source)
        if folder.is_dir():  # a retrained model in the same folder must not reuse old replies
            weights = {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.glob("*.safetensors"))}
        return {
            "predictor": "nano-emox", "model": self.source, "weights": weights, "decoding": self.decoding,
            "max_new_tokens": self.max_new_tokens, "num_beams": self.num_beams, "seed": self.seed, "precision": self.precision,
            "modalities": list(self.modalities),
            # sampled replies depend on the batch they were drawn in
            "batch_size": self.batch_size if self.decoding == "sample" else None,
        }  # fmt: skip

    def required_media(self) -> set[str]:
        return set().union(*(_NEEDS[m] for m in self.modalities)) if self.modalities else set()

    def _sample_modalities(self, request: EvalRequest) -> list[str]:
        drop = set()
        if request.video is None:
            drop |= {"video", "face", "fusion"}
        if request.audio is None:
            drop |= {"audio", "fusion"}
        return [m for m in self.modalities if m not in drop]

    def _prompt(self, request: EvalRequest, modalities: list[str]) -> str:
        kwargs: dict[str, Any] = {"modalities": modalities}
        if request.subtitle:
            kwargs["subtitle"] = request.subtitle
        if request.candidate_labels:
            kwargs["candidate_labels"] = list(request.candidate_labels)
        if request.user_input:
            kwargs["user_input"] = request.user_input
        if request.dialogue_history:
            kwargs["dialogue_history"] = [dict(turn) for turn in request.dialogue_history]
        return self.processor.build_prompt(request.task, **kwargs)

    def predict(self, requests: Sequence[EvalRequest]) -> list[str]:
        import torch

        prompts, videos, audio = [], [], []
        for request in requests:
            modalities = self._sample_modalities(request)
            prompts.append(self._prompt(request, modalities))
            videos.append(request.video if {"video", "face", "fusion"} & set(modalities) else None)
            audio.append(request.audio if {"audio", "fusion"} & set(modalities) else None)
        batch = self.processor(text=prompts, videos=videos, audio=audio, return_tensors="pt")
        batch = {key: value.to(self.device) for key, value in batch.items()}
        tokenizer = self.processor.tokenizer
        kwargs: dict[str, Any] = {"max_new_tokens": self.max_new_tokens, "eos_token_id": tokenizer.eos_token_id,
                                  "pad_token_id": tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id}
        if self.decoding == "sample":
            kwargs.update(PUBLIC_CODE_SAMPLING)
            torch.manual_seed(self.seed + zlib.crc32(requests[0].id.encode("utf-8")))
        else:
            kwargs["do_sample"] = False
        if self.num_beams > 1:
            kwargs["num_beams"] = self.num_beams
        with torch.inference_mode():
            generated = self.model.generate(**batch, **kwargs)
        new_tokens = generated[:, batch["input_ids"].shape[1]:]
        # special tokens (padding, end of turn) go; the <think> tags are ordinary tokens and stay
        return [text.strip() for text in self.processor.batch_decode(new_tokens, skip_special_tokens=True)]


_IDENTIFIER = re.compile(r"^\[[^\]]*\]\s*")


def plain_prompt(request: EvalRequest) -> str:
    """The text a general MLLM gets for a sample: the subtitle, the ERG dialogue, and the task
    instruction of the Nano-EmoX processor (``format_task_instruction``) without its task tag."""
    from mmaffect.models.nano_emox import format_task_instruction

    parts = []
    if request.subtitle:
        parts.append(f"The subtitle of this video is: {request.subtitle}")
    if request.dialogue_history:
        parts.append("Dialogue history:\n" + "\n".join(f"{t['role']}: {t['content']}" for t in request.dialogue_history))
    if request.user_input:
        parts.append(f"Current user input: {request.user_input}")
    instruction = format_task_instruction(request.task, list(request.candidate_labels) or None)
    parts.append(_IDENTIFIER.sub("", instruction))
    return "\n".join(parts)


class OpenAIChatPredictor:
    """Replies from any OpenAI-compatible chat-completions server.

    Each sample is one user message (:func:`plain_prompt`) with the clip's uniformly sampled frames
    attached as images (``send_video``); audio is not sent (the chat-completions API has no audio
    track for a video). Requests run ``concurrency`` at a time; retries, backoff and timeouts are the
    backend's (:class:`~mmaffect.semantic_extraction.backends.OpenAICompatibleBackend`).

    Args:
        base_url: e.g. ``http://127.0.0.1:8000/v1``.
        model_name: the model the server serves.
        backend: an already built backend (then ``base_url`` / ``model_name`` may be None).
        backend_kwargs: more ``OpenAICompatibleBackend`` options (``api_key_env``, ``timeout``,
            ``num_frames``, ``temperature`` (default 0), ``max_tokens`` (default 1200), ...).
    """

    def __init__(self, base_url: str | None = None, model_name: str | None = None, *, batch_size: int = 8,
                 send_video: bool = True, backend=None, **backend_kwargs):
        if backend is None:
            from mmaffect.semantic_extraction.backends import OpenAICompatibleBackend

            backend_kwargs.setdefault("max_tokens", PUBLIC_CODE_MAX_NEW_TOKENS)
            backend = OpenAICompatibleBackend(base_url, model_name, **backend_kwargs)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.backend = backend
        self.batch_size = int(batch_size)
        self.send_video = bool(send_video)
        self.name = getattr(backend, "model_id", None) or model_name or "openai"

    def fingerprint(self) -> dict[str, Any]:
        return {"predictor": "openai", "backend": self.backend.fingerprint(), "send_video": self.send_video}

    def required_media(self) -> set[str]:
        return {"video"} if self.send_video else set()

    def _one(self, request: EvalRequest) -> str:
        videos = [request.video] if self.send_video and request.video else None
        return self.backend.chat([{"role": "user", "content": plain_prompt(request)}], videos=videos)

    def predict(self, requests: Sequence[EvalRequest]) -> list[str]:
        workers = max(1, min(len(requests), getattr(self.backend, "concurrency", 1)))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return [reply.strip() for reply in pool.map(self._one, requests)]


__all__ = ["DECODINGS", "EvalRequest", "NanoEmoXPredictor", "OpenAIChatPredictor", "Predictor", "plain_prompt"]
