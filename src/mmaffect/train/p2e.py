"""P2E curriculum trainer for Nano-EmoX (Accelerate + PEFT LoRA).

    accelerate launch train.py --config configs/p2e_nano_emox.yaml          # via mmaffect.train.cli
    python -m mmaffect.train.p2e --config configs/p2e_tiny.yaml --make-synthetic-data /tmp/p2e_data

The run is the config's phases in order (``p2e_phases``). For each phase, top to bottom:

1. start from the previous phase's saved model (the first phase from pretrained parts / a folder / a tiny
   random model), seed ``seed + 1000 * phase_index``;
2. wrap the model with PEFT LoRA if the phase trains ``lora`` (regex over module names: the language model only;
   the phase's other trainable modules become PEFT ``modules_to_save``, so the adapter folder is the complete
   delta of the phase);
3. freeze everything but the phase's module groups, store frozen weights in the mixed-precision dtype, and write
   the trainable-vs-frozen report;
4. draw batches from the task mixture (``MixtureSampler``: exact ratios, resumable), build prompts and media with
   the processor (``P2ECollator``), and optimise the next-token loss on the answer tokens with AdamW under
   Accelerate (bf16/fp16 autocast, gradient accumulation, gradient checkpointing, DDP/FSDP from the Accelerate
   config) for ``max_steps`` micro-batches of ``per_device_batch_size`` samples (``training.step_unit``, the
   paper's and the public code's count), the learning rate following the phase's schedule, logging the loss per
   task;
5. after the first optimizer steps, check that every trainable group received finite, non-zero gradients and
   changed (:class:`TrainableGroupCheck`; a phase whose data lack its modality stops with the group named);
6. checkpoint every ``save_steps`` (``accelerator.save_state`` with the trainable weights only, plus the sampler
   position and the micro-batch count; ``checkpointing.py``, shared with LGSRR) and resume after a crash from the
   newest complete checkpoint (``--resume_from_checkpoint latest``, the default; or a PATH; a changed config is
   refused unless ``--allow_config_change``);
7. save the phase's artifacts: ``model/`` (``save_pretrained`` with remote code + processor; LoRA merged),
   ``lora_adapter/`` (PEFT, loadable on the previous phase's model and mergeable), the reports, ``DONE.json``.

The final model folder gets a model card (:func:`mmaffect.train.model_card.write_nano_emox_card`). A finished
phase is skipped when the run is started again; a changed phase definition is an error (use a new ``output_dir``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gc
import json
import os
import shutil
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from mmaffect.checkpoints import (
    check_safetensors_file,
    from_pretrained_strict,
    publish_folder,
    require_existing_path,
    write_text_atomic,
)
from mmaffect.datasets_scripts.instruction_data import InstructionRecord, P2ECollator
from mmaffect.errors import CheckpointError
from mmaffect.models.nano_emox.configuration_nano_emox import IGNORE_INDEX
from mmaffect.models.nano_emox.processing_nano_emox import TASKS

from .mixture_sampler import MixtureSampler
from .model_card import write_nano_emox_card
from .p2e_phases import (
    FACE_FUSION_GROUP,
    LORA_GROUP,
    MODALITY_NAMES,
    MODULE_MODALITIES,
    P2EConfig,
    P2EConfigError,
    PhaseSpec,
    apply_trainability,
    canonical_name,
    is_lora_parameter,
    lr_schedule,
    build_config,
    format_report,
    group_patterns,
    load_config,
    matched_modules,
    plain_module_names,
    read_config_file,
    trainable_report,
)
from .checkpointing import P2E_LAYOUT, refuse_or_log_config_change, resolve_resume, save_checkpoint, settings_changes
from .runtime import (
    TRAIN_LOG,
    append_log_line,
    enable_fsdp_on_cpu,
    fsdp_plugin_from_env,
    fsdp_requested_on_cpu,
    main_process_bar,
    parameter_groups,
    report_targets,
    resolve_mixed_precision,
    stdout_logger,
)

CHECKPOINT_PREFIX = P2E_LAYOUT.prefix  # step-N
TRAINABLE_WEIGHTS = "trainable_weights.safetensors"
TRAINER_STATE = "p2e_trainer_state.pt"
COMPLETE_MARKER = P2E_LAYOUT.marker  # written last: present only in a complete checkpoint
DONE_FILE = "DONE.json"
CHECKPOINT_SETTINGS = "training_config.json"  # the settings a checkpoint was saved with (checked on resume)
# training keys that may differ when a phase resumes: where and how it runs, not what it computes
RESUME_FREE_TRAINING_KEYS = frozenset({
    "resume_from_checkpoint", "allow_config_change", "num_workers", "report_to", "save_steps", "save_total_limit",
    "logging_steps", "ddp_find_unused_parameters",
})  # fmt: skip
_REPORT = stdout_logger("mmaffect.p2e")  # the trainer's report lines (phases, data, checks) as bare lines on stdout


class SimulatedInterruption(RuntimeError):
    """Raised by ``interrupt_after_steps`` (tests): the run stops as if killed, leaving only its checkpoints."""


# ----------------------------------------------------------------------------------------------------
# Model and processor
# ----------------------------------------------------------------------------------------------------
def _nano_emox():
    from mmaffect.models.nano_emox import NanoEmoXConfig, NanoEmoXForConditionalGeneration, NanoEmoXProcessor

    return NanoEmoXConfig, NanoEmoXForConditionalGeneration, NanoEmoXProcessor


def build_processor(spec: Mapping[str, Any], model_config=None):
    """``model.processor`` of the config: ``preset: tiny``, ``pretrained: path``, or the three components."""
    _, _, NanoEmoXProcessor = _nano_emox()
    kwargs = dict(spec.get("kwargs") or {})
    if spec.get("preset") == "tiny":
        return NanoEmoXProcessor.tiny(**kwargs)
    if spec.get("preset") not in (None, "tiny"):
        raise P2EConfigError(f"model.processor.preset must be 'tiny' or absent, got {spec.get('preset')!r}")
    if spec.get("pretrained"):
        return NanoEmoXProcessor.from_pretrained(spec["pretrained"], **kwargs)
    missing = [k for k in ("tokenizer", "image_processor", "feature_extractor") if not spec.get(k)]
    if missing:
        raise P2EConfigError(f"model.processor needs preset, pretrained, or tokenizer + image_processor + feature_extractor (missing {missing})")
    from transformers import AutoTokenizer, CLIPImageProcessorPil, Wav2Vec2FeatureExtractor

    if model_config is not None:
        for name in ("video", "audio", "face", "fusion"):
            kwargs.setdefault(f"num_{name}_tokens", getattr(model_config, f"num_{name}_tokens"))
    return NanoEmoXProcessor(
        image_processor=CLIPImageProcessorPil.from_pretrained(spec["image_processor"]),
        feature_extractor=Wav2Vec2FeatureExtractor.from_pretrained(spec["feature_extractor"]),
        tokenizer=AutoTokenizer.from_pretrained(spec["tokenizer"]),
        **kwargs,
    )


def _model_config(spec: Mapping[str, Any]):
    NanoEmoXConfig, _, _ = _nano_emox()
    fields = dict(spec.get("config") or {})
    preset = fields.pop("preset", None)
    if preset == "tiny":
        return NanoEmoXConfig.tiny(**fields)
    if preset not in (None, "full", "paper"):
        raise P2EConfigError(f"model.config.preset must be tiny or full, got {preset!r}")
    return NanoEmoXConfig(**fields)


def build_initial_model(spec: Mapping[str, Any]):
    """The model the first phase starts from, and its processor (``model:`` of the config)."""
    _, NanoEmoXForConditionalGeneration, _ = _nano_emox()
    init = spec.get("init", "components")
    if init == "pretrained":
        if not spec.get("pretrained"):
            raise P2EConfigError("model.init: pretrained needs model.pretrained (a folder or Hub id)")
        require_existing_path(str(spec["pretrained"]), "model.pretrained")
        model = from_pretrained_strict(NanoEmoXForConditionalGeneration, spec["pretrained"], dtype=torch.float32)
        processor_spec = dict(spec.get("processor") or {})
        if not (processor_spec.get("preset") or processor_spec.get("pretrained")):  # the folder's own processor
            processor_spec = {"pretrained": spec["pretrained"], "kwargs": processor_spec.get("kwargs") or {}}
        processor = build_processor(processor_spec, model.config)
    elif init == "random":
        config = _model_config(spec)
        model = NanoEmoXForConditionalGeneration(config)
        processor = build_processor(dict(spec.get("processor") or {}), config)
    elif init == "components":
        config = _model_config(spec)
        processor = build_processor(dict(spec.get("processor") or {}), config)
        parts = dict(spec.get("components") or {})
        unknown = sorted(set(parts) - {"vision", "audio", "face", "language_model"})
        if unknown:
            raise P2EConfigError(f"model.components has unknown part(s) {unknown}; parts: vision, audio, face, language_model")
        model = NanoEmoXForConditionalGeneration.from_pretrained_components(
            **parts, config=config, tokenizer=processor.tokenizer, dtype=torch.float32
        )
    else:
        raise P2EConfigError(f"model.init must be components, pretrained or random, got {init!r}")
    check_model_processor(model, processor)
    return model, processor


def check_model_processor(model, processor) -> None:
    """Token counts and placeholder ids of the processor must be the model's."""
    config = model.config
    problems = []
    for name in ("video", "audio", "face", "fusion"):
        expected, got = getattr(config, f"num_{name}_tokens"), getattr(processor, f"num_{name}_tokens")
        if expected != got:
            problems.append(f"num_{name}_tokens: model {expected}, processor {got}")
    ids = processor.placeholder_token_ids
    for name, token_id in config.placeholder_token_ids.items():
        if ids.get(name) != token_id:
            problems.append(f"{name} placeholder id: model {token_id}, processor {ids.get(name)}")
    if problems:
        raise P2EConfigError("model and processor disagree: " + "; ".join(problems))


