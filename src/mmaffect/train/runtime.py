"""What both trainers (and inference) ask of the hardware: the mixed-precision rule, the CPU facts that fix
results bit for bit, and FSDP on CPU processes.

``mixed_precision: auto`` means the same in LGSRR training, P2E training and Nano-EmoX evaluation
(:func:`resolve_mixed_precision`). torch is imported inside the functions, so config readers and
``mmaffect env`` can import this module cheaply.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

#: accepted ``mixed_precision`` values of both trainers (``auto`` resolves with :func:`resolve_mixed_precision`)
MIXED_PRECISIONS = ("no", "fp16", "bf16", "auto")
FSDP_ON_CPU_ENV = "MMAFFECT_FSDP_ON_CPU"


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


__all__ = [
    "FSDP_ON_CPU_ENV", "MIXED_PRECISIONS", "cpu_kernel_settings", "cpu_native_bf16_flags", "enable_fsdp_on_cpu",
    "fsdp_plugin_from_env", "fsdp_requested_on_cpu", "resolve_mixed_precision",
]  # fmt: skip
