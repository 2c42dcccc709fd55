"""``mmaffect info <model>``: parameter counts and structure of a model, built on the meta device (no weights).

    mmaffect info nano-emox                  # paper full size, per-branch breakdown
    mmaffect info nano-emox --preset public_code
    mmaffect info nano-emox --preset tiny --json
    mmaffect info lgsrr                      # LGSRR's count, once its model folder provides LGSRRConfig

New models add a ``(builder, reporter)`` entry to ``MODELS``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from typing import Any

# Nano-EmoX branches: (branch title, [(submodule, description)]).
NANO_EMOX_BRANCHES = [
    (
        "Scene visual branch",
        [
            ("vision_tower", "CLIP ViT vision tower (frozen)"),
            ("visual_qformer", "visual Q-Former + frame-index embedding"),
            ("video_projector", "adapter -> LM"),
        ],
    ),
    (
        "Speech branch",
        [
            ("audio_tower", "HuBERT speech encoder (frozen)"),
            ("speech_qformer", "speech Q-Former"),
            ("audio_projector", "adapter -> LM"),
        ],
    ),
    (
        "Face branch",
        [
            ("face_encoder", "FaceXFormer encoder: Swin backbone + multi-scale MLP fusion (frozen; a random fusion trains in P2E)"),
            ("face_temporal", "temporal queries + cross-attention"),
            ("no_face_embedding", "learned 'no face' tokens"),
            ("face_projector", "adapter -> LM"),
        ],
    ),
    (
        "Fusion branch",
        [
            ("fusion", "gated cross-modal experts"),
            ("fusion_projector", "adapter -> LM"),
        ],
    ),
    ("Language model", [("language_model", "causal LM (frozen base; LoRA in phase 3)")]),
]


def _count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def _human(n: int) -> str:
    if n >= 1e9:
        return f"{n / 1e9:.3f} B"
    if n >= 1e6:
        return f"{n / 1e6:.2f} M"
    if n >= 1e3:
        return f"{n / 1e3:.1f} K"
    return str(n)


def _lora_parameter_count(model, target_regex: str, rank: int) -> int:
    """Parameters LoRA adds: ``rank * (in + out)`` for every nn.Linear whose name matches ``target_regex``."""
    from torch import nn

    pattern = re.compile(target_regex)
    return sum(
        rank * (module.in_features + module.out_features)
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and pattern.fullmatch(name)
    )


# ----------------------------------------------------------------------------------------------------
# Nano-EmoX
# ----------------------------------------------------------------------------------------------------
def build_nano_emox(preset: str = "paper"):
    import torch

    from .models.nano_emox import NanoEmoXConfig, NanoEmoXForConditionalGeneration
    from .models.nano_emox.configuration_nano_emox import LORA_PRESETS

    if preset == "paper":
        config = NanoEmoXConfig()
    elif preset == "public_code":
        config = NanoEmoXConfig.public_code_variant()
    elif preset == "tiny":
        config = NanoEmoXConfig.tiny()
    else:
        raise ValueError(f"unknown Nano-EmoX preset {preset!r}; expected paper, public_code or tiny")
    with torch.device("meta"):
        model = NanoEmoXForConditionalGeneration(config)
    return model, LORA_PRESETS


def nano_emox_report(model, lora_presets: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per-branch / per-submodule counts; shared (tied) tensors are counted once."""
    breakdown = model.parameter_breakdown()
    listed = {name for _, modules in NANO_EMOX_BRANCHES for name, _ in modules}
    unlisted = sorted(set(breakdown) - listed)
    branches = []
    for title, modules in NANO_EMOX_BRANCHES + ([("Other", [(n, "") for n in unlisted])] if unlisted else []):
        rows = [
            {
                "module": name,
                "description": description,
                "parameters": breakdown[name]["total"],
                "trainable": breakdown[name]["trainable"],
            }
            for name, description in modules
            if name in breakdown
        ]
        branches.append({"branch": title, "modules": rows, "parameters": sum(r["parameters"] for r in rows)})
    face = model.face_encoder
    face_detail = {"backbone": _count(face.backbone), "multi_scale_fusion": _count(face) - _count(face.backbone)}
    lm = model.language_model
    lm_embedding = lm.get_input_embeddings().weight.numel()
    lora = {
        name: {
            **{k: v for k, v in preset.items() if k in ("r", "lora_alpha")},
            "parameters": _lora_parameter_count(model, model.config.lora_target_modules, preset["r"]),
        }
        for name, preset in lora_presets.items()
    }
    total = sum(v["total"] for v in breakdown.values())
    return {
        "model": "Nano-EmoX",
        "total": total,
        "trainable_by_default": sum(v["trainable"] for v in breakdown.values()),
        "branches": branches,
        "face_encoder_detail": face_detail,
        "language_model_detail": {"embeddings (tied with lm_head)" if model.config.tie_word_embeddings else "embeddings": lm_embedding},
        "lora": lora,
        "tokens": {
            "video": model.config.num_video_tokens,
            "audio": model.config.num_audio_tokens,
            "face": model.config.num_face_tokens,
            "fusion": model.config.num_fusion_tokens,
        },
    }


