"""Path variables of the training configs: ``${shared_data}``, ``${demo_data}`` and ``~``."""

from __future__ import annotations

from pathlib import Path

#: the demo rows shipped in the package (``configs/lgsrr_demo.yaml``)
DEMO_DATA = Path(__file__).resolve().parent / "demo_data"


def expand_path(value: str | None) -> str | None:
    """Expand ``${shared_data}`` ($MMAFFECT_SHARED_DATA or ../shared/data), ``${demo_data}`` (the demo
    rows shipped in the package) and ``~`` (:func:`mmaffect.config.expand_variables`)."""
    if value is None:
        return None
    from mmaffect.config import expand_variables, shared_data_root

    return expand_variables(value, {"shared_data": shared_data_root(), "demo_data": str(DEMO_DATA)})


__all__ = ["DEMO_DATA", "expand_path"]