def load_phase_model(folder):
    """A phase's saved model + processor (float32; frozen parts are cast down per phase). A tensor missing
    from (or unexpected in) the saved weights is an error naming it, not a random initialisation."""
    _, NanoEmoXForConditionalGeneration, NanoEmoXProcessor = _nano_emox()
    model = from_pretrained_strict(NanoEmoXForConditionalGeneration, folder, dtype=torch.float32)
    processor = NanoEmoXProcessor.from_pretrained(folder)
    check_model_processor(model, processor)
    return model, processor


def lora_config_for(model, lora: Mapping[str, Any], modules_to_save: Sequence[str], trainable_token_ids: Sequence[int] = ()):
    """``peft.LoraConfig`` on the language model only (regex), from the model config's preset + overrides.
    ``trainable_token_ids``: embedding rows that train with the LoRA (the ``<think>`` tokens of
    ``think_tokens="special"``; PEFT ``trainable_token_indices``, tied to the LM head when the embeddings are)."""
    from peft import LoraConfig

    config = model.config
    kwargs = {}
    if "preset" in lora:
        from mmaffect.models.nano_emox.configuration_nano_emox import LORA_PRESETS

        if lora["preset"] not in LORA_PRESETS:
            raise P2EConfigError(f"lora.preset must be one of {sorted(LORA_PRESETS)}, got {lora['preset']!r}")
        kwargs.update(LORA_PRESETS[lora["preset"]])
    else:
        base = config.get_lora_kwargs()
        kwargs.update({k: base[k] for k in ("r", "lora_alpha", "lora_dropout")})
    for key, name in (("r", "r"), ("alpha", "lora_alpha"), ("dropout", "lora_dropout")):
        if lora.get(key) is not None:
            kwargs[name] = lora[key]
    target = lora.get("target_modules") or config.lora_target_modules
    if not isinstance(target, str) or "language_model" not in target:
        raise P2EConfigError(f"lora.target_modules must be a regex limited to the language model (contain 'language_model'), got {target!r}")
    return LoraConfig(
        r=int(kwargs["r"]),
        lora_alpha=float(kwargs["lora_alpha"]),
        lora_dropout=float(kwargs["lora_dropout"]),
        target_modules=target,
        modules_to_save=list(modules_to_save) or None,
        trainable_token_indices={"embed_tokens": list(trainable_token_ids)} if trainable_token_ids else None,
        bias="none",
    )


def _resolve_frozen_dtype(training, fsdp: bool = False) -> torch.dtype:
    """``frozen_dtype: auto`` stores never-trained weights in the mixed-precision dtype; under FSDP they stay float32
    (FSDP shards frozen and trainable tensors of a layer together and needs one dtype; its own mixed-precision
    policy casts for compute)."""
    name = training.frozen_dtype
    if name == "auto":
        name = "float32" if fsdp else {"bf16": "bfloat16", "fp16": "float16"}.get(training.mixed_precision, "float32")
    return getattr(torch, name)


def cast_frozen_parameters(model, dtype: torch.dtype) -> None:
    """Store parameters that do not train in ``dtype`` (they never change; autocast handles the mixed matmuls)."""
    if dtype == torch.float32:
        return
    for module in model.modules():
        for parameter in module.parameters(recurse=False):
            if not parameter.requires_grad and parameter.is_floating_point() and parameter.dtype != dtype:
                parameter.data = parameter.data.to(dtype)


def enable_gradient_checkpointing(model) -> None:
    """Non-reentrant checkpointing of every checkpointable layer (LM decoder layers, Q-Former layers)."""
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x names it so
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


class RandomFaceFusionWarning(UserWarning):
    """The face encoder's multi-scale fusion is not FaceXFormer's: it trains with the face adapter."""


def effective_phase(model, phase: PhaseSpec, groups: Mapping[str, Sequence[str]]) -> PhaseSpec:
    """``phase`` with ``face_fusion`` added to its trainable groups when the face encoder's multi-scale fusion is
    not FaceXFormer's (``face_config.multiscale_fusion_pretrained`` false) and the phase trains the face branch:
    random fusion layers must never stay frozen (the public code loads them from FaceXFormer; here they then
    learn with the face adapter, in every phase that trains it)."""
    if FACE_FUSION_GROUP in phase.trainable or model.config.face_config.multiscale_fusion_pretrained:
        return phase
    modules = matched_modules(plain_module_names(model), group_patterns(groups, [t for t in phase.trainable if t != LORA_GROUP]))
    trains_face = any(name.split(".")[0] in ("face_temporal", "face_projector") for names in modules.values() for name in names)
    if not trains_face:
        return phase
    warnings.warn(
        f"phase {phase.name!r}: the face encoder's multi-scale fusion (stage_projections, fuse) is not FaceXFormer's "
        "(random); it trains with the face adapter instead of staying frozen. Convert the FaceXFormer checkpoint "
        "(mmaffect convert facexformer CKPT OUT) and pass it as model.components.face to use the paper's face encoder.",
        RandomFaceFusionWarning,
        stacklevel=2,
    )
    return dataclasses.replace(phase, trainable=list(phase.trainable) + [FACE_FUSION_GROUP])


def prepare_phase_model(config: P2EConfig, phase: PhaseSpec, init_from: Path | None = None, fsdp: bool = False):
    """The phase's model and processor: loaded (``init_from``) or built (``config.model``), gradient
    checkpointing on, PEFT LoRA if the phase trains ``lora`` (the phase's other trainable modules as
    ``modules_to_save``; ``<think>`` token rows as trainable tokens with ``think_tokens="special"``), exactly the
    phase's modules trainable (plus a random face fusion, see :func:`effective_phase`), frozen weights cast to
    ``frozen_dtype``. Returns ``(model, processor, {group: [module names]})``."""
    if init_from is None:
        model, processor = build_initial_model(config.model)
    else:
        model, processor = load_phase_model(init_from)
    if config.training.gradient_checkpointing:
        enable_gradient_checkpointing(model)
    phase = effective_phase(model, phase, config.module_groups)
    if phase.uses_lora:
        from peft import get_peft_model

        modules = matched_modules(plain_module_names(model), group_patterns(config.module_groups, phase.trainable))
        to_save = sorted({name for names in modules.values() for name in names})
        model = get_peft_model(model, lora_config_for(model, config.lora, to_save, processor.think_token_ids))
    groups = apply_trainability(model, phase, config.module_groups)
    cast_frozen_parameters(model, _resolve_frozen_dtype(config.training, fsdp))
    return model, processor, groups


# ----------------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------------
class MixtureDataset(torch.utils.data.Dataset):
    """Map-style view of a phase's mixture: item ``i`` is the record of global draw ``i`` of the sampler."""

    def __init__(self, sampler: MixtureSampler, records: Mapping[str, Sequence[InstructionRecord]]):
        self.sampler = sampler
        self.records = records

    def __getitem__(self, i: int) -> InstructionRecord:
        draw = self.sampler.resolve(i)
        return self.records[draw.source][draw.index]


