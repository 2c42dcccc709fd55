"""The text-only baseline of the LGSRR experiments, as the encoder's own ``...ForSequenceClassification``.

The baseline reads the utterance only: the pretrained encoder with the sequence-classification head
its architecture defines (BERT / MiniLM: the [CLS] token through the pretrained pooler, dense + tanh,
then dropout and one linear layer). It is saved with ``save_pretrained`` as that standard class with
the real label names in ``config.id2label``, so the folder needs neither mmaffect nor remote code:

    >>> from transformers import AutoModelForSequenceClassification, pipeline
    >>> model = AutoModelForSequenceClassification.from_pretrained("outputs/text_only/best_model")
    >>> pipeline("text-classification", model="outputs/text_only/best_model")("Thank you so much!")
    [{'label': 'Thank', 'score': 0.91}]

:class:`TextOnlyClassifier` is the thin training wrapper ``mmaffect train --variant text_only`` uses:
the same forward signature as the LGSRR training module (returns an ``LGSRROutput`` with ``loss`` and
``logits``) plus ``encode``, which gives the pooled feature the classifier reads, so the frozen-encoder
fast modes can cache it (BERT-style heads: ``pooler`` + ``dropout`` + linear ``classifier``).

This module is not remote code; the folder it writes is a plain transformers checkpoint.
"""

from __future__ import annotations

import os

import torch.nn.functional as F
from torch import nn


class TextOnlyClassifier(nn.Module):
    """Training wrapper around an ``AutoModelForSequenceClassification`` (``.model``)."""

    pooling = "pooler"  # recorded in the features-cache key

    def __init__(self, model):
        super().__init__()
        self.model = model

    @classmethod
    def from_pretrained_encoder(cls, path: str, labels: list[str], classifier_dropout: float | None = None,
                                **_lgsrr_only_settings) -> "TextOnlyClassifier":
        """A fresh classifier over a pretrained encoder (Hub id or folder) with ``labels`` in id order.
        LGSRR-only settings (pooling, aspects, ...) do not apply to the baseline and are ignored."""
        from transformers import AutoModelForSequenceClassification

        extra = {} if classifier_dropout is None else {"classifier_dropout": classifier_dropout}
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
        """The pretrained base model (the encoder and, for BERT, its pooler)."""
        return getattr(self.model, self.model.base_model_prefix)

    def _check_feature_head(self) -> None:
        pooler = getattr(self.encoder, "pooler", None)
        if pooler is None or not isinstance(getattr(self.model, "classifier", None), nn.Linear) \
                or not hasattr(self.model, "dropout"):
            raise ValueError(f"the frozen-encoder modes of the text-only baseline need a BERT-style head (pooler, "
                             f"dropout, linear classifier); {type(self.model).__name__} has another head")

    def encode(self, input_ids, attention_mask=None, token_type_ids=None, **_):
        """The feature the classifier reads, ``(batch, hidden)``: the pooler output of the [CLS] token."""
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
