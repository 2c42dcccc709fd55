"""The pieces of LGSRR training that evaluation reuses: the training module (one forward for token and
cached-feature batches), the batch order, the collator, the loader and prediction.

``train/lgsrr.py`` (the trainer) and ``train/evaluate.py`` (a trained folder over a split) both import them
from here, so neither imports the other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm


class LGSRRTrainingModule(nn.Module):
    """``LGSRRForSequenceClassification`` behind one forward that accepts three kinds of batch:

    * tokens for text and descriptions -> the model's own forward;
    * text tokens + cached ``aspect_embeds`` (``freeze_aspect_encoder``) -> text through the encoder,
      then the relational head;
    * cached ``text_embeds`` + ``aspect_embeds`` (``freeze_encoder``, head warm-up) -> head only.

    Wrapping keeps a single ``nn.Module`` for ``accelerator.prepare`` so DDP sees every forward.
    """

    def __init__(self, model):
        super().__init__()
        self.model = model

    @property
    def config(self):
        return self.model.config

    def save_pretrained(self, folder, **kwargs):
        self.model.save_pretrained(folder, **kwargs)

    def encode(self, **batch):
        out = self.model.lgsrr(batch["input_ids"], attention_mask=batch.get("attention_mask"),
                               token_type_ids=batch.get("token_type_ids"), aspect_input_ids=batch["aspect_input_ids"],
                               aspect_attention_mask=batch.get("aspect_attention_mask"))
        return {"text_embeds": out.text_embeds, "aspect_embeds": out.aspect_embeds}

    def forward(self, labels=None, aspect_ranks=None, text_embeds=None, aspect_embeds=None, **inputs):
        if aspect_embeds is None:
            return self.model(**inputs, labels=labels, aspect_ranks=aspect_ranks)
        if text_embeds is None:
            # Text through the (trainable) text encoder; the descriptions come from the cache.
            text_embeds = self.model.lgsrr.encode_text(inputs["input_ids"], inputs.get("attention_mask"),
                                                       inputs.get("token_type_ids"))
        return self.model.forward_head(text_embeds, aspect_embeds, labels=labels, aspect_ranks=aspect_ranks)


def sequence_cost(row: dict, with_aspects: bool) -> int:
    """Padded length that decides a row's compute: the model pads text and descriptions to one length."""
    length = len(row["input_ids"])
    if with_aspects and "aspect_input_ids" in row:
        length = max([length] + [len(a) for a in row["aspect_input_ids"]])
    return length


class BatchOrder(torch.utils.data.Sampler):
    """Batches of row indices, a pure function of (seed, epoch): a resumed run replays the same order.

    ``group_by_length``: shuffle, cut into chunks of 50 batches, sort each chunk by length, batch, and
    shuffle the batches - far less padding, still random. Without shuffling: batches in length order
    (evaluation; predictions are put back in row order afterwards).
    """

    def __init__(self, lengths, batch_size: int, seed: int = 0, shuffle: bool = True, group_by_length: bool = True):
        self.lengths = np.asarray(lengths)
        self.batch_size, self.seed, self.shuffle, self.group_by_length = batch_size, seed, shuffle, group_by_length
        self.epoch = 0

    def use_epoch(self, epoch: int) -> None:
        # Deliberately not named `set_epoch`: Accelerate's DataLoaderShard calls `set_epoch` with its own
        # iteration counter, which restarts at 0 in a resumed process and would replay epoch 0's order.
        self.epoch = epoch

    def batches(self) -> list[list[int]]:
        n, size = len(self.lengths), self.batch_size
        if not self.shuffle:
            order = np.argsort(self.lengths, kind="stable") if self.group_by_length else np.arange(n)
            return [order[i : i + size].tolist() for i in range(0, n, size)]
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(n)
        if not self.group_by_length:
            return [order[i : i + size].tolist() for i in range(0, n, size)]
        chunk = size * 50
        grouped = []
        for start in range(0, n, chunk):
            part = order[start : start + chunk]
            part = part[np.argsort(self.lengths[part], kind="stable")]
            grouped += [part[i : i + size].tolist() for i in range(0, len(part), size)]
        return [grouped[i] for i in rng.permutation(len(grouped))]

    def __iter__(self):
        return iter(self.batches())

    def __len__(self) -> int:
        return math.ceil(len(self.lengths) / self.batch_size)


