"""The text-only baseline of the LGSRR experiments: the utterance alone, pooled as LGSRR pools it.

The baseline pools the text exactly as the LGSRR model of the same config does (`model.pooling`), so the
two differ only in the relational head and the descriptions:

* `pooling: mean` / `mean_padded` (sentence-transformers encoders such as all-MiniLM-L6-v2, which were trained
  for mean pooling): :class:`~mmaffect.models.lgsrr.LGSRRTextOnlyForSequenceClassification`, LGSRR's own
  encoder + pooling + dropout + linear. Saved with its remote code (model type `lgsrr_text_only`):

      >>> from transformers import AutoModelForSequenceClassification, pipeline
      >>> AutoModelForSequenceClassification.from_pretrained("outputs/text_only/best_model", trust_remote_code=True)
      >>> pipeline("text-classification", model="outputs/text_only/best_model", trust_remote_code=True)("Thank you!")
      [{'label': 'Thank', 'score': 0.91}]

* `pooling: cls` (BERT, as in the paper): the encoder's own `...ForSequenceClassification`, whose head is the
  architecture's CLS pooling ([CLS] through the pretrained pooler, dense + tanh, then dropout and a linear
  layer): a plain transformers checkpoint that needs neither mmaffect nor remote code. Note the one difference
  from LGSRR's `cls` feature, which reads the [CLS] hidden state without the pooler; this is the standard BERT
  fine-tuning baseline of the MIntRec papers.

:class:`TextOnlyClassifier` is the thin training wrapper ``mmaffect train --variant text_only`` uses:
the same forward signature as the LGSRR training module (returns an ``LGSRROutput`` with ``loss`` and
``logits``) plus ``encode``, which gives the pooled feature the classifier reads, so the frozen-encoder
fast modes can cache it (both heads are ``dropout`` + a linear ``classifier`` over that feature).
"""

from __future__ import annotations

import os

import torch.nn.functional as F
from torch import nn


LGSRR_TEXT_ONLY = "lgsrr_text_only"  # model_type of the baseline that pools as LGSRR does


def pools_as_lgsrr(pooling: str) -> bool:
    """Whether the baseline for ``model.pooling`` is LGSRR's text-only classifier (remote code); ``cls`` keeps the
    encoder's own sequence classifier (a plain checkpoint)."""
    return pooling != "cls"


class TextOnlyClassifier(nn.Module):
    """Training wrapper around an ``AutoModelForSequenceClassification`` (``.model``): LGSRR's text-only
    classifier (mean pooling) or the encoder's own sequence classifier (CLS pooling)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    @property
    def pooling(self) -> str:
        """The feature the classifier reads (recorded in the features-cache key)."""
        return self.model.config.pooling if self._pools_as_lgsrr else "pooler"

    @property
    def _pools_as_lgsrr(self) -> bool:
        return self.model.config.model_type == LGSRR_TEXT_ONLY

    @classmethod
    def from_pretrained_encoder(cls, path: str, labels: list[str], classifier_dropout: float | None = None,
                                pooling: str = "cls", sequence_packing: str | bool = "auto",
                                **_lgsrr_only_settings) -> "TextOnlyClassifier":
        """A fresh classifier over a pretrained encoder (Hub id or folder) with ``labels`` in id order, pooling
        as an LGSRR model with the same ``pooling`` (see the module docstring). Settings of the relational head
        (aspects, fusion, ranking, ...) do not apply to the baseline and are ignored."""
        from transformers import AutoModelForSequenceClassification

        extra = {} if classifier_dropout is None else {"classifier_dropout": classifier_dropout}
        if pools_as_lgsrr(pooling):
            from .lgsrr.modeling_lgsrr import LGSRRTextOnlyForSequenceClassification

            return cls(LGSRRTextOnlyForSequenceClassification.from_pretrained_encoder(
                path, labels=list(labels), pooling=pooling, sequence_packing=sequence_packing, **extra))
        model = AutoModelForSequenceClassification.from_pretrained(
            path, num_labels=len(labels), id2label=dict(enumerate(labels)),
            label2id={label: i for i, label in enumerate(labels)}, **extra)
        return cls(model)

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike, **kwargs) -> "TextOnlyClassifier":
        """Load a saved baseline; a missing, unexpected or corrupt tensor is an error naming it."""
        from transformers import AutoModelForSequenceClassification

        from mmaffect.checkpoints import from_pretrained_strict

        return cls(from_pretrained_strict(AutoModelForSequenceClassification, folder, **kwargs))

    def save_pretrained(self, folder: str | os.PathLike, **kwargs):
        return self.model.save_pretrained(folder, **kwargs)

    @property
    def config(self):
        return self.model.config

    @property
    def id2label(self) -> dict[int, str]:
        return {int(k): v for k, v in self.model.config.id2label.items()}

    @property
    def encoder(self) -> nn.Module:
        """The pretrained encoder (for the encoder's own classifier: the base model with BERT's pooler)."""
        if self._pools_as_lgsrr:
            return self.model.lgsrr.text_encoder
        return getattr(self.model, self.model.base_model_prefix)

    def _check_feature_head(self) -> None:
        if self._pools_as_lgsrr:
            return
        pooler = getattr(self.encoder, "pooler", None)
        if pooler is None or not isinstance(getattr(self.model, "classifier", None), nn.Linear) \
                or not hasattr(self.model, "dropout"):
            raise ValueError(f"the frozen-encoder modes of the text-only baseline need a BERT-style head (pooler, "
                             f"dropout, linear classifier); {type(self.model).__name__} has another head")

    def encode(self, input_ids, attention_mask=None, token_type_ids=None, **_):
        """The feature the classifier reads, ``(batch, hidden)``: LGSRR's pooled text feature F_T, or the
        pooler output of the [CLS] token."""
        if self._pools_as_lgsrr:
            return {"text_embeds": self.model.lgsrr.encode_text(input_ids, attention_mask, token_type_ids)}
        self._check_feature_head()
        kwargs = {"attention_mask": attention_mask}
        if token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        return {"text_embeds": self.encoder(input_ids, **kwargs).pooler_output}

    def forward(self, labels=None, text_embeds=None, aspect_ranks=None, **inputs):
        from .lgsrr.modeling_lgsrr import LGSRROutput

        if text_embeds is None:
            inputs = {k: v for k, v in inputs.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
            logits = self.model(**inputs).logits
        else:  # cached pooled features (frozen encoder): only dropout + classifier remain
            self._check_feature_head()
            logits = self.model.classifier(self.model.dropout(text_embeds))
        loss = None if labels is None else F.cross_entropy(logits.float(), labels)
        return LGSRROutput(loss=loss, logits=logits, classification_loss=loss, text_embeds=text_embeds)


__all__ = ["TextOnlyClassifier"]
