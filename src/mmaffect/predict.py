"""``mmaffect predict --model DIR --input FILE.{jsonl,tsv} --output preds.jsonl``: apply a trained LGSRR
checkpoint to new utterances.

Input rows (one per line):

* JSONL - ``{"id": "u1", "text": "...", "descriptions": {"actions": "...", "expressions": "...", ...}}``
  (descriptions as a mapping by the model's aspect names, or a list in its order); instead of
  ``descriptions`` a row may give ``video`` (a clip path, relative to the input file) when
  ``--extraction-config`` configures a describer (``mmaffect.semantic_extraction.ClipDescriber``);
* TSV - a header with ``text``, optionally ``id``, and one column per aspect name (or ``video``).

A row without ``id`` is named by its line number. Every row is checked before anything runs; a bad
row stops the command with ``mmaffect predict: error: FILE:LINE: what is wrong`` (exit status 2), or with
``--on-bad-rows skip`` is left out and listed at the end (stderr and ``OUTPUT.skipped.jsonl``, one line per
row with its reason). Output: one JSON line per row with ``id``,
``text`` and the pipeline's fields (``label``, ``score``, ``top_k``, ``importance``,
``complementarity``, ``inconsistency``, and ``descriptions`` where they were written from a video).

Rows are sorted by token length and batched exactly as ``mmaffect evaluate classifier`` batches a split, so on
the same rows both give the same predictions (tests/test_lgsrr_inference.py checks it on the real
MIntRec2.0 test split). Each batch is appended to ``--output`` as soon as it is done; a rerun skips
the ids already there (a crash loses at most one batch), and when every row is done the file is
rewritten once in input order. A rerun only reuses what this command wrote for the same model (a digest
of the folder's files), the same ``--top-k`` and the same input rows: ``OUTPUT.run.json`` records them,
and an output written for another model or another content of a row is refused, never overwritten or
mixed in. ``--output`` cannot be the ``--input`` file. How many rows were reused is said on stderr.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import sys
from pathlib import Path

import numpy as np

MEDIA_FIELDS = ("video", "audio")


class InputError(ValueError):
    """A bad input row: the message starts with ``FILE:LINE``."""


# ----------------------------------------------------------------------------------------------- reading
def read_rows(path: str | os.PathLike, aspects: list[str], bad: list[tuple[int, str]] | None = None) -> list[dict]:
    """Rows of a JSONL or TSV input file as ``{"id", "text", "descriptions"|"video"|"audio", "line"}``.

    A bad row is an :class:`InputError` naming ``FILE:LINE``; with a ``bad`` list it is appended there as
    ``(line, reason)`` and left out instead (``--on-bad-rows skip``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--input {path} does not exist")
    suffix = path.suffix.lower()
    problems: list[tuple[int, str]] = []
    if suffix in (".jsonl", ".json"):
        rows = _read_jsonl(path, problems)
    elif suffix in (".tsv", ".txt"):
        rows = _read_tsv(path, aspects, problems)
    else:
        raise InputError(f"{path}: unknown input format {suffix!r}; use .jsonl or .tsv")
    seen: dict[str, int] = {}
    kept = []
    for row in rows:
        for key in MEDIA_FIELDS:  # media paths are relative to the input file
            if isinstance(row.get(key), str) and not os.path.isabs(row[key]):
                row[key] = str(path.parent / row[key])
        if row["id"] in seen:
            problems.append((row["line"], f"id {row['id']!r} repeats line {seen[row['id']]}"))
            continue
        seen[row["id"]] = row["line"]
        kept.append(row)
    problems.sort()
    if problems and bad is None:
        raise InputError(f"{path}:{problems[0][0]}: {problems[0][1]}")
    if bad is not None:
        bad.extend(problems)
    if not kept:
        raise InputError(f"{path}: no rows" + (f" ({len(problems)} bad row(s) skipped)" if problems else ""))
    return kept


def _read_jsonl(path: Path, problems: list[tuple[int, str]]) -> list[dict]:
    from mmaffect.metrics.records import read_jsonl_objects

    try:
        records = read_jsonl_objects(path, problems)
    except ValueError as error:
        raise InputError(str(error)) from None
    rows = []
    for number, record in records:
        record_id = record.pop("id", number)
        if not isinstance(record_id, (str, int)) or isinstance(record_id, bool):
            problems.append((number, f"field 'id' must be a string or an integer, got {record_id!r}"))
            continue
        rows.append({**record, "id": str(record_id), "line": number})
    return rows


def _read_tsv(path: Path, aspects: list[str], problems: list[tuple[int, str]]) -> list[dict]:
    from mmaffect.errors import read_text_utf8

    try:
        text = read_text_utf8(path)
    except ValueError as error:
        raise InputError(str(error)) from None
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t", quoting=csv.QUOTE_NONE)
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
            problems.append((number, f"{len(cells)} cells but the header has {len(header)} columns"))
            continue
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
def run_file(output: Path) -> Path:
    """The fingerprint beside ``--output``: the model, ``top_k`` and a digest of every input row."""
    return output.with_name(output.name + ".run.json")


def skipped_file(output: Path) -> Path:
    """The list of the input rows ``--on-bad-rows skip`` left out, one JSON line each."""
    return output.with_name(output.name + ".skipped.jsonl")


def model_digest(model_dir: str | os.PathLike) -> str:
    """SHA-256 of the model folder's files (weights, config, processor, tokenizer; not the card): a model
    retrained into the same folder is another model."""
    digest = hashlib.sha256()
    for file in sorted(p for p in Path(model_dir).iterdir() if p.is_file() and p.suffix != ".md" and not p.name.startswith(".")):
        digest.update(file.name.encode("utf-8") + b"\0")
        with open(file, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 22), b""):
                digest.update(chunk)
    return digest.hexdigest()[:16]


