"""P2E phases as data: what trains, on which data, with which learning rate and step budget.

A P2E run is a YAML file (``configs/p2e_nano_emox.yaml``) read into :class:`P2EConfig`: a model to start from,
LoRA settings, training settings, named *module groups*, named *datasets*, and an ordered list of
:class:`PhaseSpec`. The curriculum of the paper (Sec. 3.2, supplement D, Sec. 4.1)::

    phase1_speech     speech Q-Former + adapter            CREMA-D, M3ED          lr 3e-4   15k steps
    phase1_visual     visual Q-Former + adapter, face      FERV39k, CAER          lr 3e-4   25k steps
                      temporal queries + adapter
    phase2_fusion     fusion encoder + all adapters        MIntRec, MIntRec2.0    lr 1e-5    5k steps
    phase3_multitask  fusion + adapters + LoRA on the LM   MER:OV-MER:MIR:ERI:ERG lr 8e-6  300k steps
                                                           = 18:28:5:31:18

**What a step is.** ``max_steps`` counts *micro-batch iterations* of ``per_device_batch_size`` samples per process
(``training.step_unit: micro_batch``, the default), as the public code does (``max_epoch x iters_per_epoch``
iterations of 3 samples, an optimizer step every 4th) and as the paper's own bound requires: 345k x 3 samples in
32 h on one RTX 4090 is 9 samples/s for a 2.2B model, 345k x 12 would be 36. ``step_unit: optimizer_step`` counts
optimizer steps after gradient accumulation instead (4x the samples). Learning-rate schedules, ``save_steps`` and
``logging_steps`` count in the same unit.

**Schedule.** Where the paper is silent the public code's schedule is the default: ``warmup_cosine`` (LAVIS'
``linear_warmup_cosine_lr``: linear warm-up from ``warmup_start_lr`` over ``warmup_steps``, then cosine from the
phase's lr to ``min_lr`` over the whole budget, measured from step 0) with phase 1 at 3e-4 -> 1e-4 (warm-up from
1e-6) and phase 2 at 1e-5 (warm-up from 5e-7 over its whole 5k steps). Phase 3 follows the paper, "a uniform
learning rate of 8e-6": ``constant``; the public code warms it up from 5e-7 over 5k steps
(``configs/p2e_public_code_schedule.yaml``).

Encoders (CLIP, HuBERT, the face backbone) and the LM base weights never train. Phase 1 trains the speech branch
and the visual/face branches "concurrently" on disjoint data with disjoint parameters; as two sub-phases
(``stage: 1``) that is the same computation with separate step budgets (15k / 25k). Each phase starts from the
previous phase's saved model. The baselines are configs: Jo-T (Table 6) is one phase over all data
(``configs/p2e_jo_t.yaml``), Reverse P2E (Table 7) is ``phase_order`` reversed (``configs/p2e_reverse.yaml``).

Config files may ``inherit:`` another (path relative to the file; the child wins: mappings merge key by key,
lists are replaced, and the parent's ``phase_overrides`` never beat the child's own phase values), use
``${data_root}`` / ``${output_dir}`` / ``${config_dir}`` in paths (``{data_root}``: the old spelling), and tune
phases through ``phase_overrides: {"*" | phase name: {field: value}}`` (see :mod:`mmaffect.config`). Module groups map a readable name to regular
expressions over module names of ``NanoEmoXForConditionalGeneration`` (``re.fullmatch``); the reserved group
``lora`` means the LoRA weights PEFT adds to the language model.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from mmaffect.config import (
    ConfigError,
    Override,
    dataclass_schema,
    deep_merge,
    expand_variables,
    merge_inherited,
    read_config,
    read_value,
)
from mmaffect.datasets_scripts.instruction_data import READERS, TASKS

from .runtime import MIXED_PRECISIONS, report_targets

LORA_GROUP = "lora"
# Module groups of NanoEmoXForConditionalGeneration (its submodule names, see modeling_nano_emox.py).
DEFAULT_MODULE_GROUPS: dict[str, list[str]] = {
    "speech_adapter": ["speech_qformer", "audio_projector"],
    "visual_adapter": ["visual_qformer", "video_projector"],
    "face_adapter": ["face_temporal", "no_face_embedding", "face_projector"],
    "fusion": ["fusion", "fusion_projector"],
    "encoders": ["vision_tower", "audio_tower", "face_encoder"],
    "language_model": ["language_model"],
    # FaceXFormer's multi-scale fusion above the face backbone: frozen with the encoders when it holds FaceXFormer's
    # weights, trained with the face adapter (and a warning) when it does not (see p2e.prepare_phase_model)
    "face_fusion": [r"face_encoder\.stage_projections\.\d+", r"face_encoder\.fuse"],
}
FROZEN_GROUPS = ("encoders", "language_model")  # never trainable in P2E (checked, override with allow_frozen_groups)
FACE_FUSION_GROUP = "face_fusion"
STEP_UNITS = ("micro_batch", "optimizer_step")
# The input a module needs to receive a gradient (prompt letters: A audio, V frames, F face, M fusion of both).
MODULE_MODALITIES = {
    "speech_qformer": "A", "audio_projector": "A", "visual_qformer": "V", "video_projector": "V",
    "face_temporal": "F", "no_face_embedding": "F", "face_projector": "F", "face_encoder": "F",
    "fusion": "M", "fusion_projector": "M",
}  # fmt: skip
MODALITY_NAMES = {"A": "audio", "V": "video frames", "F": "a face track", "M": "both video and audio (fusion)"}
PHASE_FIELDS_DOC = "name, stage, trainable, lora, learning_rate, max_steps, mixture, data, ..."


class P2EConfigError(ConfigError):
    """A P2E config is inconsistent; the message names the file, the field and the value."""


@dataclass
class DataRef:
    """One dataset inside a task of a phase: the dataset's name in ``datasets:`` and its weight in the task
    (``None`` = proportional to its number of records)."""

    dataset: str
    weight: float | None = None


@dataclass
class DatasetSpec:
    """A dataset read once per run by ``datasets_scripts.instruction_data.READERS[reader](path, **options)``."""

    name: str
    reader: str
    path: str
    options: dict[str, Any] = field(default_factory=dict)

    def read(self):
        from mmaffect.datasets_scripts.instruction_data import read_dataset

        return read_dataset(self.reader, self.path, **self.options)


@dataclass
class PhaseSpec:
    """One training phase.

    Attributes:
        name: unique; names the phase's output folder.
        stage: 1 / 2 / 3 of the paper's curriculum (reporting only; 0 for baselines).
        trainable: module groups (or ``"re:<regex>"`` module patterns) whose parameters train.
        lora: wrap the language model with LoRA (PEFT) for this phase (requires ``lora`` in ``trainable``).
        learning_rate: peak learning rate of the phase.
        max_steps: the step budget, in ``training.step_unit`` (default: micro-batch iterations of
            ``per_device_batch_size`` samples, the paper's and the public code's count; see the module docstring).
        mixture: ``{task: weight}``.
        data: ``{task: [DataRef]}``.
        warmup_steps, lr_scheduler, warmup_start_lr, min_lr, weight_decay: optimizer schedule (default from
            ``training``; steps in ``training.step_unit``).
        description: free text for reports and the model card.
    """

    name: str
    trainable: list[str]
    learning_rate: float
    max_steps: int
    mixture: dict[str, float]
    data: dict[str, list[DataRef]]
    stage: int = 0
    lora: bool = False
    warmup_steps: int | None = None
    lr_scheduler: str | None = None
    warmup_start_lr: float | None = None
    min_lr: float | None = None
    weight_decay: float | None = None
    description: str = ""

    @property
    def uses_lora(self) -> bool:
        return self.lora or LORA_GROUP in self.trainable


@dataclass
class TrainingSettings:
    """Settings shared by all phases (the paper: AdamW, batch 3, gradient accumulation 4, one RTX 4090).

    ``step_unit``: ``"micro_batch"`` (default: a step is one micro-batch of ``per_device_batch_size`` samples per
    process, as in the paper and the public code) or ``"optimizer_step"`` (one optimizer step after
    ``gradient_accumulation_steps`` micro-batches). ``lr_scheduler``: ``"warmup_cosine"`` (the public code's) or any
    transformers scheduler name (``constant``, ``constant_with_warmup``, ``linear``, ``cosine``...).
    ``min_lr`` None keeps the phase's lr after the warm-up. ``trainable_check_steps``: every trainable group must
    receive finite, non-zero gradients and change within the phase's first N optimizer steps, else the phase stops
    with an error naming the group (0 turns the check off)."""

    per_device_batch_size: int = 3
    gradient_accumulation_steps: int = 4
    step_unit: str = "micro_batch"  # micro_batch (paper, public code) | optimizer_step
    mixed_precision: str = "bf16"  # no | fp16 | bf16 | auto (bf16 where the hardware runs it natively)
    gradient_checkpointing: bool = True
    frozen_dtype: str = "auto"  # auto | float32 | bfloat16 | float16: storage dtype of never-trained weights
    weight_decay: float = 0.05  # public code
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_epsilon: float = 1e-8
    max_grad_norm: float | None = 1.0
    lr_scheduler: str = "warmup_cosine"  # public code (LAVIS linear_warmup_cosine_lr); phase 3 of the paper: constant
    warmup_steps: int = 5000  # public code
    warmup_start_lr: float = 1e-6  # public code, phase 1 (phases 2-3: 5e-7)
    min_lr: float | None = None  # None: the phase's lr (public code phase 1: 1e-4)
    trainable_check_steps: int = 3
    save_steps: int = 1000
    save_total_limit: int | None = 2
    logging_steps: int = 10
    num_workers: int = 2
    max_length: int | None = 1024
    padding_side: str = "left"  # answers end every row together: fewest logit positions to keep
    ddp_find_unused_parameters: bool = True  # tasks use different branches
    allow_tf32: bool = True
    report_to: list[str] | str = field(default_factory=list)  # Accelerate trackers, e.g. [tensorboard] or tensorboard
    # latest: a restarted run continues its unfinished phase from the newest complete checkpoint | PATH: that
    # checkpoint (for the phase it belongs to) | null: start the phase again (refused while it has checkpoints)
    resume_from_checkpoint: str | None = "latest"
    allow_config_change: bool = False  # resume a checkpoint saved with other phase/training settings (logged)


@dataclass
class P2EConfig:
    model_type: str
    model: dict[str, Any]
    lora: dict[str, Any]
    training: TrainingSettings
    module_groups: dict[str, list[str]]
    datasets: dict[str, DatasetSpec]
    phases: list[PhaseSpec]
    output_dir: str
    strategy: str = "p2e"
    seed: int = 42
    data_root: str = "data"
    source: str = "<dict>"
    raw: dict[str, Any] = field(default_factory=dict)

    def phase(self, name: str) -> PhaseSpec:
        for phase in self.phases:
            if phase.name == name:
                return phase
        raise KeyError(f"no phase {name!r}; phases: {[p.name for p in self.phases]}")

    def datasets_used(self, phases: Iterable[PhaseSpec] | None = None) -> list[str]:
        names: list[str] = []
        for phase in phases if phases is not None else self.phases:
            for refs in phase.data.values():
                for ref in refs:
                    if ref.dataset not in names:
                        names.append(ref.dataset)
        return names


# ----------------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------------
def config_schema():
    """The keys a P2E config accepts (``mmaffect.config``); ``model``, ``lora``, ``module_groups`` and
    ``datasets`` name their own keys (checked where they are used)."""
    from mmaffect.config import Fields, ListOf, Open

    phase = dataclass_schema(PhaseSpec, mixture=Open("float"), data=Open())
    top = {
        "model_type": "str", "model": Open(), "lora": Open(), "training": dataclass_schema(TrainingSettings),
        "module_groups": Open(), "datasets": Open(Open()), "phases": ListOf(phase), "phase_overrides": Open(phase),
        "phase_order": "any", "output_dir": "str", "strategy": "str", "seed": "int", "data_root": "str",
        "allow_frozen_groups": "bool", "config_dir": "str", "source": "str", "inherit": "str",
    }  # fmt: skip
    return Fields(top, {"output_dir": "outputs/p2e", "strategy": "p2e", "seed": 42, "data_root": "data"})


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """A YAML config with its ``inherit:`` chain resolved (the result records ``config_dir`` / ``source``)."""
    path = Path(path).resolve()
    try:
        data = read_config(path, "P2E config")
    except ConfigError as error:  # invalid YAML (file, line, column), a circular or missing 'inherit'
        raise P2EConfigError(str(error)) from None
    data["config_dir"] = str(path.parent)
    data["source"] = str(path)
    return data


def apply_overrides(config: Mapping[str, Any], overrides: Mapping[str, Any] | Sequence[str] | None) -> dict[str, Any]:
    """``{"training.per_device_batch_size": 2}`` or ``["training.per_device_batch_size=2"]`` (values parsed as
    YAML) or :class:`mmaffect.config.Override` items applied to a raw config mapping; unknown keys are refused
    with a suggestion, list items are reached by index (``phases.0.learning_rate``)."""
    from mmaffect.config import apply_overrides as apply

    items = []
    for item in (overrides.items() if isinstance(overrides, Mapping) else overrides or ()):
        if isinstance(item, Override):
            items.append(item)
        elif isinstance(item, tuple):
            items.append(Override(str(item[0]), item[1], f"override {item[0]}"))
        elif "=" not in item:
            raise P2EConfigError(f"override {item!r} must look like key.path=value")
        else:
            key, _, value = item.partition("=")
            items.append(Override(key.strip(), read_value(value), f"override {item}"))
    try:
        return apply(config, items, config_schema())
    except ConfigError as error:
        raise P2EConfigError(str(error)) from None


def _expand(value: Any, variables: Mapping[str, str]) -> Any:
    return expand_variables(value, variables, "P2E config")


def _known(cls, raw: Mapping, where: str) -> dict[str, Any]:
    from mmaffect.config import unknown_key

    names = {f.name for f in fields(cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        hints = ", ".join(unknown_key(name, names) for name in unknown)
        raise P2EConfigError(f"{where}: unknown field(s) {unknown}: {hints}; known: {sorted(names)}")
    return dict(raw)


def _data_refs(task: str, refs: Any, where: str) -> list[DataRef]:
    if isinstance(refs, (str, dict)):
        refs = [refs]
    if not isinstance(refs, list) or not refs:
        raise P2EConfigError(f"{where}.data.{task}: a list of dataset names, got {refs!r}")
    out = []
    for ref in refs:
        if isinstance(ref, str):
            out.append(DataRef(ref))
        elif isinstance(ref, dict) and set(ref) <= {"dataset", "weight"} and "dataset" in ref:
            weight = ref.get("weight")
            if weight is not None and (not isinstance(weight, (int, float)) or weight <= 0):
                raise P2EConfigError(f"{where}.data.{task}: weight of {ref['dataset']!r} must be > 0, got {weight!r}")
            out.append(DataRef(str(ref["dataset"]), None if weight is None else float(weight)))
        else:
            raise P2EConfigError(f"{where}.data.{task}: entries are names or {{dataset, weight}}, got {ref!r}")
    return out


def parse_phase(raw: Mapping[str, Any], where: str) -> PhaseSpec:
    raw = _known(PhaseSpec, raw, where)
    missing = [k for k in ("name", "trainable", "learning_rate", "max_steps", "mixture", "data") if k not in raw]
    if missing:
        raise P2EConfigError(f"{where}: missing field(s) {missing} (a phase has {PHASE_FIELDS_DOC})")
    trainable = raw["trainable"]
    if isinstance(trainable, str):
        trainable = [trainable]
    mixture = {str(k): float(v) for k, v in dict(raw["mixture"]).items()}
    data = {str(task): _data_refs(str(task), refs, where) for task, refs in dict(raw["data"]).items()}
    phase = PhaseSpec(
        name=str(raw["name"]),
        trainable=[str(t) for t in trainable],
        learning_rate=float(raw["learning_rate"]),
        max_steps=int(raw["max_steps"]),
        mixture=mixture,
        data=data,
        stage=int(raw.get("stage", 0)),
        lora=bool(raw.get("lora", False)),
        warmup_steps=None if raw.get("warmup_steps") is None else int(raw["warmup_steps"]),
        lr_scheduler=raw.get("lr_scheduler"),
        warmup_start_lr=None if raw.get("warmup_start_lr") is None else float(raw["warmup_start_lr"]),
        min_lr=None if raw.get("min_lr") is None else float(raw["min_lr"]),
        weight_decay=None if raw.get("weight_decay") is None else float(raw["weight_decay"]),
        description=str(raw.get("description", "")),
    )
    if phase.lora and LORA_GROUP not in phase.trainable:
        phase.trainable.append(LORA_GROUP)
    return phase


def _resolve_inherit(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A mapping that still has ``inherit`` (e.g. a YAML file read by another tool): merge it onto its parent
    (:func:`mmaffect.config.merge_inherited`: the child wins), looked up next to ``config_dir`` (if known), in
    the working directory, then in ``./configs``."""
    raw = dict(raw)
    parent = raw.pop("inherit", None)
    if not parent:
        return raw
    candidates = [Path(raw["config_dir"]) / parent] if raw.get("config_dir") else []
    candidates += [Path(parent), Path("configs") / parent, Path(__file__).resolve().parents[3] / "configs" / parent]
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        raise P2EConfigError(f"inherit: {parent!r} not found (looked in {[str(c) for c in candidates]})")
    base = read_config_file(found)
    for key in ("config_dir", "source"):  # the child's own, where it has them
        base.pop(key, None) if key in raw else None
    return merge_inherited(base, raw)


def _training_settings(raw: Mapping[str, Any], source: str) -> TrainingSettings:
    """``training:`` checked and typed."""
    training = TrainingSettings(**_known(TrainingSettings, raw, f"{source}: training"))
    if training.mixed_precision is False:  # YAML 1.1 reads the documented value "no" as false
        training.mixed_precision = "no"
    if training.mixed_precision not in MIXED_PRECISIONS:  # auto: resolved by the trainer (train/runtime.py)
        raise P2EConfigError(f"{source}: training.mixed_precision must be no, fp16, bf16 or auto, got {training.mixed_precision!r}")
    if training.frozen_dtype not in ("auto", "float32", "bfloat16", "float16"):
        raise P2EConfigError(f"{source}: training.frozen_dtype must be auto, float32, bfloat16 or float16, got {training.frozen_dtype!r}")
    try:  # one rule for both trainers: "none", a tracker name or a list of them (train/runtime.py)
        training.report_to = report_targets(training.report_to)
    except ValueError as error:
        raise P2EConfigError(f"{source}: training.{error}") from None
    training.adam_betas = tuple(float(b) for b in training.adam_betas)
    if training.step_unit not in STEP_UNITS:
        raise P2EConfigError(f"{source}: training.step_unit must be one of {STEP_UNITS}, got {training.step_unit!r}")
    for name in ("warmup_start_lr", "min_lr"):
        if getattr(training, name) is not None:
            setattr(training, name, float(getattr(training, name)))
    return training


def build_config(raw: Mapping[str, Any], overrides=None) -> P2EConfig:
    """Validate a raw mapping (from :func:`read_config_file` or a dict) into a :class:`P2EConfig`."""
    raw = apply_overrides(_resolve_inherit(raw), overrides)
    source = str(raw.get("source", "<dict>"))
    from mmaffect.config import Fields, check_keys

    try:  # the top level here; training, phases and phase_overrides name their unknown fields below
        check_keys(raw, Fields(dict.fromkeys(config_schema().fields, "any")), source)
    except ConfigError as error:
        raise P2EConfigError(str(error)) from None
    if raw.get("model_type") != "nano_emox":
        raise P2EConfigError(f"{source}: model_type must be 'nano_emox' for the P2E trainer, got {raw.get('model_type')!r}")
    variables = {
        "config_dir": str(raw.get("config_dir", os.getcwd())),
        "data_root": str(raw.get("data_root", "data")),
    }
    variables["data_root"] = _expand(variables["data_root"], {"config_dir": variables["config_dir"]})
    variables["output_dir"] = _expand(str(raw.get("output_dir", "outputs/p2e")), variables)
    expanded = _expand({k: v for k, v in raw.items() if k not in ("source",)}, variables)

    training = _training_settings(expanded.get("training") or {}, source)

    groups = dict(DEFAULT_MODULE_GROUPS)
    for name, patterns in (expanded.get("module_groups") or {}).items():
        if name == LORA_GROUP:
            raise P2EConfigError(f"{source}: module_groups.{LORA_GROUP} is reserved for the LoRA weights")
        groups[name] = [patterns] if isinstance(patterns, str) else [str(p) for p in patterns]

    datasets = {}
    for name, spec in (expanded.get("datasets") or {}).items():
        if not isinstance(spec, dict) or "reader" not in spec or "path" not in spec:
            raise P2EConfigError(f"{source}: datasets.{name} needs 'reader' and 'path', got {spec!r}")
        if spec["reader"] not in READERS:
            raise P2EConfigError(f"{source}: datasets.{name}.reader {spec['reader']!r} is unknown; readers: {sorted(READERS)}")
        options = {k: v for k, v in spec.items() if k not in ("reader", "path")}
        datasets[name] = DatasetSpec(name=name, reader=spec["reader"], path=str(spec["path"]), options=options)

    raw_phases = expanded.get("phases")
    if not isinstance(raw_phases, list) or not raw_phases:
        raise P2EConfigError(f"{source}: 'phases' must be a non-empty list")
    overrides_by_phase = expanded.get("phase_overrides") or {}
    phases = []
    for i, raw_phase in enumerate(raw_phases):
        if not isinstance(raw_phase, dict):
            raise P2EConfigError(f"{source}: phases[{i}] must be a mapping, got {raw_phase!r}")
        merged = deep_merge(raw_phase, overrides_by_phase.get("*", {}))
        merged = deep_merge(merged, overrides_by_phase.get(raw_phase.get("name"), {}))
        phases.append(parse_phase(merged, f"{source}: phases[{i}] ({raw_phase.get('name')})"))
    unknown_overrides = sorted(set(overrides_by_phase) - {"*"} - {p.name for p in phases})
    if unknown_overrides:
        raise P2EConfigError(f"{source}: phase_overrides names unknown phase(s) {unknown_overrides}")

    order = expanded.get("phase_order")
    if order:
        by_name = {p.name: p for p in phases}
        missing = [name for name in order if name not in by_name]
        if missing:
            raise P2EConfigError(f"{source}: phase_order names unknown phase(s) {missing}; phases: {list(by_name)}")
        phases = [by_name[name] for name in order]

    config = P2EConfig(
        model_type="nano_emox",
        model=dict(expanded.get("model") or {}),
        lora=dict(expanded.get("lora") or {}),
        training=training,
        module_groups=groups,
        datasets=datasets,
        phases=phases,
        output_dir=variables["output_dir"],
        strategy=str(expanded.get("strategy", "p2e")),
        seed=int(expanded.get("seed", 42)),
        data_root=variables["data_root"],
        source=source,
        raw=dict(raw),
    )
    validate_config(config, allow_frozen_groups=bool(expanded.get("allow_frozen_groups", False)))
    return config


def load_config(path: str | os.PathLike, overrides=None, **variables) -> P2EConfig:
    """Read a P2E YAML file (with ``inherit``), apply ``overrides`` and variables (``data_root=...``)."""
    raw = read_config_file(path)
    raw.update({k: v for k, v in variables.items() if v is not None})
    return build_config(raw, overrides)


def validate_config(config: P2EConfig, allow_frozen_groups: bool = False) -> None:
    names = [p.name for p in config.phases]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise P2EConfigError(f"{config.source}: duplicate phase name(s) {duplicates}")
    for phase in config.phases:
        where = f"{config.source}: phase {phase.name!r}"
        if phase.max_steps < 1 or phase.learning_rate <= 0:
            raise P2EConfigError(f"{where}: max_steps must be >= 1 and learning_rate > 0, got {phase.max_steps}, {phase.learning_rate}")
        scheduler = phase.lr_scheduler or config.training.lr_scheduler
        if scheduler not in scheduler_names():
            raise P2EConfigError(f"{where}: lr_scheduler {scheduler!r} is unknown; schedulers: {scheduler_names()}")
        if not phase.trainable:
            raise P2EConfigError(f"{where}: 'trainable' is empty")
        for group in phase.trainable:
            if group.startswith("re:"):
                try:
                    re.compile(group[3:])
                except re.error as error:
                    raise P2EConfigError(f"{where}: invalid pattern {group!r} ({error})") from None
            elif group != LORA_GROUP and group not in config.module_groups:
                raise P2EConfigError(f"{where}: unknown module group {group!r}; groups: {sorted(config.module_groups) + [LORA_GROUP]}")
            if group in FROZEN_GROUPS and not allow_frozen_groups:
                raise P2EConfigError(
                    f"{where}: group {group!r} stays frozen in P2E (encoders and LM base weights never train); "
                    "set allow_frozen_groups: true to train it anyway"
                )
        unknown_tasks = sorted(set(phase.mixture) - set(TASKS))
        if unknown_tasks:
            raise P2EConfigError(f"{where}: unknown task(s) {unknown_tasks} in mixture; tasks: {list(TASKS)}")
        weighted = {t for t, w in phase.mixture.items() if w > 0}
        if not weighted:
            raise P2EConfigError(f"{where}: the mixture {phase.mixture} has no positive weight")
        no_data = sorted(weighted - set(phase.data))
        if no_data:
            raise P2EConfigError(f"{where}: task(s) {no_data} have a mixture weight but no 'data'")
        for task, refs in phase.data.items():
            for ref in refs:
                if ref.dataset not in config.datasets:
                    raise P2EConfigError(f"{where}: data.{task} names dataset {ref.dataset!r}, not in datasets: {sorted(config.datasets)}")
                tasks = config.datasets[ref.dataset].options.get("tasks")
                if tasks is not None and task not in ([tasks] if isinstance(tasks, str) else tasks):
                    raise P2EConfigError(f"{where}: data.{task} uses dataset {ref.dataset!r}, which is read for tasks {tasks} only")


def scheduler_names() -> list[str]:
    """``warmup_cosine`` (the public code's) and the transformers schedulers that are a function of the step."""
    from transformers.trainer_utils import SchedulerType

    return ["warmup_cosine"] + [s.value for s in SchedulerType if s.value not in ("reduce_lr_on_plateau", "warmup_stable_decay")]


def lr_schedule(phase: PhaseSpec, training: TrainingSettings, total_steps: int):
    """The phase's learning rate as a function of the schedule position (``training.step_unit`` steps from 0).

    ``warmup_cosine`` is the public code's (LAVIS) ``linear_warmup_cosine_lr``: ``lr(t) = min(lr, s + (lr - s) t / W)``
    for ``t < W``, then ``(lr - m) (1 + cos(pi t / T)) / 2 + m`` with ``T`` the whole budget (so the cosine starts
    where it is at ``t = W``, as there). Other names are transformers' schedules (``get_scheduler``)."""
    import math

    name = phase.lr_scheduler or training.lr_scheduler
    peak = phase.learning_rate
    warmup = training.warmup_steps if phase.warmup_steps is None else phase.warmup_steps
    if name == "warmup_cosine":
        start = training.warmup_start_lr if phase.warmup_start_lr is None else phase.warmup_start_lr
        floor = phase.min_lr if phase.min_lr is not None else training.min_lr
        floor = peak if floor is None else floor

        def rate(t: int) -> float:
            if t < warmup:
                return min(peak, start + (peak - start) * t / max(warmup, 1))
            return (peak - floor) * 0.5 * (1.0 + math.cos(math.pi * t / max(total_steps, 1))) + floor

        return rate
    import torch
    from transformers import get_scheduler

    probe = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)  # read the schedule's multiplier function
    factor = get_scheduler(name, probe, num_warmup_steps=warmup, num_training_steps=total_steps).lr_lambdas[0]
    return lambda t: peak * factor(t)


