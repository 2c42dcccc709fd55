"""What both trainers (and inference) share: the mixed-precision rule, the CPU facts that fix results bit for bit,
FSDP on CPU processes, logging (``logging``; progress bars on the main process only; JSON-lines log files) and the
optimizer's parameter groups.

``mixed_precision: auto`` means the same in LGSRR training, P2E training and Nano-EmoX evaluation
(:func:`resolve_mixed_precision`). torch is imported inside the functions, so config readers and
``mmaffect env`` can import this module cheaply.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path

#: accepted ``mixed_precision`` values of both trainers (``auto`` resolves with :func:`resolve_mixed_precision`)
MIXED_PRECISIONS = ("no", "fp16", "bf16", "auto")
FSDP_ON_CPU_ENV = "MMAFFECT_FSDP_ON_CPU"
#: the per-run log files (JSON lines, one dict per line, appended with :func:`append_log_line`): LGSRR writes one
#: line per epoch into the run folder, P2E one line per logging window into each phase folder
TRAIN_LOG = "train_log.jsonl"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def cpu_native_bf16_flags() -> list[str]:
    """The CPU flags (``/proc/cpuinfo``) that make bf16 matmuls native: ``amx_bf16``, ``avx512_bf16``; [] if none."""
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return []
    return [flag for flag in ("amx_bf16", "avx512_bf16") if flag in flags]


def resolve_mixed_precision(value: str) -> str:
    """``auto``: bf16 on GPUs that support it (fp16 on older GPUs), and on CPUs with native bf16 matmuls (AMX or
    AVX512-BF16); fp32 (``"no"``) elsewhere - on an AVX2-only CPU bf16 matmuls are emulated and far slower than
    fp32. Any other value is returned as given."""
    if value != "auto":
        return value
    import torch

    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_native_bf16_flags() else "no"


def cpu_kernel_settings() -> dict:
    """What fixes the summation order of CPU kernels (MKL GEMMs split their work by thread count, ATen picks
    vector kernels by ISA), hence the last bits of every result: a resume is bit-exact only under the same."""
    import torch

    return {"threads": torch.get_num_threads(), "cpu_capability": torch.backends.cpu.get_cpu_capability()}


def fsdp_requested_on_cpu() -> bool:
    """An FSDP launch (``accelerate launch --config_file configs/accelerate/p2e_fsdp.yaml``) on CPU processes.

    Accelerate enables FSDP only on accelerator devices: on CPU it runs the same launch as plain DDP (MULTI_CPU)
    without a word. With ``MMAFFECT_FSDP_ON_CPU=1`` the trainer lifts that gate (torch's FSDP2 shards on CPU with
    gloo) - how the FSDP config is tested without GPUs; otherwise it warns."""
    import torch

    wants = os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"
    on_cpu = os.environ.get("ACCELERATE_USE_CPU", "false").lower() in ("1", "true", "yes") or not torch.cuda.is_available()
    if wants and on_cpu and os.environ.get(FSDP_ON_CPU_ENV) != "1":
        warnings.warn(f"FSDP was requested on CPU: Accelerate runs it as DDP; set {FSDP_ON_CPU_ENV}=1 to shard with FSDP2 on CPU (gloo)")
        return False
    return wants and on_cpu


def fsdp_plugin_from_env():
    """The FSDP plugin of an ``accelerate launch`` (it reads the ``FSDP_*`` variables set from the config file)."""
    from accelerate.utils import FullyShardedDataParallelPlugin

    return FullyShardedDataParallelPlugin()


def enable_fsdp_on_cpu(accelerator, plugin) -> None:
    """Turn a MULTI_CPU accelerator into an FSDP one with ``plugin`` (see :func:`fsdp_requested_on_cpu`)."""
    from accelerate.state import PartialState
    from accelerate.utils import DistributedType

    if plugin is not None and accelerator.distributed_type == DistributedType.MULTI_CPU:
        accelerator.state.distributed_type = DistributedType.FSDP
        accelerator.state.fsdp_plugin = plugin
        PartialState._shared_state["distributed_type"] = DistributedType.FSDP  # every later AcceleratorState() copies it


# ----------------------------------------------------------------------------------------------- logging
class _CurrentStdout(logging.StreamHandler):
    """Writes to whatever ``sys.stdout`` is at the time of the record (pytest's capture, a redirect)."""

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, value):  # StreamHandler.__init__ assigns it
        pass


