"""Path variables of the training configs: ``${shared_data}``, ``${demo_data}`` and ``~``."""

from __future__ import annotations

import os
from pathlib import Path

#: the demo rows shipped in the package (``configs/lgsrr_demo.yaml``)
DEMO_DATA = Path(__file__).resolve().parent / "demo_data"


def expand_path(value: str | None) -> str | None:
    """Expand ``${shared_data}`` ($MMAFFECT_SHARED_DATA or ../shared/data), ``${demo_data}`` (the demo
    rows shipped in the package) and ``~``."""
    if value is None:
        return None
    shared = os.environ.get("MMAFFECT_SHARED_DATA", "../shared/data")
    value = value.replace("${shared_data}", shared).replace("${demo_data}", str(DEMO_DATA))
    return os.path.expanduser(value)


__all__ = ["DEMO_DATA", "expand_path"]
