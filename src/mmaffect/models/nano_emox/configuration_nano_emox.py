"""Nano-EmoX configuration.

``NanoEmoXConfig()`` with no arguments is the paper's full-size model (Huang et al., "Nano-EmoX: Unifying
Multimodal Emotional Intelligence from Perception to Empathy", Sec. 3.1, supplement C, Sec. 4.1):

====================  ==========================================================================
branch                full-size default
====================  ==========================================================================
``vision_config``     CLIP ViT-L/14 vision tower (``openai/clip-vit-large-patch14``, 224 px)
``audio_config``      HuBERT-Large (24 layers, 1024 wide, 16 kHz waveform input)
``face_config``       FaceXFormer-style face encoder: Swin-B backbone, the four stage feature maps
                      fused by an MLP into one 256-d vector per frame, 4 learnable temporal queries
``qformer_config``    two 2-layer Q-Formers (768 wide) with 32 visual and 32 speech query tokens
``fusion_encoder_``  3 gated fusion experts pairing speech layers 16/18/22 with visual layers
``config``            12/16/22, one fusion token (not ``fusion_config``: transformers reserves that name
                      for its runtime kernel fusions)
adapters              heterogeneous (public code): one Linear for video, audio and fusion; a
                      2-layer MLP 256 -> 768 -> LM width with GELU and dropout 0.1 for the face
``text_config``       Qwen2.5-1.5B(-Instruct)
LoRA                  paper: r=32, alpha=16; public code: r=16, alpha=32 (``lora_preset``)
====================  ==========================================================================

Paper vs public reference code (github.com/waHAHJIAHAO/Nano-EmoX, MIT): the paper is the default and the
code's choices are named options. Where the paper is silent the public code's value is used and the
field's comment says so. Differences exposed here:

* ``vision_feature_select`` / ``fusion_encoder_config.vision_feature_select``: ``"all"`` (paper: the Q-Former
  "resamples visual tokens" and the fusion experts attend over visual features) or ``"cls"`` (public
  code: one CLS vector per frame).
* ``lora_preset``: ``"paper"`` (r=32, alpha=16, Sec. 4.1) or ``"public_code"`` (r=16, alpha=32).
* ``adapter_style``: the paper only says "heterogeneous adapters" (and "a two-layer fully connected network with
  GeLU" for the face), so the default is the public code's set (``"heterogeneous"``: Linear for video / audio /
  fusion, 2-layer MLP with dropout for the face); ``"uniform_mlp"`` gives every branch the same 2-layer GELU MLP
  (this package before it followed the public code).
* ``face_config.multiscale_fusion_pretrained``: True once the face branch holds FaceXFormer's multi-scale fusion
  (the FaceXFormer converter ``convert facexformer`` + ``from_pretrained_components(face=...)``); without it the fusion layers
  are random and the P2E trainer trains them with the face adapter (public code: loaded from FaceXFormer, frozen).
* The task identifier spelling (``[Recog_OV]`` vs ``[Recogn_OV]``) and face crops vs full frames are
  processor options (``NanoEmoXProcessor(task_identifier_style=..., face_input=...)``).

Every size is a field; ``NanoEmoXConfig.tiny()`` builds a random model in milliseconds for tests.
"""

import copy
from typing import Any

from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

