"""Run a trained LGSRR (or text-only baseline) folder over a benchmark split (the command line is
``mmaffect evaluate classifier --model DIR --dataset NAME --data-dir ... [--split test]``,
:mod:`mmaffect.evaluation.cli_classifier`), writing in ``output_dir``:

* ``results.json`` - accuracy, macro and weighted F1 / precision / recall (scikit-learn's definitions);
* ``per_class_report.txt`` / ``.json`` - precision, recall, F1 and support of every class;
* ``confusion_matrix.png`` (rows normalised, as the paper's Figure 2) and ``confusion_matrix.json`` (counts);
* ``predictions.jsonl`` - per sample: id, text, gold and predicted label, the predicted label's
  probability, the top 3, and (LGSRR) the importance α of the text and of every description with
  the resulting ranking - next to the LLM's ranking when the split has one.

Training writes the same files for the test split of the best epoch (``<run>/test/``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

SPLIT_NAMES = {"dev": "validation", "valid": "validation", "validation": "validation", "train": "train", "test": "test"}


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def write_evaluation(out_dir, predictions: dict, dataset, label_names: list[str], aspects: list[str],
                     extra: dict | None = None) -> dict:
    """Write the evaluation files for ``predictions`` (from :func:`mmaffect.train.lgsrr.predict`) over
    the rows of ``dataset``; returns the metrics dict."""
    from mmaffect.metrics.classification import (
        classification_metrics,
        confusion_matrix,
        format_per_class_report,
        per_class_report,
        save_confusion_matrix_png,
    )

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = dataset.select(predictions["row_index"].tolist())
    y_true = np.asarray(list(rows["label"]))
    probs = _softmax(predictions["logits"].astype(np.float64))
    y_pred = probs.argmax(-1)

    metrics = classification_metrics(y_true.tolist(), y_pred.tolist())
    present = sorted(set(y_true.tolist()) | set(y_pred.tolist()))
    names = [label_names[i] for i in present]
    true_names = [label_names[i] for i in y_true]
    pred_names = [label_names[i] for i in y_pred]
    report = per_class_report(true_names, pred_names, labels=names)
    (out_dir / "per_class_report.json").write_text(json.dumps(report, indent=2))
    (out_dir / "per_class_report.txt").write_text(format_per_class_report(report) + "\n")
    matrix, _ = confusion_matrix(true_names, pred_names, labels=names)
    (out_dir / "confusion_matrix.json").write_text(json.dumps({"labels": names, "matrix": matrix.tolist()}))
    title = " ".join(str(v) for v in ((extra or {}).get("dataset"), (extra or {}).get("split")) if v)
    save_confusion_matrix_png(matrix, names, out_dir / "confusion_matrix.png", normalize=True, title=title or None)

    results = {"metrics": metrics, "metrics_percent": {k: round(100 * v, 2) for k, v in metrics.items()},
               "num_samples": int(len(y_true)), **(extra or {})}
    (out_dir / "results.json").write_text(json.dumps(results, indent=2))

    importance = predictions.get("importance")
    features = ["text"] + list(aspects)
    columns = set(rows.column_names)
    with open(out_dir / "predictions.jsonl", "w") as f:
        for j, row in enumerate(rows):
            top = np.argsort(-probs[j])[:3]
            record = {
                "id": row.get("id", int(predictions["row_index"][j])),
                "text": row.get("text"),
                "label": label_names[int(y_true[j])],
                "predicted": label_names[int(y_pred[j])],
                "score": round(float(probs[j, y_pred[j]]), 6),
                "correct": bool(y_true[j] == y_pred[j]),
                "top3": [{"label": label_names[int(k)], "score": round(float(probs[j, k]), 6)} for k in top],
            }
            if importance is not None:
                alpha = importance[j]
                record["importance"] = {name: round(float(a), 6) for name, a in zip(features, alpha)}
                record["importance_ranking"] = [features[k] for k in np.argsort(-alpha, kind="stable")]
            if "aspect_ranks" in columns and row["aspect_ranks"] is not None and aspects:
                record["llm_ranking"] = [aspects[k] for k in np.argsort(row["aspect_ranks"], kind="stable")]
            f.write(json.dumps(record) + "\n")
    return metrics


def is_text_only(folder: str | Path) -> bool:
    """Whether a saved folder is the text-only baseline: LGSRR's text-only classifier (model type
    ``lgsrr_text_only``) or a plain ``...ForSequenceClassification`` checkpoint (CLS pooling)."""
    from mmaffect.models.text_only import LGSRR_TEXT_ONLY

    config = _read_config(Path(folder))
    if config.get("model_type") == LGSRR_TEXT_ONLY:
        return True
    return config.get("model_type") != "lgsrr" and any(
        name.endswith("ForSequenceClassification") for name in config.get("architectures") or [])


def _read_config(folder: Path) -> dict:
    if not (folder / "config.json").exists():
        raise FileNotFoundError(f"--model {folder}: no config.json (expected a folder written by mmaffect train / save_pretrained)")
    return json.loads((folder / "config.json").read_text())


def load_trained(folder: str | Path):
    """A trained folder as a training module: LGSRR (``config.json`` with model_type lgsrr) or the
    text-only baseline (the encoder's ``...ForSequenceClassification``)."""
    from mmaffect.models.text_only import TextOnlyClassifier

    from .lgsrr_parts import LGSRRTrainingModule

    folder = Path(folder)
    config = _read_config(folder)
    if is_text_only(folder):
        return TextOnlyClassifier.from_pretrained(folder)
    if config.get("model_type") != "lgsrr":
        raise ValueError(f"--model {folder}: model_type {config.get('model_type')!r}; this command evaluates LGSRR "
                         f"classifiers (model_type 'lgsrr') and mmaffect's text-only baseline")
    from mmaffect.checkpoints import from_pretrained_strict
    from mmaffect.models.lgsrr import LGSRRForSequenceClassification

    # strict: a tensor missing from model.safetensors would otherwise be randomly initialised (a warning only)
    return LGSRRTrainingModule(from_pretrained_strict(LGSRRForSequenceClassification, folder))


def trained_lengths(folder: Path) -> dict:
    """The token lengths a folder was trained with: its processor_config.json, else training_config.json."""
    for name in ("processor_config.json", "training_config.json"):
        if (folder / name).exists():
            values = json.loads((folder / name).read_text())
            if "max_text_length" in values:
                return {k: values.get(k) for k in ("max_text_length", "max_aspect_length")}
    return {}


def evaluate_model(model_dir, dataset: str, data_dir, *, descriptions_dir=None, ranks_file=None, split: str = "test",
                   output_dir=None, batch_size: int = 64, max_samples: int | None = None,
                   max_text_length: int | None = None, max_aspect_length: int | None = None) -> dict:
    from accelerate import Accelerator
    from transformers import AutoTokenizer

    from mmaffect.datasets_scripts import LGSRRDataCollator, load_benchmark, tokenize_for_lgsrr

    from .lgsrr_parts import TrainingCollator, make_loader, predict

    model_dir = Path(model_dir)
    split_name = SPLIT_NAMES.get(split)
    if split_name is None:
        raise ValueError(f"--split {split!r}: expected one of {sorted(SPLIT_NAMES)}")
    trained = trained_lengths(model_dir)
    max_text_length = max_text_length or trained.get("max_text_length")
    max_aspect_length = max_aspect_length or trained.get("max_aspect_length")

    module = load_trained(model_dir)
    is_lgsrr = not is_text_only(model_dir)
    if is_lgsrr and descriptions_dir is None:
        raise ValueError("LGSRR reads the LLM descriptions: pass --descriptions-dir")
    data = load_benchmark(dataset, data_dir, descriptions_dir=descriptions_dir if is_lgsrr else None,
                          ranks_file=ranks_file)
    if split_name not in data:
        raise ValueError(f"--split {split!r}: {dataset} has splits {list(data)}")
    rows = data[split_name]
    if max_samples:
        rows = rows.select(range(min(max_samples, len(rows))))
    label_names = rows.features["label"].names
    id2label = {int(k): v for k, v in module.config.id2label.items()}
    model_labels = [id2label[i] for i in range(len(id2label))]
    if model_labels != list(label_names):
        raise ValueError(f"--model {model_dir}: its labels {model_labels} do not match {dataset}'s {list(label_names)}")

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if is_lgsrr:
        rows = tokenize_for_lgsrr(rows, tokenizer, max_text_length, max_aspect_length)
    else:
        rows = rows.map(lambda b: tokenizer(b["text"], truncation=True, max_length=max_text_length or 512), batched=True)
    rows = rows.map(lambda _, i: {"row_index": i}, with_indices=True)
    accelerator = Accelerator()
    loader, _ = make_loader(rows, TrainingCollator(LGSRRDataCollator(tokenizer)), batch_size, 0, False, True, is_lgsrr)
    module, loader = accelerator.prepare(module, loader)
    predictions = predict(module, loader, accelerator, split)
    out_dir = Path(output_dir) if output_dir else model_dir / f"eval_{dataset}_{split_name}"
    aspects = list(module.config.aspects) if is_lgsrr else []
    metrics = {}
    if accelerator.is_main_process:
        metrics = write_evaluation(out_dir, predictions, rows, label_names, aspects,
                                   extra={"model": str(model_dir), "dataset": dataset, "split": split_name})
        print(json.dumps({k: round(100 * v, 2) for k, v in metrics.items()}, indent=2))
        print(f"wrote {out_dir}/results.json, per_class_report.txt, confusion_matrix.png, predictions.jsonl")
    return metrics
