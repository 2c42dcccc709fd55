"""``mmaffect predict --model DIR --input FILE.{jsonl,tsv} --output preds.jsonl``: apply a trained LGSRR
checkpoint to new utterances.

Input rows (one per line):

* JSONL - ``{"id": "u1", "text": "...", "descriptions": {"actions": "...", "expressions": "...", ...}}``
  (descriptions as a mapping by the model's aspect names, or a list in its order); instead of
  ``descriptions`` a row may give ``video`` (a clip path, relative to the input file) when
  ``--extraction-config`` configures a describer (``mmaffect.semantic_extraction.ClipDescriber``);
* TSV - a header with ``text``, optionally ``id``, and one column per aspect name (or ``video``).

A row without ``id`` is named by its line number. Every row is checked before anything runs; a bad
row stops the command with ``mmaffect predict: error: FILE:LINE: what is wrong`` (exit status 2). Output: one JSON line per row with ``id``,
``text`` and the pipeline's fields (``label``, ``score``, ``top_k``, ``importance``,
``complementarity``, ``inconsistency``, and ``descriptions`` where they were written from a video).

Rows are sorted by token length and batched exactly as ``mmaffect evaluate`` batches a split, so on
the same rows both give the same predictions (tests/test_lgsrr_inference.py checks it on the real
MIntRec2.0 test split). Each batch is appended to ``--output`` as soon as it is done; a rerun skips
the ids already there (a crash loses at most one batch), and when every row is done the file is
rewritten once in input order.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
from pathlib import Path

import numpy as np

MEDIA_FIELDS = ("video", "audio")


class InputError(ValueError):
    """A bad input row: the message starts with ``FILE:LINE``."""


# ----------------------------------------------------------------------------------------------- reading
def read_rows(path: str | os.PathLike, aspects: list[str]) -> list[dict]:
    """Rows of a JSONL or TSV input file as ``{"id", "text", "descriptions"|"video"|"audio", "line"}``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--input {path} does not exist")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        rows = _read_jsonl(path)
    elif suffix in (".tsv", ".txt"):
        rows = _read_tsv(path, aspects)
    else:
        raise InputError(f"{path}: unknown input format {suffix!r}; use .jsonl or .tsv")
    if not rows:
        raise InputError(f"{path}: no rows")
    seen: dict[str, int] = {}
    for row in rows:
        for key in MEDIA_FIELDS:  # media paths are relative to the input file
            if isinstance(row.get(key), str) and not os.path.isabs(row[key]):
                row[key] = str(path.parent / row[key])
        if row["id"] in seen:
            raise InputError(f"{path}:{row['line']}: id {row['id']!r} repeats line {seen[row['id']]}")
        seen[row["id"]] = row["line"]
    return rows


def _read_jsonl(path: Path) -> list[dict]:
    from mmaffect.metrics.records import read_jsonl_objects

    try:
        records = read_jsonl_objects(path)
    except ValueError as error:
        raise InputError(str(error)) from None
    rows = []
    for number, record in records:
        record_id = record.pop("id", number)
        if not isinstance(record_id, (str, int)) or isinstance(record_id, bool):
            raise InputError(f"{path}:{number}: field 'id' must be a string or an integer, got {record_id!r}")
        rows.append({**record, "id": str(record_id), "line": number})
    return rows


