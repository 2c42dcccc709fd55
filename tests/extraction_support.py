"""Test support for the semantic-extraction tests: a loopback chat-completions server with a
deterministic fake LLM and scripted faults, tiny MIntRec2.0-format datasets with real mp4 clips,
and tiny random local models (a Qwen2 causal LM and a LLaVA image-text-to-text model) whose
tokenizers are built offline."""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from mmaffect.semantic_extraction.video import write_test_video

ASPECT_NAMES = ["Speakers' Actions", "Facial Expressions", "Interaction with Others"]
OTHER_NAMES = ["Tone and Manner of Speaking", "Scene Description", "Identity and Status"]
# six reply formats a real LLM produces for a ranking; the fake picks one per prompt
RANK_FORMATS = [
    lambda r: "\n".join(r),
    lambda r: "\n".join(f"{i}. **{name}**" for i, name in enumerate(r, 1)),
    lambda r: "Ranking: " + " > ".join(r),
    lambda r: "Here is the ranking:\n" + "\n".join(f"{i}) {name.lower()} - it matters" for i, name in enumerate(r, 1))
    + f"\n\n{r[0]} is most relevant because of the intent.",
    lambda r: f"{r[0]} is the most important, followed by {r[1]}, then {r[2]}.",
    lambda r: "\n".join(f"- {name.upper()}" for name in r),
]
PERMUTATIONS = [(0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)]


def _digest(text: str) -> int:
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:8], 16)


