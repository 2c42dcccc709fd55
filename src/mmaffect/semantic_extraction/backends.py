"""LLM backends: anything with ``chat(messages, **kwargs) -> str``.

* :class:`OpenAICompatibleBackend` - any server speaking the OpenAI chat-completions protocol
  (OpenAI / Azure-style services, a local vLLM or llama.cpp server). Standard library HTTP only.
  Retries with exponential backoff on 429 (honouring ``Retry-After``), 408/5xx, timeouts, dropped
  connections and malformed JSON; a limit on concurrent requests; temperature 0 by default.
  Videos are sent as uniformly sampled JPEG frames in ``image_url`` parts (the OpenAI vision format,
  also accepted by vLLM for image-text models).
* :class:`TransformersChatBackend` - a local text LLM (``AutoModelForCausalLM`` + the tokenizer's
  chat template); greedy decoding at temperature 0.
* :class:`TransformersVideoBackend` - a local image-text-to-text / video LLM
  (``AutoProcessor`` + ``AutoModelForImageTextToText``, e.g. the Qwen2-VL family or LLaVA-style
  models); frames decoded with PyAV and given to the processor as a video (``video_input="video"``,
  needs a processor with a video processor) or as a sequence of images (``"images"``).

``build_backend(spec)`` makes one from a config mapping, e.g.
``{"type": "openai", "base_url": "http://localhost:8000/v1", "model": "Qwen/Qwen2.5-7B-Instruct"}``.

Errors: :class:`BackendError` - one call failed for good (retries exhausted, or a response such as
400 that retrying cannot fix); the sample counts as failed in this run and is tried again by the
next run. :class:`BackendFatalError` - the configuration is wrong (401/403/404, no chat template):
the run stops.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from mmaffect.untrusted import redact, redact_text

Messages = list[dict[str, str]]


class BackendError(RuntimeError):
    """A chat call failed for good (after retries, or a non-retryable response)."""


class BackendFatalError(BackendError):
    """A configuration problem (authentication, unknown model or URL, missing chat template)."""


@runtime_checkable
class ChatBackend(Protocol):
    """What the extraction steps (and the ERI judge) need from an LLM."""

    model_id: str
    concurrency: int
    supports_video: bool

    def fingerprint(self) -> dict[str, Any]:
        """Everything that changes the replies (model and generation settings); part of cache keys."""

    def chat(self, messages: Messages, **kwargs: Any) -> str:
        """Reply to ``messages`` (``[{"role": ..., "content": ...}]``). ``videos=[path, ...]``
        attaches videos to the first user message (the task prompt) when ``supports_video``."""


_THINK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)


def clean_reply(text: str) -> str:
    """Strip a reasoning model's ``<think>...</think>`` block and surrounding whitespace."""
    return _THINK.sub("", text).strip()


def check_messages(messages: Messages) -> None:
    if not isinstance(messages, list) or not messages:
        raise ValueError("messages must be a non-empty list of {'role': ..., 'content': ...} dicts")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or set(message) != {"role", "content"}:
            raise ValueError(f"messages[{index}] must have exactly 'role' and 'content', got {message!r}")
        if message["role"] not in ("system", "user", "assistant"):
            raise ValueError(f"messages[{index}]['role'] must be system/user/assistant, got {message['role']!r}")
        if not isinstance(message["content"], str):
            raise ValueError(f"messages[{index}]['content'] must be a string, got {type(message['content']).__name__}")


def _video_message_index(messages: Messages) -> int:
    """Videos go with the first user message: the task prompt, which corrective turns follow."""
    for index, message in enumerate(messages):
        if message["role"] == "user":
            return index
    raise ValueError("videos need a user message to attach to; messages have none")