def print_nano_emox(report: dict[str, Any], title: str) -> None:
    width = 78
    print(title)
    print("=" * width)
    print(f"{'branch / submodule':<40}{'parameters':>18}{'trainable':>20}")
    print("-" * width)
    for branch in report["branches"]:
        print(f"{branch['branch']:<40}{branch['parameters']:>18,}{_human(branch['parameters']):>20}")
        for row in branch["modules"]:
            trainable = "frozen" if row["trainable"] == 0 else f"{row['trainable']:,}"
            print(f"  {row['module']:<38}{row['parameters']:>18,}{trainable:>20}")
            if row["module"] == "face_encoder":
                for part, n in report["face_encoder_detail"].items():
                    print(f"    {part:<36}{n:>18,}")
            if row["module"] == "language_model":
                for part, n in report["language_model_detail"].items():
                    print(f"    {part:<36}{n:>18,}")
    print("-" * width)
    print(f"{'TOTAL':<40}{report['total']:>18,}{_human(report['total']):>20}")
    print(f"{'trainable by default':<40}{report['trainable_by_default']:>18,}{_human(report['trainable_by_default']):>20}")
    for name, lora in report["lora"].items():
        label = f"+ LoRA {name} (r={lora['r']}, alpha={lora['lora_alpha']})"
        print(f"{label:<40}{lora['parameters']:>18,}{_human(lora['parameters']):>20}")
    tokens = ", ".join(f"{k} {v}" for k, v in report["tokens"].items())
    print(f"tokens per clip: {tokens}")


def _nano_emox(args) -> int:
    model, presets = build_nano_emox(args.preset)
    report = nano_emox_report(model, presets)
    report["preset"] = args.preset
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_nano_emox(report, f"Nano-EmoX ({args.preset} preset, built on the meta device: no weights allocated)")
    return 0


# ----------------------------------------------------------------------------------------------------
# LGSRR (hook: counts whatever the LGSRR folder provides)
# ----------------------------------------------------------------------------------------------------
def _lgsrr(args) -> int:
    import torch

    try:
        from .models.lgsrr import LGSRRConfig, LGSRRForSequenceClassification
    except ImportError as err:
        print(f"mmaffect info lgsrr: the LGSRR model is not available yet ({err})", file=sys.stderr)
        return 1
    with torch.device("meta"):
        model = LGSRRForSequenceClassification(LGSRRConfig())
    rows = [(name, _count(child)) for name, child in model.named_children()]
    total = _count(model)
    if args.json:
        print(json.dumps({"model": "LGSRR", "total": total, "modules": dict(rows)}, indent=2))
        return 0
    print("LGSRR (default config, built on the meta device)")
    for name, n in rows:
        print(f"  {name:<38}{n:>18,}")
    print(f"{'TOTAL':<40}{total:>18,}{_human(total):>20}")
    return 0


MODELS: dict[str, Callable[[argparse.Namespace], int]] = {"nano-emox": _nano_emox, "lgsrr": _lgsrr}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mmaffect info", description="Parameter counts of a model (meta device).")
    parser.add_argument("model", choices=sorted(MODELS), help="which model")
    parser.add_argument(
        "--preset",
        default="paper",
        choices=["paper", "public_code", "tiny"],
        help="Nano-EmoX configuration (default: the paper's full size)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    return MODELS[args.model](args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
