"""`mmaffect convert facexformer`: a synthetic checkpoint with exactly the keys and shapes of the public FaceXFormer
checkpoint (``{"state_dict_backbone": FaceXFormer().state_dict()}``: torchvision Swin-B as ``backbone.0`` /
``backbone.1``, ``linear_c`` / ``linear_fuse`` multi-scale fusion, the task decoder) converts into the face branch,
loads through ``from_pretrained_components(face=...)`` tensor for tensor, and converts back unchanged."""

import json

import pytest
import torch

from mmaffect import cli
from mmaffect.models.nano_emox import NanoEmoXConfig, NanoEmoXForConditionalGeneration
from mmaffect.tools.convert_facexformer import (
    FaceXFormerConversionError,
    facexformer_to_nano_emox,
    nano_emox_to_facexformer,
    read_facexformer_checkpoint,
)
from mmaffect.models.nano_emox.modeling_nano_emox import FACE_FUSION_WEIGHTS

SWIN_B = dict(embed_dim=128, depths=(2, 2, 18, 2), heads=(4, 8, 16, 32), window=7, fusion=256)
TINY = dict(embed_dim=8, depths=(1, 1, 1, 1), heads=(1, 1, 2, 2), window=2, fusion=8)  # NanoEmoXConfig.tiny()'s face