# ======================================================================================== HTTP
class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class OpenAICompatibleBackend:
    """Chat-completions client for ``{base_url}/chat/completions``.

    Args:
        base_url: e.g. ``https://api.openai.com/v1`` or ``http://127.0.0.1:8000/v1``.
        model: the model name the server expects.
        api_key_env: environment variable holding the API key; unset -> no Authorization header
            (local servers), and a 401/403 names the variable.
        timeout: seconds per request (connect + read).
        max_retries: retries after the first attempt for retryable failures.
        backoff: first retry delay in seconds; doubles each retry (plus up to 10% jitter), capped at
            ``backoff_max``. A 429 with ``Retry-After`` waits that long instead (capped too).
        concurrency: most requests in flight at once (the steps run that many samples in parallel).
        temperature, max_tokens, seed, extra_body: request fields (``extra_body`` is merged in).
        num_frames, frame_max_side: frames sent per video, and their longest side in pixels.
    """

    supports_video = True

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key_env: str | None = "OPENAI_API_KEY",
        timeout: float = 120.0,
        max_retries: int = 5,
        backoff: float = 1.0,
        backoff_max: float = 60.0,
        concurrency: int = 4,
        temperature: float = 0.0,
        max_tokens: int | None = 1024,
        seed: int | None = None,
        extra_body: dict[str, Any] | None = None,
        num_frames: int = 8,
        frame_max_side: int | None = 512,
        headers: dict[str, str] | None = None,
    ):
        if not base_url or not model:
            raise ValueError(f"OpenAICompatibleBackend needs base_url and model, got {base_url!r}, {model!r}")
        if concurrency < 1 or max_retries < 0 or timeout <= 0:
            raise ValueError(f"need concurrency >= 1, max_retries >= 0, timeout > 0; "
                             f"got {concurrency}, {max_retries}, {timeout}")
        self.base_url = base_url.rstrip("/")
        self.url = self.base_url + "/chat/completions"
        self.model_id = model
        self.api_key_env = api_key_env
        self.timeout, self.max_retries = float(timeout), int(max_retries)
        self.backoff, self.backoff_max = float(backoff), float(backoff_max)
        self.concurrency = int(concurrency)
        self.temperature, self.max_tokens, self.seed = float(temperature), max_tokens, seed
        self.extra_body = dict(extra_body or {})
        self.num_frames, self.frame_max_side = int(num_frames), frame_max_side
        self.headers = dict(headers or {})
        self._slots = threading.BoundedSemaphore(self.concurrency)
        self.requests_sent = 0  # all HTTP attempts, retries included

    def fingerprint(self) -> dict[str, Any]:
        # base_url is left out on purpose: the same model behind another URL keeps its cache
        return {
            "backend": "openai", "model": self.model_id, "temperature": self.temperature,
            "max_tokens": self.max_tokens, "seed": self.seed, "extra_body": redact(self.extra_body),
            "num_frames": self.num_frames, "frame_max_side": self.frame_max_side,
        }  # fmt: skip

    # --------------------------------------------------------------------------- payload
    def _payload(self, messages: Messages, videos: Sequence[str] | None, temperature, max_tokens) -> dict:
        wire: list[dict[str, Any]] = [dict(m) for m in messages]
        if videos:
            from .video import frame_to_data_url, sample_frames

            index = _video_message_index(messages)
            parts: list[dict[str, Any]] = []
            for path in videos:
                clip = sample_frames(path, self.num_frames, max_side=self.frame_max_side)
                parts += [{"type": "image_url", "image_url": {"url": frame_to_data_url(f)}} for f in clip.frames]
            parts.append({"type": "text", "text": messages[index]["content"]})
            wire[index] = {"role": "user", "content": parts}
        payload: dict[str, Any] = {"model": self.model_id, "messages": wire,
                                   "temperature": self.temperature if temperature is None else float(temperature)}
        tokens = self.max_tokens if max_tokens is None else max_tokens
        if tokens is not None:
            payload["max_tokens"] = int(tokens)
        if self.seed is not None:
            payload["seed"] = self.seed
        payload.update(self.extra_body)
        return payload

    def _request_headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json", **self.headers}
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    # --------------------------------------------------------------------------- one attempt
    def _attempt(self, body: bytes) -> str:
        request = urllib.request.Request(self.url, data=body, headers=self._request_headers(), method="POST")
        self.requests_sent += 1
        try:
            with self._slots, urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as error:
            # a server may echo the request headers (the key) in its error page
            detail = redact_text(_snippet(error.read() if error.fp else b""), self._request_headers().values())
            status = error.code
            if status == 429 or status == 408 or status >= 500:
                raise _Retryable(f"HTTP {status} from {self.url}: {detail}", _retry_after(error.headers)) from None
            if status in (401, 403):
                hint = f" (is ${self.api_key_env} set?)" if self.api_key_env else ""
                raise BackendFatalError(f"HTTP {status} from {self.url}{hint}: {detail}") from None
            if status == 404:
                raise BackendFatalError(
                    f"HTTP 404 from {self.url}: check base_url (it should end in /v1 for most servers) "
                    f"and model {self.model_id!r}: {detail}"
                ) from None
            raise BackendError(f"HTTP {status} from {self.url} (not retried): {detail}") from None
        except urllib.error.URLError as error:
            reason = error.reason
            if isinstance(reason, (TimeoutError, socket.timeout)):
                raise _Retryable(f"timeout after {self.timeout:g}s talking to {self.url}") from None
            raise _Retryable(f"cannot reach {self.url}: {reason}") from None
        except (TimeoutError, socket.timeout):
            raise _Retryable(f"timeout after {self.timeout:g}s talking to {self.url}") from None
        except (http.client.HTTPException, ConnectionError, OSError) as error:
            raise _Retryable(f"connection to {self.url} failed: {type(error).__name__}: {error}") from None
        return self._parse(raw)

    def _parse(self, raw: bytes) -> str:
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise _Retryable(f"malformed JSON from {self.url}: {_snippet(raw)}") from None
        try:
            content = data["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise _Retryable(
                f"no choices[0].message.content in the response from {self.url}: {_snippet(raw)}"
            ) from None
        if isinstance(content, list):  # some servers return content parts
            content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
        if not isinstance(content, str):
            raise _Retryable(f"choices[0].message.content is {type(content).__name__}, not text: {_snippet(raw)}")
        return clean_reply(content)

    # --------------------------------------------------------------------------- chat
    def chat(self, messages: Messages, *, videos: Sequence[str] | None = None, temperature: float | None = None,
             max_tokens: int | None = None) -> str:
        check_messages(messages)
        body = json.dumps(self._payload(messages, videos, temperature, max_tokens)).encode("utf-8")
        last_error = ""
        for attempt in range(self.max_retries + 1):
            try:
                return self._attempt(body)
            except _Retryable as error:
                last_error = str(error)
                if attempt == self.max_retries:
                    break
                delay = min(self.backoff * 2**attempt, self.backoff_max)
                delay += random.uniform(0, 0.1 * delay)
                if error.retry_after is not None:
                    delay = min(max(error.retry_after, 0.0), self.backoff_max)
                time.sleep(delay)
        raise BackendError(f"gave up after {self.max_retries + 1} attempts; last error: {last_error}")