# ----------------------------------------------------------------------------------------------------
# Full-size component defaults (the public checkpoints the paper starts from).
# ----------------------------------------------------------------------------------------------------
CLIP_VIT_L14 = {  # openai/clip-vit-large-patch14, vision tower only
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "projection_dim": 768,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "image_size": 224,
    "patch_size": 14,
    "hidden_act": "quick_gelu",
}
HUBERT_LARGE = {  # facebook/hubert-large-ll60k; augmentation/layerdrop off because the tower is a feature extractor
    "hidden_size": 1024,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "intermediate_size": 4096,
    "feat_extract_norm": "layer",
    "do_stable_layer_norm": True,
    "conv_bias": True,
    "layerdrop": 0.0,
    "apply_spec_augment": False,
}
SWIN_B = {  # microsoft/swin-base-patch4-window7-224, the FaceXFormer backbone
    "embed_dim": 128,
    "depths": [2, 2, 18, 2],
    "num_heads": [4, 8, 16, 32],
    "window_size": 7,
    "image_size": 224,
    "drop_path_rate": 0.0,
}
QWEN25_1_5B = {  # Qwen/Qwen2.5-1.5B-Instruct
    "vocab_size": 151936,
    "hidden_size": 1536,
    "intermediate_size": 8960,
    "num_hidden_layers": 28,
    "num_attention_heads": 12,
    "num_key_value_heads": 2,
    "max_position_embeddings": 32768,
    "rms_norm_eps": 1e-6,
    "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0},
    "tie_word_embeddings": True,
    "bos_token_id": 151643,
    "eos_token_id": 151645,
}

# LoRA on the language model only (target regex matches module names under ``language_model``).
LORA_TARGET_REGEX = r".*language_model\..*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)$"
LORA_PRESETS = {
    "paper": {"r": 32, "lora_alpha": 16, "lora_dropout": 0.05},  # Sec. 4.1 ("r = 32 and alpha = 16")
    "public_code": {"r": 16, "lora_alpha": 32, "lora_dropout": 0.05},  # configs/nano_emox.yaml
}

# Placeholder tokens the processor adds to the tokenizer, in this order. Appended to the Qwen2.5 tokenizer
# (151665 tokens) they get the ids 151665.. which fit in the 151936-row embedding without resizing.
PLACEHOLDER_TOKENS = {"video": "<video>", "audio": "<audio>", "face": "<face>", "fusion": "<fusion>"}
IGNORE_INDEX = -100  # label of a position the loss skips (prompt, padding, media placeholders)
REASONING_TOKENS = ("<think>", "</think>")
ADAPTER_STYLES = ("heterogeneous", "uniform_mlp")

# The arguments of ``NanoEmoXConfig.tiny()`` (see its docstring); it deep-copies them, so overrides never change them.
TINY_PRESET: dict[str, Any] = {
    "vision_config": {
        "model_type": "clip_vision_model",
        "hidden_size": 16,
        "intermediate_size": 32,
        "projection_dim": 16,
        "num_hidden_layers": 3,
        "num_attention_heads": 2,
        "image_size": 32,
        "patch_size": 8,
    },
    "audio_config": {
        "model_type": "hubert",
        "hidden_size": 16,
        "num_hidden_layers": 3,
        "num_attention_heads": 2,
        "intermediate_size": 32,
        "conv_dim": [8, 8],
        "conv_stride": [5, 4],
        "conv_kernel": [10, 4],
        "num_conv_pos_embeddings": 8,
        "num_conv_pos_embedding_groups": 2,
        "feat_extract_norm": "layer",
        "do_stable_layer_norm": True,
        "conv_bias": True,
        "layerdrop": 0.0,
        "apply_spec_augment": False,
    },
    "face_config": {
        "backbone_config": {
            "model_type": "swin",
            "image_size": 32,
            "patch_size": 2,  # stage maps 16/8/4/2: every stage keeps a full 2x2 window
            "embed_dim": 8,
            "depths": [1, 1, 1, 1],
            "num_heads": [1, 1, 2, 2],
            "window_size": 2,
            "drop_path_rate": 0.0,
        },
        "fusion_hidden_size": 8,
        "num_temporal_queries": 2,
        "num_temporal_heads": 2,
    },
    "face_adapter_hidden_size": 12,
    "qformer_config": {
        "hidden_size": 16,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 32,
        "num_visual_query_tokens": 4,
        "num_speech_query_tokens": 3,
    },
    "fusion_encoder_config": {
        "audio_layers": [1, 2, 3],
        "vision_layers": [1, 2, 3],
        "hidden_size": 16,
        "num_attention_heads": 2,
        "intermediate_size": 16,
        "gate_hidden_size": 16,
    },
    "text_config": {
        "model_type": "qwen2",
        "vocab_size": 320,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 512,
        "tie_word_embeddings": True,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "pad_token_id": 0,
    },
    "video_token_id": 3,
    "audio_token_id": 4,
    "face_token_id": 5,
    "fusion_token_id": 6,
    "max_frames": 8,
}