def fake_llm_reply(messages: list[dict]) -> str:
    """A deterministic 'LLM': the reply depends only on the conversation. Markers in the spoken
    text script the awkward cases: ``[[desc-retry]]`` (first description reply lacks Facial
    Expressions), ``[[desc-never]]`` (never complete), ``[[rank-retry]]`` (first ranking misses an
    aspect), ``[[rank-never]]`` (every ranking repeats one)."""
    first = "\n".join(m["content"] if isinstance(m["content"], str) else
                      " ".join(p.get("text", "") for p in m["content"] if isinstance(p, dict))
                      for m in messages if m["role"] in ("user", "system"))
    corrections = sum(1 for m in messages if m["role"] == "assistant") - (1 if "Is your task clear?" in first else 0)
    spoken = re.search(r'(?:says: "|spoken text is "|Spoken text: )([^"\n]*)', first)
    text = spoken.group(1) if spoken else ""
    seed = _digest(text or first)
    if "key analytical perspectives" in first:
        lines = ["Key perspectives:", "1. **Interaction with others**: who is addressed.",
                 "2. Body language and gestures - posture and hands.", "3. Facial expression: visible emotions."]
        if seed % 2 == 0:
            lines.append("4. Tone of voice (pitch, pace)")
        if seed % 3 == 0:
            lines.append("5. Scene context: where it happens.")
        return "\n".join(lines)
    if "Generate detailed descriptions" in first:
        wanted = re.findall(r"\(\d+\) ([^:;]+):", first)
        if ("[[desc-retry]]" in text and corrections == 0) or "[[desc-never]]" in text:
            wanted = [name for name in wanted if name != "Facial Expressions"]
        words = text.replace("[[", "").replace("]]", "")
        return "Sure.\n\n" + "\n".join(
            f"{i}. **{name}**: About \"{words}\", the {name.lower()} show detail {seed % 97}.\n\tSecond line."
            for i, name in enumerate(wanted, 1)
        )
    if "rank these semantics" in first or "Aspects, in no particular order" in first:
        listed = re.search(r"aspects are (.*?)\. The intent|in no particular order: (.*)", first)
        listed = listed.group(1) or listed.group(2)
        names = sorted((n for n in ASPECT_NAMES + OTHER_NAMES if n in listed), key=listed.index)
        order = [names[i] for i in PERMUTATIONS[seed % 6]]
        if "[[rank-never]]" in text:
            return "\n".join(f"{i}. {name}" for i, name in enumerate([order[0], order[0], order[1]], 1))
        if "[[rank-retry]]" in text and corrections == 0:
            return f"1. {order[0]}\n2. {order[1]}"
        return RANK_FORMATS[(seed // 6) % len(RANK_FORMATS)](order)
    return "I do not understand."


class FakeChatServer:
    """OpenAI chat-completions on 127.0.0.1 (ephemeral port) with scripted faults.

    ``faults`` maps a request number (1-based, in arrival order) to one of ``"500"``, ``"503"``,
    ``"429"`` (with ``Retry-After: 0``), ``"timeout"`` (answers after ``slow_seconds``),
    ``"malformed"`` (broken JSON), ``"no_choices"``, ``"drop"`` (closes the connection), ``"400"``,
    ``"401"``. ``fault_rule(n, payload)`` can return a fault too. ``on_request(n, payload)`` runs
    first (e.g. to kill a client). At most ``max_requests`` are served (then 503), and the server
    shuts itself down after ``lifetime`` seconds."""

    def __init__(self, *, faults: dict[int, str] | None = None, fault_rule=None, on_request=None,
                 max_requests: int = 400, lifetime: float = 300.0, slow_seconds: float = 1.0, reply=fake_llm_reply):
        self.faults = dict(faults or {})
        self.fault_rule = fault_rule
        self.on_request = on_request
        self.max_requests = max_requests
        self.slow_seconds = slow_seconds
        self.reply = reply
        self.log: list[dict] = []
        self.lock = threading.Lock()
        self.count = 0
        self.in_flight = 0
        self.max_in_flight = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def _release(self):
                """The request stops counting as in flight once its answer is ready, before the answer is sent: a
                client that got it may send its next request before this thread is scheduled again."""
                with server.lock:
                    if getattr(self, "_in_flight", False):
                        server.in_flight -= 1
                        self._in_flight = False

            def _send(self, status: int, body: bytes, headers: dict | None = None):
                self._release()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                try:
                    self.wfile.write(body)
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    return False
                return True

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                payload = json.loads(self.rfile.read(length) or b"{}")
                with server.lock:
                    server.count += 1
                    number = server.count
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                    self._in_flight = True
                try:
                    self._answer(number, payload)
                finally:
                    self._release()

            def _answer(self, number: int, payload: dict):
                entry = {"n": number, "path": self.path, "prompt": prompt_key(payload), "answered": False,
                         "images": count_images(payload), "auth": self.headers.get("Authorization"),
                         "payload": payload}
                with server.lock:
                    server.log.append(entry)
                if server.on_request is not None:
                    action = server.on_request(number, payload)
                    if action == "drop":
                        entry["fault"] = "drop"
                        self.close_connection = True
                        return
                fault = server.faults.get(number)
                if fault is None and server.fault_rule is not None:
                    fault = server.fault_rule(number, payload)
                if number > server.max_requests:
                    fault = "budget"
                entry["fault"] = fault
                if self.path != "/v1/chat/completions":
                    self._send(404, b'{"error": "not found"}')
                    return
                if fault in ("500", "503", "400", "401", "budget"):
                    status = 503 if fault == "budget" else int(fault)
                    self._send(status, json.dumps({"error": {"message": f"injected {fault}"}}).encode())
                    return
                if fault == "429":
                    self._send(429, b'{"error": "slow down"}', {"Retry-After": "0"})
                    return
                if fault == "malformed":
                    self._send(200, b'{"choices": [{"message": {"content": "trunc')
                    return
                if fault == "no_choices":
                    self._send(200, b'{"choices": []}')
                    return
                if fault == "drop":
                    self.close_connection = True
                    return
                if fault == "timeout":
                    time.sleep(server.slow_seconds)
                content = server.reply(payload["messages"])
                body = json.dumps({"id": f"cmpl-{number}", "object": "chat.completion", "model": payload.get("model"),
                                   "choices": [{"index": 0, "finish_reason": "stop",
                                                "message": {"role": "assistant", "content": content}}]}).encode()
                entry["answered"] = self._send(200, body) and fault != "timeout"

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.watchdog = threading.Timer(lifetime, self.stop)
        self.watchdog.daemon = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> FakeChatServer:
        self.thread.start()
        self.watchdog.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self.watchdog.cancel()
        self.httpd.shutdown()
        self.httpd.server_close()

    def answered_prompts(self) -> list[str]:
        with self.lock:
            return [e["prompt"] for e in self.log if e["answered"]]


def prompt_key(payload: dict) -> str:
    """Identity of a request's conversation (images reduced to their count)."""
    messages = []
    for m in payload.get("messages", []):
        content = m["content"]
        if isinstance(content, list):
            content = [p.get("text", "<image>") for p in content]
        messages.append([m["role"], content])
    return hashlib.sha256(json.dumps([payload.get("model"), messages]).encode()).hexdigest()


def count_images(payload: dict) -> int:
    return sum(1 for m in payload.get("messages", []) if isinstance(m["content"], list)
               for p in m["content"] if p.get("type") == "image_url")


# ------------------------------------------------------------------------------- datasets
MINTREC2_HEADER = ["Dialogue_id", "Utterance_id", "Text", "Label", "Start_timestamp", "End_timestamp", "Source",
                   "speaker_name"]
_LABELS = ["Inform", "Complain", "Thank", "Greet", "Doubt", "Joke", "Praise", "Leave", "Advise", "Agree"]


def make_mintrec2(root: Path, splits: dict[str, list[str]], *, videos: bool = True, frames: int = 6) -> tuple[Path, Path]:
    """MIntRec2.0-format text files (``{split}.tsv``) with the given utterances, and a video folder
    with a tiny clip per sample. Returns (data_dir, video_dir)."""
    data_dir, video_dir = root / "data_text", root / "video"
    data_dir.mkdir(parents=True, exist_ok=True)
    video_dir.mkdir(parents=True, exist_ok=True)
    dialogue = 0
    for split, texts in splits.items():
        lines = ["\t".join(MINTREC2_HEADER)]
        for index, text in enumerate(texts):
            if index % 3 == 0:
                dialogue += 1
            utterance = index % 3
            label = _LABELS[(dialogue + index) % len(_LABELS)]
            lines.append("\t".join([str(dialogue), str(utterance), text, label, "00:00:01,000", "00:00:02,000",
                                    "superstore", "Glenn"]))
            if videos:
                colours = [((37 * k + 11 * dialogue) % 256, (53 * utterance) % 256, (90 + 20 * k) % 256) for k in range(frames)]
                write_test_video(video_dir / f"dia{dialogue}_utt{utterance}.mp4", colours)
        (data_dir / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return data_dir, video_dir


# ------------------------------------------------------------------------------- tiny models
_SPECIALS = ["<pad>", "<s>", "</s>", "<image>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}{% if part['type'] == 'image' %}<image>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}</s>\n"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def tiny_tokenizer():
    """A character-level fast tokenizer with a chat template, built without any download."""
    import tokenizers
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    chars = [chr(i) for i in range(32, 127)] + ["\n", "\t"]
    vocab = {token: i for i, token in enumerate(_SPECIALS + chars)}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<pad>"))
    core.pre_tokenizer = pre_tokenizers.Split(pattern=tokenizers.Regex("."), behavior="isolated")
    core.decoder = decoders.Fuse()
    core.add_special_tokens([AddedToken(token, special=True) for token in _SPECIALS])
    return PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   chat_template=CHAT_TEMPLATE)


def save_tiny_causal_lm(folder: Path) -> Path:
    """A 1-layer random Qwen2 causal LM + tokenizer with a chat template, saved to ``folder``."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    tokenizer = tiny_tokenizer()
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=8192,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True)
    model = Qwen2ForCausalLM(config)
    _avoid_stopping(model, tokenizer)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def save_tiny_llava(folder: Path) -> Path:
    """A random LLaVA (1-layer CLIP vision tower + 1-layer Llama) with a PIL-based CLIP image
    processor and the same tokenizer, saved to ``folder`` for AutoProcessor /
    AutoModelForImageTextToText. (Qwen2-VL would be the closer match to the paper's video LLM, but
    its processor requires a video processor, which needs torchvision - not installable here.)"""
    import torch
    from transformers import LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    torch.manual_seed(0)
    tokenizer = tiny_tokenizer()
    image_processor = CLIPImageProcessorPil(size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28})
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=14,
                               vision_feature_select_strategy="default", chat_template=CHAT_TEMPLATE,
                               num_additional_image_tokens=1)
    config = LlavaConfig(
        text_config=dict(model_type="llama", vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                         max_position_embeddings=8192),
        vision_config=dict(model_type="clip_vision_model", hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                           num_attention_heads=2, image_size=28, patch_size=14, projection_dim=32),
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"), vision_feature_select_strategy="default",
        vision_feature_layer=-1,
    )
    model = LlavaForConditionalGeneration(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    _avoid_stopping(model, tokenizer)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def _avoid_stopping(model, tokenizer) -> None:
    """Never generate special tokens, so replies are printable noise of a fixed length (the text is
    noise either way; this keeps every reply non-empty and the test's duration predictable)."""
    model.generation_config.suppress_tokens = [tokenizer.convert_tokens_to_ids(t) for t in _SPECIALS]