def _snippet(raw: bytes, limit: int = 300) -> str:
    text = raw.decode("utf-8", errors="replace").strip()
    return text if len(text) <= limit else text[:limit] + "..."


def _retry_after(headers) -> float | None:
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


# ================================================================================ transformers
def _torch_dtype(dtype: str | None):
    import torch

    if dtype in (None, "auto"):
        return "auto"
    if isinstance(dtype, torch.dtype):
        return dtype
    names = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
             "float16": torch.float16, "fp16": torch.float16}
    if dtype not in names:
        raise ValueError(f"dtype must be one of auto/{'/'.join(names)}, got {dtype!r}")
    return names[dtype]


def _generation_kwargs(temperature: float, top_p: float | None, max_new_tokens: int) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"max_new_tokens": int(max_new_tokens)}
    if temperature and temperature > 0:
        kwargs.update(do_sample=True, temperature=float(temperature))
        if top_p is not None:
            kwargs["top_p"] = float(top_p)
    else:  # greedy: deterministic, so cached and fresh replies agree
        kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    return kwargs


class TransformersChatBackend:
    """A local text LLM. ``model`` is a hub id or a local folder (``from_pretrained`` either way).

    Args:
        device_map: passed to ``from_pretrained`` (``"auto"`` spreads over available GPUs).
        dtype: ``"auto"`` (the checkpoint's), ``"bfloat16"``, ``"float16"`` or ``"float32"``.
        max_new_tokens, temperature, top_p: generation; temperature 0 = greedy.
    """

    supports_video = False
    concurrency = 1

    def __init__(self, model: str, *, device_map: str | dict | None = None, dtype: str | None = "auto",
                 max_new_tokens: int = 512, temperature: float = 0.0, top_p: float | None = None,
                 trust_remote_code: bool = False, revision: str | None = None):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model_id = str(model)
        self.revision = revision
        self.max_new_tokens, self.temperature, self.top_p = int(max_new_tokens), float(temperature), top_p
        self.tokenizer = AutoTokenizer.from_pretrained(model, revision=revision, trust_remote_code=trust_remote_code)
        if not getattr(self.tokenizer, "chat_template", None):
            raise BackendFatalError(f"{model}: the tokenizer has no chat template; use an instruction-tuned model")
        self.model = AutoModelForCausalLM.from_pretrained(
            model, revision=revision, dtype=_torch_dtype(dtype), device_map=device_map,
            trust_remote_code=trust_remote_code,
        )
        self.model.eval()
        self._lock = threading.Lock()

    def fingerprint(self) -> dict[str, Any]:
        return {"backend": "transformers", "model": self.model_id, "revision": self.revision,
                "temperature": self.temperature, "top_p": self.top_p, "max_new_tokens": self.max_new_tokens}

    def chat(self, messages: Messages, *, videos: Sequence[str] | None = None, temperature: float | None = None,
             max_tokens: int | None = None) -> str:
        import torch

        check_messages(messages)
        if videos:
            raise BackendFatalError(
                f"{self.model_id} is a text model (TransformersChatBackend); videos need TransformersVideoBackend"
            )
        inputs = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
        )
        inputs = {k: v.to(self.model.device) for k, v in inputs.items()}
        generation = _generation_kwargs(
            self.temperature if temperature is None else temperature, self.top_p,
            self.max_new_tokens if max_tokens is None else max_tokens,
        )
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        with self._lock, torch.inference_mode():
            output = self.model.generate(**inputs, **generation, pad_token_id=pad)
        new_tokens = output[0, inputs["input_ids"].shape[1] :]
        return clean_reply(self.tokenizer.decode(new_tokens, skip_special_tokens=True))


