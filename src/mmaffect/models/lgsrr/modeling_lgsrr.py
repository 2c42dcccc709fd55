"""LGSRR: LLM-Guided Semantic Relational Reasoning (EMNLP 2025), as 🤗 transformers models.

Pipeline (paper §3.2-3.3): a BERT-style encoder reads the utterance text T and K LLM-written
descriptions D_1..D_K of the clip; pooling gives features F_T and F_M (eq. 4-6). Three relations
combine them:

* relative importance ("or"): a weight network scores every feature and a softmax over text + K
  aspects gives α (eq. 7-8); a NeuralNDCG loss aligns α with the LLM's ranking, the text fixed first
  (eq. 9, App. E);
* complementarity ("and"): β_M = cos(F_T, F_M) (eq. 10-11);
* inconsistency ("not"): γ_M = mean_d (F_T - F_M)^2 (eq. 13-14).

Fused feature and logits, as the reference implementation computes them:

    F = α_T · F_T + Σ_M α_M · β_M · F_M  -  Σ_M γ_M · (F_T - F_M),      logits = W · F + b

The paper's eq. 12 writes the complementarity term as Σ_M α_M · Concat(F_T, C_M), a 2d-dimensional
vector, while eq. 16 subtracts the d-dimensional F_Incons from it: the two are dimensionally
inconsistent, so the reference code's form above (text weighted by α_T instead of concatenated) is
the one implemented.

Classes: [`LGSRRPreTrainedModel`], [`LGSRRModel`] (encoder + pooling), [`LGSRRForSequenceClassification`]
(relations + classifier + losses), [`LGSRRTextOnlyForSequenceClassification`] (the text-only baseline: the same
text feature F_T, then a linear classifier). This folder is shipped as remote code by `save_pretrained`: it
imports only torch, transformers and its siblings.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AttentionInterface, AutoConfig, AutoModel, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput
from transformers.utils import ModelOutput

from .configuration_lgsrr import LGSRRConfig, LGSRRTextOnlyConfig
from .ranking_loss import neural_ndcg

PIPELINE_TASK = "multimodal-intent-recognition"
# Shipped next to the weights besides the modeling/configuration files save_pretrained copies itself:
# the processor and the pipeline (neither is imported by the model).
SHIPPED_FILES = ("processing_lgsrr.py", "pipeline_lgsrr.py")

__all__ = [
    "LGSRRPreTrainedModel",
    "LGSRRModel",
    "LGSRRForSequenceClassification",
    "LGSRRTextOnlyForSequenceClassification",
    "LGSRRModelOutput",
    "LGSRROutput",
]


@dataclass
class LGSRRModelOutput(ModelOutput):
    r"""
    text_embeds (`torch.FloatTensor` of shape `(batch_size, hidden_size)`): pooled text feature F_T.
    aspect_embeds (`torch.FloatTensor` of shape `(batch_size, num_aspects, hidden_size)`): pooled F_M.
    hidden_states (`tuple(torch.FloatTensor)`, *optional*): the encoder's hidden states for the text
        (one `(batch_size, text_length, hidden_size)` tensor per layer + embeddings).
    attentions (`tuple(torch.FloatTensor)`, *optional*): the encoder's attention maps for the text.
    """

    text_embeds: torch.FloatTensor | None = None
    aspect_embeds: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class LGSRROutput(ModelOutput):
    r"""
    loss (`torch.FloatTensor` of shape `()`, *optional*): cross-entropy (+ λ · NeuralNDCG when
        `aspect_ranks` are given), returned with `labels`.
    logits (`torch.FloatTensor` of shape `(batch_size, num_labels)`).
    importance (`torch.FloatTensor` of shape `(batch_size, 1 + num_aspects)`, *optional*): softmax
        weights α, text first; None when `use_importance=False` or for the classic-relation fusions.
    complementarity (`torch.FloatTensor` of shape `(batch_size, num_aspects)`, *optional*): β_M.
    inconsistency (`torch.FloatTensor` of shape `(batch_size, num_aspects)`, *optional*): γ_M (in
        `"batch"` mode the same value repeated over the batch).
    text_embeds (`torch.FloatTensor` of shape `(batch_size, hidden_size)`).
    aspect_embeds (`torch.FloatTensor` of shape `(batch_size, num_aspects, hidden_size)`).
    classification_loss, ranking_loss (`torch.FloatTensor` of shape `()`, *optional*): the two terms.
    hidden_states, attentions: as in [`LGSRRModelOutput`].
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    importance: torch.FloatTensor | None = None
    complementarity: torch.FloatTensor | None = None
    inconsistency: torch.FloatTensor | None = None
    text_embeds: torch.FloatTensor | None = None
    aspect_embeds: torch.FloatTensor | None = None
    classification_loss: torch.FloatTensor | None = None
    ranking_loss: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


def hub_id_of(name_or_path) -> str | None:
    """The Hub id of an encoder given as a Hub id or a local folder; None for a folder that is not a
    Hub cache snapshot (``.../models--org--name/snapshots/<sha>``): a config never records a local path."""
    name = str(name_or_path)
    if not os.path.exists(name):
        return name
    for part in reversed(os.path.abspath(name).split(os.sep)):
        if part.startswith("models--"):
            return part[len("models--"):].replace("--", "/")
    return None


def _build_encoder(text_config) -> PreTrainedModel:
    """Encoder without its pooler: LGSRR pools itself, and an unused pooler would leave parameters
    without gradient (which DDP rejects)."""
    try:
        return AutoModel.from_config(text_config, add_pooling_layer=False)
    except TypeError:  # encoders that have no pooler option
        return AutoModel.from_config(text_config)


