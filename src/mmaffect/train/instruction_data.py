"""Moved to :mod:`mmaffect.datasets_scripts.instruction_data` (the P2E readers are data loaders and live beside
the other benchmark readers). This module re-exports it so code written against the old path keeps working."""

import warnings

from mmaffect.datasets_scripts import instruction_data as _moved
from mmaffect.datasets_scripts.instruction_data import *  # noqa: F401,F403

__all__ = list(_moved.__all__)

warnings.warn(
    "mmaffect.train.instruction_data moved to mmaffect.datasets_scripts.instruction_data; import it from there",
    DeprecationWarning,
    stacklevel=2,
)
