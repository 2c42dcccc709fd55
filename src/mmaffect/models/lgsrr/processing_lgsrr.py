"""Processor of LGSRR: one call turns utterances and their clip descriptions into the model's inputs.

    >>> processor = LGSRRProcessor(tokenizer, aspects=["actions", "expressions", "interactions"],
    ...                            max_text_length=50, max_aspect_length=50)
    >>> batch = processor(text="I'm so sorry.", descriptions={"actions": "She lowers her head.",
    ...                   "expressions": "She looks sad.", "interactions": "She faces her friend."})
    >>> model(**batch).logits

The processor carries everything the model was trained with besides its weights: the tokenizer, the
aspect names in the model's order (``config.aspects``) and the maximum token lengths of the text and
of each description. ``mmaffect train`` saves it beside the model (``processor_config.json`` + the
tokenizer files), so ``AutoProcessor.from_pretrained(folder, trust_remote_code=True)`` gives back the
exact preprocessing of training. This file is shipped as remote code: it imports only transformers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from transformers import ProcessorMixin
from transformers.feature_extraction_utils import BatchFeature

from .configuration_lgsrr import DEFAULT_ASPECTS

TEXT_KEYS = ("input_ids", "attention_mask", "token_type_ids")
# options of the loading call that tokenizers keep in init_kwargs and would write to tokenizer_config.json
MACHINE_OPTIONS = ("local_files_only", "is_local", "cache_dir", "_commit_hash", "token")
ASPECT_KEYS = ("aspect_input_ids", "aspect_attention_mask", "aspect_token_type_ids")


class LGSRRProcessor(ProcessorMixin):
    r"""Tokenizer + aspect names + token lengths of an LGSRR classifier.

    Args:
        tokenizer: the encoder's tokenizer (any `PreTrainedTokenizerBase` with a pad token).
        aspects (`list[str]`, defaults to `["actions", "expressions", "interactions"]`): the names of
            the K descriptions in the model's order (`config.aspects`).
        max_text_length (`int`, defaults to 50): tokens kept of the utterance (special tokens included).
        max_aspect_length (`int`, defaults to 50): tokens kept of each description.

    `__call__(text, descriptions)` takes one example (`text: str`, `descriptions: dict | list`) or a
    batch (`text: list[str]`, `descriptions: list[dict | list]`). A description set is a mapping
    `{aspect_name: str}` with every aspect of the model, or a list of K strings in model order. It
    returns `input_ids`, `attention_mask` (and `token_type_ids` when the tokenizer makes them) of shape
    `(batch, text_length)` and `aspect_input_ids`, `aspect_attention_mask` of shape
    `(batch, K, aspect_length)`, padded on the right to the longest text / description of the batch
    (`padding=False` returns unpadded lists, one row per example, for a collator or `pad`).
    """

    def __init__(self, tokenizer=None, aspects: Sequence[str] | None = None, max_text_length: int = 50,
                 max_aspect_length: int = 50, **kwargs):
        aspects = list(DEFAULT_ASPECTS if aspects is None else aspects)
        if not aspects or not all(isinstance(a, str) and a for a in aspects):
            raise ValueError(f"LGSRRProcessor aspects must be a non-empty list of names, got {aspects!r}")
        if len(set(aspects)) != len(aspects):
            raise ValueError(f"LGSRRProcessor aspects has repeated names: {aspects}")
        for name, value in (("max_text_length", max_text_length), ("max_aspect_length", max_aspect_length)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 2:
                raise ValueError(f"LGSRRProcessor {name} must be an integer >= 2, got {value!r}")
        self.aspects = aspects
        self.max_text_length = max_text_length
        self.max_aspect_length = max_aspect_length
        super().__init__(tokenizer, **kwargs)

    @classmethod
    def from_model_config(cls, tokenizer, config, max_text_length: int = 50, max_aspect_length: int = 50):
        """A processor for `config` (an `LGSRRConfig`): its aspect names, in its order."""
        return cls(tokenizer, aspects=list(config.aspects), max_text_length=max_text_length,
                   max_aspect_length=max_aspect_length)

    def save_pretrained(self, save_directory, *args, **kwargs):
        """Save `processor_config.json` and the tokenizer. The tokenizer is saved with
        `model_max_length = max_text_length` (so it truncates the text as training did when used on
        its own) and without the loading options of this machine (`local_files_only`, ...)."""
        return self._with_clean_tokenizer(lambda: super(LGSRRProcessor, self).save_pretrained(save_directory, *args,
                                                                                             **kwargs))

    def save_tokenizer(self, save_directory, **kwargs):
        """Save only the tokenizer, cleaned as in `save_pretrained` (for a text-only checkpoint)."""
        return self._with_clean_tokenizer(lambda: self.tokenizer.save_pretrained(save_directory, **kwargs))

    def _with_clean_tokenizer(self, save):
        tokenizer = self.tokenizer
        saved = {key: tokenizer.init_kwargs.pop(key) for key in MACHINE_OPTIONS if key in tokenizer.init_kwargs}
        max_length = tokenizer.model_max_length
        tokenizer.model_max_length = self.max_text_length
        try:
            return save()
        finally:
            tokenizer.model_max_length = max_length
            tokenizer.init_kwargs.update(saved)

    # ------------------------------------------------------------------------------------ checking input
    def order_descriptions(self, descriptions, where: str = "descriptions") -> list[str]:
        """One example's descriptions as a list in model order; a clear error for anything else.

        `where` names the example in error messages (e.g. `"input 3: descriptions"`)."""
        k = len(self.aspects)
        if isinstance(descriptions, Mapping):
            unknown = [key for key in descriptions if key not in self.aspects]
            missing = [name for name in self.aspects if name not in descriptions]
            if unknown or missing:
                parts = []
                if unknown:
                    parts.append(f"unknown aspect name(s) {unknown}")
                if missing:
                    parts.append(f"missing aspect(s) {missing}")
                raise ValueError(f"{where}: {' and '.join(parts)}; this model reads the aspects {self.aspects}")
            ordered = [descriptions[name] for name in self.aspects]
        elif isinstance(descriptions, (list, tuple)):
            if len(descriptions) != k:
                raise ValueError(f"{where}: a list of {len(descriptions)} description(s), but this model reads {k} "
                                 f"in the order {self.aspects}")
            ordered = list(descriptions)
        else:
            raise TypeError(f"{where}: expected a dict {{aspect: text}} with the aspects {self.aspects} (or a list of "
                            f"{k} strings in that order), got {type(descriptions).__name__}")
        for name, value in zip(self.aspects, ordered):
            if not isinstance(value, str):
                raise TypeError(f"{where}[{name!r}]: expected a string, got {type(value).__name__}")
            if not value.strip():
                raise ValueError(f"{where}[{name!r}]: the description is empty")
        return ordered

    @staticmethod
    def check_text(text, where: str = "text") -> str:
        if not isinstance(text, str):
            raise TypeError(f"{where}: expected a string, got {type(text).__name__}")
        if not text.strip():
            raise ValueError(f"{where}: the utterance text is empty")
        return text

    def _as_batch(self, text, descriptions) -> tuple[list[str], list[list[str]]]:
        if text is None:
            raise ValueError("LGSRRProcessor needs text= (one utterance or a list of utterances)")
        if descriptions is None:
            raise ValueError(f"LGSRRProcessor needs descriptions= ({{aspect: text}} with the aspects {self.aspects})")
        if isinstance(text, str):
            return [self.check_text(text)], [self.order_descriptions(descriptions)]
        if not isinstance(text, (list, tuple)):
            raise TypeError(f"text: expected a string or a list of strings, got {type(text).__name__}")
        if not isinstance(descriptions, (list, tuple)) or (descriptions and isinstance(descriptions[0], str)):
            raise TypeError(f"descriptions: with a list of {len(text)} texts, give a list of {len(text)} description "
                            f"sets (each a dict {{aspect: text}} or a list in model order)")
        if len(descriptions) != len(text):
            raise ValueError(f"text has {len(text)} utterances but descriptions has {len(descriptions)} entries")
        if not text:
            raise ValueError("text: the list of utterances is empty")
        texts = [self.check_text(t, f"text[{i}]") for i, t in enumerate(text)]
        ordered = [self.order_descriptions(d, f"descriptions[{i}]") for i, d in enumerate(descriptions)]
        return texts, ordered

    # ------------------------------------------------------------------------------------ tokenising
    def __call__(self, text=None, descriptions=None, padding: bool = True, return_tensors: str | None = "pt",
                 **kwargs) -> BatchFeature:
        if kwargs:
            raise TypeError(f"LGSRRProcessor got unexpected argument(s) {sorted(kwargs)}")
        texts, ordered = self._as_batch(text, descriptions)
        k = len(self.aspects)
        encoded_text = self.tokenizer(texts, truncation=True, max_length=self.max_text_length)
        flat = self.tokenizer([d for row in ordered for d in row], truncation=True, max_length=self.max_aspect_length)
        rows = []
        for i in range(len(texts)):
            row = {key: encoded_text[key][i] for key in TEXT_KEYS if key in encoded_text}
            row["aspect_input_ids"] = flat["input_ids"][i * k : (i + 1) * k]
            row["aspect_attention_mask"] = flat["attention_mask"][i * k : (i + 1) * k]
            rows.append(row)
        if not padding:
            return BatchFeature({key: [row[key] for row in rows] for key in rows[0]})
        return self.pad(rows, return_tensors=return_tensors)

    def pad(self, rows: Sequence[Mapping], return_tensors: str | None = "pt") -> BatchFeature:
        """Pad unpadded rows (`padding=False` output, one dict per example) on the right: the text to the
        longest text, every description to the longest description. Other keys are dropped."""
        pad_id = self.tokenizer.pad_token_id
        if pad_id is None:
            raise ValueError(f"tokenizer {type(self.tokenizer).__name__} has no pad token; set tokenizer.pad_token")
        pad_type = getattr(self.tokenizer, "pad_token_type_id", 0)
        values = {"input_ids": pad_id, "attention_mask": 0, "token_type_ids": pad_type}
        out = {}
        length = max(len(row["input_ids"]) for row in rows)
        for key in TEXT_KEYS:
            if key in rows[0]:
                out[key] = [list(row[key]) + [values[key]] * (length - len(row[key])) for row in rows]
        aspect_length = max(len(seq) for row in rows for seq in row["aspect_input_ids"])
        for key, source in (("aspect_input_ids", "input_ids"), ("aspect_attention_mask", "attention_mask")):
            out[key] = [[list(seq) + [values[source]] * (aspect_length - len(seq)) for seq in row[key]] for row in rows]
        return BatchFeature(out, tensor_type=return_tensors)

    @property
    def model_input_names(self) -> list[str]:
        names = [key for key in TEXT_KEYS if key in getattr(self.tokenizer, "model_input_names", TEXT_KEYS)]
        return names + ["aspect_input_ids", "aspect_attention_mask"]


__all__ = ["LGSRRProcessor"]