class NanoEmoXFaceConfig(PreTrainedConfig):
    r"""FaceXFormer-style face branch (supplement C.1, Fig. 1a).

    A Swin backbone (``backbone_config``, Swin-B by default) encodes each face crop; the feature maps of its four
    stages are projected to ``fusion_hidden_size`` channels, resized to the first stage's resolution,
    concatenated and fused by a 1x1 convolution ("MLP fusion"), then average-pooled into one vector per
    frame (E_f). ``num_temporal_queries`` learnable queries cross-attend over the frame vectors (temporal
    modelling, Eq. 1) and become the face tokens (``face_tokens = 4`` in Sec. 4.1).

    Args:
        backbone_config (`dict` or `SwinConfig`): the Swin backbone.
        fusion_hidden_size (`int`, defaults to 256): channels of the fused multi-scale map (FaceXFormer's
            decoder width).
        num_temporal_queries (`int`, defaults to 4): face tokens per clip.
        num_temporal_heads (`int`, defaults to 4): heads of the temporal cross-attention (public code).
        use_temporal_position_embeddings (`bool`, defaults to True): add a learned frame-index embedding
            before temporal attention, so the queries can see frame order ("reconstruct the time-sequential
            relationships", C.1). The public code omits it (``False``).
        dropout (`float`, defaults to 0.0): attention dropout of the temporal block.
        multiscale_fusion_pretrained (`bool`, defaults to False): whether ``stage_projections`` / ``fuse`` of the
            face encoder hold FaceXFormer's trained multi-scale fusion (set by ``from_pretrained_components`` when
            the face folder comes from the FaceXFormer converter, ``convert facexformer``). False: they are randomly initialised,
            and the P2E trainer trains them with the face adapter instead of freezing them with the encoders.
    """

    model_type = "nano_emox_face"
    base_config_key = "face_config"
    sub_configs_defaults = {
        "backbone_config": SubConfigSpec(config_class=AutoConfig, model_type="swin", init_kwargs=SWIN_B),
    }

    backbone_config: dict | PreTrainedConfig | None = None
    fusion_hidden_size: int = 256
    num_temporal_queries: int = 4
    num_temporal_heads: int = 4
    use_temporal_position_embeddings: bool = True
    dropout: float = 0.0
    multiscale_fusion_pretrained: bool = False


class NanoEmoXQFormerConfig(PreTrainedConfig):
    r"""The two resampling Q-Formers (visual and speech branches, Sec. 3.1).

    Each Q-Former is a stack of ``num_hidden_layers`` blocks (self-attention over the queries, cross-attention
    into the encoder features, MLP), pre-norm, as wide as BERT-base (the public code initialises it from
    ``bert-base-uncased``).

    Args:
        hidden_size (`int`, defaults to 768), num_hidden_layers (`int`, defaults to 2),
        num_attention_heads (`int`, defaults to 12), intermediate_size (`int`, defaults to 3072).
        num_visual_query_tokens (`int`, defaults to 32): visual tokens per clip (Sec. 4.1, Tab. 4).
        num_speech_query_tokens (`int`, defaults to 32): speech tokens per clip (Sec. 4.1).
        hidden_act (`str`, defaults to "gelu"), dropout (`float`, defaults to 0.1),
        attention_dropout (`float`, defaults to 0.1), layer_norm_eps (`float`, defaults to 1e-12).
    """

    model_type = "nano_emox_qformer"
    base_config_key = "qformer_config"

    hidden_size: int = 768
    num_hidden_layers: int = 2
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    num_visual_query_tokens: int = 32
    num_speech_query_tokens: int = 32
    hidden_act: str = "gelu"
    dropout: float = 0.1
    attention_dropout: float = 0.1
    layer_norm_eps: float = 1e-12