# ----------------------------------------------------------------------------------------------------
# Trainable modules
# ----------------------------------------------------------------------------------------------------
_PEFT_PREFIX = "base_model.model."
# PEFT weights that train with the LoRA phase: LoRA matrices and the trainable token rows (trainable_token_indices)
_LORA_MARKERS = (".lora_A.", ".lora_B.", ".lora_embedding_A.", ".lora_embedding_B.", ".lora_magnitude_vector.", ".trainable_tokens_delta.")


def canonical_name(name: str) -> str | None:
    """A parameter / module name of a (possibly PEFT-wrapped) model as in the plain model.

    ``base_model.model.fusion.modules_to_save.default.gate.0.weight`` -> ``fusion.gate.0.weight``;
    ``...q_proj.base_layer.weight`` -> ``...q_proj.weight``; LoRA weights keep their ``lora_A`` part; the frozen
    ``original_module`` copies PEFT keeps for modules_to_save give None."""
    if name.startswith(_PEFT_PREFIX):
        name = name[len(_PEFT_PREFIX) :]
    if ".original_module." in f".{name}." or name.endswith(".original_module"):
        return None
    name = name.replace(".modules_to_save.default.", ".").replace(".base_layer.", ".")
    if name.endswith(".modules_to_save.default"):
        name = name[: -len(".modules_to_save.default")]
    return name


