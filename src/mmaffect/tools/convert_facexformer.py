"""Convert the public FaceXFormer checkpoint into Nano-EmoX's face branch.

    mmaffect convert facexformer path/to/facexformer/ckpts/model.pt nano-emox-face/
    model = NanoEmoXForConditionalGeneration.from_pretrained_components(face="nano-emox-face/", ...)

FaceXFormer (Narayan et al., ICCV 2025; github.com/Kartik-3004/facexformer) stores ``{"state_dict_backbone":
state_dict}``, the state dict of its ``FaceXFormer`` module:

==============================================  =================================================================
FaceXFormer key                                  Nano-EmoX face branch (Hugging Face Swin layout)
==============================================  =================================================================
``backbone.0.0.0.*`` (patch conv)                ``embeddings.patch_embeddings.projection.*``
``backbone.0.0.2.*`` (patch norm)                ``embeddings.norm.*``
``backbone.0.{2s+1}.{b}.norm1 / norm2``          ``encoder.layers.{s}.blocks.{b}.layernorm_before / layernorm_after``
``backbone.0.{2s+1}.{b}.attn.qkv``               ``...attention.self.query / key / value`` (rows split in thirds)
``backbone.0.{2s+1}.{b}.attn.proj``              ``...attention.output.dense``
``backbone.0.{2s+1}.{b}.attn.relative_position_bias_table``  ``...attention.self.relative_position_bias_table``
``backbone.0.{2s+1}.{b}.mlp.0 / mlp.3``          ``...intermediate.dense / output.dense``
``backbone.0.{2s+2}.reduction / norm``           ``encoder.layers.{s}.downsample.reduction / norm`` (patch merging)
``backbone.1.*`` (final norm)                    ``layernorm.*``
``linear_c.{i}.proj.*``                          ``stage_projections.{i}.*`` (multi-scale fusion, ``face_multiscale_fusion.safetensors``)
``linear_fuse.weight``                           ``fuse.weight``
``face_decoder.*``, ``pe_layer.*``, ``...attn.relative_position_index``   not used (FaceXFormer's task decoder; a recomputed buffer)
==============================================  =================================================================

(``backbone`` is ``nn.Sequential(*list(torchvision swin_b().children())[:-1])``: ``0`` = ``features``, ``1`` = the final
norm.) The Swin sizes (embedding width, depths, heads, window, MLP ratio) are read from the shapes. The output folder
is a Hugging Face Swin checkpoint in the Hub's classic key names (``AutoModel.from_pretrained`` loads it on every
transformers 5.x) plus the fusion weights and ``facexformer_conversion.json`` (source, SHA-256, ignored keys). The
converter loads the folder back and checks that every tensor arrived.

A tool, not remote code: it lives outside the model folder (``save_pretrained`` does not ship it); it needs torch,
transformers and safetensors (a transformers dependency).
"""

import argparse
import hashlib
import json
import math
import os
import re
import sys
from pathlib import Path

import torch

from mmaffect.models.nano_emox.modeling_nano_emox import FACE_FUSION_WEIGHTS

CONVERSION_RECORD = "facexformer_conversion.json"
IGNORED_PREFIXES = ("face_decoder.", "pe_layer.")
_STAGE = re.compile(r"backbone\.0\.(\d+)\.(\d+)\.(norm1|norm2|attn\.qkv|attn\.proj|mlp\.0|mlp\.3)\.(weight|bias)")
_TABLE = re.compile(r"backbone\.0\.(\d+)\.(\d+)\.attn\.relative_position_bias_table")
_INDEX = re.compile(r"backbone\.0\.(\d+)\.(\d+)\.attn\.relative_position_index")
_MERGE = re.compile(r"backbone\.0\.(\d+)\.(reduction\.weight|norm\.weight|norm\.bias)")
_EMBED = {"backbone.0.0.0.weight": "embeddings.patch_embeddings.projection.weight",
          "backbone.0.0.0.bias": "embeddings.patch_embeddings.projection.bias",
          "backbone.0.0.2.weight": "embeddings.norm.weight", "backbone.0.0.2.bias": "embeddings.norm.bias",
          "backbone.1.weight": "layernorm.weight", "backbone.1.bias": "layernorm.bias"}  # fmt: skip
_BLOCK = {"norm1": "layernorm_before", "norm2": "layernorm_after", "attn.proj": "attention.output.dense",
          "mlp.0": "intermediate.dense", "mlp.3": "output.dense"}  # fmt: skip
