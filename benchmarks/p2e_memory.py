"""Peak memory of a Nano-EmoX P2E phase-3 step: an analytic model, calibrated against measurements.

    python benchmarks/p2e_memory.py                            # ESTIMATE at full size (meta device, no weights)
    nice -n 10 python benchmarks/p2e_memory.py --calibrate     # MEASURE reduced sizes on this CPU vs the estimate
    python benchmarks/p2e_memory.py --calibrate --write-results  # + the p2e_memory section of benchmarks/RESULTS.md
    python benchmarks/p2e_memory.py --device cuda --write-results  # MEASURE full size on a GPU (peak memory, step
                                                                  # time, hours for the paper's whole budget)

Phase 3 is the heaviest phase: LoRA (paper: r=32, alpha=16) on every projection of Qwen2.5-1.5B plus the fusion
encoder, Q-Formers, adapters (and a random face fusion) train; CLIP ViT-L/14, HuBERT-Large, the Swin-B face
backbone and the LM base weights are frozen and stored in bf16 (``training.frozen_dtype: auto``). The step is the
trainer's own: ``p2e.forward_loss`` (logits only at answer positions) under bf16 autocast with gradient
checkpointing, backward inside the autocast region, gradient clipping, AdamW.

The estimate (``estimate_memory``) counts parameters exactly (the real model on the meta device, wrapped with PEFT
the way the trainer wraps it) and models what is alive at the peak of a step (the LM backward of a step after the
first: AdamW states exist), term by term (see its docstring). Each CPU measurement runs in its own process
(``--measure SIZE``): the step peak is the maximum resident set size sampled every 2 ms while steps 2..n run,
minus the process's RSS before the model is built (torch, transformers and the package imported), so
import-time memory is not counted in either figure.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "benchmarks" / "RESULTS.md"
START, END = "<!-- p2e_memory:start -->", "<!-- p2e_memory:end -->"
GIB = 1024**3
PHASE3 = "phase3_multitask"
PAPER_SAMPLES = 345_000 * 3  # all phases of the paper: 25k + 15k + 5k + 300k micro-batches of 3 samples
PAPER_HOURS = 32.0


@dataclass
class Shapes:
    """One phase-3 micro-batch: every sample uses all four branches."""

    batch: int = 3
    seq_len: int = 1024
    answer_tokens: int = 256
    num_frames: int = 8
    audio_seconds: float = 10.0


# Reduced sizes for CPU calibration: the real vocabulary (embedding + LM head memory), the real layer structure,
# narrower / shallower encoders and LM. L has the full LM width (1536, intermediate 8960) with 8 of 28 layers.
CALIBRATION_SIZES: dict[str, tuple[dict, Shapes]] = {
    "S": (
        {
            "vision_config": {"hidden_size": 384, "intermediate_size": 1536, "num_hidden_layers": 6, "num_attention_heads": 6},
            "audio_config": {"hidden_size": 384, "intermediate_size": 1536, "num_hidden_layers": 6, "num_attention_heads": 6},
            "qformer_config": {"hidden_size": 384, "intermediate_size": 1536, "num_attention_heads": 6},
            "fusion_encoder_config": {"audio_layers": [2, 4, 6], "vision_layers": [2, 4, 6], "hidden_size": 256, "intermediate_size": 256, "gate_hidden_size": 256},
            "face_config": {"backbone_config": {"model_type": "swin", "embed_dim": 32, "depths": [1, 1, 2, 1], "num_heads": [1, 2, 4, 8]}, "fusion_hidden_size": 64},
            "face_adapter_hidden_size": 256,
            "text_config": {"hidden_size": 512, "intermediate_size": 1408, "num_hidden_layers": 4, "num_attention_heads": 8, "num_key_value_heads": 2},
            "audio_feature_layers": [-4, -3, -2, -1],
        },
        Shapes(batch=3, seq_len=512, answer_tokens=128, num_frames=4, audio_seconds=4.0),
    ),
    "M": (
        {
            "vision_config": {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 8, "num_attention_heads": 12},
            "audio_config": {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 8, "num_attention_heads": 12},
            "fusion_encoder_config": {"audio_layers": [4, 6, 8], "vision_layers": [3, 5, 8]},
            "face_config": {"backbone_config": {"model_type": "swin", "embed_dim": 64, "depths": [2, 2, 2, 2], "num_heads": [2, 4, 8, 16]}},
            "text_config": {"hidden_size": 1024, "intermediate_size": 2816, "num_hidden_layers": 6, "num_attention_heads": 16, "num_key_value_heads": 2},
        },
        Shapes(batch=3, seq_len=768, answer_tokens=192, num_frames=6, audio_seconds=6.0),
    ),
    "L": (
        {
            "vision_config": {"num_hidden_layers": 12},
            "audio_config": {"num_hidden_layers": 12},
            "fusion_encoder_config": {"audio_layers": [8, 10, 12], "vision_layers": [6, 9, 12]},
            "face_config": {"backbone_config": {"model_type": "swin", "embed_dim": 128, "depths": [2, 2, 6, 2], "num_heads": [4, 8, 16, 32]}},
            "text_config": {"num_hidden_layers": 8},
        },
        Shapes(batch=3, seq_len=1024, answer_tokens=256, num_frames=8, audio_seconds=10.0),
    ),
}


def size_config(name: str):
    """``full`` (the paper's model), ``tiny``, or a calibration size; returns ``(NanoEmoXConfig, Shapes)``."""
    from mmaffect.models.nano_emox import NanoEmoXConfig
    from mmaffect.models.nano_emox.configuration_nano_emox import CLIP_VIT_L14, HUBERT_LARGE, QWEN25_1_5B, SWIN_B

    if name == "full":
        return NanoEmoXConfig(), Shapes()
    if name == "tiny":
        return NanoEmoXConfig.tiny(), Shapes(batch=2, seq_len=160, answer_tokens=16, num_frames=4, audio_seconds=0.5)
    overrides, shapes = CALIBRATION_SIZES[name]
    defaults = {"vision_config": {"model_type": "clip_vision_model", **CLIP_VIT_L14}, "audio_config": {"model_type": "hubert", **HUBERT_LARGE},
                "text_config": {"model_type": "qwen2", **QWEN25_1_5B}}  # fmt: skip
    kwargs = {}
    for key, value in overrides.items():
        if key in defaults:
            kwargs[key] = {**defaults[key], **value}
        elif key == "face_config":
            kwargs[key] = {**value, "backbone_config": {**SWIN_B, **value["backbone_config"]}}
        else:
            kwargs[key] = value
    return NanoEmoXConfig(**kwargs), shapes


def phase3_spec():
    """Phase 3 and the module groups of ``configs/p2e_nano_emox.yaml`` (the config the trainer runs)."""
    from mmaffect.train.p2e_phases import build_config, read_config_file

    config = build_config(read_config_file(REPO_ROOT / "configs" / "p2e_nano_emox.yaml"))
    return config, config.phase(PHASE3)


def build_phase3_model(preset, device: str | torch.device, lora_overrides: dict | None = None):
    """Random Nano-EmoX (``preset``: a size name or a ``NanoEmoXConfig``) on ``device`` prepared like the trainer's
    phase 3: PEFT LoRA on the LM (regex), modules_to_save for the other trainable groups, trainability applied."""
    import warnings

    from peft import get_peft_model

    from mmaffect.models.nano_emox import NanoEmoXForConditionalGeneration
    from mmaffect.train.p2e import RandomFaceFusionWarning, effective_phase, lora_config_for
    from mmaffect.train.p2e_phases import apply_trainability, group_patterns, matched_modules, plain_module_names

    config, phase = phase3_spec()
    model_config = size_config(preset)[0] if isinstance(preset, str) else preset
    with torch.device(device):
        model = NanoEmoXForConditionalGeneration(model_config)
    with warnings.catch_warnings():  # random weights everywhere: the face fusion trains, as the trainer would do
        warnings.simplefilter("ignore", RandomFaceFusionWarning)
        phase = effective_phase(model, phase, config.module_groups)
    modules = matched_modules(plain_module_names(model), group_patterns(config.module_groups, phase.trainable))
    to_save = sorted({name for names in modules.values() for name in names})
    lora = dict(config.lora, **(lora_overrides or {}))
    with torch.device(device):
        model = get_peft_model(model, lora_config_for(model, lora, to_save))
    apply_trainability(model, phase, config.module_groups)
    return model, model_config, config, phase


def count_parameters(model) -> dict[str, int]:
    from mmaffect.train.p2e_phases import canonical_name, is_lora_parameter

    counts = {"trainable_lora": 0, "trainable_modules": 0, "trainable_matrices": 0, "frozen_base": 0, "peft_original_copies": 0}
    seen = set()
    for name, p in model.named_parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        plain = canonical_name(name)
        if plain is None:
            counts["peft_original_copies"] += p.numel()
        elif p.requires_grad:
            counts["trainable_lora" if is_lora_parameter(plain) else "trainable_modules"] += p.numel()
            counts["trainable_matrices"] += p.numel() if p.ndim >= 2 else 0
        else:
            counts["frozen_base"] += p.numel()
    counts["trainable"] = counts["trainable_lora"] + counts["trainable_modules"]
    counts["model_without_lora"] = counts["frozen_base"] + counts["trainable_modules"]
    return counts


def _audio_frames(audio_config, seconds: float) -> int:
    samples = max(int(seconds * 16000), 400)
    for kernel, stride in zip(audio_config.conv_kernel, audio_config.conv_stride):
        samples = (samples - kernel) // stride + 1
    return samples


# Peak bytes per answer-position logit of the LM head + the trainer's float32 cross-entropy (`answer_token_loss`),
# forward and backward under bf16 autocast, measured alone: 12.0-12.2
# (`MALLOC_MMAP_THRESHOLD_=65536 python benchmarks/p2e_memory.py --probe-cross-entropy`; 14 if the caller keeps the bf16
# logits alive through the backward, which `forward_loss` does not).
CE_BYTES_PER_LOGIT = 12


def probe_cross_entropy(batch: int = 3, answer_tokens: int = 128, hidden: int = 512, vocab: int = 151_936, repeats: int = 2) -> float:
    """Peak RSS growth per logit of ``p2e.answer_token_loss`` on a frozen bf16 LM head under bf16 autocast, forward and
    backward (the largest of ``repeats`` runs; run with ``MALLOC_MMAP_THRESHOLD_=65536`` so freed tensors leave the RSS)."""
    from mmaffect.train.p2e import answer_token_loss

    weight = torch.randn(vocab, hidden).bfloat16()
    states = torch.randn(batch, answer_tokens, hidden, requires_grad=True)
    targets = torch.randint(0, vocab, (batch, answer_tokens))
    worst = 0.0
    for _ in range(repeats):
        before = _rss()
        sampler = _RssSampler(0.001)
        sampler.reset()
        sampler.start()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss, _ = answer_token_loss(torch.nn.functional.linear(states, weight), targets)
            loss.backward()
        del loss
        time.sleep(0.01)
        sampler.running = False
        sampler.join()
        worst = max(worst, (sampler.peak - before) / (batch * answer_tokens * vocab))
    return worst
LOSS_BACKWARD, LAYER_BACKWARD = "peak A (loss backward)", "peak B (decoder-layer backward)"


def estimate_memory(counts: dict[str, int], cfg, shapes: Shapes | None = None, *, device: str = "cuda",
                    face_fusion_trains: bool = True, **legacy) -> list[tuple[str, float, str]]:  # fmt: skip
    """Rows ``(component, GiB, how)`` of a phase-3 step's peak (a step after the first: AdamW states exist), for bf16
    autocast with the backward inside the autocast region, gradient checkpointing of the LM decoder layers and the
    Q-Former layers, frozen encoders without autograd, logits only at the answer positions. The peak is the larger
    of two moments (rows prefixed ``peak A`` / ``peak B``; :func:`estimate_total` adds the larger): the backward of
    the LM head and loss (A), or of the decoder layers, when the trainable gradients exist (B).

    Bytes per element (measured on CPU with a probe per module, `--calibrate` checks the sum):

    * frozen weights and PEFT's frozen copies of modules_to_save: bf16 (2); trainable weights, gradients, AdamW's two
      moments: fp32 (4, 4, 8); autocast's bf16 copies of the trainable weight matrices, cached through the backward (2);
    * kept from the forward until the backward: the visual Q-Former's input (the CLIP state cast to fp32, plus the
      frame-index embedding and its trainable LayerNorm: 3 x 4 bytes per element of ``B T (1+P) D_v``); the CLIP and
      HuBERT hidden states the fusion experts read (bf16); the random face fusion when it trains (bf16 casts of the
      four Swin stage maps, 1.875 ``E`` channels at the first stage's resolution, and the concatenated 4 ``W``-channel
      map the 1x1 conv saves); the fusion experts (per expert: the visual projections and norms over the visual
      tokens, ``B S (D_v + 4 D_f)`` bf16, and the attention - with dropout 0.1, SDPA takes its math path and keeps
      the ``B heads F S`` attention map: 13 bytes per element); the LM's checkpointed layer inputs (bf16);
    * peak A: logits at the K answer positions of each row, ``B K V``: bf16 logits, the loss' fp32 copy and
      log-softmax, and in backward the fp32 log-softmax gradient and its bf16 cast: ``CE_BYTES_PER_LOGIT`` (12, measured alone) per logit;
    * peak B: all trainable gradients, plus one recomputed decoder layer (saved tensors and their gradients: the
      RMSNorm fp32 upcasts, q/k/v/o, rotary copies, the LoRA input copies, gate/up/SiLU/product of the MLP);
    * on CUDA, the context and allocator slack (1 GiB, typical; not measured here). On CPU nothing more: the target
      is the live peak (RSS relative to the process before the model exists, with ``MALLOC_MMAP_THRESHOLD_=65536`` so
      that freed tensors leave the RSS); glibc's default allocator keeps freed heap on top of it (+0.31 GiB at size S).
    """
    shapes = shapes or Shapes(**{k: legacy[k] for k in ("batch", "seq_len", "answer_tokens", "num_frames", "audio_seconds") if k in legacy})
    text, vision, audio = cfg.text_config, cfg.vision_config, cfg.audio_config
    H, I, n_layers, V = text.hidden_size, text.intermediate_size, text.num_hidden_layers, text.vocab_size
    kv = H // text.num_attention_heads * text.num_key_value_heads
    B, L, K, T = shapes.batch, shapes.seq_len, shapes.answer_tokens, shapes.num_frames
    fusion_cfg, face_cfg = cfg.fusion_encoder_config, cfg.face_config
    P = 1 if cfg.vision_feature_select == "cls" else (vision.image_size // vision.patch_size) ** 2 + 1
    S = T * (1 if fusion_cfg.vision_feature_select == "cls" else (vision.image_size // vision.patch_size) ** 2 + 1)
    F = _audio_frames(audio, shapes.audio_seconds)
    Dv, Da, Df, experts = vision.hidden_size, audio.hidden_size, fusion_cfg.hidden_size, len(fusion_cfg.audio_layers)
    rows = [
        ("frozen weights (bf16)", counts["frozen_base"] * 2, f"{counts['frozen_base']:,} params x 2 B"),
        ("PEFT frozen copies of modules_to_save", counts["peft_original_copies"] * 2, f"{counts['peft_original_copies']:,} x 2 B"),
        ("trainable weights (fp32)", counts["trainable"] * 4, f"{counts['trainable']:,} params x 4 B (LoRA {counts['trainable_lora']:,})"),
        ("AdamW states (fp32 m, v)", counts["trainable"] * 8, "trainable x 8 B"),
    ]
    matrices = counts.get("trainable_matrices", counts["trainable"])
    rows.append(("autocast bf16 copies of trainable matrices", matrices * 2, f"{matrices:,} x 2 B, cached through the backward"))
    rows.append(("visual Q-Former input (fp32 cast, position, LayerNorm)", 3 * B * T * P * Dv * 4, f"3 x B x {T} frames x {P} tokens x {Dv} x 4 B"))
    rows.append(("encoder states read by the fusion experts", (experts * B * S * Dv + (experts + 1) * B * F * Da) * 2,
                 f"{experts} CLIP layers x B x {S} tokens x {Dv} + {experts + 1} HuBERT x B x {F} frames x {Da}, bf16"))  # fmt: skip
    if face_fusion_trains:
        swin = face_cfg.backbone_config
        first = (swin.image_size // swin.patch_size) ** 2
        rows.append(("random face fusion (trains)", B * T * first * (1.875 * swin.embed_dim + 4 * face_cfg.fusion_hidden_size) * 2,
                     f"B x {T} crops x {first} positions x (1.875 x {swin.embed_dim} + 4 x {face_cfg.fusion_hidden_size}) x 2 B"))  # fmt: skip
    heads = fusion_cfg.num_attention_heads
    attention_bytes = 13 if fusion_cfg.dropout > 0 else 0  # dropout: SDPA math path, the attention map is kept
    rows.append(("fusion experts' saved activations", experts * (B * S * (Dv + 4 * Df) * 2 + B * heads * F * S * attention_bytes),
                 f"{experts} x (B x {S} x ({Dv} + 4 x {Df}) x 2 B + B x {heads} heads x {F} x {S} x {attention_bytes} B)"))  # fmt: skip
    rows.append(("LM checkpointed layer inputs + embedded prompt", (n_layers + 1) * B * L * H * 2, f"({n_layers} + 1) x B x L x H x 2 B"))
    rows.append((f"{LOSS_BACKWARD}: logits + cross-entropy at answer positions", B * K * V * CE_BYTES_PER_LOGIT,
                 f"B x K={K} x V={V:,} x {CE_BYTES_PER_LOGIT} B (bf16 logits, fp32 copy + log-softmax, fp32 grad + bf16 cast)"))  # fmt: skip
    per_token = 2 * 4 * H + 2 * (H + H + 3 * H + 3 * kv + 2 * kv + H + H + 2 * H + I + 4 * I)
    rows.append((f"{LAYER_BACKWARD}: gradients + one recomputed decoder layer", counts["trainable"] * 4 + 2 * B * L * per_token,
                 "trainable x 4 B + 2 x B x L x (RMSNorm fp32 upcasts, q/k/v/o, rotary, LoRA input copies, MLP) bytes"))  # fmt: skip
    if device == "cuda":
        rows.append(("CUDA context + allocator slack", 1 * GIB, "typical"))
    return [(name, value / GIB, how) for name, value, how in rows]


def estimate_total(rows) -> float:
    """Every row, plus the larger of the two peak moments (``peak A`` / ``peak B``)."""
    common = sum(v for n, v, _ in rows if not n.startswith(("peak A", "peak B")))
    return common + max([v for n, v, _ in rows if n.startswith(("peak A", "peak B"))] or [0.0])


def synthetic_batch(cfg, shapes: Shapes, device):
    """Inputs shaped like a P2E phase-3 batch: every sample uses all four branches, ``answer_tokens`` targets."""
    vocab = cfg.text_config.vocab_size
    branch = [(cfg.video_token_id, cfg.num_video_tokens), (cfg.audio_token_id, cfg.num_audio_tokens),
              (cfg.face_token_id, cfg.num_face_tokens), (cfg.fusion_token_id, cfg.num_fusion_tokens)]  # fmt: skip
    special = {token for token, _ in branch}
    generator = torch.Generator().manual_seed(0)
    batch, seq_len, answer_tokens = shapes.batch, shapes.seq_len, shapes.answer_tokens
    ids = torch.randint(10, vocab - 10, (batch, seq_len), generator=generator)
    ids[torch.isin(ids, torch.tensor(sorted(special)))] = 11
    position = 4
    for token, count in branch:
        ids[:, position : position + count] = token
        position += count + 3
    if position + answer_tokens >= seq_len:
        raise ValueError(f"seq_len={seq_len} is too short for the branch tokens and {answer_tokens} answer tokens")
    labels = torch.full_like(ids, -100)
    labels[:, -answer_tokens:] = ids[:, -answer_tokens:]
    size, face = cfg.vision_config.image_size, cfg.face_config.backbone_config.image_size
    samples = max(int(shapes.audio_seconds * 16000), 400)
    T = shapes.num_frames
    inputs = {
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "labels": labels,
        "pixel_values_videos": torch.randn(batch, T, 3, size, size, generator=generator),
        "video_sample_index": torch.arange(batch),
        "input_values": torch.randn(batch, samples, generator=generator),
        "audio_attention_mask": torch.ones(batch, samples, dtype=torch.long),
        "audio_sample_index": torch.arange(batch),
        "face_pixel_values": torch.randn(batch, T, 3, face, face, generator=generator),
        "face_frame_mask": torch.ones(batch, T, dtype=torch.bool),
        "face_sample_index": torch.arange(batch),
    }
    return {k: v.to(device) for k, v in inputs.items()}


class _RssSampler(threading.Thread):
    """Maximum resident set size of this process, sampled every ``interval`` seconds."""

    def __init__(self, interval: float = 0.002):
        super().__init__(daemon=True)
        import psutil

        self.process, self.interval, self.peak, self.running = psutil.Process(), interval, 0, True

    def run(self):
        while self.running:
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(self.interval)

    def reset(self):
        self.peak = self.process.memory_info().rss


def _rss() -> int:
    import psutil

    gc.collect()
    try:  # give freed heap pages back so the RSS shows live memory
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass
    return psutil.Process().memory_info().rss


def measure(device: str, preset: str, batch: int | None = None, seq_len: int | None = None, answer_tokens: int | None = None,
            num_frames: int | None = None, audio_seconds: float | None = None, steps: int = 3, mixed_precision: str = "bf16") -> dict:  # fmt: skip
    """MEASURED peak memory and step time of the trainer's phase-3 step (``forward_loss`` + backward inside the
    autocast region + clipping + AdamW, gradient checkpointing, frozen weights in the autocast dtype). ``preset``:
    a size name (``full``, ``tiny``, ``S``, ``M``, ``L``); shape arguments override the size's."""
    from mmaffect.train.p2e import cast_frozen_parameters, enable_gradient_checkpointing, forward_loss

    cfg, shapes = size_config(preset)
    for name, value in (("batch", batch), ("seq_len", seq_len), ("answer_tokens", answer_tokens), ("num_frames", num_frames), ("audio_seconds", audio_seconds)):
        if value is not None:
            setattr(shapes, name, value)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "no": torch.float32}[mixed_precision]
    baseline = _rss()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    model, cfg, _, _ = build_phase3_model(cfg, device)
    enable_gradient_checkpointing(model.base_model.model)
    cast_frozen_parameters(model, dtype)
    model.train()
    counts = count_parameters(model)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=8e-6, weight_decay=0.05)
    inputs = synthetic_batch(cfg, shapes, device)
    static = _rss()
    sampler = _RssSampler()
    sampler.start()
    times, peaks = [], []
    for step in range(steps):  # step 0 allocates the AdamW states and warms up
        if device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        sampler.reset()
        start = time.perf_counter()
        with torch.autocast(device_type="cuda" if device == "cuda" else "cpu", dtype=dtype, enabled=mixed_precision != "no"):
            loss, _ = forward_loss(model, inputs)
            loss.backward()  # inside the autocast region, as the trainer does
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device == "cuda":
            torch.cuda.synchronize()
            peaks.append(torch.cuda.max_memory_allocated())
        else:
            time.sleep(3 * sampler.interval)
            peaks.append(sampler.peak)
        times.append(time.perf_counter() - start)
    sampler.running = False
    result = {
        "kind": "MEASURED",
        "device": torch.cuda.get_device_name() if device == "cuda" else _cpu_name(),
        "preset": preset,
        **asdict(shapes),
        "mixed_precision": mixed_precision,
        "steps": steps,
        "step_seconds": times,
        "step_seconds_median": statistics.median(times[1:] or times),
        "loss": float(loss.detach()),
        "counts": counts,
    }
    if device == "cuda":
        result["peak_allocated_gib"] = max(peaks[1:] or peaks) / GIB
        result["peak_reserved_gib"] = torch.cuda.max_memory_reserved() / GIB
    else:
        result["baseline_rss_gib"] = baseline / GIB
        result["static_rss_gib"] = (static - baseline) / GIB
        result["peak_rss_gib"] = max(peaks[1:] or peaks) / GIB  # steps after the first: AdamW states exist
        result["step_peak_gib"] = (max(peaks[1:] or peaks) - baseline) / GIB
    return result


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip() + f" ({os.cpu_count()} cores)"
    except OSError:
        pass
    return "cpu"


def estimate(preset: str = "full", device: str = "cuda", shapes: Shapes | None = None) -> dict:
    cfg, default_shapes = size_config(preset)
    shapes = shapes or default_shapes
    model, cfg, _, _ = build_phase3_model(cfg, "meta")
    counts = count_parameters(model)
    rows = estimate_memory(counts, cfg, shapes, device=device, face_fusion_trains=not cfg.face_config.multiscale_fusion_pretrained)
    return {"kind": "ESTIMATE", "preset": preset, **asdict(shapes), "counts": counts, "rows": rows, "total_gib": estimate_total(rows)}


# glibc keeps freed heap memory and, after large frees, serves allocations up to 32 MiB from the heap (its dynamic
# mmap threshold), so the RSS of a default process exceeds its live tensors by a varying amount. A fixed threshold
# maps every allocation of 64 KiB or more on its own and unmaps it when freed: the RSS then follows live memory, the
# CPU counterpart of CUDA's max_memory_allocated. The calibration target is that "live" peak; the default
# allocator's peak is reported next to it.
ALLOCATORS = {"live": {"MALLOC_MMAP_THRESHOLD_": "65536"}, "glibc_default": {}}


def calibrate(sizes, steps: int = 3, out_dir: Path | None = None, allocators: Sequence[str] = tuple(ALLOCATORS)) -> list[dict]:
    """Each size measured in a fresh process per allocator setting (``--measure``), next to the estimate at the same
    size (CPU rows). Finished measurements (``outputs/p2e_memory/measure_{size}_{allocator}.json``) are reused; an
    allocator left out of ``allocators`` is reported only if its measurement already exists."""
    out_dir = out_dir or REPO_ROOT / "outputs" / "p2e_memory"
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for size in sizes:
        measured = {}
        for allocator, variables in ALLOCATORS.items():
            target = out_dir / f"measure_{size}_{allocator}.json"
            if not target.is_file() and allocator not in allocators and allocator != "live":
                measured[allocator] = None
                continue
            if not target.is_file():  # resumable: a finished size is not measured again
                command = [sys.executable, str(Path(__file__).resolve()), "--measure", size, "--steps", str(steps), "--json", str(target)]
                env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"), **variables)
                subprocess.run(command, check=True, env=env)
            measured[allocator] = json.loads(target.read_text())
        predicted = estimate(size, device="cpu")
        live = measured["live"]["step_peak_gib"]
        error = (predicted["total_gib"] - live) / live
        default = measured["glibc_default"]
        rows.append({"size": size, "measured": measured["live"], "measured_default": default, "estimate": predicted, "error": error})
        print(f"{size}: estimate {predicted['total_gib']:.2f} GiB, measured {live:.2f} GiB live ({100 * error:+.1f} %), "
              + (f"{default['step_peak_gib']:.2f} GiB with the default allocator" if default else "default allocator not measured"), flush=True)  # fmt: skip
    return rows


def _size_line(size: str) -> str:
    cfg, shapes = size_config(size)
    t, v, a = cfg.text_config, cfg.vision_config, cfg.audio_config
    swin = cfg.face_config.backbone_config
    return (f"LM {t.num_hidden_layers} x {t.hidden_size} (MLP {t.intermediate_size}, vocab {t.vocab_size:,}), CLIP {v.num_hidden_layers} x "
            f"{v.hidden_size}, HuBERT {a.num_hidden_layers} x {a.hidden_size}, Swin {swin.embed_dim} {list(swin.depths)}; batch {shapes.batch}, "
            f"{shapes.seq_len} tokens ({shapes.answer_tokens} answer), {shapes.num_frames} frames, {shapes.audio_seconds:g} s audio")  # fmt: skip


def markdown(results: list[dict], calibration: list[dict] | None = None, command: str = "") -> str:
    lines = [START, "## Nano-EmoX P2E phase 3: peak memory and step time (`benchmarks/p2e_memory.py`)", ""]
    if calibration:
        device = calibration[0]["measured"]["device"]
        lines += [
            f"**Calibration (MEASURED on this CPU: {device}; no GPU was lent to this task).** A phase-3 step of the "
            "trainer (bf16 autocast, gradient checkpointing, frozen weights in bf16, LoRA r=32 + "
            "adapters + fusion + face fusion training, AdamW) at reduced sizes, each in its own process; measured = peak "
            "RSS (sampled every 2 ms) during steps 2-3 minus the process RSS before the model was built. *Live*: with "
            "`MALLOC_MMAP_THRESHOLD_=65536`, so that freed tensors leave the RSS (the CPU counterpart of CUDA's "
            "`max_memory_allocated`; the calibration target); *default glibc*: the same step with the default allocator, "
            "whose heap keeps freed memory (what `top` shows for an unconfigured run). Estimate = `estimate_memory` at the "
            "same size, CPU rows (no CUDA context). Step times are on 2 cores shared with other jobs (load 4-8, one thread): not a "
            "speed figure.",
            "",
            f"Command: `{command or 'OMP_NUM_THREADS=2 nice -n 10 python benchmarks/p2e_memory.py --calibrate --write-results'}` "
            "(each size's measurement is a JSON file in `outputs/p2e_memory/`, made by the first `--calibrate` run that "
            "needs it and reused by later runs, which recompute only the estimates).",
            "",
            "| size | model and batch | parameters (trainable) | estimate GiB | measured GiB (live) | error | measured GiB (default glibc) | step s |",
            "|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        for row in calibration:
            m, e, d = row["measured"], row["estimate"], row["measured_default"]
            lines.append(f"| {row['size']} | {_size_line(row['size'])} | {m['counts']['model_without_lora'] + m['counts']['trainable_lora']:,} "
                         f"({m['counts']['trainable']:,}) | {e['total_gib']:.2f} | {m['step_peak_gib']:.2f} | {100 * row['error']:+.1f} % | "
                         f"{'%.2f' % d['step_peak_gib'] if d else 'not measured'} | {m['step_seconds_median']:.0f} |")  # fmt: skip
        worst = max(abs(r["error"]) for r in calibration)
        residuals = [r["measured"]["step_peak_gib"] - r["estimate"]["total_gib"] for r in calibration]
        lines += ["", f"Largest estimate error: {100 * worst:.1f} % ({'within' if worst <= 0.15 else 'OUTSIDE'} the 15 % target). "
                  f"Measured minus estimate: {', '.join(f'{v:+.2f}' for v in residuals)} GiB; a residual of this size that "
                  "no row models (small heap allocations, autograd bookkeeping) is left visible, not added as a fitted term. "
                  "The cross-entropy row's 12 bytes per logit are measured alone with `--probe-cross-entropy`.", ""]  # fmt: skip
    for result in results:
        if result["kind"] == "ESTIMATE":
            c = result["counts"]
            lines += [
                f"**ESTIMATE (calibrated model; no GPU was available)** - full-size model (parameters counted on the meta device), phase 3, "
                f"batch {result['batch']}, bf16 autocast, gradient checkpointing, sequence length {result['seq_len']}, "
                f"{result['answer_tokens']} answer tokens, {result['num_frames']} frames, {result['audio_seconds']:g} s audio. Parameters: "
                f"{c['model_without_lora']:,} in the model, {c['trainable']:,} trainable ({c['trainable_lora']:,} LoRA r=32 + "
                f"{c['trainable_modules']:,} fusion/Q-Formers/adapters/face fusion).",
                "",
                "| component | GiB | how |",
                "|---|---:|---|",
            ]
            lines += [f"| {name} | {value:.2f} | {how} |" for name, value, how in result["rows"]]
            verdict = "fits" if result["total_gib"] < 24 else "does NOT fit"
            lines += [f"| **total (ESTIMATE)** | **{result['total_gib']:.1f}** | all rows but the smaller of peak A / peak B; {verdict} in 24 GB (RTX 4090) |", ""]
            lines += ["What the calibration does not cover at full size: the CUDA row (typical, not measured) and the fusion "
                      "experts' attention maps, which the CPU's SDPA keeps with dropout (its math path) while CUDA's fused "
                      "kernels may not, so on a GPU that row is an upper bound.", ""]  # fmt: skip
            lines += ["**Not measured: the full-size GPU figures** (peak memory and step time of phase 3 at batch 3, and from "
                      "the step time the hours for the paper's 345k micro-batches against its 32 h): no GPU was lent to this "
                      "task. The command that measures them: `python benchmarks/p2e_memory.py --device cuda --write-results`.", ""]  # fmt: skip
        else:
            peak = result.get("peak_allocated_gib", result.get("step_peak_gib", result.get("peak_rss_gib")))
            line = (f"**MEASURED** on {result['device']} ({result['preset']} model, batch {result['batch']}, {result['mixed_precision']}, "
                    f"gradient checkpointing, sequence length {result['seq_len']}): peak {peak:.2f} GiB"
                    + (f", reserved {result['peak_reserved_gib']:.2f} GiB" if "peak_reserved_gib" in result else "")
                    + f", median step {result['step_seconds_median']:.3f} s")  # fmt: skip
            if result["preset"] == "full" and result["batch"] == 3:
                hours = PAPER_SAMPLES / 3 * result["step_seconds_median"] / 3600
                line += f"; the paper's 345k micro-batches of 3 at this speed: {hours:.1f} h (paper: {PAPER_HOURS:g} h on one RTX 4090)"
            lines += [line + ".", ""]
    lines.append(END)
    return "\n".join(lines)


def write_results(section: str, path: Path = RESULTS) -> None:
    """Replace this benchmark's section of RESULTS.md (between its markers), or append it; other sections stay."""
    text = path.read_text(encoding="utf-8") if path.is_file() else "# Benchmark results\n"
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), flags=re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text, encoding="utf-8")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["estimate", "cuda", "cpu"], default="estimate")
    parser.add_argument("--preset", default="full", help="full, tiny or a calibration size (S, M, L)")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--calibrate", nargs="*", metavar="SIZE", help="measure these calibration sizes on the CPU (default: all)")
    parser.add_argument("--allocators", nargs="+", choices=list(ALLOCATORS), default=list(ALLOCATORS),
                        help="allocator settings to measure with --calibrate (live is always measured)")
    parser.add_argument("--measure", metavar="SIZE", help="(internal) measure one size in this process and write --json")
    parser.add_argument("--write-results", action="store_true")
    parser.add_argument("--json", help="also write the result(s) as JSON")
    parser.add_argument("--probe-cross-entropy", action="store_true", help="print the LM head + loss peak bytes per logit")
    args = parser.parse_args(argv)
    if args.probe_cross_entropy:
        print(f"LM head + cross-entropy, forward + backward: {probe_cross_entropy():.2f} bytes per logit")
        return 0
    if args.measure:
        result = measure("cpu", args.measure, steps=args.steps)
        Path(args.json).write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
        print(json.dumps({k: v for k, v in result.items() if k != "counts"}, default=str))
        return 0
    calibration = calibrate(args.calibrate or list(CALIBRATION_SIZES), args.steps, allocators=args.allocators) if args.calibrate is not None else None
    results = [estimate("full")]
    if args.device != "estimate":
        if args.device == "cuda" and not torch.cuda.is_available():
            print("no CUDA device: reporting the ESTIMATE only", file=sys.stderr)
        else:
            results.append(measure(args.device, args.preset, steps=args.steps))
    command = " ".join(["OMP_NUM_THREADS=" + os.environ.get("OMP_NUM_THREADS", "(unset)"), "python", "benchmarks/p2e_memory.py",
                        *(sys.argv[1:] if argv is None else argv)])  # fmt: skip
    section = markdown(results, calibration, command)
    print(section)
    if args.json:
        Path(args.json).write_text(json.dumps({"results": results, "calibration": calibration}, indent=2, default=str), encoding="utf-8")
    if args.write_results:
        write_results(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