def row_digest(row: dict) -> str:
    """What a prediction depends on in the row: its text, descriptions and media paths (not its line)."""
    content = json.dumps({k: v for k, v in row.items() if k != "line"}, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(content.encode("utf-8")).hexdigest()[:16]


def check_output_path(input_path: Path, output_path: Path) -> None:
    """``--output`` must not be the input (resuming would read the input rows as finished predictions)."""
    same = input_path.exists() and output_path.exists() and os.path.samefile(input_path, output_path)
    if same or output_path.resolve() == input_path.resolve():
        raise InputError(f"--output {output_path} is the --input file; write the predictions to another file")


def read_done(path: Path, rows: list[dict], fingerprint: dict) -> dict[str, dict]:
    """Records already in ``--output``, kept only when this command wrote them for the same model and the
    same input rows (the fingerprint in :func:`run_file`); an unfinished last line (a killed run) is cut off."""
    done: dict[str, dict] = {}
    if not path.exists() or path.stat().st_size == 0:
        return done
    saved = _read_fingerprint(path)
    if saved.get("model") != fingerprint["model"] or saved.get("top_k") != fingerprint["top_k"]:
        raise InputError(f"--output {path} was written for another model ({saved.get('model_dir')}, top_k "
                         f"{saved.get('top_k')}; now {fingerprint['model_dir']}, top_k {fingerprint['top_k']}): "
                         "use another --output, or delete it to start again")
    by_id = {row["id"]: row for row in rows}
    lines = path.read_bytes().split(b"\n")
    complete = len(lines) - 1  # the part after the last newline is unfinished (or empty)
    for number, raw in enumerate(lines[:complete], 1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
            record_id = str(record["id"])
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
            raise InputError(f"--output {path}:{number}: not a prediction record; use another --output") from None
        if record_id not in by_id:
            raise InputError(f"--output {path}:{number}: id {record_id!r} is not in --input; this file belongs to "
                             f"another input: use another --output")
        if saved.get("rows", {}).get(record_id) != fingerprint["rows"][record_id]:
            raise InputError(f"--output {path}:{number}: row {record_id!r} was predicted from another input row than "
                             f"--input line {by_id[record_id]['line']} (the input changed): use another --output, or "
                             "delete it to start again")
        done[record_id] = record
    if lines[complete].strip():
        with open(path, "r+b") as f:  # drop the half-written record
            f.truncate(sum(len(line) + 1 for line in lines[:complete]))
    return done


def _read_fingerprint(path: Path) -> dict:
    meta = run_file(path)
    try:
        saved = json.loads(meta.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"--output {path} exists but was not written by mmaffect predict (no {meta.name} beside it): "
                         "use another --output, or delete it") from None
    except (OSError, ValueError) as error:
        raise InputError(f"--output {path}: its fingerprint {meta} is unreadable ({error}): delete both files") from None
    return saved if isinstance(saved, dict) else {}


def write_fingerprint(path: Path, fingerprint: dict) -> None:
    from mmaffect.checkpoints import write_text_atomic

    write_text_atomic(run_file(path), json.dumps(fingerprint, indent=1, ensure_ascii=False) + "\n")


def report_bad_rows(input_path: Path, output_path: Path, bad: list[tuple[int, str]]) -> None:
    """Every skipped row, with its reason, on stderr and in :func:`skipped_file` (removed when none)."""
    side = skipped_file(output_path)
    if not bad:
        side.unlink(missing_ok=True)  # a list from an earlier run would describe another input
        return
    with open(side, "w", encoding="utf-8") as handle:
        for line, reason in bad:
            handle.write(json.dumps({"file": str(input_path), "line": line, "reason": reason}, ensure_ascii=False) + "\n")
    print(f"mmaffect predict: skipped {len(bad)} bad row(s) of {input_path} (listed in {side}):", file=sys.stderr)
    for line, reason in bad:
        print(f"  {input_path}:{line}: {reason}", file=sys.stderr)


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


def checked_rows(input_path: Path, processor, describer, bad: list[tuple[int, str]] | None) -> list[dict]:
    """The input rows, each checked against the processor before any model is loaded (see :func:`read_rows`
    for ``bad``)."""
    from mmaffect.models.lgsrr import check_example

    rows = read_rows(input_path, list(processor.aspects), bad)
    kept = []
    for row in rows:
        example = {k: row[k] for k in row if k not in ("id", "line")}
        where = f"{input_path}:{row['line']}"
        try:
            check_example(example, processor, describer is not None, where)
        except (TypeError, ValueError, FileNotFoundError) as error:
            if bad is None:
                raise InputError(str(error)) from None
            bad.append((row["line"], str(error).removeprefix(where + ": ")))
            continue
        kept.append(row)
    if not kept:
        raise InputError(f"{input_path}: no usable rows ({len(bad or ())} bad row(s) skipped)")
    if bad:
        bad.sort()
    return kept


def predict_file(model_dir, input_path, output_path, *, batch_size: int = 64, top_k: int = 5, describer=None,
                 device=None, progress: bool = True, on_bad_rows: str = "error") -> dict:
    """Run the whole input (resuming a previous run of the same output: same model, same rows); returns counts.

    ``on_bad_rows``: ``"error"`` (default: the first bad row stops the command) or ``"skip"`` (bad rows
    are left out and reported at the end, on stderr and in :func:`skipped_file`)."""
    import torch
    from tqdm.auto import tqdm

    from mmaffect.models.lgsrr import format_prediction

    if batch_size < 1 or top_k < 1:
        raise ValueError(f"--batch-size and --top-k must be >= 1, got {batch_size} and {top_k}")
    if on_bad_rows not in ("error", "skip"):
        raise ValueError(f"--on-bad-rows must be 'error' or 'skip', got {on_bad_rows!r}")
    input_path, output_path = Path(input_path), Path(output_path)
    check_output_path(input_path, output_path)
    processor = load_processor(model_dir)
    aspects = list(processor.aspects)
    bad: list[tuple[int, str]] | None = [] if on_bad_rows == "skip" else None
    rows = checked_rows(input_path, processor, describer, bad)
    fingerprint = {"written_by": "mmaffect predict", "model_dir": str(model_dir), "model": model_digest(model_dir),
                   "top_k": top_k, "input": str(input_path), "rows": {row["id"]: row_digest(row) for row in rows}}
    done = read_done(output_path, rows, fingerprint)
    if done:
        print(f"mmaffect predict: resuming {output_path}: {len(done)} of {len(rows)} row(s) reused (written earlier "
              f"for the same model and input rows), {len(rows) - len(done)} to predict", file=sys.stderr)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    write_fingerprint(output_path, fingerprint)
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
    report_bad_rows(input_path, output_path, bad or [])
    return {"rows": len(rows), "predicted": len(todo), "skipped": len(rows) - len(todo), "bad_rows": len(bad or ())}


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
    parser.add_argument("--on-bad-rows", choices=("error", "skip"), default="error",
                        help="error (default): a bad input row stops the command; skip: leave bad rows out and list "
                             "them at the end (stderr and OUTPUT.skipped.jsonl)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    describer = None
    if args.extraction_config:
        from mmaffect.semantic_extraction import ClipDescriber

        describer = ClipDescriber.from_config(args.extraction_config, args.extraction_cache)
    # a bad row raises InputError (a ValueError): `mmaffect predict` prints it on one line and exits 2
    counts = predict_file(args.model, args.input, args.output, batch_size=args.batch_size, top_k=args.top_k,
                          describer=describer, device=args.device, progress=not args.no_progress,
                          on_bad_rows=args.on_bad_rows)
    print(f"wrote {args.output}: {counts['predicted']} predicted, {counts['skipped']} already there")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