_FUSION = re.compile(r"linear_c\.(\d+)\.proj\.(weight|bias)|linear_fuse\.weight")


class FaceXFormerConversionError(ValueError):
    """The checkpoint is not in FaceXFormer's layout; the message names the keys."""


def read_facexformer_checkpoint(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The FaceXFormer state dict of ``path`` (``.pt`` with ``state_dict_backbone`` / ``state_dict`` or a bare state
    dict, or ``.safetensors``); a DDP ``module.`` prefix is dropped."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"FaceXFormer checkpoint {path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        data = load_file(str(path))
    else:
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # pickles with arbitrary objects are refused on purpose
            raise FaceXFormerConversionError(f"{path}: not a loadable tensor checkpoint ({type(error).__name__}: {error})") from None
    if isinstance(data, dict):
        for key in ("state_dict_backbone", "state_dict", "model"):
            if isinstance(data.get(key), dict):
                data = data[key]
                break
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise FaceXFormerConversionError(f"{path}: expected a state dict (or {{'state_dict_backbone': ...}}), got {type(data).__name__}")
    return {k[len("module.") :] if k.startswith("module.") else k: v for k, v in data.items()}


def _stage_of(feature_index: int, key: str) -> int:
    if feature_index % 2 != 1:
        raise FaceXFormerConversionError(f"{key}: backbone.0.{feature_index} is not a Swin stage (stages are 1, 3, 5, 7)")
    return (feature_index - 1) // 2


def facexformer_to_nano_emox(state: dict[str, torch.Tensor], image_size: int = 224):
    """FaceXFormer state dict -> ``(swin_config_kwargs, backbone_state, fusion_state, report)``.

    ``backbone_state`` uses the Hub's classic Swin key names, ``fusion_state`` the names of
    ``NanoEmoXFaceEncoder.multiscale_fusion_state_dict()``; ``report`` lists the ignored keys."""
    backbone, fusion, ignored, unknown = {}, {}, [], []
    depths: dict[int, set[int]] = {}
    heads: dict[int, int] = {}
    for key, tensor in state.items():
        if key.startswith(IGNORED_PREFIXES) or _INDEX.fullmatch(key):
            ignored.append(key)
        elif key in _EMBED:
            backbone[_EMBED[key]] = tensor
        elif match := _STAGE.fullmatch(key):
            stage, block, part, kind = _stage_of(int(match[1]), key), int(match[2]), match[3], match[4]
            depths.setdefault(stage, set()).add(block)
            prefix = f"encoder.layers.{stage}.blocks.{block}."
            if part == "attn.qkv":
                if tensor.shape[0] % 3:
                    raise FaceXFormerConversionError(f"{key}: {tuple(tensor.shape)} does not split into query / key / value")
                for name, piece in zip(("query", "key", "value"), tensor.chunk(3, dim=0)):
                    backbone[f"{prefix}attention.self.{name}.{kind}"] = piece.contiguous()
            else:
                backbone[f"{prefix}{_BLOCK[part]}.{kind}"] = tensor
        elif match := _TABLE.fullmatch(key):
            stage = _stage_of(int(match[1]), key)
            heads[stage] = int(tensor.shape[1])
            backbone[f"encoder.layers.{stage}.blocks.{int(match[2])}.attention.self.relative_position_bias_table"] = tensor
        elif match := _MERGE.fullmatch(key):
            feature_index = int(match[1])
            if feature_index % 2 or feature_index < 2:
                raise FaceXFormerConversionError(f"{key}: backbone.0.{feature_index} is not a patch-merging layer (2, 4, 6)")
            backbone[f"encoder.layers.{feature_index // 2 - 1}.downsample.{match[2]}"] = tensor
        elif match := _FUSION.fullmatch(key):
            fusion[f"stage_projections.{match[1]}.{match[2]}" if match[1] is not None else "fuse.weight"] = tensor
        else:
            unknown.append(key)
    if unknown:
        raise FaceXFormerConversionError(f"{len(unknown)} key(s) are not in FaceXFormer's layout, e.g. {sorted(unknown)[:8]}")
    missing = [k for k in ("embeddings.patch_embeddings.projection.weight", "layernorm.weight") if k not in backbone]
    if missing or not depths or "fuse.weight" not in fusion:
        raise FaceXFormerConversionError(
            f"not a FaceXFormer checkpoint: missing {missing + ([] if depths else ['backbone.0.*']) + ([] if 'fuse.weight' in fusion else ['linear_fuse.weight'])}"
        )
    num_stages = max(depths) + 1
    if sorted(depths) != list(range(num_stages)) or sorted(heads) != list(range(num_stages)):
        raise FaceXFormerConversionError(f"Swin stages {sorted(depths)} (with attention tables {sorted(heads)}) are not 0..{num_stages - 1}")
    patch = backbone["embeddings.patch_embeddings.projection.weight"]
    embed_dim, patch_size = int(patch.shape[0]), int(patch.shape[-1])
    table = backbone["encoder.layers.0.blocks.0.attention.self.relative_position_bias_table"]
    window = (math.isqrt(int(table.shape[0])) + 1) // 2
    if (2 * window - 1) ** 2 != table.shape[0]:
        raise FaceXFormerConversionError(f"relative position table of {int(table.shape[0])} rows is not (2 w - 1)^2 for a window w")
    hidden = backbone["encoder.layers.0.blocks.0.intermediate.dense.weight"].shape[0]
    swin = {
        "image_size": int(image_size),
        "patch_size": patch_size,
        "num_channels": int(patch.shape[1]),
        "embed_dim": embed_dim,
        "depths": [len(depths[s]) for s in range(num_stages)],
        "num_heads": [heads[s] for s in range(num_stages)],
        "window_size": window,
        "mlp_ratio": float(hidden) / embed_dim,
        "qkv_bias": "encoder.layers.0.blocks.0.attention.self.query.bias" in backbone,
        "hidden_act": "gelu",  # torchvision's nn.GELU
        "layer_norm_eps": 1e-5,  # torchvision's Swin norm
        "drop_path_rate": 0.0,
        "use_absolute_embeddings": False,
    }
    stage_widths = [embed_dim * 2**s for s in range(num_stages)]
    for i, width in enumerate(stage_widths):
        weight = fusion.get(f"stage_projections.{i}.weight")
        if weight is None or weight.shape[1] != width:
            raise FaceXFormerConversionError(f"linear_c.{i}.proj.weight must map the stage-{i} width {width}, got {None if weight is None else tuple(weight.shape)}")
    kinds = sorted({"relative_position_index" if _INDEX.fullmatch(k) else k.split(".")[0] for k in ignored})
    report = {"ignored_keys": len(ignored), "ignored_prefixes": kinds, "swin": swin}
    return swin, backbone, fusion, report


def nano_emox_to_facexformer(backbone: dict[str, torch.Tensor], fusion: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The inverse of :func:`facexformer_to_nano_emox` for the mapped keys (used to test the round trip)."""
    inverse_embed = {v: k for k, v in _EMBED.items()}
    inverse_block = {v: k for k, v in _BLOCK.items()}
    out: dict[str, torch.Tensor] = {}
    qkv: dict[tuple, dict[str, torch.Tensor]] = {}
    for key, tensor in backbone.items():
        if key in inverse_embed:
            out[inverse_embed[key]] = tensor
            continue
        match = re.fullmatch(r"encoder\.layers\.(\d+)\.(?:blocks\.(\d+)\.(.+)|downsample\.(.+))", key)
        if match is None:
            raise FaceXFormerConversionError(f"{key} is not a Swin key of the converted layout")
        stage = int(match[1])
        if match[4] is not None:
            out[f"backbone.0.{2 * stage + 2}.{match[4]}"] = tensor
            continue
        prefix, part = f"backbone.0.{2 * stage + 1}.{match[2]}.", match[3]
        if part == "attention.self.relative_position_bias_table":
            out[prefix + "attn.relative_position_bias_table"] = tensor
        elif sub := re.fullmatch(r"attention\.self\.(query|key|value)\.(weight|bias)", part):
            qkv.setdefault((prefix, sub[2]), {})[sub[1]] = tensor
        else:
            name, _, kind = part.rpartition(".")
            out[f"{prefix}{inverse_block[name]}.{kind}"] = tensor
    for (prefix, kind), pieces in qkv.items():
        out[f"{prefix}attn.qkv.{kind}"] = torch.cat([pieces["query"], pieces["key"], pieces["value"]], dim=0)
    for key, tensor in fusion.items():
        out["linear_fuse.weight" if key == "fuse.weight" else "linear_c.{}.proj.{}".format(*key.split(".")[1:])] = tensor
    return out


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def convert_facexformer(checkpoint: str | os.PathLike, output_dir: str | os.PathLike, image_size: int = 224, overwrite: bool = False) -> dict:
    """Write ``output_dir`` (Swin backbone folder + ``face_multiscale_fusion.safetensors`` + the conversion record)
    from a FaceXFormer checkpoint, then load it back with ``AutoModel`` and check every tensor. Returns the record."""
    from safetensors.torch import save_file
    from transformers import AutoModel, SwinConfig

    checkpoint, output_dir = Path(checkpoint), Path(output_dir)
    if output_dir.exists() and any(output_dir.iterdir()) and not overwrite:
        raise FileExistsError(f"{output_dir} is not empty (pass overwrite=True / --overwrite)")
    swin, backbone, fusion, report = facexformer_to_nano_emox(read_facexformer_checkpoint(checkpoint), image_size)
    output_dir.mkdir(parents=True, exist_ok=True)
    config = SwinConfig(**swin)
    config.architectures = ["SwinModel"]
    config.save_pretrained(output_dir)
    save_file({k: v.contiguous() for k, v in backbone.items()}, str(output_dir / "model.safetensors"), metadata={"format": "pt"})
    save_file({k: v.contiguous() for k, v in fusion.items()}, str(output_dir / FACE_FUSION_WEIGHTS), metadata={"format": "pt"})

    # load it back the way from_pretrained_components does and check that every value arrived
    model, info = AutoModel.from_pretrained(output_dir, output_loading_info=True, dtype=torch.float32)
    problems = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    loaded = sum(p.numel() for p in model.parameters())
    expected = sum(v.numel() for v in backbone.values())
    checksum = sum(float(p.detach().double().sum()) for p in model.parameters())
    expected_checksum = sum(float(v.double().sum()) for v in backbone.values())
    if problems or loaded != expected or not math.isclose(checksum, expected_checksum, rel_tol=1e-9, abs_tol=1e-6):
        raise FaceXFormerConversionError(
            f"{output_dir}: the converted backbone does not load intact on this transformers version ({problems}, "
            f"{loaded} of {expected} parameters, checksum {checksum} vs {expected_checksum})"
        )
    record = {
        "source": str(checkpoint.resolve()),
        "source_sha256": _sha256(checkpoint),
        "backbone_parameters": expected,
        "multiscale_fusion_parameters": sum(v.numel() for v in fusion.values()),
        "multiscale_fusion_file": FACE_FUSION_WEIGHTS,
        **report,
    }
    (output_dir / CONVERSION_RECORD).write_text(json.dumps(record, indent=2), encoding="utf-8")
    return record


def main(argv=None) -> int:
    """``mmaffect convert facexformer CKPT OUT [--image-size 224] [--overwrite]``."""
    parser = argparse.ArgumentParser(prog="mmaffect convert", description="convert a public checkpoint into mmaffect's layout")
    sub = parser.add_subparsers(dest="what", required=True)
    face = sub.add_parser("facexformer", help="FaceXFormer checkpoint -> Nano-EmoX face branch (from_pretrained_components(face=OUT))")
    face.add_argument("checkpoint", help="FaceXFormer checkpoint (ckpts/model.pt of the public release)")
    face.add_argument("output_dir", help="folder to write (a Swin backbone + the multi-scale fusion)")
    face.add_argument("--image-size", type=int, default=224, help="face crop size (FaceXFormer: 224)")
    face.add_argument("--overwrite", action="store_true", help="write into a non-empty folder")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        record = convert_facexformer(args.checkpoint, args.output_dir, image_size=args.image_size, overwrite=args.overwrite)
    except (FileNotFoundError, FileExistsError, FaceXFormerConversionError) as error:
        print(f"mmaffect convert facexformer: {error}", file=sys.stderr)
        return 1
    swin = record["swin"]
    print(f"wrote {args.output_dir}: Swin (embed {swin['embed_dim']}, depths {swin['depths']}, heads {swin['num_heads']}, "
          f"window {swin['window_size']}) {record['backbone_parameters']:,} parameters + multi-scale fusion "
          f"{record['multiscale_fusion_parameters']:,}; ignored {record['ignored_keys']} keys ({', '.join(record['ignored_prefixes'])})")  # fmt: skip
    return 0


__all__ = ["FaceXFormerConversionError", "convert_facexformer", "facexformer_to_nano_emox", "nano_emox_to_facexformer", "read_facexformer_checkpoint"]

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
