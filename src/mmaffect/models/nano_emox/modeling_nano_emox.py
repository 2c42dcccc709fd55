"""Nano-EmoX: a compact multimodal LM for affective tasks (Sec. 3.1 and supplement C of the paper).

Four branches write tokens into the language model's input sequence at their placeholder positions::

    frames --CLIP ViT-L/14--> visual Q-Former (32 queries) --video_projector-->  <video> x 32
    waveform --HuBERT-Large--> speech Q-Former (32 queries) --audio_projector--> <audio> x 32
    face crops --Swin-B + multi-scale MLP fusion--> temporal queries --face_projector--> <face> x 4
    HuBERT layers 16/18/22 x CLIP layers 12/16/22 --3 gated experts--> --fusion_projector--> <fusion> x 1
    chat prompt + branch tokens --Qwen2.5-1.5B--> text (``<think>...</think>`` reasoning for [Interaction])

Submodule names are the handles of the P2E phases: ``vision_tower``, ``audio_tower``, ``face_encoder`` (frozen
encoders), ``visual_qformer``, ``speech_qformer``, ``face_temporal``, ``no_face_embedding``, ``fusion``,
``video_projector`` / ``audio_projector`` / ``face_projector`` / ``fusion_projector`` (adapters) and
``language_model`` (LoRA target). Any subset of modalities may be absent: a branch runs only when a prompt holds
its placeholder (the fusion branch also needs the sample's video and audio).
"""

import copy
from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import CausalLMOutputWithPast

from .configuration_nano_emox import (IGNORE_INDEX, PLACEHOLDER_TOKENS, NanoEmoXConfig, processor_config_mismatches,
                                      read_json_next_to)

# Per modality: (media tensor, per-item tensors that travel with it, sample-index tensor). Expanding a batch for
# beams / return sequences repeats each item with its row and renumbers the sample indices.
MEDIA_GROUPS = {
    "video": ("pixel_values_videos", (), "video_sample_index"),
    "audio": ("input_values", ("audio_attention_mask",), "audio_sample_index"),
    "face": ("face_pixel_values", ("face_frame_mask",), "face_sample_index"),
}
# Media inputs: consumed by the prefill step of generate() only.
MEDIA_INPUT_NAMES = tuple(key for values, items, index in MEDIA_GROUPS.values() for key in (values, *items, index))
# The installed release's name for the KV cache: transformers 5.24 renamed `past_key_values` to `cache` in
# every forward, output and `prepare_inputs_for_generation`; older 5.x releases use `past_key_values`.
CACHE_NAME = "cache" if "cache" in CausalLMOutputWithPast.__dataclass_fields__ else "past_key_values"
# Written by the FaceXFormer converter (`convert facexformer`) next to the Swin backbone: FaceXFormer's multi-scale fusion.
FACE_FUSION_WEIGHTS = "face_multiscale_fusion.safetensors"


class PlaceholderWithoutMediaError(ValueError):
    """A placeholder token in ``input_ids`` with no media for its branch; ``sample_rows`` are the batch rows that
    hold it (callers such as the evaluation harness record those samples and go on)."""

    def __init__(self, sample_rows: list[int], token: str, modality: str):
        self.sample_rows = list(sample_rows)
        super().__init__(f"sample(s) {self.sample_rows} of the batch contain {token} but no {modality} input was given")


@dataclass
class NanoEmoXCausalLMOutputWithPast(CausalLMOutputWithPast):
    """Output of [`NanoEmoXForConditionalGeneration`]: transformers' `CausalLMOutputWithPast` plus the gates.

    Args:
        loss (`torch.FloatTensor` of shape `()`): next-token loss over the non-ignored labels (answer tokens).
        logits (`torch.FloatTensor` of shape `(batch, seq_len, vocab)`).
        cache / past_key_values: the language model's cache, under the installed release's name (``CACHE_NAME``).
        hidden_states, attentions: the language model's, when requested.
        fusion_gate_weights (`torch.FloatTensor` of shape `(num_fused_samples, num_experts)`): the gating
            network's expert weights G_i (Eq. 2) for the samples that used ``<fusion>``.
    """

    fusion_gate_weights: torch.FloatTensor | None = None


# ----------------------------------------------------------------------------------------------------
# Small building blocks
# ----------------------------------------------------------------------------------------------------
class NanoEmoXLearnedTokens(nn.Module):
    """A learned ``(num_tokens, dim)`` tensor held by a module (so PEFT / FSDP / freezing see a module)."""

    def __init__(self, num_tokens: int, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(num_tokens, dim))

    def forward(self, batch_size: int) -> torch.Tensor:
        """Returns `(batch_size, num_tokens, dim)`."""
        return self.weight.unsqueeze(0).expand(batch_size, -1, -1)