def _right_pad(tensor: torch.Tensor, length: int, value: int) -> torch.Tensor:
    if tensor.shape[-1] == length:
        return tensor
    return F.pad(tensor, (0, length - tensor.shape[-1]), value=value)


VARLEN_ATTENTION = "lgsrr_varlen_sdpa"
# Encoders whose embeddings take absolute position ids from 0 and whose layers dispatch attention
# through `config._attn_implementation`: `sequence_packing="auto"` picks "varlen" for these.
VARLEN_ENCODER_TYPES = ("bert",)


class _PairedGather(torch.autograd.Function):
    """`rows = x[index]` (an index equal to `len(x)` reads a zero row) for an `index` whose `inverse`
    maps the rows back: the gradient is again a gather, `grad[inverse]`, never a scatter-add (which is
    serial on a CPU, and what `index_select`'s own gradient becomes under torch.compile)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, index: torch.Tensor, inverse: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(inverse)
        return _gather_rows(x, index)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (inverse,) = ctx.saved_tensors
        return _gather_rows(grad, inverse), None, None


def _gather_rows(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    return torch.cat([x, x.new_zeros(1, *x.shape[1:])]).index_select(0, index)


def varlen_sdpa_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    lgsrr_block_index: torch.Tensor | None = None,
    lgsrr_token_index: torch.Tensor | None = None,
    lgsrr_key_mask: torch.Tensor | None = None,
    **kwargs,
):
    """Attention over packed sequences, as a transformers attention function (`AttentionInterface`).

    query, key, value `(1, heads, T, head_dim)`: the real tokens of N sequences laid end to end,
    possibly followed by filler tokens. The attention itself is computed per sequence in an `(N, L)`
    padded layout with masked keys, exactly as padded attention; the rest of the layer (projections,
    feed-forward, LayerNorm) runs on the T packed tokens. The layout comes from `LGSRRModel`:
    `lgsrr_block_index` `(N·L,)` (the packed token of each padded slot, T for padding),
    `lgsrr_token_index` `(T,)` (the slot of each packed token, N·L for filler) and `lgsrr_key_mask`
    `(N, 1, 1, L)` (real keys). Filler tokens get a zero output. Returns `((1, T, heads, head_dim), None)`.

    Without the `lgsrr_*` arguments (a padded call of the same encoder) it runs the encoder's
    previous implementation (`sdpa`, `eager`, ...), remembered by `_use_varlen_attention`.
    """
    if lgsrr_block_index is None or lgsrr_token_index is None or lgsrr_key_mask is None:
        previous = getattr(module, "_lgsrr_padded_attention", "sdpa")
        if previous == "eager":  # the model's own eager function (transformers registers no global one)
            padded_attention = getattr(sys.modules[type(module).__module__], "eager_attention_forward", None)
        else:
            padded_attention = AttentionInterface._global_mapping.get(previous)
        if padded_attention is None:
            raise ValueError(f"{type(module).__name__}: no attention function {previous!r} for a padded call")
        return padded_attention(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout, **kwargs)

    num_seqs, length = lgsrr_key_mask.shape[0], lgsrr_key_mask.shape[-1]
    _, heads, total, head_dim = query.shape

    def to_blocks(x):  # (1, H, T, D) -> (N, H, L, D)
        blocks = _PairedGather.apply(x[0].transpose(0, 1), lgsrr_block_index, lgsrr_token_index)
        return blocks.view(num_seqs, length, heads, head_dim).transpose(1, 2)

    out = F.scaled_dot_product_attention(
        to_blocks(query), to_blocks(key), to_blocks(value), attn_mask=lgsrr_key_mask, dropout_p=dropout, scale=scaling
    )
    out = out.transpose(1, 2).reshape(num_seqs * length, heads, head_dim)
    return _PairedGather.apply(out, lgsrr_token_index, lgsrr_block_index)[None], None


AttentionInterface.register(VARLEN_ATTENTION, varlen_sdpa_attention_forward)


def _use_varlen_attention(encoder: nn.Module) -> None:
    """Switch `encoder` to `varlen_sdpa_attention_forward` for good, remembering its implementation
    for padded calls on every sub-module. Switching for good (not around each call) keeps gradient
    checkpointing right: its recomputation in the backward pass reads the implementation again."""
    config = encoder.config
    if config._attn_implementation == VARLEN_ATTENTION:
        return
    previous = config._attn_implementation or "sdpa"
    for module in encoder.modules():
        module._lgsrr_padded_attention = previous
    config._attn_implementation = VARLEN_ATTENTION


def _check_right_padded(mask: torch.Tensor, mode: str) -> None:
    if bool((mask[:, 1:] & ~mask[:, :-1]).any()):
        raise ValueError(f"sequence_packing={mode!r} needs right-padded inputs (attention masks of the form 1…1 0…0)")
    if bool((~mask[:, 0]).any()):
        raise ValueError(f"sequence_packing={mode!r} got an empty sequence (attention mask all zeros)")


class LGSRRPreTrainedModel(PreTrainedModel):
    config_class = LGSRRConfig
    base_model_prefix = "lgsrr"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_attention_backend = True

    # What `save_pretrained` records besides the weights: the Auto classes that load the folder as remote
    # code, the custom pipeline, and the extra files copied next to the weights (the text-only baseline
    # overrides all three).
    _saved_auto_map = {"AutoModel": "modeling_lgsrr.LGSRRModel",
                       "AutoModelForSequenceClassification": "modeling_lgsrr.LGSRRForSequenceClassification"}
    _saved_pipelines = {
        PIPELINE_TASK: {"impl": "pipeline_lgsrr.MultimodalIntentRecognitionPipeline",
                        "pt": ["AutoModelForSequenceClassification"], "type": "multimodal"},
    }
    _saved_files = SHIPPED_FILES

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """``PreTrainedModel.from_pretrained``; a weights file that safetensors cannot read (truncated by a
        kill or a full disk, corrupt) is an ``OSError`` naming the file: safetensors' own error has no path."""
        try:
            return super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        except Exception as error:
            if type(error).__name__ != "SafetensorError":
                raise
            folder = os.path.join(str(pretrained_model_name_or_path), kwargs.get("subfolder") or "")
            names = sorted(n for n in os.listdir(folder) if n.endswith(".safetensors")) if os.path.isdir(folder) else []
            where = ", ".join(os.path.join(folder, n) for n in names) or f"{pretrained_model_name_or_path} (model.safetensors)"
            raise OSError(f"{where}: cannot read the weights, the file is truncated or corrupt ({error}); "
                          "save or download the model again") from error

    def save_pretrained(self, save_directory, *args, **kwargs):
        # `save_pretrained` only records the saved class in `auto_map`; list every model class, so each Auto
        # class named in `_saved_auto_map` loads the folder as remote code.
        auto_map = dict(getattr(self.config, "auto_map", None) or {})
        for auto_class, name in self._saved_auto_map.items():
            auto_map.setdefault(auto_class, name)
        self.config.auto_map = auto_map
        # `pipeline("multimodal-intent-recognition", model=folder, trust_remote_code=True)` reads this
        # entry and loads the pipeline class from pipeline_lgsrr.py, copied next to the weights below.
        if self._saved_pipelines:
            self.config.custom_pipelines = self._saved_pipelines
        result = super().save_pretrained(save_directory, *args, **kwargs)
        if kwargs.get("is_main_process", True):
            here = os.path.dirname(os.path.abspath(__file__))
            for name in self._saved_files:
                source = os.path.join(here, name)
                if os.path.isfile(source):
                    shutil.copyfile(source, os.path.join(save_directory, name))
        return result


