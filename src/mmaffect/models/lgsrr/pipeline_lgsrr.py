"""``pipeline("multimodal-intent-recognition", model=FOLDER, trust_remote_code=True)`` for LGSRR.

    >>> from transformers import pipeline
    >>> classify = pipeline("multimodal-intent-recognition", model="path/or/hub-id", trust_remote_code=True)
    >>> classify({"text": "I'm so sorry.", "descriptions": {"actions": "She lowers her head.",
    ...           "expressions": "She looks sad and guilty.", "interactions": "She faces her friend."}})
    {'label': 'Apologise', 'score': 0.93, 'top_k': [{'label': 'Apologise', 'score': 0.93}, ...],
     'importance': {'text': 0.41, 'actions': 0.2, 'expressions': 0.25, 'interactions': 0.14},
     'complementarity': {'actions': 0.71, ...}, 'inconsistency': {'actions': 0.03, ...}}

Inputs: one example or a list, each ``{"text": str, "descriptions": {aspect: str}}`` (or the
descriptions as a list in the model's aspect order). ``batch_size=`` batches them, ``top_k=`` sets
the length of the ``top_k`` list (default 5). Per example the output has ``label`` and ``score``
(softmax probability), ``top_k``, the relative importance α of the text and of every description
(``importance``, sums to 1), the complementarity β and the inconsistency γ of every description.

Without descriptions, an example may give ``video`` (a clip path) and/or ``audio`` instead, when the
pipeline has a ``describer``: any callable ``describer(text=..., video=..., audio=...) -> {aspect: str}``
such as ``mmaffect.semantic_extraction.ClipDescriber`` (a local video LLM or an OpenAI-compatible
server, with a resumable on-disk cache). The pipeline then writes the descriptions first, keeps them
in an in-memory cache keyed by the media file and text, and returns them under ``descriptions``.

The config's ``custom_pipelines`` entry (written by ``save_pretrained``) points transformers at this
file, which ships with the checkpoint: it imports only torch and transformers.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch
from transformers import Pipeline

TASK = "multimodal-intent-recognition"
DEFAULT_TOP_K = 5
MEDIA_KEYS = ("video", "audio")


def format_prediction(logits, importance, complementarity, inconsistency, id2label: Mapping, aspects, top_k: int):
    """One example's model outputs (1-D tensors or arrays) as the pipeline's dict of plain Python values."""
    probs = torch.as_tensor(logits, dtype=torch.float32).softmax(-1)
    k = max(1, min(int(top_k), probs.numel()))
    scores, indices = probs.topk(k)
    ranked = [{"label": id2label[int(i)], "score": float(s)} for s, i in zip(scores, indices)]
    record = {"label": ranked[0]["label"], "score": ranked[0]["score"], "top_k": ranked}

    def per_aspect(values, names):
        if values is None:
            return None
        return {name: float(v) for name, v in zip(names, torch.as_tensor(values, dtype=torch.float32).tolist())}

    record["importance"] = per_aspect(importance, ["text", *aspects])
    record["complementarity"] = per_aspect(complementarity, aspects)
    record["inconsistency"] = per_aspect(inconsistency, aspects)
    return record


def check_example(example, processor, can_describe: bool, where: str = "input") -> dict:
    """A validated copy of one pipeline input (``processor``: the model's ``LGSRRProcessor``; ``can_describe``:
    whether a describer can write missing descriptions from a video / audio file)."""
    if not isinstance(example, Mapping):
        raise TypeError(f'{where}: expected a dict {{"text": ..., "descriptions": {{...}}}}, got {type(example).__name__}')
    unknown = sorted(set(example) - {"text", "descriptions", "id", *MEDIA_KEYS})
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {unknown}; expected text, descriptions (or video / audio)")
    if "text" not in example:
        raise ValueError(f"{where}: missing field 'text'")
    processor.check_text(example["text"], f"{where}: text")
    if example.get("descriptions") is not None:
        processor.order_descriptions(example["descriptions"], f"{where}: descriptions")
    elif any(example.get(key) is not None for key in MEDIA_KEYS):
        if not can_describe:
            raise ValueError(f"{where}: no descriptions, and no extraction backend to write them from "
                             f"{'/'.join(k for k in MEDIA_KEYS if example.get(k) is not None)}: pass "
                             f"describer=... (e.g. mmaffect.semantic_extraction.ClipDescriber) to the pipeline")
        for key in MEDIA_KEYS:
            path = example.get(key)
            if path is not None and not os.path.isfile(path):
                raise FileNotFoundError(f"{where}: {key} file {path} does not exist")
    else:
        raise ValueError(f"{where}: missing field 'descriptions' ({{aspect: text}} with the aspects "
                         f"{processor.aspects}), or a video / audio path with a describer")
    return dict(example)


class MultimodalIntentRecognitionPipeline(Pipeline):
    """Text + LLM-written clip descriptions (or a clip and a describer) -> intent with LGSRR's relations."""

    _load_processor = True
    _load_tokenizer = False
    _load_image_processor = False
    _load_video_processor = False
    _load_feature_extractor = False

    def __init__(self, *args, describer=None, **kwargs):
        self.describer = describer
        self._descriptions_cache: dict = {}
        super().__init__(*args, **kwargs)
        if self.processor is None:
            raise ValueError("the multimodal-intent-recognition pipeline needs the model's LGSRRProcessor "
                             "(processor_config.json in the model folder, or processor=...)")
        if list(self.processor.aspects) != list(self.model.config.aspects):
            raise ValueError(f"processor aspects {self.processor.aspects} differ from the model's {self.model.config.aspects}")
        self.model.eval()

    # ----------------------------------------------------------------------------------- call
    def __call__(self, inputs=None, *args, **kwargs):
        """``pipe(example)``, ``pipe([example, ...], batch_size=8)`` or ``pipe(text=..., descriptions=...)``."""
        if kwargs.get("describer") is not None:
            self.describer = kwargs.pop("describer")
        if inputs is None and ("text" in kwargs or any(key in kwargs for key in MEDIA_KEYS)):
            inputs = {key: kwargs.pop(key) for key in ("text", "descriptions", *MEDIA_KEYS) if key in kwargs}
        if inputs is None:
            raise ValueError('give an example {"text": ..., "descriptions": {aspect: ...}} or a list of them')
        if isinstance(inputs, list):
            inputs = [self.check_example(example, f"input {i}") for i, example in enumerate(inputs)]
        elif isinstance(inputs, Mapping):
            inputs = self.check_example(inputs, "input")
        return super().__call__(inputs, *args, **kwargs)

    def check_example(self, example, where: str = "input") -> dict:
        """A validated copy of one example; errors name the example and the field."""
        return check_example(example, self.processor, self.describer is not None, where)

    def _sanitize_parameters(self, top_k=None, describer=None, **kwargs):
        if kwargs:
            raise TypeError(f"{TASK} pipeline got unexpected argument(s) {sorted(kwargs)}")
        if describer is not None:
            self.describer = describer
        postprocess = {}
        if top_k is not None:
            if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1:
                raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
            postprocess["top_k"] = top_k
        return {}, {}, postprocess

    # ----------------------------------------------------------------------------------- steps
    def describe(self, example: Mapping) -> dict:
        """The descriptions of a clip, written by the describer once per (media file, text)."""
        media = []
        for key in MEDIA_KEYS:
            path = example.get(key)
            if path is not None:
                stat = os.stat(path)
                media.append((key, os.path.abspath(path), stat.st_size, stat.st_mtime_ns))
        key = (example["text"], tuple(media))
        if key not in self._descriptions_cache:
            written = self.describer(text=example["text"], video=example.get("video"), audio=example.get("audio"))
            ordered = self.processor.order_descriptions(written, "descriptions written by the describer")
            self._descriptions_cache[key] = dict(zip(self.processor.aspects, ordered))
        return dict(self._descriptions_cache[key])

    def preprocess(self, example):
        example = self.check_example(example)
        generated = None
        descriptions = example.get("descriptions")
        if descriptions is None:
            descriptions = generated = self.describe(example)
        rows = self.processor(text=example["text"], descriptions=descriptions, padding=False)
        # unpadded: a batch is padded together in _forward, to its own longest text and description
        return {"rows": [{key: values[0] for key, values in rows.items()}], "descriptions": [generated]}

    def get_iterator(self, inputs, num_workers: int, batch_size: int, preprocess_params, forward_params,
                     postprocess_params):
        # The default collator pads 2-D tensors; LGSRR's rows are padded by the processor instead.
        from transformers.pipelines.pt_utils import PipelineDataset, PipelineIterator

        sized = hasattr(inputs, "__len__")
        dataset = (PipelineDataset if sized else PipelineIterator)(inputs, self.preprocess, preprocess_params)
        loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, collate_fn=_concatenate,
                                             num_workers=num_workers if sized else 0)
        model_iterator = PipelineIterator(loader, self.forward, forward_params, loader_batch_size=batch_size)
        return PipelineIterator(model_iterator, self.postprocess, postprocess_params)

    def _forward(self, model_inputs):
        batch = self.processor.pad(model_inputs["rows"]).to(self.device)
        out = self.model(**batch)
        result = {"logits": out.logits.float()}
        for name in ("importance", "complementarity", "inconsistency"):
            value = getattr(out, name)
            result[name] = None if value is None else value.float()
        result["descriptions"] = model_inputs["descriptions"]
        return result

    def postprocess(self, model_outputs, top_k: int = DEFAULT_TOP_K):
        def first(value):
            return None if value is None else value[0]

        record = format_prediction(first(model_outputs["logits"]), first(model_outputs["importance"]),
                                   first(model_outputs["complementarity"]), first(model_outputs["inconsistency"]),
                                   self.model.config.id2label, list(self.model.config.aspects), top_k)
        descriptions = model_outputs.get("descriptions")
        if isinstance(descriptions, list):  # a batch of one (run_single); batched outputs come unrolled
            descriptions = descriptions[0]
        if descriptions is not None:
            record["descriptions"] = descriptions
        return record


def _concatenate(items: list[dict]) -> dict:
    return {"rows": [row for item in items for row in item["rows"]],
            "descriptions": [d for item in items for d in item["descriptions"]]}


__all__ = ["DEFAULT_TOP_K", "MultimodalIntentRecognitionPipeline", "TASK", "check_example", "format_prediction"]