def _read_tsv(path: Path, aspects: list[str]) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if header is None:
            raise InputError(f"{path}: empty file")
        header = [h.strip() for h in header]
        if "text" not in header:
            raise InputError(f"{path}:1: the header has no 'text' column (columns: {header})")
        known = {"id", "text", *aspects, *MEDIA_FIELDS}
        unknown = [h for h in header if h not in known]
        if unknown:
            raise InputError(f"{path}:1: unknown column(s) {unknown}; expected id, text, the aspects {aspects} "
                             f"(or video / audio)")
        has_aspects = [a for a in aspects if a in header]
        if has_aspects and len(has_aspects) != len(aspects):
            missing = [a for a in aspects if a not in header]
            raise InputError(f"{path}:1: the header lacks the aspect column(s) {missing}")
        rows = []
        for number, cells in enumerate(reader, 2):
            if not cells or all(not c.strip() for c in cells):
                continue
            if len(cells) != len(header):
                raise InputError(f"{path}:{number}: {len(cells)} cells but the header has {len(header)} columns")
            values = dict(zip(header, cells))
            row = {"id": values.get("id") or str(number), "text": values["text"], "line": number}
            if has_aspects:
                row["descriptions"] = {a: values[a] for a in aspects}
            for key in MEDIA_FIELDS:
                if values.get(key):
                    row[key] = values[key]
            rows.append(row)
    return rows