class LGSRRModel(LGSRRPreTrainedModel):
    """Encoder + pooling: text and K descriptions → F_T `(B, d)` and F_M `(B, K, d)` (eq. 4-6).

    How the encoder sees the batch is `config.sequence_packing` (`"auto"`: only real tokens, packed,
    for BERT encoders): with `share_encoder=True` the text and all K descriptions go through the
    encoder in ONE call (packed, or padded to a common length), except in `"separate"` mode.
    """

    def __init__(self, config: LGSRRConfig):
        super().__init__(config)
        self.text_encoder = _build_encoder(config.text_config)
        self.aspect_encoder = None if config.share_encoder else _build_encoder(config.text_config)
        self.post_init()

    def get_input_embeddings(self):
        return self.text_encoder.get_input_embeddings()

    def set_input_embeddings(self, value):
        self.text_encoder.set_input_embeddings(value)

    def load_encoder_weights(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Copy a pretrained encoder's weights into the text (and aspect) encoder.

        Raises if any encoder weight is missing; only pooler weights may be left over.
        """
        for encoder in (self.text_encoder, self.aspect_encoder):
            if encoder is None:
                continue
            result = encoder.load_state_dict(state_dict, strict=False)
            unexpected = [k for k in result.unexpected_keys if not k.startswith("pooler.")]
            if result.missing_keys or unexpected:
                raise ValueError(
                    f"pretrained encoder weights do not fit the LGSRR encoder: missing {result.missing_keys}, "
                    f"unexpected {unexpected}"
                )

    def _pool(self, hidden: torch.Tensor, mask: torch.Tensor, length: int) -> torch.Tensor:
        """hidden `(N, L, d)`, mask `(N, L)` → `(N, d)`; `length` is the input's own padded length."""
        if self.config.pooling == "cls":
            return hidden[:, 0]
        if self.config.pooling == "mean_padded":
            return hidden[:, :length].mean(dim=1)
        weights = mask[:, :, None].to(hidden.dtype)
        return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)

    def _stack_text_and_aspects(self, input_ids, attention_mask, token_type_ids, flat_ids, flat_mask, flat_types):
        """Right-pad the text `(B, Lt)` and the flattened descriptions `(B·K, La)` to a common length
        and stack them into one `(B + B·K, L)` batch: ids, attention mask, token types (or None)."""
        length = max(input_ids.shape[1], flat_ids.shape[1])
        pad_id = self.config.text_config.pad_token_id or 0
        ids = torch.cat([_right_pad(input_ids, length, pad_id), _right_pad(flat_ids, length, pad_id)])
        mask = torch.cat([_right_pad(attention_mask, length, 0), _right_pad(flat_mask, length, 0)])
        types = None
        if token_type_ids is not None or flat_types is not None:
            text_types = token_type_ids if token_type_ids is not None else torch.zeros_like(input_ids)
            aspect_types = flat_types if flat_types is not None else torch.zeros_like(flat_ids)
            types = torch.cat([_right_pad(text_types, length, 0), _right_pad(aspect_types, length, 0)])
        return ids, mask, types

    def packing_mode(self) -> str:
        """The `sequence_packing` mode in use, with `"auto"` resolved for this encoder and pooling."""
        mode = self.config.sequence_packing
        if mode == "auto":
            supported = self.config.text_config.model_type in VARLEN_ENCODER_TYPES
            mode = "varlen" if supported and self.config.pooling != "mean_padded" else "none"
        return mode

    def _encode_varlen(self, encoder, ids, mask, types):
        """Encode the right-padded sequences `ids`/`mask`/`types` `(N, L)` on real tokens only and pool them
        → `(N, d)` (see `LGSRRConfig.sequence_packing`, "varlen").

        The real tokens go end to end into one `(1, T)` row (T rounded up to `packing_multiple` with
        filler), position ids restart at 0 for each sequence, and `varlen_sdpa_attention_forward` keeps
        each sequence's attention to itself; the hidden states are then put back into the padded layout
        and pooled exactly as the padded path pools them.
        """
        mask = mask.bool()
        _check_right_padded(mask, "varlen")
        length = int(mask.sum(dim=1).max())
        ids, mask = ids[:, :length], mask[:, :length]
        slots = mask.flatten().nonzero().squeeze(1)  # each real token's slot in the (N, L) layout, in order
        real = slots.shape[0]
        total = real + (-real % int(self.config.packing_multiple))
        token_index = torch.full((total,), mask.numel(), dtype=torch.long, device=ids.device)  # filler: no slot
        token_index[:real] = slots
        block_index = torch.full((mask.numel(),), total, dtype=torch.long, device=ids.device)  # padding: no token
        block_index[slots] = torch.arange(real, device=ids.device)
        pad_id = self.config.text_config.pad_token_id or 0

        def packed(values, fill):
            return F.pad(values.flatten()[slots], (0, total - real), value=fill)[None]

        kwargs = {
            "input_ids": packed(ids, pad_id),
            "position_ids": packed(torch.arange(length, device=ids.device).expand_as(ids), 0),
            "lgsrr_block_index": block_index,
            "lgsrr_token_index": token_index,
            "lgsrr_key_mask": mask[:, None, None, :],
            "return_dict": True,
        }
        if types is not None:
            kwargs["token_type_ids"] = packed(types[:, :length], 0)
        _use_varlen_attention(encoder)
        hidden = encoder(**kwargs).last_hidden_state[0]
        blocks = _PairedGather.apply(hidden, block_index, token_index)
        return self._pool(blocks.view(*mask.shape, -1), mask, length)

    def _encode_packed(self, input_ids, attention_mask, token_type_ids, flat_ids, flat_mask, flat_types):
        """Encode text + descriptions in ONE call on packed rows (`LGSRRConfig.sequence_packing`, "block_diagonal").

        The real tokens of every sequence are laid end to end in rows of `packing_row_length`; a
        block-diagonal mask keeps each sequence attending to itself only, and position ids restart
        at 0 for each sequence, so every token sees exactly what it would see unpadded.
        Returns pooled text `(B, d)` and aspect `(B · K, d)` features.
        """
        batch = input_ids.shape[0]
        ids, mask, types = self._stack_text_and_aspects(
            input_ids, attention_mask, token_type_ids, flat_ids, flat_mask, flat_types
        )
        length, mask = ids.shape[1], mask.bool()
        pad_id = self.config.text_config.pad_token_id or 0
        _check_right_padded(mask, "block_diagonal")
        lengths = mask.sum(dim=1)

        # First-fit in order: assign each sequence a row and an offset inside it (host-side, N is small).
        row_length = max(int(self.config.packing_row_length), int(lengths.max()))
        rows, offsets, used = [], [], []
        for n in lengths.tolist():
            for r, filled in enumerate(used):
                if filled + n <= row_length:
                    rows.append(r), offsets.append(filled)
                    used[r] = filled + n
                    break
            else:
                rows.append(len(used)), offsets.append(0)
                used.append(n)
        device = ids.device
        starts = torch.tensor(rows, device=device) * row_length + torch.tensor(offsets, device=device)
        num_seqs = lengths.shape[0]
        seq_of_token = torch.repeat_interleave(torch.arange(num_seqs, device=device), lengths)
        first_token = torch.cumsum(lengths, 0) - lengths
        pos_in_seq = torch.arange(seq_of_token.shape[0], device=device) - first_token[seq_of_token]
        dest = starts[seq_of_token] + pos_in_seq
        src = seq_of_token * length + pos_in_seq

        total = len(used) * row_length
        packed_ids = ids.new_full((total,), pad_id)
        packed_ids[dest] = ids.flatten()[src]
        positions = ids.new_zeros(total)
        positions[dest] = pos_in_seq
        segments = ids.new_full((total,), -1)  # padding forms its own segment (no all-masked rows)
        segments[dest] = seq_of_token
        segments = segments.view(len(used), row_length)
        block_mask = (segments[:, :, None] == segments[:, None, :])[:, None]  # (R, 1, C, C)
        packed_types = None
        if types is not None:
            packed_types = ids.new_zeros(total)
            packed_types[dest] = types.flatten()[src]
            packed_types = packed_types.view(len(used), row_length)

        kwargs = {
            "input_ids": packed_ids.view(len(used), row_length),
            "attention_mask": block_mask,
            "position_ids": positions.view(len(used), row_length),
            "return_dict": True,
        }
        if packed_types is not None:
            kwargs["token_type_ids"] = packed_types
        hidden = self.text_encoder(**kwargs).last_hidden_state.reshape(total, -1)

        if self.config.pooling == "cls":
            pooled = hidden[starts]
        else:
            token_hidden = hidden[dest]
            summed = torch.zeros(num_seqs, hidden.shape[-1], device=device, dtype=token_hidden.dtype)
            summed = summed.index_add(0, seq_of_token, token_hidden)
            pooled = summed / lengths[:, None].to(summed.dtype)
        return pooled[:batch], pooled[batch:]

    def encode_text(self, input_ids, attention_mask=None, token_type_ids=None) -> torch.Tensor:
        """The text feature F_T `(batch, d)` alone (no descriptions): the same encoder, packing mode and
        pooling as `forward`'s `text_embeds` (equal within float rounding). The text-only baseline reads it."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if self.packing_mode() == "varlen":
            return self._encode_varlen(self.text_encoder, input_ids, attention_mask, token_type_ids)
        out = self._run(self.text_encoder, input_ids, attention_mask, token_type_ids, False, False)
        return self._pool(out.last_hidden_state, attention_mask, input_ids.shape[1])

    @staticmethod
    def _run(encoder, input_ids, attention_mask, token_type_ids, output_attentions, output_hidden_states):
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask, "return_dict": True}
        if token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        if output_attentions:
            kwargs["output_attentions"] = True
        if output_hidden_states:
            kwargs["output_hidden_states"] = True
        return encoder(**kwargs)

    def forward(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.LongTensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        aspect_input_ids: torch.LongTensor | None = None,
        aspect_attention_mask: torch.LongTensor | None = None,
        aspect_token_type_ids: torch.LongTensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        **kwargs,
    ) -> LGSRRModelOutput:
        r"""
        input_ids, attention_mask, token_type_ids (`(batch_size, text_length)`): the utterance text.
        aspect_input_ids, aspect_attention_mask, aspect_token_type_ids
            (`(batch_size, num_aspects, aspect_length)`): the K descriptions, in `config.aspects` order.
        """
        _check_text_and_aspects(self.config, input_ids, attention_mask, aspect_input_ids, aspect_attention_mask)
        batch, text_len = input_ids.shape
        num_aspects, aspect_len = aspect_input_ids.shape[1], aspect_input_ids.shape[2]
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if aspect_attention_mask is None:
            aspect_attention_mask = torch.ones_like(aspect_input_ids)
        flat_ids = aspect_input_ids.reshape(batch * num_aspects, aspect_len)
        flat_mask = aspect_attention_mask.reshape(batch * num_aspects, aspect_len)
        flat_types = None if aspect_token_type_ids is None else aspect_token_type_ids.reshape(batch * num_aspects, aspect_len)

        mode = "none" if (output_attentions or output_hidden_states) else self.packing_mode()
        hidden_states = attentions = None
        if mode == "varlen" and self.aspect_encoder is None:
            # One encoder call on the real tokens of the text and all descriptions.
            ids, mask, types = self._stack_text_and_aspects(
                input_ids, attention_mask, token_type_ids, flat_ids, flat_mask, flat_types
            )
            pooled = self._encode_varlen(self.text_encoder, ids, mask, types)
            text_embeds, aspect_embeds = pooled[:batch], pooled[batch:]
        elif mode == "varlen":
            text_embeds = self._encode_varlen(self.text_encoder, input_ids, attention_mask, token_type_ids)
            aspect_embeds = self._encode_varlen(self.aspect_encoder, flat_ids, flat_mask, flat_types)
        elif mode == "block_diagonal" and self.aspect_encoder is None:
            text_embeds, aspect_embeds = self._encode_packed(
                input_ids, attention_mask, token_type_ids, flat_ids, flat_mask, flat_types
            )
        elif self.aspect_encoder is None and mode != "separate":
            # One encoder call for text + all descriptions: pad both to a common length.
            ids, mask, types = self._stack_text_and_aspects(
                input_ids, attention_mask, token_type_ids, flat_ids, flat_mask, flat_types
            )
            out = self._run(self.text_encoder, ids, mask, types, output_attentions, output_hidden_states)
            hidden = out.last_hidden_state
            text_embeds = self._pool(hidden[:batch], mask[:batch], text_len)
            aspect_embeds = self._pool(hidden[batch:], mask[batch:], aspect_len)
            hidden_states = None if out.hidden_states is None else tuple(h[:batch, :text_len] for h in out.hidden_states)
            attentions = None if out.attentions is None else tuple(a[:batch, :, :text_len, :text_len] for a in out.attentions)
        else:  # two calls, each padded to its own length: "separate", or a second encoder for the descriptions
            aspect_encoder = self.aspect_encoder if self.aspect_encoder is not None else self.text_encoder
            out = self._run(
                self.text_encoder, input_ids, attention_mask, token_type_ids, output_attentions, output_hidden_states
            )
            aspect_out = self._run(aspect_encoder, flat_ids, flat_mask, flat_types, False, False)
            text_embeds = self._pool(out.last_hidden_state, attention_mask, text_len)
            aspect_embeds = self._pool(aspect_out.last_hidden_state, flat_mask, aspect_len)
            hidden_states, attentions = out.hidden_states, out.attentions

        return LGSRRModelOutput(
            text_embeds=text_embeds,
            aspect_embeds=aspect_embeds.view(batch, num_aspects, -1),
            hidden_states=hidden_states,
            attentions=attentions,
        )


class LGSRRRelationalReasoning(nn.Module):
    """The three relations and their fusion (eq. 7-16), or a classic relation of §4.6.

    Input F_T `(B, d)` and F_M `(B, K, d)`; output the fused feature `(B, d)` with α, β, γ.
    """

    def __init__(self, config: LGSRRConfig):
        super().__init__()
        self.config = config
        d, k = config.hidden_size, config.num_aspects
        # One weight network shared by every feature, text included (eq. 7-8).
        self.weight_net = nn.Sequential(
            nn.Linear(d, config.weight_hidden_dim),
            nn.ReLU(),
            nn.Dropout(config.weight_dropout),
            nn.Linear(config.weight_hidden_dim, 1),
        )
        if config.fusion == "not":
            self.relation_proj = nn.Sequential(nn.Linear(d * (k + 1) * k // 2, d), nn.GELU())
        elif config.fusion == "combination":
            self.not_proj = nn.Sequential(nn.Linear(d * (k + 1) * k // 2, d), nn.GELU())
            self.relation_proj = nn.Sequential(nn.Linear(3 * d, d), nn.GELU())

    def importance(self, features: torch.Tensor) -> torch.Tensor:
        """features `(B, 1 + K, d)` → α `(B, 1 + K)` (softmax over text + aspects)."""
        return torch.softmax(self.weight_net(features).squeeze(-1), dim=-1)

    @staticmethod
    def _pairwise_differences(features: torch.Tensor) -> torch.Tensor:
        n = features.shape[1]
        first, second = torch.triu_indices(n, n, offset=1, device=features.device)
        return (features[:, first] - features[:, second]).flatten(1)

    def forward(self, text_embeds: torch.Tensor, aspect_embeds: torch.Tensor):
        cfg = self.config
        features = torch.cat([text_embeds[:, None], aspect_embeds], dim=1)  # (B, 1 + K, d)
        text = text_embeds[:, None]  # (B, 1, d)
        alpha = beta = gamma = None

        if cfg.fusion == "relational":
            beta = F.cosine_similarity(text, aspect_embeds, dim=-1)  # (B, K), eq. 10
            differences = text - aspect_embeds  # I_M, eq. 13
            if cfg.inconsistency_scale == "sample":
                gamma = differences.pow(2).mean(dim=-1)  # (B, K), eq. 14
            else:  # reference code: F.mse_loss over the whole batch, one value per aspect
                gamma = differences.pow(2).mean(dim=(0, 2))[None].expand_as(beta)
            if cfg.use_importance:
                alpha = self.importance(features)
                text_weight, aspect_weight = alpha[:, :1], alpha[:, 1:]
            else:
                text_weight = torch.ones_like(beta[:, :1])
                aspect_weight = torch.ones_like(beta)
            aspect_scale = aspect_weight * beta if cfg.use_complementarity else aspect_weight
            fused = text_weight * text_embeds + (aspect_scale[..., None] * aspect_embeds).sum(dim=1)
            if cfg.use_inconsistency:
                fused = fused - (gamma[..., None] * differences).sum(dim=1)  # eq. 15-16
        elif cfg.fusion == "sum":
            fused = features.sum(dim=1)
        elif cfg.fusion == "or":
            fused = features.mean(dim=1)
        elif cfg.fusion == "and":
            fused = features.prod(dim=1)
        elif cfg.fusion == "not":
            fused = self.relation_proj(self._pairwise_differences(features))
        else:  # combination
            relations = [features.mean(dim=1), features.prod(dim=1), self.not_proj(self._pairwise_differences(features))]
            fused = self.relation_proj(torch.cat(relations, dim=-1))
        return fused, alpha, beta, gamma


class _WrapsPretrainedEncoder:
    """`from_pretrained_encoder` for the classifiers, which hold their encoder(s) in `self.lgsrr`."""

    @classmethod
    def from_pretrained_encoder(
        cls,
        pretrained_model_name_or_path,
        labels: list[str] | None = None,
        num_labels: int | None = None,
        encoder_kwargs: dict | None = None,
        **config_kwargs,
    ):
        """Wrap a pretrained encoder (Hub id or local folder) into a fresh classifier of this class.

        Args:
            pretrained_model_name_or_path: anything `AutoModel.from_pretrained` accepts.
            labels: class names in label-id order (sets `id2label` / `label2id`); or give `num_labels`.
            encoder_kwargs: extra arguments for `AutoConfig` / `AutoModel.from_pretrained`
                (e.g. `revision`, `cache_dir`, `local_files_only`).
            **config_kwargs: any [`LGSRRConfig`] field (pooling, aspects, fusion, ...).
        """
        encoder_kwargs = dict(encoder_kwargs or {})
        text_config = AutoConfig.from_pretrained(pretrained_model_name_or_path, **encoder_kwargs)
        text_config._name_or_path = hub_id_of(pretrained_model_name_or_path) or ""  # never a local path
        if labels is not None:
            if num_labels is not None and num_labels != len(labels):
                raise ValueError(f"num_labels={num_labels} but {len(labels)} labels were given")
            config_kwargs["id2label"] = dict(enumerate(labels))
            config_kwargs["label2id"] = {label: i for i, label in enumerate(labels)}
        elif num_labels is not None:
            config_kwargs["num_labels"] = num_labels
        config = cls.config_class(text_config=text_config, **config_kwargs)
        model = cls(config)
        encoder = AutoModel.from_pretrained(pretrained_model_name_or_path, **encoder_kwargs)
        model.lgsrr.load_encoder_weights(encoder.state_dict())
        model.config.base_model_name_or_path = hub_id_of(pretrained_model_name_or_path)
        return model


class LGSRRForSequenceClassification(_WrapsPretrainedEncoder, LGSRRPreTrainedModel):
    """LGSRR with its classification head: `logits = W · F + b` (eq. 16) and
    `loss = CE + λ · NeuralNDCG(α, LLM ranking)` (eq. 17-18).

    Example:

    ```python
    >>> model = LGSRRForSequenceClassification.from_pretrained_encoder("bert-base-uncased", labels=["Inform", "Joke"])
    >>> out = model(input_ids, attention_mask, aspect_input_ids=desc_ids, aspect_attention_mask=desc_mask,
    ...             labels=labels, aspect_ranks=ranks)
    >>> out.loss, out.logits.shape, out.importance.shape   # (), (B, 2), (B, 4)
    ```
    """

    def __init__(self, config: LGSRRConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.lgsrr = LGSRRModel(config)
        self.relations = LGSRRRelationalReasoning(config)
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def ranking_relevance(self, aspect_ranks: torch.Tensor) -> torch.Tensor:
        """LLM ranks `(B, K)` (0 = most important, -1 = unranked row) → graded relevance `(B, 1 + K)`:
        the text gets `ranking_relevance[0]`, an aspect ranked r gets `ranking_relevance[1 + r]`.
        Unranked rows get relevance 0 everywhere, so NeuralNDCG leaves them out (ideal DCG 0)."""
        table = torch.tensor(self.config.ranking_relevance, device=aspect_ranks.device, dtype=torch.float32)
        ranked = aspect_ranks[:, 0] >= 0
        aspect_relevance = table[1:][aspect_ranks.clamp(min=0)]
        relevance = torch.cat([table[:1].expand(aspect_ranks.shape[0], 1), aspect_relevance], dim=1)
        return relevance * ranked[:, None]

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.LongTensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        aspect_input_ids: torch.LongTensor | None = None,
        aspect_attention_mask: torch.LongTensor | None = None,
        aspect_token_type_ids: torch.LongTensor | None = None,
        labels: torch.LongTensor | None = None,
        aspect_ranks: torch.LongTensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        text_embeds: torch.FloatTensor | None = None,
        aspect_embeds: torch.FloatTensor | None = None,
        **kwargs,
    ) -> LGSRROutput:
        r"""
        input_ids, attention_mask, token_type_ids (`(batch_size, text_length)`): the utterance text.
        aspect_input_ids, aspect_attention_mask, aspect_token_type_ids
            (`(batch_size, num_aspects, aspect_length)`): the K descriptions, in `config.aspects` order.
        labels (`(batch_size,)`, *optional*): class ids in `[0, num_labels)`.
        aspect_ranks (`(batch_size, num_aspects)`, *optional*): position of each aspect in the LLM
            ranking (0 = most important); each row a permutation of 0..K-1, or all -1 for a sample
            without a ranking. Adds λ · NeuralNDCG to the loss when `labels` are given too.
        text_embeds `(batch_size, hidden_size)`, aspect_embeds `(batch_size, num_aspects, hidden_size)`, *optional*:
            precomputed pooled features instead of token ids (e.g. cached frozen-encoder features); only the
            head runs ([`forward_head`]).
        """
        if text_embeds is not None or aspect_embeds is not None:
            if text_embeds is None or aspect_embeds is None or input_ids is not None:
                raise ValueError("give either input_ids (+ aspect_input_ids) or both text_embeds and aspect_embeds")
            return self.forward_head(text_embeds, aspect_embeds, labels=labels, aspect_ranks=aspect_ranks)
        base = self.lgsrr(
            input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            aspect_input_ids=aspect_input_ids,
            aspect_attention_mask=aspect_attention_mask,
            aspect_token_type_ids=aspect_token_type_ids,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
        )
        out = self.forward_head(base.text_embeds, base.aspect_embeds, labels=labels, aspect_ranks=aspect_ranks)
        out.hidden_states, out.attentions = base.hidden_states, base.attentions
        return out

    def forward_head(
        self,
        text_embeds: torch.Tensor,
        aspect_embeds: torch.Tensor,
        labels: torch.LongTensor | None = None,
        aspect_ranks: torch.LongTensor | None = None,
    ) -> LGSRROutput:
        r"""Everything after the encoder: relations, classifier and loss on pooled features (eq. 7-18).

        text_embeds `(batch_size, hidden_size)` F_T and aspect_embeds `(batch_size, num_aspects, hidden_size)` F_M,
        as [`LGSRRModel`] returns them (or read from a cache of frozen-encoder features); labels and
        aspect_ranks as in `forward`. `forward` calls it after the encoder, so both give the same outputs.
        """
        if text_embeds.dim() != 2 or aspect_embeds.shape != (text_embeds.shape[0], self.config.num_aspects,
                                                             text_embeds.shape[1]):
            raise ValueError(f"text_embeds must be (batch, d) and aspect_embeds (batch, {self.config.num_aspects}, d); "
                             f"got {tuple(text_embeds.shape)} and {tuple(aspect_embeds.shape)}")
        _check_labels_and_ranks(self.config, text_embeds.shape[0], labels, aspect_ranks)
        aspect_embeds = aspect_embeds.to(text_embeds.dtype)
        fused, alpha, beta, gamma = self.relations(text_embeds, aspect_embeds)
        logits = self.classifier(self.dropout(fused))

        loss = classification_loss = ranking_loss = None
        if labels is not None:
            classification_loss = F.cross_entropy(logits.float(), labels)
            loss = classification_loss
            if aspect_ranks is not None and alpha is not None and self.config.use_ranking_loss:
                ranking_loss = neural_ndcg(
                    alpha,
                    self.ranking_relevance(aspect_ranks),
                    temperature=self.config.ranking_temperature,
                    powered_relevance=self.config.ranking_powered_relevance,
                )
                loss = loss + self.config.ranking_loss_weight * ranking_loss

        return LGSRROutput(
            loss=loss,
            logits=logits,
            importance=alpha,
            complementarity=beta,
            inconsistency=gamma,
            text_embeds=text_embeds,
            aspect_embeds=aspect_embeds,
            classification_loss=classification_loss,
            ranking_loss=ranking_loss,
        )


class LGSRRTextOnlyForSequenceClassification(_WrapsPretrainedEncoder, LGSRRPreTrainedModel):
    """The text-only baseline: the utterance through LGSRR's encoder and pooling, then dropout and one linear
    layer, `logits = W · F_T + b`, trained with cross-entropy alone.

    F_T is computed exactly as [`LGSRRModel`] computes it for the same config (`pooling`, `sequence_packing`),
    so a baseline and an LGSRR model differ only in the relational head and the descriptions. Saved folders
    load with `AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True)` and work in
    `pipeline("text-classification", model=folder, trust_remote_code=True)` with the real label names.

    Example:

    ```python
    >>> model = LGSRRTextOnlyForSequenceClassification.from_pretrained_encoder(
    ...     "sentence-transformers/all-MiniLM-L6-v2", labels=["Inform", "Joke"], pooling="mean")
    >>> model(input_ids, attention_mask, labels=labels).logits.shape   # (B, 2)
    ```
    """

    config_class = LGSRRTextOnlyConfig
    _saved_auto_map = {"AutoModelForSequenceClassification": "modeling_lgsrr.LGSRRTextOnlyForSequenceClassification"}
    _saved_pipelines = None  # the standard "text-classification" pipeline serves it
    _saved_files = ()

    def __init__(self, config: LGSRRTextOnlyConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.lgsrr = LGSRRModel(config)
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def get_input_embeddings(self):
        return self.lgsrr.get_input_embeddings()

    def set_input_embeddings(self, value):
        self.lgsrr.set_input_embeddings(value)

    def forward(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.LongTensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        labels: torch.LongTensor | None = None,
        **kwargs,
    ) -> SequenceClassifierOutput:
        r"""
        input_ids, attention_mask, token_type_ids (`(batch_size, text_length)`): the utterance text.
        labels (`(batch_size,)`, *optional*): class ids in `[0, num_labels)`.
        """
        _check_labels_and_ranks(self.config, input_ids.shape[0], labels, None)
        text_embeds = self.lgsrr.encode_text(input_ids, attention_mask, token_type_ids)
        logits = self.classifier(self.dropout(text_embeds))
        loss = None if labels is None else F.cross_entropy(logits.float(), labels)
        return SequenceClassifierOutput(loss=loss, logits=logits)


def _check_text_and_aspects(config, input_ids, attention_mask, aspect_input_ids, aspect_attention_mask) -> None:
    if input_ids is None or input_ids.dim() != 2:
        shape = None if input_ids is None else tuple(input_ids.shape)
        raise ValueError(f"input_ids must be a (batch, length) tensor, got shape {shape}")
    if attention_mask is not None and attention_mask.shape != input_ids.shape:
        raise ValueError(
            f"attention_mask shape {tuple(attention_mask.shape)} does not match input_ids {tuple(input_ids.shape)}"
        )
    if aspect_input_ids is None:
        raise ValueError(
            f"aspect_input_ids is required: LGSRR reads the text plus {config.num_aspects} descriptions "
            f"({', '.join(config.aspects)}) as a (batch, {config.num_aspects}, length) tensor"
        )
    if aspect_input_ids.dim() != 3:
        raise ValueError(
            f"aspect_input_ids must be (batch, num_aspects, length), got shape {tuple(aspect_input_ids.shape)}"
        )
    if aspect_input_ids.shape[0] != input_ids.shape[0]:
        raise ValueError(
            f"aspect_input_ids has batch size {aspect_input_ids.shape[0]} but input_ids has {input_ids.shape[0]}"
        )
    if aspect_input_ids.shape[1] != config.num_aspects:
        raise ValueError(
            f"aspect_input_ids has {aspect_input_ids.shape[1]} aspects (shape {tuple(aspect_input_ids.shape)}) but "
            f"the config expects K={config.num_aspects}: {config.aspects}"
        )
    if aspect_attention_mask is not None and aspect_attention_mask.shape != aspect_input_ids.shape:
        raise ValueError(
            f"aspect_attention_mask shape {tuple(aspect_attention_mask.shape)} does not match aspect_input_ids "
            f"{tuple(aspect_input_ids.shape)}"
        )


def _check_labels_and_ranks(config, batch: int, labels, aspect_ranks) -> None:
    if labels is not None:
        if labels.shape != (batch,):
            raise ValueError(f"labels must have shape ({batch},), got {tuple(labels.shape)}")
        bad = (labels < 0) | (labels >= config.num_labels)
        if bool(bad.any()):
            raise ValueError(
                f"labels out of range [0, {config.num_labels}): {labels[bad].tolist()} at batch positions "
                f"{bad.nonzero().flatten().tolist()}"
            )
    if aspect_ranks is not None:
        k = config.num_aspects
        if aspect_ranks.shape != (batch, k):
            raise ValueError(f"aspect_ranks must have shape ({batch}, {k}), got {tuple(aspect_ranks.shape)}")
        unranked = (aspect_ranks == -1).all(dim=1)
        expected = torch.arange(k, device=aspect_ranks.device)
        is_permutation = (aspect_ranks.sort(dim=1).values == expected).all(dim=1)
        bad_rows = ~(unranked | is_permutation)
        if bool(bad_rows.any()):
            row = int(bad_rows.nonzero()[0])
            raise ValueError(
                f"aspect_ranks row {row} is {aspect_ranks[row].tolist()}: each row must be a permutation of "
                f"0..{k - 1} (the position of each aspect in the LLM ranking) or all -1 for an unranked sample"
            )
