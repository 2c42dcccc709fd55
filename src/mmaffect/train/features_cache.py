"""Frozen-encoder features for the LGSRR fast modes, cached as Arrow datasets.

With a frozen encoder, the pooled features of each text and description never change, so they are
computed once (encoder in eval mode: no dropout) and stored with ``Dataset.save_to_disk`` under a
folder named by a fingerprint of everything that determines them (encoder weights, pooling, token
lengths, the tokenised rows). Later runs - other seeds, other head settings - read them back in
seconds.

Used by ``mmaffect train`` in three ways:

* ``freeze_encoder: true`` - train only the relational head (weight net + classifier) on cached
  text and description features: minutes on a CPU;
* ``freeze_aspect_encoder: true`` (needs ``share_encoder: false``) - fine-tune the text encoder but
  read the descriptions' features from the cache: a step costs about what a text-only step costs;
* ``head_warmup_epochs: N`` - warm-start the relational head on cached features before fine-tuning.

The trainer runs the head on these features through the model's own entry for precomputed features,
``LGSRRForSequenceClassification.forward_head`` (``forward`` calls it after the encoder).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch
from datasets import Array2D, Dataset, Features, List, Value, load_from_disk
from tqdm.auto import tqdm

FEATURES_CACHE_VERSION = 1


def default_cache_dir() -> Path:
    """``$MMAFFECT_FEATURES_CACHE`` or ``~/.cache/mmaffect/lgsrr_features``."""
    env = os.environ.get("MMAFFECT_FEATURES_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "mmaffect" / "lgsrr_features"


def weights_fingerprint(module: torch.nn.Module) -> str:
    """A hash of every parameter and buffer (names, shapes and values) of ``module``."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().to(torch.float32).cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


TOKEN_COLUMNS = ("input_ids", "attention_mask", "token_type_ids", "aspect_input_ids", "aspect_attention_mask")


def rows_fingerprint(dataset: Dataset) -> str:
    """A hash of the token columns' content (not ``Dataset._fingerprint``, which also hashes the code
    of every ``map`` function - line numbers included - and so changes whenever that code is edited)."""
    digest = hashlib.sha256()
    columns = [c for c in TOKEN_COLUMNS if c in dataset.column_names]
    digest.update(json.dumps(columns).encode())
    for batch in dataset.select_columns(columns).iter(batch_size=2000):
        digest.update(json.dumps([batch[c] for c in columns], separators=(",", ":")).encode())
    return digest.hexdigest()[:16]


def features_fingerprint(encoders, dataset_fingerprint: str, settings: dict) -> str:
    """Names a cache entry: the encoders' weights + the settings that shape the features (pooling,
    aspects, ...) + the tokenised rows (:func:`rows_fingerprint`)."""
    parts = {
        "version": FEATURES_CACHE_VERSION,
        # distinct weights only: a second encoder that still holds the same weights gives the same features
        "encoders": sorted({weights_fingerprint(m) for m in encoders}),
        "settings": settings,
        "rows": dataset_fingerprint,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:20]


@torch.no_grad()
def encode_features(module, dataset: Dataset, collator, batch_size: int = 64, desc: str = "Encoding") -> dict[str, np.ndarray]:
    """Pooled features of every row of a tokenised dataset, from ``module.encode(**batch)`` (a dict of
    ``(B, ...)`` tensors such as ``text_embeds`` / ``aspect_embeds``) with the module in eval mode.

    Rows are encoded in order of length (less padding) and put back in row order; float32 arrays.
    """
    was_training = module.training
    module.eval()
    rows = dataset.select_columns([c for c in TOKEN_COLUMNS if c in dataset.column_names])
    lengths = [max([len(r["input_ids"])] + [len(a) for a in r.get("aspect_input_ids") or []]) for r in rows]
    order = np.argsort(np.asarray(lengths), kind="stable")
    arrays: dict[str, np.ndarray] = {}
    for start in tqdm(range(0, len(order), batch_size), desc=desc, leave=False):
        index = order[start : start + batch_size]
        out = module.encode(**collator([rows[int(i)] for i in index]))
        for name, value in out.items():
            value = value.float().cpu().numpy()
            if name not in arrays:
                arrays[name] = np.zeros((len(dataset),) + value.shape[1:], dtype=np.float32)
            arrays[name][index] = value
    module.train(was_training)
    return arrays


def cached_features(module, dataset: Dataset, collator, cache_dir: str | os.PathLike | None = None, *,
                    encoders, settings: dict, split: str = "train", batch_size: int = 64, is_main_process: bool = True,
                    wait_for_everyone=None) -> Dataset:
    """Arrow dataset of the features ``module.encode`` gives for each row of ``dataset`` (same order),
    read from the cache when present, else encoded and written there.

    ``encoders`` (the frozen modules) and ``settings`` name the entry with the rows' fingerprint. In
    multi-process runs only the main process encodes and writes; the others wait and read.
    """
    cache_root = Path(cache_dir) if cache_dir else default_cache_dir()
    fingerprint = features_fingerprint(encoders, rows_fingerprint(dataset), settings)
    folder = cache_root / f"{split}-{fingerprint}"
    if not (folder / "dataset_info.json").exists() and is_main_process:
        arrays = encode_features(module, dataset, collator, batch_size=batch_size, desc=f"Encoding {split} (frozen)")
        features = Features({
            name: (List(Value("float32"), length=a.shape[1]) if a.ndim == 2 else Array2D(shape=a.shape[1:], dtype="float32"))
            for name, a in arrays.items()
        })  # fmt: skip
        table = Dataset.from_dict(arrays, features=features)
        cache_root.mkdir(parents=True, exist_ok=True)
        tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
        table.save_to_disk(str(tmp))
        tmp.rename(folder)  # atomic: a killed run never leaves a half-written entry behind
    if wait_for_everyone is not None:
        wait_for_everyone()
    cached = load_from_disk(str(folder))
    if len(cached) != len(dataset):
        raise ValueError(f"features cache {folder} has {len(cached)} rows but the {split} split has {len(dataset)}")
    return cached


__all__ = ["cached_features", "default_cache_dir", "encode_features", "features_fingerprint", "weights_fingerprint"]