# ----------------------------------------------------------------------------------------------- output file
def read_done(path: Path, input_ids: set[str]) -> dict[str, dict]:
    """Records already in ``--output``; an unfinished last line (a killed run) is cut off."""
    done: dict[str, dict] = {}
    if not path.exists():
        return done
    lines = path.read_bytes().split(b"\n")
    complete = len(lines) - 1  # the part after the last newline is unfinished (or empty)
    for number, raw in enumerate(lines[:complete], 1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
            record_id = str(record["id"])
        except (json.JSONDecodeError, KeyError, TypeError):
            raise InputError(f"--output {path}:{number}: not a prediction record; use another --output") from None
        if record_id not in input_ids:
            raise InputError(f"--output {path}:{number}: id {record_id!r} is not in --input; this file belongs to "
                             f"another input: use another --output")
        done[record_id] = record
    if lines[complete].strip():
        with open(path, "r+b") as f:  # drop the half-written record
            f.truncate(sum(len(line) + 1 for line in lines[:complete]))
    return done


# ----------------------------------------------------------------------------------------------- running
def load_processor(model_dir: str | os.PathLike):
    """The processor of a trained LGSRR folder (a clear error for any other folder)."""
    model_dir = Path(model_dir)
    config_path = model_dir / "config.json"
    if not config_path.exists():
        raise FileNotFoundError(f"--model {model_dir}: no config.json (a folder written by mmaffect train)")
    model_type = json.loads(config_path.read_text()).get("model_type")
    if model_type != "lgsrr":
        raise ValueError(f"--model {model_dir}: model_type {model_type!r}; mmaffect predict runs LGSRR checkpoints "
                         f"(a text-only baseline is a standard checkpoint: pipeline('text-classification', model=...))")
    if not (model_dir / "processor_config.json").exists():
        raise FileNotFoundError(f"--model {model_dir}: no processor_config.json (saved by mmaffect train beside the "
                                f"model; or LGSRRProcessor(...).save_pretrained(folder))")
    from mmaffect.models.lgsrr import LGSRRProcessor

    return LGSRRProcessor.from_pretrained(model_dir)


def load_pipeline(model_dir: str | os.PathLike, describer=None, device=None, processor=None):
    """The multimodal-intent-recognition pipeline of a trained folder, built from mmaffect's own classes."""
    from mmaffect.models.lgsrr import LGSRRForSequenceClassification, MultimodalIntentRecognitionPipeline

    from mmaffect.checkpoints import from_pretrained_strict

    processor = processor or load_processor(model_dir)
    model = from_pretrained_strict(LGSRRForSequenceClassification, model_dir)  # a missing tensor is an error
    return MultimodalIntentRecognitionPipeline(model=model, processor=processor, describer=describer, device=device)


def sequence_cost(row: dict) -> int:
    """The padded length that decides a row's compute (as ``mmaffect evaluate`` sorts rows)."""
    return max([len(row["input_ids"])] + [len(seq) for seq in row["aspect_input_ids"]])


def predict_file(model_dir, input_path, output_path, *, batch_size: int = 64, top_k: int = 5, describer=None,
                 device=None, progress: bool = True) -> dict:
    """Run the whole input (resuming a previous run of the same output); returns counts."""
    import torch
    from tqdm.auto import tqdm

    from mmaffect.models.lgsrr import format_prediction

    if batch_size < 1 or top_k < 1:
        raise ValueError(f"--batch-size and --top-k must be >= 1, got {batch_size} and {top_k}")
    from mmaffect.models.lgsrr import check_example

    processor = load_processor(model_dir)
    aspects = list(processor.aspects)
    input_path, output_path = Path(input_path), Path(output_path)
    rows = read_rows(input_path, aspects)
    for row in rows:  # check everything before the model is even loaded
        example = {k: row[k] for k in row if k not in ("id", "line")}
        try:
            check_example(example, processor, describer is not None, f"{input_path}:{row['line']}")
        except (TypeError, ValueError, FileNotFoundError) as error:
            raise InputError(str(error)) from None
    done = read_done(output_path, {row["id"] for row in rows})
    pipe = load_pipeline(model_dir, describer=describer, device=device, processor=processor)
    model = pipe.model
    todo = [row for row in rows if row["id"] not in done]

    generated: dict[str, dict] = {}
    for row in tqdm([r for r in todo if r.get("descriptions") is None], desc="Describing clips", disable=not progress):
        example = {k: row[k] for k in ("text", *MEDIA_FIELDS) if k in row}
        row["descriptions"] = generated[row["id"]] = pipe.describe(example)
    encoded = []
    for row in todo:
        tokens = processor(text=row["text"], descriptions=row["descriptions"], padding=False)
        encoded.append({key: values[0] for key, values in tokens.items()})
    order = np.argsort([sequence_cost(e) for e in encoded], kind="stable")
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]

    output_path.parent.mkdir(parents=True, exist_ok=True)
    with open(output_path, "a", encoding="utf-8") as out, torch.no_grad():
        for batch in tqdm(batches, desc="Predicting", disable=not progress):
            inputs = processor.pad([encoded[i] for i in batch]).to(pipe.device)
            result = model(**inputs)
            for j, i in enumerate(batch):
                row = todo[i]
                record = {"id": row["id"], "text": row["text"]}
                record |= format_prediction(
                    result.logits[j], *(None if v is None else v[j] for v in
                                        (result.importance, result.complementarity, result.inconsistency)),
                    model.config.id2label, aspects, top_k)
                if row["id"] in generated:
                    record["descriptions"] = generated[row["id"]]
                done[row["id"]] = record
                out.write(json.dumps(record) + "\n")
            out.flush()
    # everything done: the file once more, in input order (atomically)
    partial = output_path.with_name(output_path.name + ".tmp")
    with open(partial, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(done[row["id"]]) + "\n")
    os.replace(partial, output_path)
    return {"rows": len(rows), "predicted": len(todo), "skipped": len(rows) - len(todo)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mmaffect predict", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--model", required=True, help="a folder written by mmaffect train (best_model)")
    parser.add_argument("--input", required=True, help="rows to classify: .jsonl or .tsv")
    parser.add_argument("--output", required=True, help="predictions, one JSON line per row (resumed if it exists)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--top-k", type=int, default=5, help="length of each row's top_k list")
    parser.add_argument("--extraction-config", help="an mmaffect extract YAML: describe rows that give a video")
    parser.add_argument("--extraction-cache", help="reply cache of the describer (default: next to its config)")
    parser.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: the first accelerator, else cpu)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    describer = None
    if args.extraction_config:
        from mmaffect.semantic_extraction import ClipDescriber

        describer = ClipDescriber.from_config(args.extraction_config, args.extraction_cache)
    # a bad row raises InputError (a ValueError): `mmaffect predict` prints it on one line and exits 2
    counts = predict_file(args.model, args.input, args.output, batch_size=args.batch_size, top_k=args.top_k,
                          describer=describer, device=args.device, progress=not args.no_progress)
    print(f"wrote {args.output}: {counts['predicted']} predicted, {counts['skipped']} already there")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
