"""``mmaffect env``: the versions, CPU and GPU of this environment, to paste into a bug report.

    mmaffect env          # Markdown-ish list (like `transformers env`)
    mmaffect env --json   # the same fields as JSON

Reports mmaffect and every direct dependency (installed version or "not installed"), Python and the
platform, torch (build, threads, the ATen CPU capability it dispatches to), whether the CPU runs bf16
matmuls natively (AMX / AVX512-BF16) and what ``mixed_precision: auto`` resolves to here, the GPUs, and
the environment variables that change numerics or downloads. Packages that break CPU torch here
(torchvision, torchaudio, torchcodec) are listed when present. A part that cannot be read is reported
as its error instead of failing the whole command.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "CUDA_VISIBLE_DEVICES",
            "ACCELERATE_USE_CPU", "HF_HOME", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "MMAFFECT_SHARED_DATA")
UNWANTED = ("torchvision", "torchaudio", "torchcodec")  # CUDA builds that break the CPU torch wheel


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def dependency_versions() -> dict[str, str | None]:
    """Every requirement mmaffect declares (runtime and extras) -> installed version (None when absent)."""
    out = {}
    for line in metadata.requires("mmaffect") or []:
        name = re.split(r"[\s\[<>=!~;(]", line, maxsplit=1)[0]
        if name != "mmaffect":  # the dev extra pulls in mmaffect[demo]: its own line says the version
            out.setdefault(name, _version(name))
    return out


def _cpu() -> dict[str, Any]:
    from mmaffect.train.runtime import cpu_native_bf16_flags

    model = ""
    try:
        match = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        model = match.group(1).strip() if match else ""
    except OSError:
        pass
    flags = cpu_native_bf16_flags()
    return {"model": model or platform.processor() or platform.machine(), "logical_cores": os.cpu_count(),
            "native_bf16": bool(flags), "native_bf16_flags": flags}


def _torch() -> dict[str, Any]:
    import torch

    return {"version": torch.__version__, "cuda_build": torch.version.cuda, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "num_threads": torch.get_num_threads(), "mkl": torch.backends.mkl.is_available(),
            "mkldnn": torch.backends.mkldnn.is_available()}


def _gpus() -> list[dict[str, Any]]:
    import torch

    if not torch.cuda.is_available():
        return []
    gpus = []
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        gpus.append({"index": index, "name": props.name, "memory_gib": round(props.total_memory / 2**30, 1),
                     "bf16": torch.cuda.is_bf16_supported()})
    return gpus


def _mixed_precision_auto() -> str:
    from mmaffect.train.runtime import resolve_mixed_precision

    return resolve_mixed_precision("auto")


def _safely(part) -> Any:
    try:
        return part()
    except Exception as error:  # noqa: BLE001 - a broken install is exactly what a bug report must show
        return {"error": f"{type(error).__name__}: {error}"}


def collect() -> dict[str, Any]:
    from mmaffect import __version__

    return {
        "mmaffect": __version__,
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "platform": platform.platform(),
        "torch": _safely(_torch),
        "cpu": _safely(_cpu),
        "mixed_precision_auto": _safely(_mixed_precision_auto),
        "gpus": _safely(_gpus),
        "dependencies": dependency_versions(),
        "unwanted_packages": {name: v for name in UNWANTED if (v := _version(name))},
        "environment": {name: os.environ[name] for name in ENV_VARS if name in os.environ},
    }


def _value(value: Any) -> str:
    if isinstance(value, dict):
        return value.get("error") or ", ".join(f"{k}={v}" for k, v in value.items())
    return str(value)


def format_report(info: dict[str, Any]) -> str:
    torch_info, cpu = info["torch"], info["cpu"]
    lines = ["Copy-and-paste the text below in your bug report.", "",
             f"- mmaffect version: {info['mmaffect']}",
             f"- Platform: {info['platform']}",
             f"- Python version: {info['python']} ({info['python_executable']})"]
    if "error" in torch_info:
        lines.append(f"- torch: {torch_info['error']}")
    else:
        lines += [f"- torch version: {torch_info['version']} (CUDA build: {torch_info['cuda_build'] or 'no'}, "
                  f"MKL: {torch_info['mkl']}, oneDNN: {torch_info['mkldnn']})",
                  f"- torch CPU capability: {torch_info['cpu_capability']}, threads: {torch_info['num_threads']}"]
    if "error" in cpu:
        lines.append(f"- CPU: {cpu['error']}")
    else:
        bf16 = f"yes ({', '.join(cpu['native_bf16_flags'])})" if cpu["native_bf16"] else "no (bf16 is emulated: slow)"
        lines += [f"- CPU: {cpu['model']}, {cpu['logical_cores']} logical cores", f"- CPU native bf16: {bf16}"]
    lines.append(f"- mixed_precision: auto resolves to: {_value(info['mixed_precision_auto'])}")
    gpus = info["gpus"]
    if isinstance(gpus, dict):
        lines.append(f"- GPU: {gpus['error']}")
    else:
        lines.append("- GPU: " + ("; ".join(f"{g['index']}: {g['name']} ({g['memory_gib']} GiB, bf16 {g['bf16']})"
                                            for g in gpus) or "none"))
    lines.append("- Dependencies:")
    lines += [f"    - {name}: {version or 'not installed'}" for name, version in info["dependencies"].items()]
    if info["unwanted_packages"]:
        lines.append("- Installed but breaking CPU torch here (uninstall them): "
                     + ", ".join(f"{k} {v}" for k, v in info["unwanted_packages"].items()))
    if info["environment"]:
        lines.append("- Environment: " + ", ".join(f"{k}={v}" for k, v in info["environment"].items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mmaffect env", description="Versions, CPU and GPU of this environment, for bug reports.")
    parser.add_argument("--json", action="store_true", help="print the fields as JSON")
    args = parser.parse_args(argv)
    info = collect()
    print(json.dumps(info, indent=2) if args.json else format_report(info))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