class NanoEmoXAttention(nn.Module):
    """Multi-head attention with ``F.scaled_dot_product_attention``; queries and keys may have different widths."""

    def __init__(self, hidden_size: int, num_heads: int, key_value_size: int | None = None, dropout: float = 0.0):
        super().__init__()
        if hidden_size % num_heads:
            raise ValueError(f"hidden_size {hidden_size} is not divisible by num_heads {num_heads}")
        key_value_size = key_value_size or hidden_size
        self.num_heads = num_heads
        self.head_dim = hidden_size // num_heads
        self.dropout = dropout
        self.q_proj = nn.Linear(hidden_size, hidden_size)
        self.k_proj = nn.Linear(key_value_size, hidden_size)
        self.v_proj = nn.Linear(key_value_size, hidden_size)
        self.o_proj = nn.Linear(hidden_size, hidden_size)

    def forward(self, query: torch.Tensor, key_value: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        """query `(B, Lq, hidden)`, key_value `(B, Lk, key_value_size)`, key_mask `(B, Lk)` bool (True = attend)
        -> `(B, Lq, hidden)`. Every row of ``key_mask`` must keep at least one key."""
        batch, q_len, _ = query.shape
        k_len = key_value.shape[1]
        q = self.q_proj(query).view(batch, q_len, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(key_value).view(batch, k_len, self.num_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(key_value).view(batch, k_len, self.num_heads, self.head_dim).transpose(1, 2)
        mask = key_mask[:, None, None, :].bool() if key_mask is not None else None
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0)
        return self.o_proj(out.transpose(1, 2).reshape(batch, q_len, -1))


class NanoEmoXMLP(nn.Module):
    def __init__(self, hidden_size: int, intermediate_size: int, act: str = "gelu", dropout: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(hidden_size, intermediate_size)
        self.act = ACT2FN[act]
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(intermediate_size, hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.dropout(self.act(self.fc1(x))))


class NanoEmoXProjector(nn.Module):
    """Adapter into the language model: one ``Linear`` (``hidden_features=None``), or
    ``Linear -> act -> Dropout -> Linear`` through ``hidden_features``. `(..., in)` -> `(..., out)`."""

    def __init__(self, in_features: int, out_features: int, hidden_features: int | None = None, act: str = "gelu",
                 dropout: float = 0.0):  # fmt: skip
        super().__init__()
        self.linear_1 = nn.Linear(in_features, hidden_features or out_features)
        if hidden_features is None:
            self.act = self.dropout = self.linear_2 = None
        else:
            self.act = ACT2FN[act]
            self.dropout = nn.Dropout(dropout)
            self.linear_2 = nn.Linear(hidden_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.linear_1(x)
        if self.linear_2 is None:
            return x
        return self.linear_2(self.dropout(self.act(x)))


def build_adapters(config, qformer_hidden: int, face_width: int, fusion_hidden: int, text_hidden: int) -> dict[str, nn.Module]:
    """The four adapters into the LM (``config.adapter_style``).

    ``"heterogeneous"`` (default; the paper's "heterogeneous adapters" as the public code builds them): video, audio
    and fusion get one Linear each, the face a 2-layer MLP ``face_width -> face_adapter_hidden_size -> LM`` with
    GELU and dropout (the paper's "two-layer fully connected network with GeLU", Sec. 3.1). ``"uniform_mlp"``: every
    adapter is ``Linear(in, LM) -> GELU -> Linear(LM, LM)``."""
    act = config.projector_hidden_act
    if config.adapter_style == "uniform_mlp":
        return {
            name: NanoEmoXProjector(width, text_hidden, text_hidden, act)
            for name, width in (("video", qformer_hidden), ("audio", qformer_hidden), ("face", face_width), ("fusion", fusion_hidden))
        }
    return {
        "video": NanoEmoXProjector(qformer_hidden, text_hidden),
        "audio": NanoEmoXProjector(qformer_hidden, text_hidden),
        "face": NanoEmoXProjector(face_width, text_hidden, config.face_adapter_hidden_size, act, config.face_adapter_dropout),
        "fusion": NanoEmoXProjector(fusion_hidden, text_hidden),
    }


def masked_mean(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean over dim 1 of `(B, L, D)` keeping positions where `mask` `(B, L)` is True -> `(B, D)`."""
    if mask is None:
        return x.mean(dim=1)
    weights = mask.to(x.dtype).unsqueeze(-1)
    return (x * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


def segment_pool(x: torch.Tensor, mask: torch.Tensor | None, num_segments: int) -> torch.Tensor:
    """Split the valid positions of each row into ``num_segments`` contiguous equal segments and average each:
    `(B, L, D)` -> `(B, num_segments, D)` (``num_segments=1`` is a masked mean)."""
    batch, length, _ = x.shape
    if mask is None:
        mask = torch.ones(batch, length, dtype=torch.bool, device=x.device)
    lengths = mask.sum(dim=1, keepdim=True).clamp(min=1)  # (B, 1)
    positions = torch.arange(length, device=x.device).unsqueeze(0)  # (1, L)
    segment = torch.div(positions * num_segments, lengths, rounding_mode="floor")  # (B, L)
    weights = (segment.unsqueeze(1) == torch.arange(num_segments, device=x.device)[None, :, None]) & mask.unsqueeze(1)
    weights = weights.to(x.dtype)
    return weights @ x / weights.sum(dim=-1, keepdim=True).clamp(min=1.0)


# ----------------------------------------------------------------------------------------------------
# Q-Former (visual and speech resamplers)
# ----------------------------------------------------------------------------------------------------
class NanoEmoXQFormerLayer(GradientCheckpointingLayer):
    """Pre-norm block: query self-attention, cross-attention into the encoder features, MLP."""

    def __init__(self, config, encoder_hidden_size: int):
        super().__init__()
        hidden = config.hidden_size
        self.self_attn_norm = nn.LayerNorm(hidden, eps=config.layer_norm_eps)
        self.self_attn = NanoEmoXAttention(hidden, config.num_attention_heads, dropout=config.attention_dropout)
        self.cross_attn_norm = nn.LayerNorm(hidden, eps=config.layer_norm_eps)
        self.cross_attn = NanoEmoXAttention(
            hidden, config.num_attention_heads, key_value_size=encoder_hidden_size, dropout=config.attention_dropout
        )
        self.mlp_norm = nn.LayerNorm(hidden, eps=config.layer_norm_eps)
        self.mlp = NanoEmoXMLP(hidden, config.intermediate_size, config.hidden_act, config.dropout)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, hidden_states, encoder_hidden_states, encoder_mask=None):
        normed = self.self_attn_norm(hidden_states)
        hidden_states = hidden_states + self.dropout(self.self_attn(normed, normed))
        hidden_states = hidden_states + self.dropout(
            self.cross_attn(self.cross_attn_norm(hidden_states), encoder_hidden_states, encoder_mask)
        )
        return hidden_states + self.dropout(self.mlp(self.mlp_norm(hidden_states)))


class NanoEmoXQFormer(nn.Module):
    """Learned queries that resample a variable-length encoder sequence into ``num_queries`` tokens.

    ``max_positions > 0`` adds a learned index embedding to the encoder features (frame index for video: CLIP
    encodes each frame alone, so frame order is otherwise lost)."""

    def __init__(self, config, encoder_hidden_size: int, num_queries: int, max_positions: int = 0):
        super().__init__()
        self.query_tokens = NanoEmoXLearnedTokens(num_queries, config.hidden_size)
        self.position_embedding = nn.Embedding(max_positions, encoder_hidden_size) if max_positions else None
        self.encoder_norm = nn.LayerNorm(encoder_hidden_size, eps=config.layer_norm_eps)
        self.layers = nn.ModuleList(
            [NanoEmoXQFormerLayer(config, encoder_hidden_size) for _ in range(config.num_hidden_layers)]
        )
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, encoder_hidden_states, encoder_mask=None, position_ids=None) -> torch.Tensor:
        """encoder_hidden_states `(B, L, encoder_hidden_size)`, encoder_mask `(B, L)` bool, position_ids `(B, L)`
        -> `(B, num_queries, hidden_size)`."""
        encoder_hidden_states = self.encoder_norm(encoder_hidden_states)
        if self.position_embedding is not None and position_ids is not None:
            if int(position_ids.max()) >= self.position_embedding.num_embeddings:
                raise ValueError(
                    f"{int(position_ids.max()) + 1} frames per clip exceed max_frames="
                    f"{self.position_embedding.num_embeddings} of the config"
                )
            encoder_hidden_states = encoder_hidden_states + self.position_embedding(position_ids)
        hidden_states = self.query_tokens(encoder_hidden_states.shape[0])
        for layer in self.layers:
            hidden_states = layer(hidden_states, encoder_hidden_states, encoder_mask)
        return self.norm(hidden_states)


# ----------------------------------------------------------------------------------------------------
# Face branch
# ----------------------------------------------------------------------------------------------------
class NanoEmoXFaceEncoder(nn.Module):
    """FaceXFormer-style frame encoder (supplement C.1): the backbone's four stage maps are each projected to
    ``fusion_hidden_size`` channels, resized to the first stage's resolution, concatenated (deepest first) and
    fused by a 1x1 convolution, then average-pooled: `(n, 3, S, S)` -> `(n, fusion_hidden_size)` (E_f).

    ``stage_projections`` / ``fuse`` are FaceXFormer's ``linear_c`` / ``linear_fuse`` (the FaceXFormer converter maps
    them); the backbone runs without autograd whenever it is frozen, even if the fusion trains."""

    def __init__(self, face_config, backbone: nn.Module | None = None):
        super().__init__()
        backbone_config = face_config.backbone_config
        self.backbone = backbone if backbone is not None else AutoModel.from_config(backbone_config)
        stage_channels = [int(backbone_config.embed_dim * 2**i) for i in range(len(backbone_config.depths))]
        width = face_config.fusion_hidden_size
        self.stage_projections = nn.ModuleList([nn.Linear(channels, width) for channels in stage_channels])
        self.fuse = nn.Conv2d(width * len(stage_channels), width, kernel_size=1, bias=False)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        with _tower_grad_context(self.backbone):
            outputs = self.backbone(
                pixel_values=pixel_values.to(self.backbone.dtype),
                output_hidden_states=True,
                output_hidden_states_before_downsampling=True,
            )
        stage_maps = outputs.reshaped_hidden_states[1:]  # drop the patch-embedding map; one (n, C_i, H_i, W_i) per stage
        if len(stage_maps) != len(self.stage_projections):
            raise RuntimeError(f"face backbone returned {len(stage_maps)} stage maps, expected {len(self.stage_projections)}")
        target_size = stage_maps[0].shape[-2:]
        fused = []
        dtype = self.fuse.weight.dtype
        for stage_map, projection in zip(stage_maps, self.stage_projections):
            projected = projection(stage_map.to(dtype).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
            fused.append(F.interpolate(projected, size=target_size, mode="bilinear", align_corners=False))
        fused_map = self.fuse(torch.cat(fused[::-1], dim=1))
        return fused_map.mean(dim=(2, 3))

    def multiscale_fusion_state_dict(self) -> dict[str, torch.Tensor]:
        """``stage_projections.*`` and ``fuse.weight``: the part FaceXFormer trained above its backbone."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("backbone.")}

    def load_multiscale_fusion(self, state: dict[str, torch.Tensor], source: str = "the checkpoint") -> None:
        """Load ``multiscale_fusion_state_dict()``-style weights; every key and shape must match."""
        expected = self.multiscale_fusion_state_dict()
        missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
        wrong = [f"{k}: {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items() if k in state and state[k].shape != v.shape]
        if missing or unexpected or wrong:
            raise ValueError(
                f"face multi-scale fusion weights of {source} do not fit the face encoder: missing {missing}, "
                f"unexpected {unexpected}, shape mismatches (file vs model) {wrong}"
            )
        with torch.no_grad():
            for name, parameter in self.named_parameters():
                if name in state:
                    parameter.copy_(state[name].to(parameter.dtype))


class NanoEmoXFaceTemporal(nn.Module):
    """Temporal modelling (Eq. 1): learnable queries cross-attend over the per-frame face vectors.

    `(N, T, C)` frame features + `(N, T)` bool mask (frames with a face) -> `(N, num_temporal_queries, C)`."""

    def __init__(self, face_config, max_frames: int):
        super().__init__()
        width = face_config.fusion_hidden_size
        self.queries = NanoEmoXLearnedTokens(face_config.num_temporal_queries, width)
        self.frame_position_embedding = (
            nn.Embedding(max_frames, width) if face_config.use_temporal_position_embeddings else None
        )
        self.attention = NanoEmoXAttention(width, face_config.num_temporal_heads, dropout=face_config.dropout)
        self.norm = nn.LayerNorm(width)

    def forward(self, frame_features: torch.Tensor, frame_mask: torch.Tensor) -> torch.Tensor:
        num_clips, num_frames, _ = frame_features.shape
        if self.frame_position_embedding is not None:
            if num_frames > self.frame_position_embedding.num_embeddings:
                raise ValueError(f"{num_frames} face frames per clip exceed max_frames={self.frame_position_embedding.num_embeddings}")
            positions = torch.arange(num_frames, device=frame_features.device)
            frame_features = frame_features + self.frame_position_embedding(positions)[None]
        return self.norm(self.attention(self.queries(num_clips), frame_features, frame_mask))


# ----------------------------------------------------------------------------------------------------
# Fusion branch
# ----------------------------------------------------------------------------------------------------
class NanoEmoXFusionExpert(nn.Module):
    """One fusion expert (supplement C.2): speech queries attend over visual keys/values.

    ``E_m = CrossAttn(E_s, E_v, E_v) + E_s``; ``E_mf = FFN(E_m) + E_m`` (pre-norm inside both residuals)."""

    def __init__(self, fusion_encoder_config, audio_hidden_size: int, vision_hidden_size: int):
        super().__init__()
        hidden = fusion_encoder_config.hidden_size
        self.speech_proj = nn.Linear(audio_hidden_size, hidden)
        self.speech_norm = nn.LayerNorm(hidden)
        self.visual_proj = nn.Linear(vision_hidden_size, hidden)
        self.visual_norm = nn.LayerNorm(hidden)
        self.cross_attn = NanoEmoXAttention(hidden, fusion_encoder_config.num_attention_heads, dropout=fusion_encoder_config.dropout)
        self.ffn_norm = nn.LayerNorm(hidden)
        self.ffn = NanoEmoXMLP(hidden, fusion_encoder_config.intermediate_size, "gelu", fusion_encoder_config.dropout)

    def forward(self, speech: torch.Tensor, visual: torch.Tensor) -> torch.Tensor:
        """speech `(N, F, Da)`, visual `(N, S, Dv)` -> `(N, F, hidden)`."""
        speech = self.speech_norm(self.speech_proj(speech))
        fused = self.cross_attn(speech, self.visual_norm(self.visual_proj(visual))) + speech
        return self.ffn(self.ffn_norm(fused)) + fused


class NanoEmoXFusionEncoder(nn.Module):
    """Hierarchical expert fusion (Fig. 3, Eqs. 2-3): experts paired low-to-high over encoder layers, a 2-layer
    GELU gating network over the concatenated time-pooled expert outputs, softmax weights, weighted sum, and
    pooling of the fused speech-rate sequence into ``num_fusion_tokens`` tokens."""

    def __init__(self, fusion_encoder_config, audio_hidden_size: int, vision_hidden_size: int):
        super().__init__()
        num_experts = len(fusion_encoder_config.audio_layers)
        self.num_fusion_tokens = fusion_encoder_config.num_fusion_tokens
        self.experts = nn.ModuleList(
            [NanoEmoXFusionExpert(fusion_encoder_config, audio_hidden_size, vision_hidden_size) for _ in range(num_experts)]
        )
        self.gate = nn.Sequential(
            nn.Linear(fusion_encoder_config.hidden_size * num_experts, fusion_encoder_config.gate_hidden_size),
            nn.GELU(),
            nn.Dropout(fusion_encoder_config.dropout),
            nn.Linear(fusion_encoder_config.gate_hidden_size, num_experts),
        )

    def forward(self, speech_layers, speech_mask, visual_layers) -> tuple[torch.Tensor, torch.Tensor]:
        """speech_layers: one `(N, F, Da)` per expert; speech_mask `(N, F)` bool; visual_layers: one `(N, S, Dv)`
        per expert -> (fusion tokens `(N, num_fusion_tokens, hidden)`, gate weights `(N, num_experts)`)."""
        expert_outputs = [expert(s, v) for expert, s, v in zip(self.experts, speech_layers, visual_layers)]
        pooled = torch.cat([masked_mean(out, speech_mask) for out in expert_outputs], dim=-1)
        gate_weights = self.gate(pooled).softmax(dim=-1)  # G_1..G_n
        fused = sum(gate_weights[:, i, None, None] * out for i, out in enumerate(expert_outputs))
        return segment_pool(fused, speech_mask, self.num_fusion_tokens), gate_weights


# ----------------------------------------------------------------------------------------------------
# The model
# ----------------------------------------------------------------------------------------------------
class NanoEmoXPreTrainedModel(PreTrainedModel):
    config_class = NanoEmoXConfig
    base_model_prefix = ""
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flash_attn = True
    _no_split_modules = ["NanoEmoXQFormerLayer", "NanoEmoXFusionExpert"]
    _skip_keys_device_placement = [CACHE_NAME]

    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, NanoEmoXLearnedTokens):
            init.normal_(module.weight, mean=0.0, std=self.config.initializer_range)


def _tower_grad_context(module: nn.Module):
    """No autograd graph through a fully frozen encoder (saves its activations)."""
    return nullcontext() if any(p.requires_grad for p in module.parameters()) else torch.no_grad()


class NanoEmoXForConditionalGeneration(NanoEmoXPreTrainedModel, GenerationMixin):
    r"""Nano-EmoX for generation: four modality branches + a causal language model.

    Build from a config (random weights), from a saved folder (``from_pretrained``), or from separately
    pretrained parts (``from_pretrained_components``). Encoders are frozen by default (``config.freeze_encoders``)
    and stay in eval mode while frozen; the LM base weights are frozen too (``config.freeze_language_model``; LoRA
    via ``config.get_lora_kwargs()``).

    Inputs (as produced by ``NanoEmoXProcessor``):
        input_ids `(B, L)`: prompts with each placeholder expanded to its token count.
        pixel_values_videos `(Nv, T, 3, H, W)` + video_sample_index `(Nv,)`: CLIP-normalised frames and the batch
            row each video belongs to.
        input_values `(Na, S)` + audio_attention_mask `(Na, S)` + audio_sample_index `(Na,)`: 16 kHz waveforms.
        face_pixel_values `(Nf, T, 3, S, S)` + face_frame_mask `(Nf, T)` + face_sample_index `(Nf,)`: face crops
            and which frames hold a face; a clip without any face gets the learned ``no_face_embedding``.
        labels `(B, L)`: ``-100`` everywhere but the answer tokens (placeholder positions are always ignored).
    """

    def __init__(
        self,
        config: NanoEmoXConfig,
        vision_tower: nn.Module | None = None,
        audio_tower: nn.Module | None = None,
        face_backbone: nn.Module | None = None,
        language_model: nn.Module | None = None,
    ):
        super().__init__(config)
        text_hidden = config.text_config.hidden_size
        vision_hidden = config.vision_config.hidden_size
        audio_hidden = config.audio_config.hidden_size
        qformer_hidden = config.qformer_config.hidden_size
        face_width = config.face_config.fusion_hidden_size

        # Pretrained encoders (frozen by default).
        self.vision_tower = vision_tower if vision_tower is not None else AutoModel.from_config(config.vision_config)
        self.audio_tower = audio_tower if audio_tower is not None else AutoModel.from_config(config.audio_config)
        self.face_encoder = NanoEmoXFaceEncoder(config.face_config, backbone=face_backbone)
        # Trainable resamplers, fusion and adapters.
        self.visual_qformer = NanoEmoXQFormer(
            config.qformer_config, vision_hidden, config.num_video_tokens, max_positions=config.max_frames
        )
        self.speech_qformer = NanoEmoXQFormer(config.qformer_config, audio_hidden, config.num_audio_tokens)
        self.face_temporal = NanoEmoXFaceTemporal(config.face_config, config.max_frames)
        self.no_face_embedding = NanoEmoXLearnedTokens(config.num_face_tokens, face_width)
        self.fusion = NanoEmoXFusionEncoder(config.fusion_encoder_config, audio_hidden, vision_hidden)
        adapters = build_adapters(config, qformer_hidden, face_width, config.fusion_encoder_config.hidden_size, text_hidden)
        self.video_projector = adapters["video"]
        self.audio_projector = adapters["audio"]
        self.face_projector = adapters["face"]
        self.fusion_projector = adapters["fusion"]
        # Language model (LoRA target).
        self.language_model = (
            language_model if language_model is not None else AutoModelForCausalLM.from_config(config.text_config)
        )
        # One config object per part, so resizing / attention settings on a part show up in the saved config.
        config.vision_config = self.vision_tower.config
        config.audio_config = self.audio_tower.config
        config.face_config.backbone_config = self.face_encoder.backbone.config
        config.text_config = self.language_model.config
        self.post_init()
        if config.freeze_encoders:
            for module in (self.vision_tower, self.audio_tower, self.face_encoder):
                module.requires_grad_(False)
        if config.freeze_language_model:
            self.language_model.requires_grad_(False)
        self._keep_frozen_encoders_in_eval()
        self.suppress_placeholder_tokens()

    # ------------------------------------------------------------------ plumbing
    def get_input_embeddings(self):
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value):
        self.language_model.set_input_embeddings(value)

    def get_output_embeddings(self):
        return self.language_model.get_output_embeddings()

    def set_output_embeddings(self, value):
        self.language_model.set_output_embeddings(value)

    def get_decoder(self):
        return self.language_model.get_decoder()

    def enable_input_require_grads(self):
        """Make the LM's token embeddings output require grad (checkpointing / adapters with a frozen LM). Only the
        LM: frozen encoders run without autograd, and Swin's patch embedding returns a tuple the base hook breaks on."""

        def make_output_require_grad(module, inputs, output):
            output.requires_grad_(True)

        self._require_grads_hooks = [self.get_input_embeddings().register_forward_hook(make_output_require_grad)]
        self._require_grads_hook = self._require_grads_hooks[0]

    def train(self, mode: bool = True):
        super().train(mode)
        self._keep_frozen_encoders_in_eval()
        return self

    def _keep_frozen_encoders_in_eval(self) -> None:
        # Dropout / layer drop / stochastic depth must not act on a frozen feature extractor (the face backbone
        # counts on its own: the multi-scale fusion above it may train).
        for module in (self.vision_tower, self.audio_tower, self.face_encoder, self.face_encoder.backbone):
            if not any(p.requires_grad for p in module.parameters()):
                module.eval()

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """``PreTrainedModel.from_pretrained``, then a check against the folder's ``processor_config.json`` when it
        has one: a processor saved for another model size fails at load, not at the first forward."""
        loaded = super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        model = loaded[0] if isinstance(loaded, tuple) else loaded  # output_loading_info=True gives a tuple
        processor_values = read_json_next_to(pretrained_model_name_or_path, "processor_config.json", kwargs)
        problems = processor_config_mismatches(model.config, processor_values) if processor_values else []
        if problems:
            raise ValueError(f"{pretrained_model_name_or_path}: processor_config.json does not match config.json: "
                             f"{'; '.join(problems)} (save the processor built with config=model.config)")
        return loaded

    def save_pretrained(self, save_directory, *args, processor=None, **kwargs):
        """``PreTrainedModel.save_pretrained``; with ``processor=`` the processor is checked against this model's
        config (ValueError on any difference) and saved into the same folder."""
        if processor is not None:
            processor.check_model_config(self.config, "the model being saved")
        # Record every auto class that can load the folder (register_for_auto_class keeps only one).
        module = self.__class__.__module__.split(".")[-1]
        auto_map = dict(getattr(self.config, "auto_map", None) or {})
        auto_map.setdefault("AutoConfig", f"{self.config.__class__.__module__.split('.')[-1]}.{self.config.__class__.__name__}")
        for auto_class in ("AutoModel", "AutoModelForImageTextToText", "AutoModelForMultimodalLM"):
            auto_map[auto_class] = f"{module}.{self.__class__.__name__}"
        self.config.auto_map = auto_map
        result = super().save_pretrained(save_directory, *args, **kwargs)
        if processor is not None:
            processor.save_pretrained(save_directory)
        return result

    def parameter_breakdown(self) -> dict[str, dict[str, int]]:
        """Parameters per top-level submodule: ``{name: {"total": n, "trainable": n}}`` (shared tensors once)."""
        seen: set[int] = set()
        breakdown: dict[str, dict[str, int]] = {}
        for name, child in self.named_children():
            total = trainable = 0
            for param in child.parameters():
                if id(param) in seen:
                    continue
                seen.add(id(param))
                total += param.numel()
                trainable += param.numel() if param.requires_grad else 0
            breakdown[name] = {"total": total, "trainable": trainable}
        return breakdown

    # ------------------------------------------------------------------ branches
    def get_video_features(self, pixel_values_videos: torch.Tensor, fusion_layers: bool = True):
        """`(Nv, T, 3, H, W)` -> (video tokens `(Nv, num_video_tokens, D_lm)`, fusion inputs: one `(Nv, S, Dv)`
        per expert or None)."""
        num_videos, num_frames = pixel_values_videos.shape[:2]
        pixels = pixel_values_videos.flatten(0, 1).to(self.vision_tower.dtype)
        with _tower_grad_context(self.vision_tower):
            hidden_states = self.vision_tower(pixel_values=pixels, output_hidden_states=True).hidden_states

        def frames_to_sequence(states: torch.Tensor, select: str) -> torch.Tensor:
            states = states[:, :1] if select == "cls" else states  # CLS is position 0 in CLIP
            return states.reshape(num_videos, num_frames * states.shape[1], states.shape[-1])

        features = frames_to_sequence(hidden_states[self.config.vision_feature_layer], self.config.vision_feature_select)
        tokens_per_frame = features.shape[1] // num_frames
        frame_index = torch.arange(num_frames, device=features.device).repeat_interleave(tokens_per_frame)
        resampled = self.visual_qformer(
            features.to(self.visual_qformer.norm.weight.dtype), position_ids=frame_index.expand(num_videos, -1)
        )
        fusion_inputs = None
        if fusion_layers:
            select = self.config.fusion_encoder_config.vision_feature_select
            fusion_inputs = [frames_to_sequence(hidden_states[i], select) for i in self.config.fusion_encoder_config.vision_layers]
        return self.video_projector(resampled), fusion_inputs

    def _audio_frame_mask(self, audio_attention_mask: torch.Tensor | None, num_samples: int, num_frames: int, batch: int, device):
        """Valid HuBERT frames from the sample-level mask, following the convolution arithmetic of the front end."""
        if audio_attention_mask is None:
            return torch.ones(batch, num_frames, dtype=torch.bool, device=device)
        lengths = audio_attention_mask.sum(dim=-1).long()
        for kernel, stride in zip(self.config.audio_config.conv_kernel, self.config.audio_config.conv_stride):
            lengths = torch.div(lengths - kernel, stride, rounding_mode="floor") + 1
        lengths = lengths.clamp(min=1, max=num_frames)
        return torch.arange(num_frames, device=device)[None, :] < lengths[:, None]

    def get_audio_features(self, input_values: torch.Tensor, audio_attention_mask: torch.Tensor | None = None, fusion_layers: bool = True):
        """`(Na, S)` waveforms -> (audio tokens `(Na, num_audio_tokens, D_lm)`, fusion inputs: one `(Na, F, Da)`
        per expert or None, frame mask `(Na, F)`)."""
        # Encoders with group-norm front ends (HuBERT-Base) were trained on zero-padded batches without a mask;
        # layer-norm ones (HuBERT-Large) take the mask.
        takes_mask = getattr(self.config.audio_config, "feat_extract_norm", "layer") == "layer"
        # transformers < 5.24 draws a LayerDrop number per HuBERT layer even in eval mode or with layerdrop 0: keep the
        # global RNG as it was then, so a seeded generate() samples (and training draws) the same on every release.
        layer_drop = self.audio_tower.training and getattr(self.audio_tower.config, "layerdrop", 0.0) > 0
        with _tower_grad_context(self.audio_tower), torch.random.fork_rng(devices=[], enabled=not layer_drop):
            hidden_states = self.audio_tower(
                input_values=input_values.to(self.audio_tower.dtype),
                attention_mask=audio_attention_mask if takes_mask else None,
                output_hidden_states=True,
            ).hidden_states
        frame_mask = self._audio_frame_mask(
            audio_attention_mask, input_values.shape[-1], hidden_states[-1].shape[1], input_values.shape[0], input_values.device
        )
        features = torch.stack([hidden_states[i] for i in self.config.audio_feature_layers]).mean(dim=0)
        resampled = self.speech_qformer(features.to(self.speech_qformer.norm.weight.dtype), frame_mask)
        fusion_inputs = [hidden_states[i] for i in self.config.fusion_encoder_config.audio_layers] if fusion_layers else None
        return self.audio_projector(resampled), fusion_inputs, frame_mask

    def get_face_features(self, face_pixel_values: torch.Tensor, face_frame_mask: torch.Tensor | None = None):
        """`(Nf, T, 3, S, S)` crops + `(Nf, T)` mask -> face tokens `(Nf, num_face_tokens, D_lm)`. Only frames with a
        face go through the backbone; clips without any face use the learned ``no_face_embedding``."""
        num_clips, num_frames = face_pixel_values.shape[:2]
        if face_frame_mask is None:
            face_frame_mask = torch.ones(num_clips, num_frames, dtype=torch.bool, device=face_pixel_values.device)
        face_frame_mask = face_frame_mask.bool()
        width = self.no_face_embedding.weight.shape[-1]
        dtype = self.no_face_embedding.weight.dtype
        frame_features = torch.zeros(num_clips, num_frames, width, dtype=dtype, device=face_pixel_values.device)
        if face_frame_mask.any():
            with _tower_grad_context(self.face_encoder):
                encoded = self.face_encoder(face_pixel_values[face_frame_mask])
            frame_features = frame_features.masked_scatter(face_frame_mask.unsqueeze(-1), encoded.to(dtype))
        has_face = face_frame_mask.any(dim=1)
        # Rows without a face attend over all (zero) frames to stay finite, then take the no-face embedding.
        attend_mask = face_frame_mask | ~has_face[:, None]
        tokens = self.face_temporal(frame_features, attend_mask)
        tokens = torch.where(has_face[:, None, None], tokens, self.no_face_embedding(num_clips).to(tokens.dtype))
        return self.face_projector(tokens)

    # ------------------------------------------------------------------ embedding merge
    def _resolve_sample_index(self, name, sample_index, num_items, rows_using, batch_size, device):
        if sample_index is not None:
            sample_index = sample_index.to(device).long()
            if sample_index.numel() != num_items:
                raise ValueError(f"{name}_sample_index has {sample_index.numel()} entries for {num_items} {name} inputs")
            if sample_index.numel() and (int(sample_index.min()) < 0 or int(sample_index.max()) >= batch_size):
                raise ValueError(f"{name}_sample_index {sample_index.tolist()} is outside the batch of {batch_size}")
            return sample_index
        used = rows_using.nonzero().flatten()
        if used.numel() == num_items:
            return used
        if num_items == batch_size:
            return torch.arange(batch_size, device=device)
        raise ValueError(
            f"got {num_items} {name} inputs for a batch of {batch_size} where {used.numel()} prompts use {name}; "
            f"pass {name}_sample_index to say which row each input belongs to"
        )

    def _scatter_tokens(self, inputs_embeds, input_ids, name, token_id, features, sample_index):
        """Write ``features[i]`` `(n_tokens, D)` into the placeholder positions of row ``sample_index[i]``."""
        placeholder = input_ids == token_id
        rows = placeholder.any(dim=1).nonzero().flatten()
        if rows.numel() == 0:
            return inputs_embeds
        expected = features.shape[1]
        counts = placeholder.sum(dim=1)
        item_of_row = {int(row): i for i, row in enumerate(sample_index.tolist())}
        ordered = []
        for row in rows.tolist():
            if int(counts[row]) != expected:
                raise ValueError(
                    f"sample {row} has {int(counts[row])} {PLACEHOLDER_TOKENS[name]} tokens but the {name} branch "
                    f"gives {expected} (processor num_{name}_tokens must match the model config)"
                )
            if row not in item_of_row:
                raise ValueError(f"sample {row} has {PLACEHOLDER_TOKENS[name]} tokens but no {name} input")
            ordered.append(features[item_of_row[row]])
        values = torch.cat(ordered, dim=0).to(inputs_embeds.dtype)
        return inputs_embeds.masked_scatter(placeholder.unsqueeze(-1), values)

    def get_multimodal_embeddings(
        self,
        input_ids: torch.LongTensor,
        pixel_values_videos=None,
        video_sample_index=None,
        input_values=None,
        audio_attention_mask=None,
        audio_sample_index=None,
        face_pixel_values=None,
        face_frame_mask=None,
        face_sample_index=None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Token embeddings with every placeholder replaced by its branch tokens -> (`(B, L, D_lm)`, gate weights)."""
        ids = self.config.placeholder_token_ids
        is_placeholder = torch.zeros_like(input_ids, dtype=torch.bool)
        for token_id in ids.values():
            is_placeholder |= input_ids == token_id
        inputs_embeds = self.get_input_embeddings()(input_ids.masked_fill(is_placeholder, 0))
        batch, device = input_ids.shape[0], input_ids.device
        uses = {name: (input_ids == token_id).any(dim=1) for name, token_id in ids.items()}
        if not is_placeholder.any():
            return inputs_embeds, None

        for name, given in (("video", pixel_values_videos), ("audio", input_values), ("face", face_pixel_values)):
            for token in (name, "fusion") if name != "face" else (name,):
                rows = uses[token].nonzero().flatten().tolist()
                if rows and given is None:
                    # e.g. a sampled placeholder reaching a decoding step: name the samples so callers can skip them
                    raise PlaceholderWithoutMediaError(rows, PLACEHOLDER_TOKENS[token], name)

        video_tokens = video_fusion = audio_tokens = audio_fusion = audio_frame_mask = None
        need_fusion = bool(uses["fusion"].any())
        if pixel_values_videos is not None and (uses["video"].any() or need_fusion):
            video_sample_index = self._resolve_sample_index(
                "video", video_sample_index, pixel_values_videos.shape[0], uses["video"] | uses["fusion"], batch, device
            )
            video_tokens, video_fusion = self.get_video_features(pixel_values_videos, fusion_layers=need_fusion)
            inputs_embeds = self._scatter_tokens(inputs_embeds, input_ids, "video", ids["video"], video_tokens, video_sample_index)
        if input_values is not None and (uses["audio"].any() or need_fusion):
            audio_sample_index = self._resolve_sample_index(
                "audio", audio_sample_index, input_values.shape[0], uses["audio"] | uses["fusion"], batch, device
            )
            audio_tokens, audio_fusion, audio_frame_mask = self.get_audio_features(
                input_values, audio_attention_mask, fusion_layers=need_fusion
            )
            inputs_embeds = self._scatter_tokens(inputs_embeds, input_ids, "audio", ids["audio"], audio_tokens, audio_sample_index)
        if face_pixel_values is not None and uses["face"].any():
            face_sample_index = self._resolve_sample_index(
                "face", face_sample_index, face_pixel_values.shape[0], uses["face"], batch, device
            )
            face_tokens = self.get_face_features(face_pixel_values, face_frame_mask)
            inputs_embeds = self._scatter_tokens(inputs_embeds, input_ids, "face", ids["face"], face_tokens, face_sample_index)

        gate_weights = None
        if need_fusion:
            fusion_rows = uses["fusion"].nonzero().flatten().tolist()
            video_item = {int(r): i for i, r in enumerate(video_sample_index.tolist())}
            audio_item = {int(r): i for i, r in enumerate(audio_sample_index.tolist())}
            missing = [r for r in fusion_rows if r not in video_item or r not in audio_item]
            if missing:
                raise ValueError(f"samples {missing} use <fusion> but lack a video or an audio input")
            v_idx = torch.tensor([video_item[r] for r in fusion_rows], device=device)
            a_idx = torch.tensor([audio_item[r] for r in fusion_rows], device=device)
            dtype = self.fusion_projector.linear_1.weight.dtype
            fusion_tokens, gate_weights = self.fusion(
                [layer[a_idx].to(dtype) for layer in audio_fusion],
                audio_frame_mask[a_idx],
                [layer[v_idx].to(dtype) for layer in video_fusion],
            )
            inputs_embeds = self._scatter_tokens(
                inputs_embeds,
                input_ids,
                "fusion",
                ids["fusion"],
                self.fusion_projector(fusion_tokens),
                torch.tensor(fusion_rows, device=device),
            )
        return inputs_embeds, gate_weights

    # ------------------------------------------------------------------ forward / generate
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache=None,
        inputs_embeds: torch.FloatTensor | None = None,
        pixel_values_videos: torch.FloatTensor | None = None,
        video_sample_index: torch.LongTensor | None = None,
        input_values: torch.FloatTensor | None = None,
        audio_attention_mask: torch.LongTensor | None = None,
        audio_sample_index: torch.LongTensor | None = None,
        face_pixel_values: torch.FloatTensor | None = None,
        face_frame_mask: torch.BoolTensor | None = None,
        face_sample_index: torch.LongTensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs,
    ) -> NanoEmoXCausalLMOutputWithPast:
        """See the class docstring for the inputs. Returns [`NanoEmoXCausalLMOutputWithPast`].

        ``cache`` is the language model's KV cache; ``past_key_values=`` is accepted too (the name before
        transformers 5.24), and the language model receives it under the installed release's name.
        """
        if "past_key_values" in kwargs:
            if cache is not None:
                raise ValueError("pass the KV cache once: as cache= or as past_key_values=, not both")
            cache = kwargs.pop("past_key_values")
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids or inputs_embeds")
        gate_weights = None
        if inputs_embeds is None:
            inputs_embeds, gate_weights = self.get_multimodal_embeddings(
                input_ids,
                pixel_values_videos=pixel_values_videos,
                video_sample_index=video_sample_index,
                input_values=input_values,
                audio_attention_mask=audio_attention_mask,
                audio_sample_index=audio_sample_index,
                face_pixel_values=face_pixel_values,
                face_frame_mask=face_frame_mask,
                face_sample_index=face_sample_index,
            )
            if labels is not None:  # branch tokens are inputs, never targets
                for token_id in self.config.placeholder_token_ids.values():
                    labels = labels.masked_fill(input_ids == token_id, IGNORE_INDEX)
        if position_ids is None and attention_mask is not None and attention_mask.dim() == 2:
            # Left padding: positions count real tokens only (attention_mask spans cache + new tokens).
            position_ids = (attention_mask.long().cumsum(dim=-1) - 1).clamp(min=0)[:, -inputs_embeds.shape[1] :]
        outputs = self.language_model(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            use_cache=use_cache,
            labels=labels,
            logits_to_keep=logits_to_keep,
            **{CACHE_NAME: cache},
            **kwargs,
        )
        return NanoEmoXCausalLMOutputWithPast(
            loss=outputs.loss,
            logits=outputs.logits,
            **{CACHE_NAME: getattr(outputs, CACHE_NAME)},
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            fusion_gate_weights=gate_weights,
        )

    def prepare_inputs_for_generation(self, input_ids, **kwargs):
        # The cache arrives as `cache` (transformers >= 5.24) or `past_key_values` (older): pass it on untouched.
        media = {name: kwargs.pop(name) for name in MEDIA_INPUT_NAMES if name in kwargs}
        model_inputs = super().prepare_inputs_for_generation(input_ids, **kwargs)
        first_step = kwargs.get("is_first_iteration")
        if first_step is None:
            cache = kwargs.get(CACHE_NAME)
            first_step = cache is None or cache.get_seq_length() == 0
        # The branch tokens live in the cache after the prefill: run the encoders once.
        if first_step or not kwargs.get("use_cache", True):
            model_inputs.update(media)
        return model_inputs

    def _expand_inputs_for_generation(self, expand_size: int = 1, is_encoder_decoder: bool = False, input_ids=None, **model_kwargs):
        """Beams / ``num_return_sequences``: rows are repeated ``expand_size`` times (row ``b`` -> rows
        ``b * expand_size + k``), so each media item is repeated with them and its sample index renumbered. The base
        method would repeat the items but keep their old indices (rows ``b * expand_size + k`` left without media)."""
        media = {key: model_kwargs.pop(key) for key in MEDIA_INPUT_NAMES if key in model_kwargs}
        if expand_size > 1 and input_ids is not None:
            media = self._expand_media(input_ids, media, expand_size)
        input_ids, model_kwargs = super()._expand_inputs_for_generation(
            expand_size=expand_size, is_encoder_decoder=is_encoder_decoder, input_ids=input_ids, **model_kwargs
        )
        model_kwargs.update(media)
        return input_ids, model_kwargs

    def _expand_media(self, input_ids: torch.LongTensor, media: dict, expand_size: int) -> dict:
        """``media`` of a ``(B, L)`` batch -> the same media for the ``(B * expand_size, L)`` expanded batch."""
        ids = self.config.placeholder_token_ids
        uses = {name: (input_ids == token_id).any(dim=1) for name, token_id in ids.items()}
        batch, device = input_ids.shape[0], input_ids.device
        expanded = dict(media)
        for name, (values_key, item_keys, index_key) in MEDIA_GROUPS.items():
            values = media.get(values_key)
            if values is None:
                continue
            rows_using = uses[name] | uses["fusion"] if name != "face" else uses[name]
            index = self._resolve_sample_index(name, media.get(index_key), values.shape[0], rows_using, batch, device)
            copies = torch.arange(expand_size, device=index.device)
            expanded[index_key] = (index[:, None] * expand_size + copies[None, :]).flatten()
            for key in (values_key, *item_keys):
                if media.get(key) is not None:
                    expanded[key] = media[key].repeat_interleave(expand_size, dim=0)
        return expanded

    # ------------------------------------------------------------------ placeholders never generated
    def suppress_placeholder_tokens(self, previous_ids=()) -> list[int]:
        """Add the placeholder ids to ``generation_config.suppress_tokens`` (saved in ``generation_config.json``):
        a sampled ``<video>`` would reach the next decoding step without its media. ``previous_ids`` (ids the
        placeholders had before) are dropped from the list; other suppressed tokens stay."""
        if self.generation_config is None:
            return []
        placeholder_ids = sorted(self.config.placeholder_token_ids.values())
        kept = [t for t in (self.generation_config.suppress_tokens or []) if t not in set(previous_ids) | set(placeholder_ids)]
        self.generation_config.suppress_tokens = kept + placeholder_ids
        return self.generation_config.suppress_tokens

    def adjust_generation_fn(self, *args, **kwargs):
        # from_pretrained reloads the generation config here: folders saved before the suppression still get it
        super().adjust_generation_fn(*args, **kwargs)
        self.suppress_placeholder_tokens()

    # ------------------------------------------------------------------ construction from parts
    def set_placeholder_token_ids(self, tokenizer) -> dict[str, int]:
        """Read the placeholder ids from ``tokenizer`` into the config and grow the LM embeddings if the tokenizer
        has more tokens than the embedding matrix (the added rows are trainable only if the LM is)."""
        ids = {}
        unk = getattr(tokenizer, "unk_token_id", None)
        for name, token in PLACEHOLDER_TOKENS.items():
            token_id = tokenizer.convert_tokens_to_ids(token)
            if token_id is None or (unk is not None and token_id == unk):
                raise ValueError(
                    f"the tokenizer has no {token} token: build it with NanoEmoXProcessor (which adds the placeholders)"
                )
            ids[name] = int(token_id)
        if len(tokenizer) > self.get_input_embeddings().weight.shape[0]:
            self.language_model.resize_token_embeddings(len(tokenizer))
            self.config.text_config = self.language_model.config
        previous = list(self.config.placeholder_token_ids.values())
        for name, token_id in ids.items():
            setattr(self.config, f"{name}_token_id", token_id)
        self.suppress_placeholder_tokens(previous)
        return ids

    @classmethod
    def from_pretrained_components(
        cls,
        vision: str | None = None,
        audio: str | None = None,
        face: str | None = None,
        language_model: str | None = None,
        *,
        config: NanoEmoXConfig | None = None,
        tokenizer=None,
        processor=None,
        dtype: torch.dtype | None = None,
        **load_kwargs,
    ) -> "NanoEmoXForConditionalGeneration":
        """Assemble Nano-EmoX from separately pretrained checkpoints (Hub ids or local folders).

        Args:
            vision: a CLIP checkpoint (full CLIP or vision-only, e.g. ``openai/clip-vit-large-patch14``); the
                vision tower is taken from it.
            audio: a HuBERT-style speech encoder (e.g. ``facebook/hubert-large-ll60k``).
            face: the face branch. A folder written by the FaceXFormer converter (``convert facexformer CKPT OUT``:
                the public FaceXFormer checkpoint, its Swin-B backbone and its trained multi-scale fusion, as in the public
                code), or any Hugging Face Swin checkpoint (e.g. ``microsoft/swin-base-patch4-window7-224``: an
                ImageNet backbone only, so the multi-scale fusion starts random and the P2E trainer trains it with
                the face adapter, with a warning).
            language_model: a causal LM (e.g. ``Qwen/Qwen2.5-1.5B-Instruct``).
            config: the rest of the architecture (default: the paper's); the loaded parts' configs replace its
                sub-configs.
            tokenizer: when given, the placeholder ids are read from it and the embeddings grown if needed.
            processor: a ``NanoEmoXProcessor`` to match: its tokenizer serves as ``tokenizer``, and it takes the
                assembled model's token counts (``processor.match_model_config``), so the pair agrees by
                construction; save both with ``model.save_pretrained(folder, processor=processor)``.
            dtype: dtype of the loaded parts and the assembled model.
            load_kwargs: passed to every ``from_pretrained`` (``revision``, ``cache_dir``, ``local_files_only``...).

        Parts left as ``None`` are randomly initialised from ``config``.
        """
        config = copy.deepcopy(config) if config is not None else NanoEmoXConfig()
        if processor is not None and tokenizer is None:
            tokenizer = processor.tokenizer
        if dtype is not None:
            load_kwargs["dtype"] = dtype
        parts: dict[str, nn.Module] = {}
        if vision is not None:
            parts["vision_tower"] = _load_vision_tower(vision, **load_kwargs)
            config.vision_config = parts["vision_tower"].config
        if audio is not None:
            tower = AutoModel.from_pretrained(audio, **load_kwargs)
            if not hasattr(tower.config, "conv_kernel"):
                raise ValueError(f"audio checkpoint {audio!r} ({type(tower).__name__}) is not a HuBERT/wav2vec2-style encoder")
            # Used as a feature extractor: no SpecAugment / layer drop even if someone unfreezes it.
            tower.config.apply_spec_augment = False
            tower.config.layerdrop = 0.0
            parts["audio_tower"] = tower
            config.audio_config = tower.config
        face_fusion = None
        if face is not None:
            backbone = AutoModel.from_pretrained(face, **load_kwargs)
            if getattr(backbone.config, "model_type", None) != "swin":
                raise ValueError(f"face checkpoint {face!r} is a {backbone.config.model_type!r} model; the face branch needs a Swin backbone")
            parts["face_backbone"] = backbone
            config.face_config.backbone_config = backbone.config
            face_fusion = load_face_fusion_weights(face, **load_kwargs)
            if face_fusion is not None:
                config.face_config.fusion_hidden_size = int(face_fusion["fuse.weight"].shape[0])
                config.face_config.multiscale_fusion_pretrained = True
        if language_model is not None:
            parts["language_model"] = AutoModelForCausalLM.from_pretrained(language_model, **load_kwargs)
            config.text_config = parts["language_model"].config
            config.tie_word_embeddings = bool(getattr(config.text_config, "tie_word_embeddings", False))
        config._validate()
        model = cls(config, **parts)
        if face_fusion is not None:
            model.face_encoder.load_multiscale_fusion(face_fusion, source=str(face))
        if tokenizer is not None:
            model.set_placeholder_token_ids(tokenizer)
        if processor is not None:
            processor.match_model_config(model.config)
        if dtype is not None:
            model.to(dtype)
        return model


def load_face_fusion_weights(name_or_path: str, **load_kwargs) -> dict[str, torch.Tensor] | None:
    """The multi-scale fusion weights (``stage_projections.*``, ``fuse.weight``) that the FaceXFormer
    converter writes next to the Swin backbone (``FACE_FUSION_WEIGHTS``), or None for a plain Swin checkpoint."""
    from transformers.modeling_utils import load_state_dict
    from transformers.utils import cached_file

    hub_kwargs = {k: v for k, v in load_kwargs.items() if k in ("cache_dir", "force_download", "local_files_only", "token", "revision", "subfolder")}
    path = cached_file(
        name_or_path, FACE_FUSION_WEIGHTS, _raise_exceptions_for_missing_entries=False,
        _raise_exceptions_for_connection_errors=False, **hub_kwargs,
    )  # fmt: skip
    if path is None:
        return None
    state = load_state_dict(path)
    dtype = load_kwargs.get("dtype")
    return {k: v.to(dtype) if isinstance(dtype, torch.dtype) else v for k, v in state.items()}


def _load_vision_tower(name_or_path: str, **load_kwargs) -> nn.Module:
    """The vision tower of a CLIP-style checkpoint; a dual-encoder checkpoint contributes its vision part only."""
    from transformers.models.auto.modeling_auto import MODEL_MAPPING

    config = AutoConfig.from_pretrained(name_or_path, **{k: v for k, v in load_kwargs.items() if k != "dtype"})
    vision_config = getattr(config, "vision_config", None)
    if vision_config is None:
        return AutoModel.from_pretrained(name_or_path, **load_kwargs)
    vision_class = MODEL_MAPPING[type(vision_config)]
    return vision_class.from_pretrained(name_or_path, **load_kwargs)


__all__ = ["NanoEmoXCausalLMOutputWithPast", "NanoEmoXForConditionalGeneration", "NanoEmoXPreTrainedModel", "PlaceholderWithoutMediaError"]
