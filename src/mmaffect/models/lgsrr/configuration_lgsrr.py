"""Configuration of LGSRR (LLM-Guided Semantic Relational Reasoning, EMNLP 2025)."""

from __future__ import annotations

from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

DEFAULT_ASPECTS = ("actions", "expressions", "interactions")
POOLINGS = ("cls", "mean", "mean_padded")
INCONSISTENCY_SCALES = ("sample", "batch")
FUSIONS = ("relational", "sum", "or", "and", "not", "combination")
PACKING_MODES = ("auto", "varlen", "block_diagonal", "separate", "none")


class LGSRRConfig(PreTrainedConfig):
    r"""Configuration of [`LGSRRModel`] / [`LGSRRForSequenceClassification`].

    LGSRR encodes an utterance's text and K LLM-written descriptions of the clip ("aspects": the
    speakers' actions, facial expressions and interactions by default) with one BERT-style encoder,
    pools each into a feature, and fuses them with three logic-inspired relations: relative
    importance (a weight network trained with a NeuralNDCG ranking loss against the LLM's ranking),
    complementarity (cosine similarity) and inconsistency (mean squared difference).

    Args:
        text_config (`dict` or `PreTrainedConfig`, *optional*):
            Config of the encoder (any `AutoModel` encoder). Defaults to a BERT-base config.
        aspects (`list[str]`, *optional*, defaults to `["actions", "expressions", "interactions"]`):
            Names of the K ≥ 1 description aspects, in the order the inputs use.
        pooling (`str`, defaults to `"cls"`):
            `"cls"` (first token), `"mean"` (mean over real tokens, paper eq. 5-6) or
            `"mean_padded"` (mean over every position including padding, as the reference code's
            `.mean(dim=1)` does - it makes a feature depend on how far the batch was padded).
        share_encoder (`bool`, defaults to `True`):
            One encoder for text and descriptions (the reference code), or a second encoder of the
            same config for the descriptions.
        weight_hidden_dim (`int`, defaults to 768), weight_dropout (`float`, defaults to 0.4):
            Hidden size and dropout of the importance weight network (eq. 7-8).
        ranking_loss_weight (`float`, defaults to 1.0): λ of eq. 18.
        ranking_temperature (`float`, defaults to 1.0): NeuralSort temperature τ of eq. 21.
        ranking_relevance (`list[float]`, defaults to `[5, 3, 2, 1]`):
            Relevance of the text, then of the aspects ranked 1st, 2nd, 3rd, ... by the LLM. Needs
            K + 1 entries.
        ranking_powered_relevance (`bool`, defaults to `True`): gain `2^rel - 1` instead of `rel`.
        inconsistency_scale (`str`, defaults to `"sample"`):
            `"sample"`: γ_M is computed per sample as in eq. 14; `"batch"`: one mean squared error
            over the whole batch per aspect (`F.mse_loss(F_T, F_M)` in the reference code), which
            makes a sample's prediction depend on the other samples of its batch.
        use_importance, use_complementarity, use_inconsistency, use_ranking_loss (`bool`):
            Ablation switches of Tables 2 and 8. Without importance, α is not computed and every
            feature has weight 1 (so no ranking loss either); without complementarity, β = 1;
            without inconsistency, the penalty term is dropped.
        fusion (`str`, defaults to `"relational"`):
            `"relational"` (LGSRR), `"sum"` (Table 2 "w/o SRR": F_T + Σ F_M), and the classic
            relations of §4.6 / Table 5: `"or"` (mean of all features), `"and"` (Hadamard product),
            `"not"` (all pairwise differences, concatenated, through Linear + GELU) and
            `"combination"` (or, and, not concatenated, through Linear + GELU).
        classifier_dropout (`float`, defaults to 0.0): dropout on the fused feature before the
            classifier (the reference code uses none).
        sequence_packing (`str`, defaults to `"auto"`):
            How the encoder sees the text and the K descriptions of a batch (all modes compute the same
            features, up to float rounding):

            - `"varlen"`: only real tokens. The real tokens of every sequence are laid end to end in
              one row (projections, feed-forward and LayerNorm run on real tokens only), position ids
              restart at 0 for each sequence, and the attention is computed per sequence by an
              attention function registered in transformers' `AttentionInterface`. Needs an encoder
              that takes absolute `position_ids` starting at 0 and dispatches attention through
              `config._attn_implementation` (BERT, MiniLM, ...; not RoBERTa-style position offsets).
            - `"block_diagonal"` (or `True`): the real tokens are packed into rows of
              `packing_row_length` tokens with a block-diagonal 4-D attention mask.
            - `"separate"`: the text and the descriptions are padded to their own longest length,
              two encoder calls.
            - `"none"` (or `False`): text and descriptions padded to one common length, one call.
            - `"auto"`: `"varlen"` for BERT encoders (and pooling other than `"mean_padded"`),
              `"none"` otherwise.

            `"varlen"` and `"block_diagonal"` remove padding, so they cannot be combined with
            `"mean_padded"` pooling. Returning hidden states or attentions uses the padded path.
        packing_row_length (`int`, defaults to 256): tokens per packed row of `"block_diagonal"` (at
            least the longest sequence of the batch is used).
        packing_multiple (`int`, defaults to 64): `"varlen"` pads the packed token count up to a
            multiple of this (filler tokens attend to nothing and are dropped), so the encoder sees
            few distinct shapes: oneDNN (bf16) builds a kernel per new shape, `torch.compile` a graph.
        initializer_range (`float`, defaults to 0.02): std of the heads' initial weights.
    """

    model_type = "lgsrr"
    sub_configs_defaults = {"text_config": SubConfigSpec(config_class=AutoConfig, model_type="bert")}

    text_config: dict | PreTrainedConfig | None = None
    aspects: list[str] | None = None
    pooling: str = "cls"
    share_encoder: bool = True
    weight_hidden_dim: int = 768
    weight_dropout: float = 0.4
    ranking_loss_weight: float = 1.0
    ranking_temperature: float = 1.0
    ranking_relevance: list[float] | None = None
    ranking_powered_relevance: bool = True
    inconsistency_scale: str = "sample"
    use_importance: bool = True
    use_complementarity: bool = True
    use_inconsistency: bool = True
    use_ranking_loss: bool = True
    fusion: str = "relational"
    classifier_dropout: float = 0.0
    sequence_packing: str | bool = "auto"
    packing_row_length: int = 256
    packing_multiple: int = 64
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if self.id2label is not None and not self.label2id:
            self.label2id = {label: idx for idx, label in self.id2label.items()}
        self.aspects = list(DEFAULT_ASPECTS if self.aspects is None else self.aspects)
        if len(self.aspects) < 1:
            raise ValueError("LGSRRConfig.aspects needs at least one aspect name")
        if len(set(self.aspects)) != len(self.aspects):
            raise ValueError(f"LGSRRConfig.aspects has repeated names: {self.aspects}")
        if self.ranking_relevance is None:
            # text first (5), then the aspects ranked 1st, 2nd, 3rd (3, 2, 1); more aspects go on to 0.
            k = len(self.aspects)
            self.ranking_relevance = ([5.0, 3.0, 2.0, 1.0] + [0.0] * max(0, k - 3))[: k + 1]
        self.ranking_relevance = [float(v) for v in self.ranking_relevance]
        if len(self.ranking_relevance) != len(self.aspects) + 1:
            raise ValueError(
                f"LGSRRConfig.ranking_relevance needs {len(self.aspects) + 1} values (text + {len(self.aspects)} "
                f"aspects), got {len(self.ranking_relevance)}: {self.ranking_relevance}"
            )
        for name, value, allowed in (
            ("pooling", self.pooling, POOLINGS),
            ("inconsistency_scale", self.inconsistency_scale, INCONSISTENCY_SCALES),
            ("fusion", self.fusion, FUSIONS),
        ):
            if value not in allowed:
                raise ValueError(f"LGSRRConfig.{name} must be one of {allowed}, got {value!r}")
        if isinstance(self.sequence_packing, bool):  # configs saved before the modes had names
            self.sequence_packing = "block_diagonal" if self.sequence_packing else "none"
        if self.sequence_packing not in PACKING_MODES:
            raise ValueError(f"LGSRRConfig.sequence_packing must be one of {PACKING_MODES}, got {self.sequence_packing!r}")
        if self.sequence_packing in ("varlen", "block_diagonal") and self.pooling == "mean_padded":
            raise ValueError(
                f"LGSRRConfig.sequence_packing={self.sequence_packing!r} removes padding, so it cannot be used with "
                "pooling='mean_padded' (use 'none', 'separate' or 'auto')"
            )
        if self.packing_multiple < 1 or self.packing_row_length < 1:
            raise ValueError(
                f"LGSRRConfig.packing_multiple ({self.packing_multiple}) and packing_row_length "
                f"({self.packing_row_length}) must be >= 1"
            )
        if self.ranking_temperature <= 0:
            raise ValueError(f"LGSRRConfig.ranking_temperature must be > 0, got {self.ranking_temperature}")

    @classmethod
    def tiny(cls, **kwargs) -> "LGSRRConfig":
        """A randomly initialisable config that builds and runs in milliseconds (tests, demos).

        The encoder is a 2-layer BERT of width 32 over a 128-token vocabulary; any field may be
        overridden, e.g. `LGSRRConfig.tiny(num_labels=5, fusion="sum")`.
        """
        text_config = dict(
            model_type="bert", vocab_size=128, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=64, max_position_embeddings=128, hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0,
        )
        text_config.update(kwargs.pop("text_config", {}) or {})
        kwargs.setdefault("weight_hidden_dim", 16)
        return cls(text_config=text_config, **kwargs)

    @property
    def num_aspects(self) -> int:
        return len(self.aspects)

    @property
    def hidden_size(self) -> int:
        return self.text_config.hidden_size


class LGSRRTextOnlyConfig(LGSRRConfig):
    r"""Configuration of [`LGSRRTextOnlyForSequenceClassification`], the text-only baseline of LGSRR.

    The same fields as [`LGSRRConfig`]; the baseline reads `text_config`, `pooling`, `sequence_packing`,
    `classifier_dropout` and the labels, so it pools the utterance exactly as an LGSRR model of the same
    config pools its text feature F_T, and the two differ only in the relational head and the descriptions.
    It has one encoder: `share_encoder` is always True. Its own `model_type` keeps `AutoModelForSequenceClassification`
    from loading a baseline folder as an LGSRR classifier.
    """

    model_type = "lgsrr_text_only"

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        self.share_encoder = True  # no descriptions, so no second encoder for them


__all__ = ["LGSRRConfig", "LGSRRTextOnlyConfig"]