class NanoEmoXFusionConfig(PreTrainedConfig):
    r"""Cross-modal hierarchical expert fusion (Sec. 3.1, Fig. 3, supplement C.2).

    Expert ``i`` takes speech layer ``audio_layers[i]`` as queries and visual layer ``vision_layers[i]`` as
    keys/values: ``E_m = CrossAttn(E_s, E_v, E_v) + E_s``; ``E_mf = FFN(E_m) + E_m``. A 2-layer GELU gating
    network over the concatenated (time-pooled) expert outputs gives softmax weights G_1..G_n and
    ``E_mf = sum_i G_i * E_mf^i`` (Eqs. 2-3). The fused speech-rate sequence is pooled into
    ``num_fusion_tokens`` tokens (1 in the paper).

    Args:
        audio_layers (`list[int]`, defaults to [16, 18, 22]): HuBERT hidden-state indices (0 = embeddings).
        vision_layers (`list[int]`, defaults to [12, 16, 22]): CLIP hidden-state indices (0 = embeddings).
        hidden_size (`int`, defaults to 512), num_attention_heads (`int`, defaults to 8),
        intermediate_size (`int`, defaults to 512), gate_hidden_size (`int`, defaults to 512): public code
            sizes (the paper gives none).
        num_fusion_tokens (`int`, defaults to 1): fusion tokens per clip (Sec. 4.1).
        vision_feature_select (`str`, defaults to "all"): ``"all"`` attends over every patch token of every
            frame (paper); ``"cls"`` over one CLS vector per frame (public code).
        dropout (`float`, defaults to 0.1).
    """

    model_type = "nano_emox_fusion"
    base_config_key = "fusion_encoder_config"

    audio_layers: list[int] | tuple[int, ...] = (16, 18, 22)
    vision_layers: list[int] | tuple[int, ...] = (12, 16, 22)
    hidden_size: int = 512
    num_attention_heads: int = 8
    intermediate_size: int = 512
    gate_hidden_size: int = 512
    num_fusion_tokens: int = 1
    vision_feature_select: str = "all"
    dropout: float = 0.1