@dataclass
class TrainingCollator:
    """Pads token rows with ``LGSRRDataCollator`` and adds cached features by ``row_index``."""

    token_collator: object
    text_embeds: torch.Tensor | None = None  # (N, d): cached; text tokens are dropped
    aspect_embeds: torch.Tensor | None = None  # (N, K, d): cached; description tokens are dropped

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        index = torch.tensor([int(r["row_index"]) for r in rows])
        if self.text_embeds is None:
            drop = ("aspect_input_ids", "aspect_attention_mask") if self.aspect_embeds is not None else ()
            batch = self.token_collator([{k: v for k, v in r.items() if k not in drop} for r in rows])
        else:
            batch = {"labels": torch.tensor([int(r["label"]) for r in rows])}
            ranks = [r.get("aspect_ranks") for r in rows]
            if any(r is not None for r in ranks):
                k = self.aspect_embeds.shape[1]
                batch["aspect_ranks"] = torch.tensor([[-1] * k if r is None else list(r) for r in ranks])
            batch["text_embeds"] = self.text_embeds[index]
        if self.aspect_embeds is not None:
            batch["aspect_embeds"] = self.aspect_embeds[index]
        batch["row_index"] = index
        return batch


def make_loader(dataset, collator, batch_size: int, seed: int, shuffle: bool, group_by_length: bool, with_aspects: bool,
                num_workers: int = 0):
    lengths = [sequence_cost(row, with_aspects) for row in dataset.select_columns(
        [c for c in ("input_ids", "aspect_input_ids") if c in dataset.column_names])]
    order = BatchOrder(lengths, batch_size, seed=seed, shuffle=shuffle, group_by_length=group_by_length)
    keep = [c for c in ("input_ids", "attention_mask", "token_type_ids", "aspect_input_ids", "aspect_attention_mask",
                        "label", "aspect_ranks", "row_index") if c in dataset.column_names]
    # A private generator: creating an iterator would otherwise draw a seed from the global RNG, and a
    # run resumed mid-epoch creates its iterator at another point of the RNG stream than the original.
    loader = torch.utils.data.DataLoader(dataset.select_columns(keep), batch_sampler=order, collate_fn=collator,
                                         num_workers=num_workers, generator=torch.Generator().manual_seed(seed))
    return loader, order


@torch.no_grad()
def predict(module, loader, accelerator, desc: str = "Evaluating") -> dict[str, np.ndarray]:
    """Logits (and LGSRR importance α) for every row of the loader's dataset, in row order, gathered
    from all processes."""
    from accelerate.utils import gather_object

    module.eval()
    local = []
    for batch in tqdm(loader, desc=desc, leave=False, disable=not accelerator.is_local_main_process):
        index = batch.pop("row_index")
        batch.pop("labels", None), batch.pop("aspect_ranks", None)
        out = module(**batch)
        importance = out.importance.float().cpu() if out.importance is not None else None
        for j, i in enumerate(index.tolist()):
            local.append((i, out.logits[j].float().cpu().numpy(), None if importance is None else importance[j].numpy()))
    rows = {i: (logits, imp) for i, logits, imp in gather_object(local)} if accelerator.num_processes > 1 else \
        {i: (logits, imp) for i, logits, imp in local}
    order = sorted(rows)
    logits = np.stack([rows[i][0] for i in order])
    importance = None if rows[order[0]][1] is None else np.stack([rows[i][1] for i in order])
    return {"row_index": np.array(order), "logits": logits, "importance": importance}


__all__ = ["BatchOrder", "LGSRRTrainingModule", "TrainingCollator", "make_loader", "predict", "sequence_cost"]