def setup_logging(is_main_process: bool, logger_name: str = "mmaffect.train") -> logging.Logger:
    """INFO logging for the trainers (other processes: warnings only); Accelerate's per-file lines muted."""
    logging.basicConfig(format=LOG_FORMAT, level=logging.INFO)
    logging.getLogger("accelerate").setLevel(logging.WARNING)  # one line per checkpoint file otherwise
    logger = logging.getLogger(logger_name)
    logger.setLevel(logging.INFO if is_main_process else logging.WARNING)
    return logger


def stdout_logger(name: str) -> logging.Logger:
    """A logger whose INFO lines go to stdout as bare messages (the P2E trainer's reports, read by people and
    tests), not through the root handler; one handler however often it is asked for."""
    logger = logging.getLogger(name)
    if not any(isinstance(h, _CurrentStdout) for h in logger.handlers):
        handler = _CurrentStdout()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger


def main_process_bar(iterable=None, accelerator=None, **kwargs):
    """A tqdm bar shown on the local main process only."""
    from tqdm.auto import tqdm

    return tqdm(iterable, disable=accelerator is not None and not accelerator.is_local_main_process, **kwargs)


def append_log_line(path: str | os.PathLike, record: dict) -> None:
    """Append one JSON line to a run's log file."""
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")


# ----------------------------------------------------------------------------------------------- optimizer
def _bias_or_layernorm(name: str, parameter) -> bool:
    return name.endswith("bias") or "LayerNorm" in name or "layer_norm" in name or "layernorm" in name


def _one_dimensional(name: str, parameter) -> bool:
    return parameter.ndim < 2


#: which parameters get no weight decay: LGSRR (the reference code's rule) by name, P2E every 1-d tensor (biases and
#: norm weights of any naming)
NO_DECAY_RULES: dict[str, Callable] = {"bias_and_layernorm": _bias_or_layernorm, "one_dimensional": _one_dimensional}


def parameter_groups(named_parameters: Iterable, weight_decay: float, no_decay: str = "bias_and_layernorm",
                     part_of: Callable | None = None, learning_rates: dict[str, float] | None = None,
                     parts: tuple[str, ...] = ()) -> list[dict]:
    """AdamW groups of the trainable parameters: (part, decay or not). ``part_of(name, parameter)`` names a
    parameter's part (default ``"params"``), ``learning_rates[part]`` is that part's group option ``lr`` (e.g. the
    LGSRR head learning rate); groups come in first-seen order, the ``parts`` listed first (kept even when empty, so
    the optimizer state of earlier checkpoints still lines up). Group ``name``: the part, ``_no_decay`` appended."""
    rule = NO_DECAY_RULES[no_decay]
    groups: dict[tuple, dict] = {}
    for part in parts:
        _group(groups, part, False, weight_decay, learning_rates), _group(groups, part, True, weight_decay, learning_rates)
    for name, parameter in named_parameters:
        if parameter.requires_grad:
            part = part_of(name, parameter) if part_of else "params"
            _group(groups, part, rule(name, parameter), weight_decay, learning_rates)["params"].append(parameter)
    return list(groups.values())


def _group(groups: dict, part: str, skip_decay: bool, weight_decay: float, learning_rates: dict | None) -> dict:
    """The group of (part, skip_decay) in ``groups``, created on first use."""
    key = (part, skip_decay)
    if key not in groups:
        groups[key] = {"params": [], "weight_decay": 0.0 if skip_decay else weight_decay,
                       "name": f"{part}{'_no_decay' * skip_decay}"}
        if learning_rates and part in learning_rates:
            groups[key]["lr"] = learning_rates[part]
    return groups[key]

def report_targets(value) -> list[str]:
    """``report_to`` of either trainer as Accelerate's list of trackers: ``"none"``, ``None`` or ``[]`` -> ``[]``,
    ``"tensorboard"`` -> ``["tensorboard"]``, a list of tracker names as given (Accelerate checks the names)."""
    if value is None or value == "none":
        return []
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) and n and n != "none" for n in names):
        raise ValueError(f"report_to={value!r}: expected 'none', a tracker name (e.g. tensorboard) or a list of them")
    return list(names)


__all__ = ["LOG_FORMAT", "NO_DECAY_RULES", "TRAIN_LOG", "append_log_line", "main_process_bar", "report_targets",
           "parameter_groups", "setup_logging", "stdout_logger",
    "FSDP_ON_CPU_ENV", "MIXED_PRECISIONS", "cpu_kernel_settings", "cpu_native_bf16_flags", "enable_fsdp_on_cpu",
    "fsdp_plugin_from_env", "fsdp_requested_on_cpu", "resolve_mixed_precision",
]  # fmt: skip