class TransformersVideoBackend:
    """A local image-text-to-text / video LLM with a chat template.

    Args:
        num_frames: frames sampled uniformly per video (the reference used VideoLLaMA2-16F: 16).
        video_input: ``"video"`` - frames go to the processor's video processor as one clip (the
            model sees it as a video, e.g. Qwen2-VL); ``"images"`` - frames go in as a sequence of
            images (any multi-image model, e.g. LLaVA); ``"auto"`` - ``"video"`` when the processor
            has a video processor, else ``"images"``.
        frame_max_side: shrink frames before the processor (None = leave it to the processor).
        device_map, dtype, max_new_tokens, temperature, top_p: as for TransformersChatBackend.
    """

    supports_video = True
    concurrency = 1

    def __init__(self, model: str, *, num_frames: int = 16, video_input: str = "auto",
                 frame_max_side: int | None = None, device_map: str | dict | None = None,
                 dtype: str | None = "auto", max_new_tokens: int = 512, temperature: float = 0.0,
                 top_p: float | None = None, trust_remote_code: bool = False, revision: str | None = None):
        from transformers import AutoModelForImageTextToText, AutoProcessor

        if video_input not in ("auto", "video", "images"):
            raise ValueError(f"video_input must be auto/video/images, got {video_input!r}")
        self.model_id = str(model)
        self.revision = revision
        self.num_frames, self.frame_max_side = int(num_frames), frame_max_side
        self.max_new_tokens, self.temperature, self.top_p = int(max_new_tokens), float(temperature), top_p
        self.processor = AutoProcessor.from_pretrained(model, revision=revision, trust_remote_code=trust_remote_code)
        if not getattr(self.processor, "chat_template", None):
            raise BackendFatalError(f"{model}: the processor has no chat template")
        has_video_processor = getattr(self.processor, "video_processor", None) is not None
        if video_input == "auto":
            video_input = "video" if has_video_processor else "images"
        elif video_input == "video" and not has_video_processor:
            raise BackendFatalError(
                f"{model}: video_input='video' needs a processor with a video processor "
                f"({type(self.processor).__name__} has none); use video_input='images'"
            )
        self.video_input = video_input
        self.model = AutoModelForImageTextToText.from_pretrained(
            model, revision=revision, dtype=_torch_dtype(dtype), device_map=device_map,
            trust_remote_code=trust_remote_code,
        )
        self.model.eval()
        self._lock = threading.Lock()

    def fingerprint(self) -> dict[str, Any]:
        return {"backend": "transformers-video", "model": self.model_id, "revision": self.revision,
                "temperature": self.temperature, "top_p": self.top_p, "max_new_tokens": self.max_new_tokens,
                "num_frames": self.num_frames, "video_input": self.video_input, "frame_max_side": self.frame_max_side}

    def build_inputs(self, messages: Messages, videos: Sequence[str] | None = None) -> tuple[list[dict], dict]:
        """The content-part conversation and the processor's media arguments for one call
        (exposed so prompt assembly can be inspected without generating)."""
        from .video import sample_frames

        conversation: list[dict] = [
            {"role": m["role"], "content": [{"type": "text", "text": m["content"]}]} for m in messages
        ]
        media: dict[str, Any] = {}
        if videos:
            index = _video_message_index(messages)
            parts: list[dict] = []
            clips = [sample_frames(path, self.num_frames, max_side=self.frame_max_side) for path in videos]
            if self.video_input == "video":
                parts = [{"type": "video"} for _ in clips]
                media["videos"] = [clip.frames for clip in clips]
                media["do_sample_frames"] = False  # already sampled uniformly
                media["video_metadata"] = [
                    {"total_num_frames": clip.total_frames, "fps": clip.fps, "duration": clip.duration,
                     "frames_indices": clip.indices, "height": clip.frames.shape[1], "width": clip.frames.shape[2]}
                    for clip in clips
                ]
            else:
                from PIL import Image

                images = [Image.fromarray(frame) for clip in clips for frame in clip.frames]
                parts = [{"type": "image"} for _ in images]
                media["images"] = images
            conversation[index]["content"] = parts + conversation[index]["content"]
        return conversation, media

    def chat(self, messages: Messages, *, videos: Sequence[str] | None = None, temperature: float | None = None,
             max_tokens: int | None = None) -> str:
        import torch

        check_messages(messages)
        conversation, media = self.build_inputs(messages, videos)
        prompt = self.processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
        tokenizer = self.processor.tokenizer
        # the chat template already wrote the special tokens; do not add a second BOS
        add_special = not (tokenizer.bos_token and prompt.startswith(tokenizer.bos_token))
        inputs = self.processor(text=[prompt], return_tensors="pt", add_special_tokens=add_special, **media)
        inputs = inputs.to(self.model.device)
        generation = _generation_kwargs(
            self.temperature if temperature is None else temperature, self.top_p,
            self.max_new_tokens if max_tokens is None else max_tokens,
        )
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        with self._lock, torch.inference_mode():
            output = self.model.generate(**inputs, **generation, pad_token_id=pad)
        new_tokens = output[0, inputs["input_ids"].shape[1] :]
        return clean_reply(tokenizer.decode(new_tokens, skip_special_tokens=True))