def phase_sources(phase: PhaseSpec, records_by_dataset: Mapping[str, Sequence[InstructionRecord]]):
    """``(sampler sources, records by source)`` of a phase; a source is ``"{dataset}:{task}"``."""
    sources: dict[str, dict[str, tuple[int, float | None]]] = {}
    records: dict[str, list[InstructionRecord]] = {}
    for task, refs in phase.data.items():
        if phase.mixture.get(task, 0) <= 0:
            continue
        for ref in refs:
            chosen = [r for r in records_by_dataset[ref.dataset] if r.task == task]
            if not chosen:
                tasks = sorted({r.task for r in records_by_dataset[ref.dataset]})
                raise P2EConfigError(f"phase {phase.name!r}: dataset {ref.dataset!r} has no {task} records (it has {tasks})")
            name = f"{ref.dataset}:{task}"
            sources.setdefault(task, {})[name] = (len(chosen), ref.weight)
            records[name] = chosen
    return sources, records


def answer_token_loss(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean next-token loss over the target tokens of the batch, and each row's own mean.

    logits `(B, K, V)` at the kept positions, targets `(B, K)` (the next token, ``-100`` elsewhere)."""
    token_loss = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), ignore_index=IGNORE_INDEX, reduction="none")
    token_loss = token_loss.view(targets.shape)
    mask = targets != IGNORE_INDEX
    per_row = token_loss.sum(dim=1) / mask.sum(dim=1).clamp(min=1)
    return token_loss.sum() / mask.sum().clamp(min=1), per_row


def forward_loss(model, inputs: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Model forward computing logits only where the next token is a target (the answers): the LM head and the
    float32 loss never see the long prompts (72+ branch tokens per sample), which saves memory and time."""
    labels = inputs["labels"]
    model_inputs = {k: v for k, v in inputs.items() if k != "labels"}
    keep = (labels[:, 1:] != IGNORE_INDEX).any(dim=0).nonzero().flatten()
    if keep.numel() == 0:
        raise ValueError("a batch without any answer token: every label is -100")
    outputs = model(**model_inputs, logits_to_keep=keep, use_cache=False)
    if outputs.logits.shape[1] != keep.numel():
        raise RuntimeError(f"the model returned {outputs.logits.shape[1]} logit positions for {keep.numel()} kept positions")
    return answer_token_loss(outputs.logits, labels[:, keep + 1])


# ----------------------------------------------------------------------------------------------------
# Checkpoints
# ----------------------------------------------------------------------------------------------------
def _step_of(folder: Path) -> int:
    return P2E_LAYOUT.step_of(folder)


def complete_checkpoints(folder: Path) -> list[Path]:
    """Checkpoints with their ``COMPLETE`` marker (a kill during saving leaves none), oldest first."""
    return P2E_LAYOUT.complete(folder)


def _write_trainer_state(state: dict[str, Any], staging: Path, settings: dict[str, Any] | None = None) -> None:
    """The P2E files of a checkpoint: the trainer state, the settings it was saved with, then the ``COMPLETE`` marker."""
    torch.save(state, staging / TRAINER_STATE)
    if settings is not None:
        (staging / CHECKPOINT_SETTINGS).write_text(json.dumps(settings, indent=2, default=str), encoding="utf-8")
    (staging / COMPLETE_MARKER).write_text(f"{state['phase']} step {state['step']}\n", encoding="utf-8")


def read_trainer_state(path: Path) -> dict[str, Any]:
    """The P2E trainer state of a checkpoint (phase, step, micro-batch count, sampler state: strings,
    numbers and dicts only), loaded with ``weights_only=True`` so a checkpoint from someone else cannot run
    code; states written by earlier versions load unchanged (they hold the same plain values)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - UnpicklingError, a truncated zip, ...: one line naming the file
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"{path}: not a loadable P2E trainer state (plain values only): {reason}") from None
    if not isinstance(state, dict) or not {"phase", "micro_batches", "sampler"} <= set(state):
        raise CheckpointError(f"{path}: a P2E trainer state holds phase, micro_batches and sampler; got {state!r:.200}")
    return state


class _TrainableOnlyCheckpoints:
    """Accelerate save/load hooks that store the trainable parameters only (frozen weights come from the phase's
    starting model, which is on disk already): 4 GB per checkpoint less at full size."""

    def __init__(self, accelerator):
        self.accelerator = accelerator
        accelerator.register_save_state_pre_hook(self.save)
        accelerator.register_load_state_pre_hook(self.load)

    def save(self, models, weights, output_dir):
        from safetensors.torch import save_file

        if not models or not weights:  # FSDP / DeepSpeed save the models themselves
            return
        if len(models) != 1:
            raise RuntimeError(f"the P2E trainer prepares one model, found {len(models)}")
        model = self.accelerator.unwrap_model(models[0])
        tensors = {name: p.detach().to("cpu").contiguous() for name, p in model.named_parameters() if p.requires_grad}
        if self.accelerator.is_main_process:
            save_file(tensors, os.path.join(output_dir, TRAINABLE_WEIGHTS), metadata={"format": "pt"})
        weights.clear()

    def load(self, models, input_dir):
        from safetensors.torch import load_file

        if not models:
            return
        path = os.path.join(input_dir, TRAINABLE_WEIGHTS)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"checkpoint {input_dir} has no {TRAINABLE_WEIGHTS}")
        model = self.accelerator.unwrap_model(models[0])
        check_safetensors_file(path)
        saved = load_file(path)
        current = {name: p for name, p in model.named_parameters() if p.requires_grad}
        if set(saved) != set(current):
            missing, extra = sorted(set(current) - set(saved))[:5], sorted(set(saved) - set(current))[:5]
            raise RuntimeError(f"checkpoint {path} does not match the phase's trainable parameters (missing {missing}, unexpected {extra})")
        with torch.no_grad():
            for name, parameter in current.items():
                if saved[name].shape != parameter.shape:
                    raise RuntimeError(f"checkpoint {path}: {name} has shape {tuple(saved[name].shape)}, the model {tuple(parameter.shape)}")
                parameter.copy_(saved[name].to(parameter.device, parameter.dtype))
        models.clear()


# ----------------------------------------------------------------------------------------------------
# No silent phases
# ----------------------------------------------------------------------------------------------------
class SilentPhaseError(RuntimeError):
    """A trainable group of a phase got no usable gradient or did not change in the phase's first optimizer steps."""


def _local(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.to_local() if hasattr(tensor, "to_local") else tensor  # FSDP2 shards are DTensors


def _group_hint(group: str, modules: Sequence[str], records: Sequence[InstructionRecord]) -> str:
    """The likely reason a group got no gradient, from the modalities the phase's records use."""
    letters = sorted({MODULE_MODALITIES[m.split(".")[0]] for m in modules if m.split(".")[0] in MODULE_MODALITIES})
    counts: dict[str, int] = {}
    for record in records:
        counts[record.modalities] = counts.get(record.modalities, 0) + 1
    datasets = sorted({r.dataset for r in records})
    for letter in letters:
        using = sum(n for mods, n in counts.items() if letter in mods.upper())
        if using == 0:
            return (f"no record in this phase's data has {MODALITY_NAMES[letter]}: the records of {datasets} use modalities "
                    f"{counts} (media missing and kept as text-only? see on_missing_media / modalities of these datasets)")  # fmt: skip
    if group == LORA_GROUP:
        return "the LoRA weights got no gradient: is the language model on the loss path?"
    return f"its inputs are used by the records ({counts}) but no gradient reached it: is the group on the loss path?"


class TrainableGroupCheck:
    """After the phase's first ``steps`` optimizer steps, every trainable group must have received finite, non-zero
    gradients and its parameters must have changed; otherwise :class:`SilentPhaseError` names the group and the
    likely cause. Gradient and change statistics are summed over processes (DDP / FSDP shards)."""

    def __init__(self, model, groups: Mapping[str, Sequence[str]], steps: int, accelerator, phase_name: str, allow_non_finite: bool):
        self.steps, self.accelerator, self.phase_name, self.allow_non_finite = steps, accelerator, phase_name, allow_non_finite
        self.modules = dict(groups)
        self.params: dict[str, list[torch.nn.Parameter]] = {group: [] for group in groups}
        for name, parameter in model.named_parameters():
            plain = canonical_name(name)
            if plain is None or not parameter.requires_grad:
                continue
            for group, modules in groups.items():
                if (group == LORA_GROUP and is_lora_parameter(plain)) or (
                    group != LORA_GROUP and any(plain.startswith(m + ".") for m in modules)
                ):
                    self.params[group].append(parameter)
                    break
        self.before = {g: self._fingerprints(ps) for g, ps in self.params.items()}
        self.with_gradient = {g: torch.zeros(len(ps), dtype=torch.bool) for g, ps in self.params.items()}
        self.seen_steps = 0

    @staticmethod
    def _fingerprints(params) -> torch.Tensor:
        """Sum and sum of squares (float64) of every tensor: a change of any element changes them."""
        rows = [torch.stack([_local(p).detach().double().sum(), _local(p).detach().double().square().sum()]).cpu() for p in params]
        return torch.stack(rows) if rows else torch.zeros(0, 2, dtype=torch.float64)

    @property
    def active(self) -> bool:
        return self.seen_steps < self.steps

    def after_backward(self) -> None:
        """Call after the gradients of an optimizer step are final (after clipping), before ``optimizer.step()``."""
        for group, params in self.params.items():
            for i, parameter in enumerate(params):
                grad = parameter.grad
                if grad is None:
                    continue
                grad = _local(grad)
                finite = bool(torch.isfinite(grad).all())
                if not finite and not self.allow_non_finite:
                    raise SilentPhaseError(
                        f"phase {self.phase_name!r}: non-finite gradients in trainable group {group!r} at optimizer step "
                        f"{self.seen_steps + 1} (check the inputs for NaN/Inf, or lower the learning rate)"
                    )
                if finite and bool(grad.ne(0).any()):
                    self.with_gradient[group][i] = True
        self.seen_steps += 1

    def finish(self, records: Sequence[InstructionRecord]) -> dict[str, dict[str, int]]:
        """After ``optimizer.step()`` of the last checked step: raise for a silent group; returns the statistics."""
        stats, problems = {}, []
        for group, params in self.params.items():
            changed = (self._fingerprints(params) != self.before[group]).any(dim=1) if params else torch.zeros(0, dtype=torch.bool)
            local = torch.tensor([len(params), int(self.with_gradient[group].sum()), int(changed.sum())], dtype=torch.float64)
            total, with_gradient, moved = (int(v) for v in self.accelerator.reduce(local.to(self.accelerator.device), reduction="sum").cpu())
            stats[group] = {"tensors": total, "with_gradient": with_gradient, "changed": moved}
            if total == 0 or with_gradient == 0 or moved == 0:
                what = "has no trainable tensor" if total == 0 else (
                    f"received no finite non-zero gradient ({with_gradient} of {total} tensors)" if with_gradient == 0
                    else f"did not change ({moved} of {total} tensors; is the learning rate 0?)"
                )  # fmt: skip
                problems.append(f"group {group!r} {what}: {_group_hint(group, self.modules[group], records)}")
        if problems:
            raise SilentPhaseError(
                f"phase {self.phase_name!r} would train nothing for some of its groups (checked over its first "
                f"{self.seen_steps} optimizer step(s)): " + "; ".join(problems)
            )
        return stats


class FlatLossWarning(UserWarning):
    """A phase's training loss did not fall: its groups trained (gradients, changed weights) with no visible effect."""


#: a phase whose last logged loss is not at least this fraction below its first one gets a FlatLossWarning
MIN_LOSS_DROP = 0.02


def check_loss_fell(phase_name: str, metrics_path: Path, min_drop: float = MIN_LOSS_DROP) -> dict[str, Any] | None:
    """Compare the first and last logged training loss of a phase (``train_log.jsonl``) and warn when it did not fall
    by ``min_drop`` (relative): gradients that move weights are not proof that the phase did anything. Returns
    ``{"first", "last", "relative_change", "windows"}`` (None with fewer than two logged windows)."""
    if not metrics_path.is_file():
        return None
    losses = [json.loads(line)["loss"] for line in metrics_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if len(losses) < 2:
        return None
    first, last = losses[0], losses[-1]
    change = (last - first) / abs(first) if first else 0.0
    if not change <= -min_drop:
        warnings.warn(
            f"phase {phase_name!r}: the training loss did not fall (first logged {first:.4f}, last {last:.4f}: "
            f"{100 * change:+.1f}% over {len(losses)} logged windows; at least -{100 * min_drop:.0f}% expected). Its groups "
            "got gradients and changed, but the phase shows no visible effect on its own objective",
            FlatLossWarning, stacklevel=2,
        )  # fmt: skip
    return {"first": first, "last": last, "relative_change": change, "windows": len(losses)}


# ----------------------------------------------------------------------------------------------------
# The trainer
# ----------------------------------------------------------------------------------------------------
def _phase_record(phase: PhaseSpec) -> dict[str, Any]:
    record = asdict(phase)
    record["data"] = {task: [asdict(ref) for ref in refs] for task, refs in phase.data.items()}
    return record


class _PhaseRun:
    """The state of one phase while it trains: what the ``_setup_phase_*`` steps build and the loop advances."""

    def __init__(self, index, phase, phase_dir, training, start_time, model, processor, groups, report):
        self.index, self.phase, self.phase_dir, self.training, self.start_time = index, phase, phase_dir, training, start_time
        self.model, self.processor, self.groups, self.report = model, processor, groups, report
        # the budget: max_steps counts micro-batches (default) or optimizer steps (training.step_unit)
        self.accumulation = training.gradient_accumulation_steps
        self.per_micro = training.step_unit == "micro_batch"
        self.total_micro = phase.max_steps if self.per_micro else phase.max_steps * self.accumulation
        self.total_optimizer_steps = -(-self.total_micro // self.accumulation)
        self.micro = 0  # micro-batch iterations done (always a whole number of optimizer steps)
        self.task_sums = torch.zeros(len(TASKS), dtype=torch.float64)
        self.task_counts = torch.zeros(len(TASKS), dtype=torch.float64)
        self.check: TrainableGroupCheck | None = None
        self.window_loss, self.window_steps, self.window_time = 0.0, 0, 0.0
        self.learning_rate: float | None = None
        self.last_logged: dict[str, Any] = {}

    def budget(self, micro_batches: int) -> int:
        """Progress in the unit of ``max_steps``."""
        return micro_batches if self.per_micro else micro_batches // self.accumulation

    def crossed(self, every: int, previous: int) -> bool:
        """A multiple of ``every`` (budget units) passed during the step from ``previous`` micro-batches to now."""
        return bool(every) and self.budget(self.micro) // every > self.budget(previous) // every

    def all_records(self) -> list[InstructionRecord]:
        return [r for recs in self.records.values() for r in recs]


class P2ETrainer:
    """Runs the phases of a :class:`P2EConfig`. ``accelerator`` defaults to one built from ``config.training``."""

    def __init__(self, config: P2EConfig, accelerator=None, interrupt_after_steps: Mapping[str, int] | None = None):
        from accelerate import Accelerator
        from accelerate.utils import DistributedDataParallelKwargs

        # mixed_precision "auto" resolves here, once: the accelerator, the frozen dtype and the card see the same value
        training = dataclasses.replace(config.training, mixed_precision=resolve_mixed_precision(config.training.mixed_precision))
        self.config = config = dataclasses.replace(config, training=training)
        if accelerator is None:
            fsdp_on_cpu = fsdp_plugin_from_env() if fsdp_requested_on_cpu() else None
            accelerator = Accelerator(
                mixed_precision=training.mixed_precision,
                log_with=report_targets(training.report_to) or None,
                project_dir=config.output_dir,
                kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=training.ddp_find_unused_parameters)],
                **({"fsdp_plugin": fsdp_on_cpu} if fsdp_on_cpu else {}),
            )
            enable_fsdp_on_cpu(accelerator, fsdp_on_cpu)
        self.accelerator = accelerator
        self.output_dir = Path(config.output_dir)
        self.interrupt_after_steps = dict(interrupt_after_steps or {})
        self._records_cache: dict[str, list[InstructionRecord]] = {}
        _TrainableOnlyCheckpoints(accelerator)
        if torch.cuda.is_available() and training.allow_tf32:
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True

    # ------------------------------------------------------------------ helpers
    def log(self, message: str) -> None:
        """A report line on stdout, from the main process (``logging``: logger ``mmaffect.p2e``)."""
        if self.accelerator.is_main_process:
            _REPORT.info(message)

    def phase_dir(self, phase: PhaseSpec) -> Path:
        return self.output_dir / phase.name

    def records(self, dataset: str) -> list[InstructionRecord]:
        if dataset not in self._records_cache:
            spec = self.config.datasets[dataset]
            start = time.perf_counter()
            self._records_cache[dataset] = spec.read()
            self.log(f"[data] {dataset}: {len(self._records_cache[dataset])} records from {spec.path} ({time.perf_counter() - start:.1f}s)")
        return self._records_cache[dataset]

    # ------------------------------------------------------------------ run
    def run(self, phases: Sequence[str] | None = None) -> dict[str, Any]:
        """Train the phases in order (all, or the named ones; skipped phases must be done). Returns a summary.

        ``output_dir`` is locked meanwhile (:mod:`mmaffect.run_lock`): a second run into it is refused."""
        from mmaffect.run_lock import run_lock

        with run_lock(self.output_dir, is_main_process=self.accelerator.is_main_process):
            return self._run(phases)

    def _run(self, phases: Sequence[str] | None) -> dict[str, Any]:
        config = self.config
        wanted = set(phases) if phases else None
        unknown = sorted((wanted or set()) - {p.name for p in config.phases})
        if unknown:
            raise P2EConfigError(f"unknown phase(s) {unknown}; phases: {[p.name for p in config.phases]}")
        if self.accelerator.is_main_process:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            (self.output_dir / "p2e_config.json").write_text(
                json.dumps({k: v for k, v in config.raw.items() if k != "config_dir"}, indent=2, default=str), encoding="utf-8"
            )
        to_run = [p for p in config.phases if (wanted is None or p.name in wanted) and not (self.phase_dir(p) / DONE_FILE).is_file()]
        self.check_data_first(to_run)
        if report_targets(self.config.training.report_to):
            self.accelerator.init_trackers(f"p2e_{config.strategy}", config={"strategy": config.strategy, "seed": config.seed})
        summary: dict[str, Any] = {"strategy": config.strategy, "phases": []}
        previous: Path | None = None
        remaining = set(wanted) if wanted is not None else {p.name for p in config.phases}
        for index, phase in enumerate(config.phases):
            if not remaining:
                break
            done_file = self.phase_dir(phase) / DONE_FILE
            if done_file.is_file():
                done = json.loads(done_file.read_text(encoding="utf-8"))
                if done.get("phase") != _phase_record(phase):
                    raise P2EConfigError(
                        f"{done_file} was written for a different definition of phase {phase.name!r}; use a new output_dir "
                        f"or delete {self.phase_dir(phase)} (saved: {done.get('phase')}, now: {_phase_record(phase)})"
                    )
                self.log(f"[p2e] phase {phase.name} is done ({done_file}); skipping")
                summary["phases"].append(done)
            elif phase.name in remaining:
                summary["phases"].append(self.run_phase(index, phase, previous))
            else:
                raise P2EConfigError(f"phase {phase.name!r} is not done, but the requested phases {sorted(remaining)} start after it")
            remaining.discard(phase.name)
            previous = self.phase_dir(phase) / "model"
        summary["final_model"] = str(previous)
        summary["datasets"] = {name: len(records) for name, records in self._records_cache.items()}
        if self.accelerator.is_main_process and previous is not None and len(summary["phases"]) == len(config.phases):
            write_nano_emox_card(previous, config, summary)
            (self.output_dir / "p2e_summary.json").write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")
        if report_targets(self.config.training.report_to):
            self.accelerator.end_training()
        return summary

    def check_data_first(self, phases: Sequence[PhaseSpec]) -> None:
        """Every dataset of the phases about to run, read before any model is built (minutes at full size): a missing
        annotation file, or media missing where ``on_missing_media`` is ``error`` (the default), stops the run here
        with the whole report of ``--check-data``, not at the first bad record of the first phase."""
        if not phases:
            return
        rows = check_data(self.config, [p.name for p in phases])
        blocking = [r for r in rows if r["status"] in ("error", "media missing")]
        if blocking or any(r["status"] != "ok" for r in rows):
            self.log("[data] " + format_data_check(rows).replace("\n", "\n[data] "))
        if blocking:
            details = "; ".join(
                f"{r['dataset']}: {r['error']}" if r["status"] == "error" else
                f"{r['dataset']}: {r['missing_media']} of {r['records']} records lack their media (media_dir {r['media_dir']}"
                f"{'' if r['media_dir_found'] else ' does not exist'})"
                for r in blocking
            )  # fmt: skip
            raise P2EConfigError(
                f"data not ready for phase(s) {[p.name for p in phases]}: {[r['dataset'] for r in blocking]} - {details} "
                "(on_missing_media: skip / keep trains without the missing media; --check-data prints the report alone)"
            )

    # ------------------------------------------------------------------ one phase
    def run_phase(self, index: int, phase: PhaseSpec, init_from: Path | None) -> dict[str, Any]:
        """One phase, top to bottom: the ``_setup_*`` steps (their order fixes the RNG stream: do not reorder),
        the optimizer steps up to the budget, the phase's artifacts."""
        run = self._setup_phase_model(index, phase, init_from)
        self._setup_phase_data(run)
        self._setup_phase_optimizer(run)
        self._setup_phase_resume(run)
        self._setup_phase_loader(run)
        self._train_phase(run)
        result = self.save_phase_artifacts(index, phase, run.model, run.processor, run.report, run.last_logged,
                                           time.perf_counter() - run.start_time, init_from)
        self.accelerator.free_memory()
        del run
        gc.collect()
        return result

    def _setup_phase_model(self, index: int, phase: PhaseSpec, init_from: Path | None) -> "_PhaseRun":
        """Seed, the phase's model (LoRA-wrapped, frozen parts cast), the trainable-parameter report."""
        from accelerate.utils import DistributedType, set_seed

        accelerator, config = self.accelerator, self.config
        phase_dir = self.phase_dir(phase)
        set_seed(config.seed + 1000 * index)
        start_time = time.perf_counter()
        self.log(f"\n[p2e] phase {index + 1}/{len(config.phases)}: {phase.name} (stage {phase.stage}) - {phase.description}")
        fsdp = accelerator.distributed_type == DistributedType.FSDP
        model, processor, groups = prepare_phase_model(config, phase, init_from, fsdp=fsdp)
        report = trainable_report(model, phase)
        report["groups"] = groups
        self.log(format_report(report))
        if accelerator.is_main_process:
            phase_dir.mkdir(parents=True, exist_ok=True)
            (phase_dir / "trainable_parameters.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
            (phase_dir / "trainable_parameters.txt").write_text(format_report(report) + "\n", encoding="utf-8")
        return _PhaseRun(index, phase, phase_dir, self.config.training, start_time, model, processor, groups, report)

    def _setup_phase_data(self, run: "_PhaseRun") -> None:
        """The phase's records, its task mixture (``MixtureSampler``) and the collator."""
        accelerator, config, phase, training = self.accelerator, self.config, run.phase, run.training
        records_by_dataset = {name: self.records(name) for name in config.datasets_used([phase])}
        sources, run.records = phase_sources(phase, records_by_dataset)
        if run.processor.think_token_ids and not phase.uses_lora:
            thinking = [r.uid for recs in run.records.values() for r in recs if "<think>" in r.answer][:3]
            if thinking:
                raise P2EConfigError(
                    f"phase {phase.name!r}: answers use <think> tokens (think_tokens='special', e.g. {thinking}) whose "
                    "embedding rows only train in a LoRA phase; use think_tokens='text' or train this data with lora"
                )
        run.sampler = MixtureSampler(
            phase.mixture, sources, seed=config.seed + run.index, num_replicas=accelerator.num_processes, rank=accelerator.process_index
        )
        self.log(f"[data] mixture {run.sampler.task_shares} per block of {run.sampler.block_size}; sources { {t: {n: s[0] for n, s in v.items()} for t, v in sources.items()} }")
        run.collator = P2ECollator(run.processor, max_length=training.max_length, padding_side=training.padding_side)

    def _setup_phase_optimizer(self, run: "_PhaseRun") -> None:
        """The schedule and AdamW (no weight decay on 1-d tensors: biases, norms), prepared with the model."""
        training, phase = run.training, run.phase
        run.learning_rate_at = lr_schedule(phase, training, phase.max_steps)
        weight_decay = training.weight_decay if phase.weight_decay is None else phase.weight_decay
        groups = parameter_groups(run.model.named_parameters(), weight_decay, no_decay="one_dimensional", parts=("params",))
        optimizer = torch.optim.AdamW(groups, lr=run.learning_rate_at(0), betas=training.adam_betas, eps=training.adam_epsilon)
        run.model, run.optimizer = self.accelerator.prepare(run.model, optimizer)

    def _setup_phase_resume(self, run: "_PhaseRun") -> None:
        """Continue from the phase's checkpoint (:meth:`resume_checkpoint`); a fresh phase gets the trainable-group check."""
        accelerator, phase, training = self.accelerator, run.phase, run.training
        latest = self.resume_checkpoint(run.phase)
        if latest is not None:
            accelerator.load_state(str(latest))
            state = read_trainer_state(latest / TRAINER_STATE)
            if state["phase"] != phase.name:
                raise RuntimeError(f"checkpoint {latest} belongs to phase {state['phase']!r}, not {phase.name!r}")
            run.sampler.load_state_dict(state["sampler"])
            run.micro = int(state["micro_batches"])
            self.log(f"[p2e] resumed {phase.name} from {latest} after {run.micro} micro-batches (draw {run.sampler.position})")
        if training.trainable_check_steps > 0 and run.micro == 0:
            run.check = TrainableGroupCheck(accelerator.unwrap_model(run.model), run.groups,
                                            min(training.trainable_check_steps, run.total_optimizer_steps), accelerator,
                                            phase.name, allow_non_finite=training.mixed_precision == "fp16")

    def resume_checkpoint(self, phase: PhaseSpec) -> Path | None:
        """The checkpoint the phase continues from (``training.resume_from_checkpoint``: ``latest``, the default - a
        restarted curriculum continues its running phase; a path - for the phase it belongs to; ``null`` - a fresh
        phase, refused while checkpoints of an earlier run exist). Saved with other settings: refused unless
        ``training.allow_config_change`` (then logged in the phase's ``config_changes.jsonl``)."""
        training, checkpoints_dir = self.config.training, self.phase_dir(phase) / "checkpoints"
        resume = training.resume_from_checkpoint
        if resume is None or str(resume).lower() in ("none", "null", "false"):
            if P2E_LAYOUT.complete(checkpoints_dir):
                raise P2EConfigError(f"{checkpoints_dir} holds checkpoints of an earlier run of phase {phase.name!r}: "
                                     "training.resume_from_checkpoint latest continues it, or delete the folder")
            return None
        checkpoint = resolve_resume(resume, checkpoints_dir, P2E_LAYOUT)
        if resume != "latest" and read_trainer_state(checkpoint / TRAINER_STATE)["phase"] != phase.name:
            checkpoint = P2E_LAYOUT.latest(checkpoints_dir)  # the given checkpoint belongs to another phase
        if checkpoint is not None:
            saved_file = checkpoint / CHECKPOINT_SETTINGS
            saved = json.loads(saved_file.read_text(encoding="utf-8")) if saved_file.is_file() else None  # older: none
            refuse_or_log_config_change(settings_changes(saved, self.checkpoint_settings(phase)), checkpoint,
                                        training.allow_config_change, self.phase_dir(phase) / "config_changes.jsonl",
                                        self.accelerator.is_main_process, flag="--training.allow_config_change true")
        return checkpoint

    def checkpoint_settings(self, phase: PhaseSpec) -> dict[str, Any]:
        """What a resumed phase must share with its checkpoint: the seed, the phase, the training settings (less
        those about where and how it runs)."""
        training = {k: v for k, v in asdict(self.config.training).items() if k not in RESUME_FREE_TRAINING_KEYS}
        return {"seed": self.config.seed, "phase": _phase_record(phase), "training": training}

    def _setup_phase_loader(self, run: "_PhaseRun") -> None:
        training, accelerator = run.training, self.accelerator
        loader = torch.utils.data.DataLoader(
            MixtureDataset(run.sampler, run.records),
            batch_size=training.per_device_batch_size,
            sampler=run.sampler,
            collate_fn=run.collator,
            num_workers=training.num_workers,
            # a private generator: creating the iterator must not consume the global RNG (exact resume)
            generator=torch.Generator().manual_seed(self.config.seed + run.index),
            persistent_workers=False,
        )
        run.batches = iter(loader)
        run.draws_per_micro_batch = training.per_device_batch_size * accelerator.num_processes
        run.model.train()

    # ------------------------------------------------------------------ the loop
    def _train_phase(self, run: "_PhaseRun") -> None:
        """Optimizer steps until the budget, logging windows, checkpoints every ``save_steps``."""
        training, phase = run.training, run.phase
        run.progress = main_process_bar(None, self.accelerator, total=phase.max_steps, initial=run.budget(run.micro),
                                        desc=phase.name, dynamic_ncols=True)
        run.window_time = time.perf_counter()
        while run.micro < run.total_micro:
            previous = run.micro
            self._optimizer_step(run)
            run.progress.update(run.budget(run.micro) - run.budget(previous))
            if run.crossed(training.logging_steps, previous) or run.micro == run.total_micro:
                self._log_window(run)
            if run.crossed(training.save_steps, previous) and run.micro < run.total_micro:
                self.save_checkpoint(run.phase_dir / "checkpoints", phase, run.micro, run.budget(run.micro), run.sampler)
            stop_at = self.interrupt_after_steps.get(phase.name)
            if stop_at is not None and run.budget(run.micro) >= stop_at > run.budget(previous):
                run.progress.close()
                raise SimulatedInterruption(f"interrupted after step {run.budget(run.micro)} of {phase.name}")
        run.progress.close()
        if run.check is not None:  # a budget shorter than the check window
            run.check.finish(run.all_records())
        self._last_budget = {"step_unit": training.step_unit, "micro_batches": run.micro,
                             "optimizer_steps": run.total_optimizer_steps, "samples": run.micro * run.draws_per_micro_batch}
        if self.accelerator.is_main_process:  # train_log.jsonl is the main process's (a resumed phase: all of its windows)
            self._last_budget["loss_movement"] = check_loss_fell(phase.name, run.phase_dir / TRAIN_LOG)

    def _optimizer_step(self, run: "_PhaseRun") -> None:
        """One optimizer step: ``accumulation`` micro-batches (fewer at the end of a budget that is not a multiple;
        the loss is divided by the micro-batches of this step), the scheduled learning rate, clipping, the check.

        Accumulation is written out (``no_sync`` on all but the last micro-batch) rather than through
        ``accelerator.accumulate``: Accelerate divides every loss by the configured number of steps, which would
        under-weight the shorter last step, and it counts steps itself, which a resumed phase would have to restore."""
        accelerator, model, training = self.accelerator, run.model, run.training
        in_step = min(run.accumulation, run.total_micro - run.micro)
        step_loss = 0.0
        for i in range(in_step):
            batch = next(run.batches)
            inputs = {k: v.to(accelerator.device) for k, v in batch["inputs"].items()}
            context = contextlib.nullcontext() if i == in_step - 1 else accelerator.no_sync(model)
            with context, accelerator.autocast():
                loss, per_row = forward_loss(model, inputs)
                accelerator.backward(loss / in_step)
            run.sampler.advance(run.draws_per_micro_batch)
            step_loss += loss.detach().float().item() / in_step
            for task, value in zip(batch["tasks"], per_row.detach().float().cpu().tolist()):
                run.task_sums[TASKS.index(task)] += value
                run.task_counts[TASKS.index(task)] += 1
        # the schedule position of this optimizer step: the index of its last micro-batch (public code) or of the
        # optimizer step itself
        position = run.micro + in_step - 1 if run.per_micro else run.micro // run.accumulation
        run.learning_rate = run.learning_rate_at(position)
        for group in run.optimizer.param_groups:
            group["lr"] = run.learning_rate
        if training.max_grad_norm:
            accelerator.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], training.max_grad_norm)
        if run.check is not None:
            run.check.after_backward()
        run.optimizer.step()
        run.optimizer.zero_grad(set_to_none=True)
        run.micro += in_step
        if run.check is not None and not run.check.active:
            self.log(f"[p2e] every trainable group got gradients and changed: {run.check.finish(run.all_records())}")
            run.check = None
        run.window_loss += step_loss
        run.window_steps += 1

    def _log_window(self, run: "_PhaseRun") -> None:
        """The losses of the window since the last line, over all processes: the bar, the trackers, train_log.jsonl."""
        accelerator = self.accelerator
        local = torch.cat([run.task_sums, run.task_counts, torch.tensor([run.window_loss], dtype=torch.float64)])
        stats = accelerator.reduce(local.to(accelerator.device), reduction="sum").cpu()  # all processes
        sums, counts = stats[: len(TASKS)], stats[len(TASKS) : 2 * len(TASKS)]
        elapsed = time.perf_counter() - run.window_time
        run.last_logged = {
            "phase": run.phase.name,
            "step": run.budget(run.micro),
            "micro_batches": run.micro,
            "optimizer_steps": -(-run.micro // run.accumulation),
            "loss": float(stats[-1]) / accelerator.num_processes / run.window_steps,
            "lr": run.learning_rate,
            "seconds_per_optimizer_step": elapsed / run.window_steps,
            **{f"loss/{task}": float(sums[i] / counts[i]) for i, task in enumerate(TASKS) if counts[i] > 0},
            **{f"samples/{task}": int(counts[i]) for i, task in enumerate(TASKS) if counts[i] > 0},
        }
        logged = run.last_logged
        run.progress.set_postfix(loss=f"{logged['loss']:.4f}", **{t: f"{logged[f'loss/{t}']:.3f}" for t in TASKS if f"loss/{t}" in logged})
        if run.training.report_to:
            accelerator.log({k: v for k, v in logged.items() if k != "phase"}, step=run.budget(run.micro))
        if accelerator.is_main_process:
            append_log_line(run.phase_dir / TRAIN_LOG, logged)
        run.task_sums.zero_()
        run.task_counts.zero_()
        run.window_loss, run.window_steps, run.window_time = 0.0, 0, time.perf_counter()

    def save_checkpoint(self, folder: Path, phase: PhaseSpec, micro_batches: int, step: int, sampler: MixtureSampler) -> Path:
        """``step-{step}`` (budget units): the trainable weights, optimizer and RNG states (Accelerate), the sampler
        position and the micro-batch count (the learning rate is a function of it)."""
        state = {"phase": phase.name, "step": step, "micro_batches": micro_batches, "sampler": sampler.state_dict()}
        writer = functools.partial(_write_trainer_state, state, settings=self.checkpoint_settings(phase))
        return save_checkpoint(self.accelerator, P2E_LAYOUT.folder(folder, step), writer, P2E_LAYOUT,
                               keep=self.config.training.save_total_limit)

    def save_phase_artifacts(self, index, phase, model, processor, report, last_logged, seconds, init_from=None) -> dict[str, Any]:
        from accelerate.utils import DistributedType

        accelerator = self.accelerator
        phase_dir = self.phase_dir(phase)
        accelerator.wait_for_everyone()
        unwrapped = accelerator.unwrap_model(model)
        if accelerator.distributed_type == DistributedType.FSDP:
            # sharded parameters: gather the full state dict (FULL_STATE_DICT) into a CPU copy of the phase's model
            state = accelerator.get_state_dict(model)
            if accelerator.is_main_process:
                with warnings.catch_warnings():  # the same model again: its warnings were shown at the start
                    warnings.simplefilter("ignore", RandomFaceFusionWarning)
                    unwrapped, _, _ = prepare_phase_model(self.config, phase, init_from, fsdp=True)
                unwrapped.load_state_dict(state)
        # Each folder is staged and renamed into place (mmaffect.checkpoints): never a partial model folder.
        saving = accelerator.is_main_process or accelerator.distributed_type != DistributedType.FSDP  # FSDP: main holds the copy
        if phase.uses_lora and saving:
            if accelerator.is_main_process:
                with publish_folder(phase_dir / "lora_adapter", what="LoRA adapter") as staging:
                    unwrapped.save_pretrained(str(staging))
            unwrapped = unwrapped.merge_and_unload()
        disable = getattr(unwrapped, "activation_checkpointing_disable", None) or getattr(unwrapped, "gradient_checkpointing_disable", None)
        if disable is not None and saving:
            disable()
        if accelerator.is_main_process:
            record_trained_tasks(unwrapped.config, phase)
            with publish_folder(phase_dir / "model", what="phase model") as staging:
                unwrapped.save_pretrained(str(staging), safe_serialization=True)
                processor.save_pretrained(str(staging))
        result = {
            "name": phase.name,
            "index": index,
            "phase": _phase_record(phase),
            "steps": phase.max_steps,
            **getattr(self, "_last_budget", {}),
            "seconds": seconds,
            "final_metrics": last_logged,
            "trainable": report["trainable"],
            "total": report["total"],
            "model": str(phase_dir / "model"),
            "lora_adapter": str(phase_dir / "lora_adapter") if phase.uses_lora else None,
            "world_size": accelerator.num_processes,
            "distributed_type": str(accelerator.distributed_type.value),
        }
        if accelerator.is_main_process:
            write_text_atomic(phase_dir / DONE_FILE, json.dumps(result, indent=2, default=str))
            shutil.rmtree(phase_dir / "checkpoints", ignore_errors=True)
        accelerator.wait_for_everyone()
        self.log(f"[p2e] phase {phase.name} done in {seconds:.1f}s -> {phase_dir / 'model'}")
        return result


# ----------------------------------------------------------------------------------------------------
# Data check
# ----------------------------------------------------------------------------------------------------
def check_data(config: P2EConfig, phases: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Read every dataset the (named) phases use, as the trainer will, and report per dataset: the annotation path,
    whether it was found, the records, and the records whose prompt needs media they lack (with examples and the
    media folder searched). Nothing is trained. ``python -m mmaffect.train.p2e --config ... --check-data``."""
    from mmaffect.datasets_scripts.instruction_data import read_dataset
    from mmaffect.datasets_scripts.media import MissingMediaWarning

    chosen = [p for p in config.phases if not phases or p.name in phases]
    rows = []
    for name in config.datasets_used(chosen):
        spec = config.datasets[name]
        options = dict(spec.options)
        policy = options.pop("on_missing_media", "error")
        media_dir = options.get("media_dir")
        row = {"dataset": name, "reader": spec.reader, "path": spec.path, "found": Path(spec.path).exists(), "policy": policy,
               "media_dir": media_dir, "media_dir_found": None if media_dir is None else Path(media_dir).is_dir()}  # fmt: skip
        if media_dir is not None and not row["media_dir_found"]:
            options.pop("media_dir")  # read the annotations alone: every record then lacks its media
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", MissingMediaWarning)
                records = read_dataset(spec.reader, spec.path, on_missing_media="keep", **options)
        except (OSError, ValueError) as error:  # missing files, format errors: the reader's message names them
            rows.append({**row, "status": "error", "error": f"{type(error).__name__}: {error}"})
            continue
        lacking = []
        for record in records:
            has = ({"video"} if record.video else set()) | ({"audio"} if record.audio or record.video else set())
            if record.needs() - has:
                lacking.append(f"{record.id} (no {', '.join(sorted(record.needs() - has))})")
        modalities: dict[str, int] = {}
        for record in records:
            modalities[record.modalities] = modalities.get(record.modalities, 0) + 1
        status = "ok" if not lacking else {"skip": "media missing (dropped: skip)", "keep": "media missing (kept)"}.get(policy, "media missing")
        rows.append({**row, "status": status, "records": len(records), "modalities": modalities,
                     "missing_media": len(lacking), "examples": lacking[:3]})  # fmt: skip
    return rows


def format_data_check(rows: Sequence[Mapping[str, Any]]) -> str:
    lines = []
    for row in rows:
        head = f"{row['dataset']:<17} {row['status']:<28}"
        if row["status"] == "error":
            lines.append(f"{head} {row['error']}")
            continue
        media = "" if row["media_dir"] is None else f"; media_dir {row['media_dir']} {'exists' if row['media_dir_found'] else 'does NOT exist'}"
        text = f"{head} {row['records']} records from {row['path']} (modalities {row['modalities']}){media}"
        if row["missing_media"]:
            text += f"; {row['missing_media']} of {row['records']} lack media their prompt needs, e.g. {row['examples']}"
        lines.append(text)
    bad = [r["dataset"] for r in rows if r["status"] != "ok"]
    lines.append(f"{len(rows) - len(bad)} of {len(rows)} datasets ready" + (f"; not ready: {bad}" if bad else ""))
    return "\n".join(lines)


def record_trained_tasks(model_config, phase) -> list[str]:
    """Add the tasks of ``phase``'s mixture to ``model_config.trained_tasks`` (the prompts the model has seen, in
    ``TASKS`` order): ``mmaffect evaluate`` reads them to ask MER benchmarks with a prompt the model knows."""
    seen = set(getattr(model_config, "trained_tasks", None) or ()) | {t for t, w in phase.mixture.items() if w > 0}
    model_config.trained_tasks = [t for t in TASKS if t in seen]
    return model_config.trained_tasks


# ----------------------------------------------------------------------------------------------------
# Entry points
# ----------------------------------------------------------------------------------------------------
def run_from_config(config: Mapping[str, Any] | P2EConfig, **overrides) -> dict[str, Any]:
    """Train from a config mapping (as read from YAML, ``model_type: nano_emox``) or a :class:`P2EConfig`.

    The ``mmaffect train`` CLI dispatches ``model_type: nano_emox`` configs here. ``overrides``: dotted keys
    (``{"training.per_device_batch_size": 2}``) plus the run options ``phases`` (names to run),
    ``interrupt_after_steps`` (``{phase: step}``, tests) and ``accelerator``."""
    run_options = {k: overrides.pop(k) for k in ("phases", "interrupt_after_steps", "accelerator") if k in overrides}
    if not isinstance(config, P2EConfig):
        config = build_config(config, overrides)
    elif overrides:
        raise P2EConfigError("overrides need a config mapping, not a built P2EConfig")
    trainer = P2ETrainer(config, accelerator=run_options.get("accelerator"), interrupt_after_steps=run_options.get("interrupt_after_steps"))
    return trainer.run(run_options.get("phases"))


# Options of a P2E run that are not config keys (``--max_steps N`` is ``--phase_overrides.*.max_steps N``).
RUN_OPTIONS = ("overlay", "phases", "make_synthetic_data", "print_config", "check_data", "max_steps",
               "resume_from_checkpoint", "allow_config_change")
TRAINING_RUN_OPTIONS = ("resume_from_checkpoint", "allow_config_change")  # spelled as LGSRR's: training.* keys
RUN_OPTIONS_HELP = """nano_emox run options (not config keys):
  --overlay FILE.yaml        merge that file's own keys on top (repeatable), e.g. configs/p2e_tiny.yaml
  --phases NAME [NAME ...]   run only these phases (earlier ones must be done)
  --max_steps N              step budget of every phase (= --phase_overrides.*.max_steps N)
  --resume_from_checkpoint latest|PATH|null   (= --training.resume_from_checkpoint; default latest)
  --allow_config_change      resume a checkpoint saved with other settings (= --training.allow_config_change true)
  --make_synthetic_data DIR  write the synthetic corpus to DIR and use it as data_root
  --print_config             print the resolved phases and exit
  --check_data               read every dataset of the (chosen) phases, report what is missing, exit (1 if not ready)
  --data_root DIR / --output_dir DIR are config keys; '-' or '_' between words, --set KEY=VALUE (old) = --KEY VALUE"""


def load_run_config(
    config_path,
    overlays: Sequence[str | os.PathLike] = (),
    *,
    data_root: str | None = None,
    output_dir: str | None = None,
    max_steps: int | None = None,
    sets: Sequence[str] = (),
    extra: Mapping[str, Any] | None = None,
) -> P2EConfig:
    """The CLI's config: ``config_path`` (with its ``inherit`` chain), then each overlay's own keys, then the
    variables and ``sets`` (``"key.path=value"``). ``--overlay configs/p2e_tiny.yaml`` makes any P2E config tiny."""
    from mmaffect.config import Override

    items = [Override(k, v, f"--{k}") for k, v in (("data_root", data_root), ("output_dir", output_dir)) if v]
    if max_steps:
        items.append(Override("phase_overrides.*.max_steps", int(max_steps), "--max_steps"))
    return _build_run_config(read_config_file(config_path), overlays, items + list(sets), extra)


def _build_run_config(raw: Mapping[str, Any], overlays: Sequence, overrides: Sequence, extra: Mapping | None = None) -> P2EConfig:
    """``raw`` (a read config), each overlay's own keys, ``extra`` (a nested mapping), then the overrides."""
    from .p2e_phases import apply_overrides, deep_merge

    for overlay in overlays:
        raw = deep_merge(raw, read_config_file_no_inherit(overlay))
    if extra:
        raw = deep_merge(raw, extra)
    return build_config(apply_overrides(raw, list(overrides)))


def read_config_file_no_inherit(path) -> dict[str, Any]:
    """An overlay file's own keys (its ``inherit`` is ignored)."""
    from mmaffect.config import read_mapping

    data = read_mapping(path, "overlay")  # a syntax error names the file and line
    data.pop("inherit", None)
    return data


def parse_key_values(argv: Sequence[str]) -> dict[str, Any]:
    """``["--training.per_device_batch_size", "2", "--flag", "--seeds", "1", "2"]`` -> nested mapping (values parsed
    as YAML; a bare flag is true; several values make a list): :func:`mmaffect.config.parse_args`."""
    from mmaffect.config import overrides_to_dict, parse_args

    return overrides_to_dict(parse_args(list(argv)))


def _run_options(overrides: Sequence) -> tuple[dict[str, Any], list]:
    """The run options apart from the config overrides (``--max_steps`` becomes an override of every phase)."""
    from mmaffect.config import Override

    options: dict[str, Any] = {"overlay": [], "phases": None}
    rest = []
    for item in overrides:
        name = item.key.replace("-", "_")
        if name not in RUN_OPTIONS or item.flag.startswith("--set "):
            rest.append(item)
        elif name == "max_steps":
            rest.append(Override("phase_overrides.*.max_steps", item.value, item.flag))
        elif name in TRAINING_RUN_OPTIONS:
            rest.append(Override(f"training.{name}", item.value, item.flag))
        elif name in ("overlay", "phases"):
            values = item.value if isinstance(item.value, list) else [item.value]
            options[name] = (options[name] or []) + [str(v) for v in values]
        else:
            options[name] = item.value
    return options, rest


def config_from_command_line(config_path, values: Mapping[str, Any], overrides: Sequence) -> tuple[P2EConfig, dict[str, Any]]:
    """The :class:`P2EConfig` of a command line (the config as read, ``inherit`` resolved, and its overrides,
    run options included) and the run options."""
    from mmaffect.config import Override

    options, overrides = _run_options(overrides)
    path = Path(config_path).resolve()
    raw = {**values, "config_dir": str(path.parent), "source": str(path)}
    synthetic = options.get("make_synthetic_data")
    if synthetic:
        from .p2e_synthetic import make_synthetic_corpus

        make_synthetic_corpus(synthetic)
        if not any(o.key.replace("-", "_") == "data_root" for o in overrides):
            overrides = [Override("data_root", str(synthetic), "--make_synthetic_data"), *overrides]
    return _build_run_config(raw, options["overlay"], overrides), options


def main_from_config(config_path, values: Mapping[str, Any], overrides: Sequence) -> int:
    """``mmaffect train`` for ``model_type: nano_emox``: the config as read (``values``, ``inherit`` resolved) and
    the command line's overrides (:class:`mmaffect.config.Override`, run options included)."""
    config, options = config_from_command_line(config_path, values, overrides)
    if options.get("print_config"):
        for i, phase in enumerate(config.phases):
            print(f"{i + 1}. {phase.name} (stage {phase.stage}): trains {phase.trainable}, lr {phase.learning_rate:g}, "
                  f"{phase.max_steps} steps, mixture {phase.mixture}")  # fmt: skip
        return 0
    if options.get("check_data"):
        rows = check_data(config, options["phases"])
        print(format_data_check(rows))
        return 0 if all(r["status"] == "ok" for r in rows) else 1
    summary = run_from_config(config, phases=options["phases"])
    print(json.dumps({"final_model": summary.get("final_model"), "phases": [p.get("name") for p in summary["phases"]]}, indent=2))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m mmaffect.train.p2e --config ... [options] [--any.config.key value ...]``: the same command line
    as ``mmaffect train`` for a ``model_type: nano_emox`` config (:mod:`mmaffect.train.cli`)."""
    from mmaffect.config import read_command_line

    return main_from_config(*read_command_line(list(sys.argv[1:] if argv is None else argv), "mmaffect.train.p2e"))


__all__ = [
    "P2ETrainer",
    "SimulatedInterruption",
    "answer_token_loss",
    "build_initial_model",
    "build_processor",
    "check_data",
    "config_from_command_line",
    "forward_loss",
    "load_config",
    "load_phase_model",
    "load_run_config",
    "main_from_config",
    "prepare_phase_model",
    "lora_config_for",
    "main",
    "parse_key_values",
    "run_from_config",
]

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