def facexformer_state_dict(embed_dim, depths, heads, window, fusion, patch=4, device="cpu", seed=0):
    """FaceXFormer().state_dict() layout (facexformer.py + torchvision swin_transformer.py), random values."""
    generator = torch.Generator().manual_seed(seed) if device != "meta" else None

    def t(*shape):
        return torch.empty(shape, device="meta") if device == "meta" else torch.randn(shape, generator=generator)

    state = {"backbone.0.0.0.weight": t(embed_dim, 3, patch, patch), "backbone.0.0.0.bias": t(embed_dim),
             "backbone.0.0.2.weight": t(embed_dim), "backbone.0.0.2.bias": t(embed_dim)}  # fmt: skip
    for stage, (depth, num_heads) in enumerate(zip(depths, heads)):
        dim, index = embed_dim * 2**stage, 2 * stage + 1
        for block in range(depth):
            p = f"backbone.0.{index}.{block}."
            state.update({
                p + "norm1.weight": t(dim), p + "norm1.bias": t(dim),
                p + "attn.qkv.weight": t(3 * dim, dim), p + "attn.qkv.bias": t(3 * dim),
                p + "attn.proj.weight": t(dim, dim), p + "attn.proj.bias": t(dim),
                p + "attn.relative_position_bias_table": t((2 * window - 1) ** 2, num_heads),
                p + "attn.relative_position_index": torch.zeros(window**4, dtype=torch.long, device=device),
                p + "norm2.weight": t(dim), p + "norm2.bias": t(dim),
                p + "mlp.0.weight": t(4 * dim, dim), p + "mlp.0.bias": t(4 * dim),
                p + "mlp.3.weight": t(dim, 4 * dim), p + "mlp.3.bias": t(dim),
            })  # fmt: skip
        if stage < len(depths) - 1:
            state.update({f"backbone.0.{index + 1}.reduction.weight": t(2 * dim, 4 * dim),
                          f"backbone.0.{index + 1}.norm.weight": t(4 * dim), f"backbone.0.{index + 1}.norm.bias": t(4 * dim)})  # fmt: skip
    last = embed_dim * 2 ** (len(depths) - 1)
    state.update({"backbone.1.weight": t(last), "backbone.1.bias": t(last)})
    for i in range(len(depths)):
        state.update({f"linear_c.{i}.proj.weight": t(fusion, embed_dim * 2**i), f"linear_c.{i}.proj.bias": t(fusion)})
    state["linear_fuse.weight"] = t(fusion, fusion * len(depths), 1, 1)
    # the task decoder and its positional encoding (unused by Nano-EmoX)
    state.update({"pe_layer.positional_encoding_gaussian_matrix": t(2, fusion // 2), "face_decoder.landmarks_token.weight": t(1, fusion),
                  "face_decoder.mask_tokens.weight": t(11, fusion), "face_decoder.transformer.layers.0.self_attn.q_proj.weight": t(fusion, fusion),
                  "face_decoder.output_upscaling.0.weight": t(fusion, fusion // 4, 2, 2), "face_decoder.race_prediction_head.layers.2.weight": t(5, fusion)})  # fmt: skip
    return state


def test_full_size_swin_b_layout_maps_onto_the_paper_face_branch():
    """The real checkpoint's key set and shapes (on the meta device): Swin-B sizes come out of the shapes and the
    parameter counts are those of the full-size face branch (86,743,224 backbone + 754,688 fusion)."""
    state = facexformer_state_dict(**SWIN_B, device="meta")
    swin, backbone, fusion, report = facexformer_to_nano_emox(state)
    assert (swin["embed_dim"], swin["depths"], swin["num_heads"], swin["window_size"], swin["patch_size"]) == (128, [2, 2, 18, 2], [4, 8, 16, 32], 7, 4)
    assert swin["mlp_ratio"] == 4.0 and swin["image_size"] == 224
    assert sum(v.numel() for v in backbone.values()) == 86_743_224
    assert sum(v.numel() for v in fusion.values()) == 754_688
    assert report["ignored_prefixes"] == ["face_decoder", "pe_layer", "relative_position_index"]


def test_convert_cli_round_trip_and_load_through_from_pretrained_components(tmp_path):
    state = facexformer_state_dict(**TINY, patch=2)
    checkpoint = tmp_path / "model.pt"
    torch.save({"state_dict_backbone": state}, checkpoint)
    out = tmp_path / "face"
    assert cli.main(["convert", "facexformer", str(checkpoint), str(out), "--image-size", "32"]) == 0
    assert (out / FACE_FUSION_WEIGHTS).is_file() and (out / "model.safetensors").is_file()
    record = json.loads((out / "facexformer_conversion.json").read_text())
    assert record["source_sha256"] and record["swin"]["depths"] == [1, 1, 1, 1]

    # back to FaceXFormer's layout: every mapped tensor unchanged (qkv re-assembled from query / key / value)
    _, backbone, fusion, _ = facexformer_to_nano_emox(read_facexformer_checkpoint(checkpoint))
    back = nano_emox_to_facexformer(backbone, fusion)
    mapped = {k: v for k, v in state.items() if not k.startswith(("face_decoder.", "pe_layer.")) and not k.endswith("relative_position_index")}
    assert back.keys() == mapped.keys() and all(torch.equal(back[k], mapped[k]) for k in mapped)

    # into the model: the fusion is FaceXFormer's and marked pretrained; the backbone holds the checkpoint's tensors
    model = NanoEmoXForConditionalGeneration.from_pretrained_components(face=str(out), config=NanoEmoXConfig.tiny())
    face = model.face_encoder
    assert model.config.face_config.multiscale_fusion_pretrained is True
    assert torch.equal(face.fuse.weight, state["linear_fuse.weight"])
    for i in range(4):
        assert torch.equal(face.stage_projections[i].weight, state[f"linear_c.{i}.proj.weight"])
    loaded = face.backbone.state_dict()
    q = next(v for k, v in loaded.items() if k.startswith("encoder.layers.2.blocks.0.attention") and k.endswith(("q_proj.weight", "query.weight")))
    k_ = next(v for k, v in loaded.items() if k.startswith("encoder.layers.2.blocks.0.attention") and k.endswith(("k_proj.weight", "key.weight")))
    qkv = state["backbone.0.5.0.attn.qkv.weight"]
    assert torch.equal(q, qkv[: qkv.shape[1]]) and torch.equal(k_, qkv[qkv.shape[1] : 2 * qkv.shape[1]])
    assert torch.equal(next(v for k, v in loaded.items() if k.endswith("downsample.reduction.weight") and ".layers.1." in k), state["backbone.0.4.reduction.weight"])
    assert torch.equal(loaded["embeddings.patch_embeddings.projection.weight"], state["backbone.0.0.0.weight"])
    # a face crop goes through the converted branch
    with torch.no_grad():
        assert face(torch.randn(2, 3, 32, 32)).shape == (2, 8)


def test_plain_swin_checkpoint_leaves_the_fusion_random_and_not_pretrained(tmp_path):
    from transformers import SwinConfig, SwinModel

    swin = NanoEmoXConfig.tiny().face_config.backbone_config.to_dict()
    SwinModel(SwinConfig(**{k: v for k, v in swin.items() if k in SwinConfig().to_dict()})).save_pretrained(tmp_path / "swin")
    model = NanoEmoXForConditionalGeneration.from_pretrained_components(face=str(tmp_path / "swin"), config=NanoEmoXConfig.tiny())
    assert model.config.face_config.multiscale_fusion_pretrained is False


def test_bad_checkpoints_are_named(tmp_path):
    state = facexformer_state_dict(**TINY, patch=2)
    with pytest.raises(FaceXFormerConversionError, match="not in FaceXFormer's layout"):
        facexformer_to_nano_emox({**state, "classifier.weight": torch.zeros(2)})
    with pytest.raises(FaceXFormerConversionError, match="linear_fuse.weight"):
        facexformer_to_nano_emox({k: v for k, v in state.items() if k != "linear_fuse.weight"})
    bad = tmp_path / "bad.pt"
    torch.save({"state_dict_backbone": state}, bad)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("x")
    assert cli.main(["convert", "facexformer", str(bad), str(tmp_path / "out")]) == 1  # not empty
    assert cli.main(["convert", "facexformer", str(tmp_path / "missing.pt"), str(tmp_path / "o2")]) == 1