# ==================================================================================== factory
BACKEND_TYPES = {
    "openai": OpenAICompatibleBackend,
    "transformers": TransformersChatBackend,
    "transformers-video": TransformersVideoBackend,
}
_TYPE_ALIASES = {"openai-compatible": "openai", "api": "openai", "vllm": "openai", "llama.cpp": "openai",
                 "hf": "transformers", "local": "transformers", "hf-video": "transformers-video",
                 "local-video": "transformers-video"}


def build_backend(spec: dict[str, Any]) -> ChatBackend:
    """A backend from a config mapping: ``type`` (openai | transformers | transformers-video) plus the
    constructor arguments of that class (``model`` always; ``base_url`` for openai)."""
    if not isinstance(spec, dict) or "type" not in spec:
        # redact: a spec carries headers / api keys, and this message reaches terminals and CI logs
        raise ValueError(f"a backend spec is a mapping with a 'type' ({' | '.join(BACKEND_TYPES)}); got {redact(spec)!r}")
    kind = _TYPE_ALIASES.get(spec["type"], spec["type"])
    if kind not in BACKEND_TYPES:
        raise ValueError(f"unknown backend type {spec['type']!r}; use one of {sorted(BACKEND_TYPES)}")
    cls = BACKEND_TYPES[kind]
    kwargs = {k: v for k, v in spec.items() if k != "type"}
    import inspect

    allowed = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise ValueError(f"backend {kind!r}: unknown option(s) {unknown}; allowed: {allowed}")
    missing = [p for p, v in inspect.signature(cls.__init__).parameters.items()
               if p != "self" and v.default is inspect.Parameter.empty and p not in kwargs]
    if missing:
        raise ValueError(f"backend {kind!r}: missing required option(s) {missing}")
    return cls(**kwargs)