def is_lora_parameter(name: str) -> bool:
    return any(marker in f".{name}" for marker in _LORA_MARKERS)


def group_patterns(groups: Mapping[str, Sequence[str]], trainable: Sequence[str]) -> dict[str, list[str]]:
    """``{group: [regex, ...]}`` for the non-LoRA entries of ``trainable`` (``re:`` entries are their own group)."""
    out = {}
    for entry in trainable:
        if entry == LORA_GROUP:
            continue
        out[entry] = [entry[3:]] if entry.startswith("re:") else list(groups[entry])
    return out


def matched_modules(module_names: Iterable[str], patterns: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """Top-most module names (plain-model names) matched by each group; a pattern matching nothing is an error."""
    names = [n for n in module_names if n]
    out: dict[str, list[str]] = {}
    for group, regexes in patterns.items():
        hits: list[str] = []
        for regex in regexes:
            compiled = re.compile(regex)
            found = [n for n in names if compiled.fullmatch(n)]
            if not found:
                top = sorted({n.split(".")[0] for n in names})
                raise P2EConfigError(f"module group {group!r}: pattern {regex!r} matches no module; top-level modules: {top}")
            hits.extend(found)
        # keep only the top-most matches (a match inside another match adds nothing)
        hits = sorted(set(hits), key=lambda n: (n.count("."), n))
        top_most: list[str] = []
        for name in hits:
            if not any(name.startswith(parent + ".") for parent in top_most):
                top_most.append(name)
        out[group] = top_most
    return out


def plain_module_names(model) -> list[str]:
    names = []
    for name, _ in model.named_modules():
        plain = canonical_name(name)
        if plain and not is_lora_parameter(plain + ".") and plain not in names:
            names.append(plain)
    return names


def expected_trainable_parameters(model, phase: PhaseSpec, groups: Mapping[str, Sequence[str]]) -> set[str]:
    """Canonical names of the parameters ``phase`` trains on ``model`` (LoRA weights included when it uses LoRA)."""
    modules = matched_modules(plain_module_names(model), group_patterns(groups, phase.trainable))
    prefixes = [m + "." for names in modules.values() for m in names]
    expected = set()
    for name, _ in model.named_parameters():
        plain = canonical_name(name)
        if plain is None:
            continue
        if is_lora_parameter(plain):
            if phase.uses_lora:
                expected.add(plain)
        elif any(plain.startswith(prefix) for prefix in prefixes):
            expected.add(plain)
    return expected


def apply_trainability(model, phase: PhaseSpec, groups: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """Freeze everything, then unfreeze exactly what ``phase`` trains. Returns ``{group: [module names]}``."""
    expected = expected_trainable_parameters(model, phase, groups)
    for name, parameter in model.named_parameters():
        plain = canonical_name(name)
        parameter.requires_grad_(plain is not None and plain in expected)
    if phase.uses_lora and not any(is_lora_parameter(n) for n in expected):
        raise P2EConfigError(f"phase {phase.name!r} trains 'lora' but the model has no LoRA weights (wrap it with PEFT first)")
    modules = matched_modules(plain_module_names(model), group_patterns(groups, phase.trainable))
    if phase.uses_lora:
        modules[LORA_GROUP] = sorted({n.split(".lora_")[0] for n in expected if is_lora_parameter(n)})
    # frozen encoders stay in eval mode (dropout off); the model keeps that invariant in train()
    if hasattr(model, "train"):
        model.train(model.training)
    return modules


def trainable_report(model, phase: PhaseSpec | None = None) -> dict[str, Any]:
    """Trainable / frozen parameter counts per top-level module (PEFT copies folded back), plus totals."""
    rows: dict[str, dict[str, int]] = {}
    seen: set[int] = set()
    for name, parameter in model.named_parameters():
        if id(parameter) in seen:
            continue
        seen.add(id(parameter))
        plain = canonical_name(name)
        if plain is None:  # PEFT's frozen copy of a modules_to_save module
            top, kind = name.replace(_PEFT_PREFIX, "").split(".")[0] + " (PEFT original copy)", "frozen"
        else:
            top = plain.split(".")[0] + (" [LoRA]" if is_lora_parameter(plain) else "")
            kind = "trainable" if parameter.requires_grad else "frozen"
        row = rows.setdefault(top, {"trainable": 0, "frozen": 0})
        row[kind] += parameter.numel()
    total_trainable = sum(r["trainable"] for r in rows.values())
    total = sum(r["trainable"] + r["frozen"] for r in rows.values())
    return {
        "phase": None if phase is None else phase.name,
        "modules": rows,
        "trainable": total_trainable,
        "frozen": total - total_trainable,
        "total": total,
        "trainable_percent": 100.0 * total_trainable / max(total, 1),
    }


def format_report(report: Mapping[str, Any]) -> str:
    """The trainable-vs-frozen table printed at the start of each phase."""
    lines = [f"Phase {report['phase']}: trainable vs frozen parameters", f"{'module':<40}{'trainable':>16}{'frozen':>16}"]
    for name, row in sorted(report["modules"].items(), key=lambda kv: (-kv[1]["trainable"], kv[0])):
        lines.append(f"{name:<40}{row['trainable']:>16,}{row['frozen']:>16,}")
    lines.append(f"{'total':<40}{report['trainable']:>16,}{report['frozen']:>16,}")
    lines.append(f"trainable: {report['trainable_percent']:.3f}% of {report['total']:,}")
    return "\n".join(lines)


__all__ = [
    "DEFAULT_MODULE_GROUPS",
    "LORA_GROUP",
    "DataRef",
    "DatasetSpec",
    "P2EConfig",
    "P2EConfigError",
    "PhaseSpec",
    "TrainingSettings",
    "apply_overrides",
    "apply_trainability",
    "build_config",
    "canonical_name",
    "config_schema",
    "deep_merge",
    "expected_trainable_parameters",
    "format_report",
    "load_config",
    "lr_schedule",
    "matched_modules",
    "read_config_file",
    "scheduler_names",
    "trainable_report",
]