class NanoEmoXConfig(PreTrainedConfig):
    r"""Configuration of [`NanoEmoXForConditionalGeneration`].

    Args:
        vision_config, audio_config, face_config, qformer_config, fusion_encoder_config, text_config:
            sub-configurations (dicts or config objects); ``None`` gives the paper's full-size defaults.
        video_token_id, audio_token_id, face_token_id, fusion_token_id (`int`): ids of the placeholder tokens
            ``<video>``, ``<audio>``, ``<face>``, ``<fusion>`` whose positions in ``input_ids`` receive the
            branch tokens. Defaults are the ids the processor gives them on the Qwen2.5 tokenizer.
        vision_feature_layer (`int`, defaults to -2): CLIP hidden state fed to the visual Q-Former (public code).
        vision_feature_select (`str`, defaults to "all"): ``"all"`` (CLS + patch tokens of every frame, paper)
            or ``"cls"`` (one token per frame, public code) for the visual Q-Former input.
        audio_feature_layers (`list[int]`, defaults to [-4, -3, -2, -1]): HuBERT hidden states averaged into
            the speech Q-Former input (public code).
        max_frames (`int`, defaults to 32): size of the learned frame-index embeddings (more frames per clip
            is an error).
        projector_hidden_act (`str`, defaults to "gelu"): activation of the 2-layer adapters.
        adapter_style (`str`, defaults to "heterogeneous"): ``"heterogeneous"`` (public code: ``video_projector``,
            ``audio_projector`` and ``fusion_projector`` are one Linear each, ``face_projector`` is
            Linear -> GELU -> Dropout -> Linear through ``face_adapter_hidden_size``) or ``"uniform_mlp"``
            (every adapter Linear -> GELU -> Linear to the LM width).
        face_adapter_hidden_size (`int`, defaults to 768): hidden width of the face adapter (public code).
        face_adapter_dropout (`float`, defaults to 0.1): dropout between its two layers (public code).
        freeze_encoders (`bool`, defaults to True): vision tower, audio tower and face encoder (backbone +
            multi-scale fusion) start frozen and stay in eval mode.
        freeze_language_model (`bool`, defaults to True): the LM base weights start frozen (LoRA trains).
        lora_preset (`str`, defaults to "paper"): ``"paper"`` (r=32, alpha=16) or ``"public_code"``
            (r=16, alpha=32); ``lora_r`` / ``lora_alpha`` / ``lora_dropout`` override single values.
        lora_target_modules (`str`): regex over module names; LoRA is applied to the language model only.
        initializer_range (`float`, defaults to 0.02): std of the new (non-pretrained) weights.
        trained_tasks (`list[str]`, optional): the processor tasks (``"MER"``, ``"OV-MER"``, ``"ERI"``, ``"MIR"``,
            ``"ERG"``) whose prompts the model was trained on, written by the P2E trainer after each phase (the
            union over the phases so far); ``None``: unknown. The evaluation CLI prompts MER benchmarks with a
            task the model knows (docs/evaluation.md).
    """

    model_type = "nano_emox"
    sub_configs_defaults = {
        "vision_config": SubConfigSpec(config_class=AutoConfig, model_type="clip_vision_model", init_kwargs=CLIP_VIT_L14),
        "audio_config": SubConfigSpec(config_class=AutoConfig, model_type="hubert", init_kwargs=HUBERT_LARGE),
        # explicit specs: transformers < 5.21 does not wrap a bare config class itself
        "face_config": SubConfigSpec(config_class=NanoEmoXFaceConfig),
        "qformer_config": SubConfigSpec(config_class=NanoEmoXQFormerConfig),
        "fusion_encoder_config": SubConfigSpec(config_class=NanoEmoXFusionConfig),
        "text_config": SubConfigSpec(config_class=AutoConfig, model_type="qwen2", init_kwargs=QWEN25_1_5B),
    }

    vision_config: dict | PreTrainedConfig | None = None
    audio_config: dict | PreTrainedConfig | None = None
    face_config: dict | PreTrainedConfig | None = None
    qformer_config: dict | PreTrainedConfig | None = None
    fusion_encoder_config: dict | PreTrainedConfig | None = None
    text_config: dict | PreTrainedConfig | None = None
    video_token_id: int = 151665
    audio_token_id: int = 151666
    face_token_id: int = 151667
    fusion_token_id: int = 151668
    vision_feature_layer: int = -2
    vision_feature_select: str = "all"
    audio_feature_layers: list[int] | tuple[int, ...] = (-4, -3, -2, -1)
    max_frames: int = 32
    projector_hidden_act: str = "gelu"
    adapter_style: str = "heterogeneous"
    face_adapter_hidden_size: int = 768
    face_adapter_dropout: float = 0.1
    freeze_encoders: bool = True
    freeze_language_model: bool = True
    lora_preset: str = "paper"
    lora_r: int | None = None
    lora_alpha: int | None = None
    lora_dropout: float | None = None
    lora_target_modules: str = LORA_TARGET_REGEX
    initializer_range: float = 0.02
    tie_word_embeddings: bool = True
    trained_tasks: list[str] | None = None

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        # The LM decides whether its output head is tied to its input embedding.
        self.tie_word_embeddings = bool(getattr(self.text_config, "tie_word_embeddings", False))
        self._validate()

    # ------------------------------------------------------------------ validation
    def _validate(self) -> None:
        for field, value in (
            ("vision_feature_select", self.vision_feature_select),
            ("fusion_encoder_config.vision_feature_select", self.fusion_encoder_config.vision_feature_select),
        ):
            if value not in ("all", "cls"):
                raise ValueError(f"NanoEmoXConfig.{field} must be 'all' or 'cls', got {value!r}")
        if self.adapter_style not in ADAPTER_STYLES:
            raise ValueError(f"NanoEmoXConfig.adapter_style must be one of {ADAPTER_STYLES}, got {self.adapter_style!r}")
        if self.lora_preset not in LORA_PRESETS:
            raise ValueError(f"NanoEmoXConfig.lora_preset must be one of {sorted(LORA_PRESETS)}, got {self.lora_preset!r}")
        audio_layers, vision_layers = list(self.fusion_encoder_config.audio_layers), list(self.fusion_encoder_config.vision_layers)
        if len(audio_layers) != len(vision_layers) or not audio_layers:
            raise ValueError(
                "fusion_encoder_config.audio_layers and fusion_encoder_config.vision_layers pair one speech layer with one visual "
                f"layer per expert and must have the same non-zero length, got {audio_layers} and {vision_layers}"
            )
        for name, layers, depth in (
            ("fusion_encoder_config.audio_layers", audio_layers, self.audio_config.num_hidden_layers),
            ("fusion_encoder_config.vision_layers", vision_layers, self.vision_config.num_hidden_layers),
        ):
            bad = [layer for layer in layers if not 0 <= layer <= depth]
            if bad:
                raise ValueError(f"{name}={layers} has indices outside 0..{depth} (the encoder has {depth} layers)")
        depth = self.audio_config.num_hidden_layers
        bad = [layer for layer in self.audio_feature_layers if not -(depth + 1) <= layer <= depth]
        if bad:
            raise ValueError(f"audio_feature_layers={list(self.audio_feature_layers)} is outside the {depth}-layer audio tower")
        vdepth = self.vision_config.num_hidden_layers
        if not -(vdepth + 1) <= self.vision_feature_layer <= vdepth:
            raise ValueError(f"vision_feature_layer={self.vision_feature_layer} is outside the {vdepth}-layer vision tower")
        ids = {
            "video_token_id": self.video_token_id,
            "audio_token_id": self.audio_token_id,
            "face_token_id": self.face_token_id,
            "fusion_token_id": self.fusion_token_id,
        }
        if len(set(ids.values())) != len(ids):
            raise ValueError(f"placeholder token ids must be distinct, got {ids}")

    # ------------------------------------------------------------------ derived sizes
    @property
    def num_video_tokens(self) -> int:
        return self.qformer_config.num_visual_query_tokens

    @property
    def num_audio_tokens(self) -> int:
        return self.qformer_config.num_speech_query_tokens

    @property
    def num_face_tokens(self) -> int:
        return self.face_config.num_temporal_queries

    @property
    def num_fusion_tokens(self) -> int:
        return self.fusion_encoder_config.num_fusion_tokens

    @property
    def placeholder_token_ids(self) -> dict[str, int]:
        return {
            "video": self.video_token_id,
            "audio": self.audio_token_id,
            "face": self.face_token_id,
            "fusion": self.fusion_token_id,
        }

    def get_lora_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``peft.LoraConfig`` (LM only): the preset, then any single overrides."""
        kwargs = dict(LORA_PRESETS[self.lora_preset])
        for key, value in (("r", self.lora_r), ("lora_alpha", self.lora_alpha), ("lora_dropout", self.lora_dropout)):
            if value is not None:
                kwargs[key] = value
        kwargs["target_modules"] = self.lora_target_modules
        # No `task_type`: PEFT's CAUSAL_LM wrapper rewrites `input_ids`/`inputs_embeds`, which would
        # bypass the placeholder splicing of the multimodal forward. Wrap the whole model untyped.
        return kwargs

    # ------------------------------------------------------------------ presets
    @classmethod
    def tiny(cls, **overrides) -> "NanoEmoXConfig":
        """A ~150K-parameter configuration with the full architecture (builds in milliseconds), for tests and smoke runs.

        Token ids match ``NanoEmoXProcessor.tiny()`` (special tokens first: 0 pad, 1 ``<|im_start|>``,
        2 ``<|im_end|>``, 3..6 the placeholders).
        """
        kwargs: dict[str, Any] = copy.deepcopy(TINY_PRESET)
        for key, value in overrides.items():
            if isinstance(value, dict) and isinstance(kwargs.get(key), dict):
                merged = copy.deepcopy(kwargs[key])
                merged.update(value)
                kwargs[key] = merged
            else:
                kwargs[key] = value
        return cls(**kwargs)

    @classmethod
    def public_code_variant(cls, **overrides) -> "NanoEmoXConfig":
        """Full size with the public reference code's choices: CLS-only visual features, LoRA r=16/alpha=32,
        no temporal position embedding in the face branch (its heterogeneous adapters are the default already)."""
        config = cls(**overrides)
        config.vision_feature_select = "cls"
        config.fusion_encoder_config.vision_feature_select = "cls"
        config.face_config.use_temporal_position_embeddings = False
        config.lora_preset = "public_code"
        return config


# Processor field -> where the model config keeps it (a path into config.json, so a plain dict is checked the same way).
PROCESSOR_TOKEN_FIELDS = {
    "num_video_tokens": ("qformer_config", "num_visual_query_tokens"),
    "num_audio_tokens": ("qformer_config", "num_speech_query_tokens"),
    "num_face_tokens": ("face_config", "num_temporal_queries"),
    "num_fusion_tokens": ("fusion_encoder_config", "num_fusion_tokens"),
}


def _config_value(config, path):
    for key in path:
        config = config.get(key) if isinstance(config, dict) else getattr(config, key, None)
    return config


def processor_token_counts(config) -> dict[str, int]:
    """``{"num_video_tokens": ..., ...}``: what a processor must expand each placeholder to for ``config`` (a
    ``NanoEmoXConfig`` or its ``config.json`` dict)."""
    return {field: int(_config_value(config, path)) for field, path in PROCESSOR_TOKEN_FIELDS.items()}


def processor_config_mismatches(config, processor_values: dict, placeholder_ids: dict | None = None) -> list[str]:
    """Where a processor (its ``processor_config.json`` values, and the tokenizer's placeholder ids) disagrees with
    the model ``config``: one ``"field: processor X, model Y"`` line per difference; [] when they agree."""
    problems = [
        f"{field}: processor {processor_values.get(field)}, model {value}"
        for field, value in processor_token_counts(config).items()
        if processor_values.get(field) is not None and int(processor_values[field]) != value
    ]
    max_frames = _config_value(config, ("max_frames",))
    frames = processor_values.get("num_frames")
    if frames is not None and max_frames is not None and int(frames) > int(max_frames):
        problems.append(f"num_frames: processor {frames}, more than the model's max_frames {max_frames}")
    for name, token_id in (placeholder_ids or {}).items():
        model_id = _config_value(config, (f"{name}_token_id",))
        if model_id is not None and int(model_id) != int(token_id):
            problems.append(f"{name}_token_id: tokenizer {token_id}, model {model_id}")
    return problems


def read_json_next_to(name_or_path, filename: str, load_kwargs: dict) -> dict | None:
    """``filename`` of a model folder or Hub repo as a dict, or None when it has none (no error)."""
    import json

    from transformers.utils import cached_file

    if name_or_path is None:
        return None
    hub_keys = ("cache_dir", "force_download", "local_files_only", "token", "revision", "subfolder")
    path = cached_file(
        name_or_path, filename, _raise_exceptions_for_missing_entries=False, _raise_exceptions_for_connection_errors=False,
        **{k: v for k, v in load_kwargs.items() if k in hub_keys},
    )  # fmt: skip
    if path is None:
        return None
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


__all__ = ["NanoEmoXConfig", "NanoEmoXFaceConfig", "NanoEmoXFusionConfig", "NanoEmoXQFormerConfig"]
