"""Lazy registration of mmaffect's models with the transformers Auto classes.

``import mmaffect`` must stay fast (no torch, no transformers modeling stack), yet after it
``AutoConfig`` / ``AutoModel`` / ``AutoModelForSequenceClassification`` / ``AutoProcessor`` /
``pipeline(...)`` must know LGSRR and Nano-EmoX. So the registration waits for transformers: an
import hook (a ``sys.meta_path`` finder that only wraps the loaders of the modules named below)
runs each registration right after the transformers module it needs has loaded, importing then
only the matching mmaffect module:

=======================================================  =============================================
after transformers loads                                 mmaffect registers
=======================================================  =============================================
``transformers.models.auto.configuration_auto``          the configs (``AutoConfig``)
``transformers.models.auto.modeling_auto``               the models (``AutoModel``, ``...ForSequenceClassification``, ...)
``transformers.models.auto.processing_auto``             the processors (``AutoProcessor``)
``transformers.pipelines``                               the ``multimodal-intent-recognition`` pipeline
=======================================================  =============================================

Importing an mmaffect model module directly (``from mmaffect.models.lgsrr import LGSRRConfig``)
registers it as soon as it has loaded. Where transformers was imported before mmaffect, the
registration happens at ``import mmaffect``. This module imports only the standard library.
"""

from __future__ import annotations

import importlib
import importlib.abc
import sys
import threading
import warnings

_LGSRR = "mmaffect.models.lgsrr"
_NANO = "mmaffect.models.nano_emox"


def _lgsrr_config():
    from transformers import AutoConfig

    from .models.lgsrr.configuration_lgsrr import LGSRRConfig, LGSRRTextOnlyConfig

    AutoConfig.register(LGSRRConfig.model_type, LGSRRConfig, exist_ok=True)
    AutoConfig.register(LGSRRTextOnlyConfig.model_type, LGSRRTextOnlyConfig, exist_ok=True)


def _lgsrr_models():
    from transformers import AutoModel, AutoModelForSequenceClassification

    from .models.lgsrr.configuration_lgsrr import LGSRRConfig, LGSRRTextOnlyConfig
    from .models.lgsrr.modeling_lgsrr import (LGSRRForSequenceClassification, LGSRRModel,
                                              LGSRRTextOnlyForSequenceClassification)

    AutoModel.register(LGSRRConfig, LGSRRModel, exist_ok=True)
    AutoModelForSequenceClassification.register(LGSRRConfig, LGSRRForSequenceClassification, exist_ok=True)
    AutoModelForSequenceClassification.register(LGSRRTextOnlyConfig, LGSRRTextOnlyForSequenceClassification,
                                                exist_ok=True)


def _lgsrr_processor():
    from transformers import AutoProcessor

    from .models.lgsrr.configuration_lgsrr import LGSRRConfig
    from .models.lgsrr.processing_lgsrr import LGSRRProcessor

    AutoProcessor.register(LGSRRConfig, LGSRRProcessor, exist_ok=True)


def _lgsrr_pipeline():
    from transformers import AutoModelForSequenceClassification
    from transformers.pipelines import PIPELINE_REGISTRY

    from .models.lgsrr.pipeline_lgsrr import TASK, MultimodalIntentRecognitionPipeline

    if TASK not in PIPELINE_REGISTRY.supported_tasks:
        PIPELINE_REGISTRY.register_pipeline(TASK, pipeline_class=MultimodalIntentRecognitionPipeline,
                                            pt_model=AutoModelForSequenceClassification, type="multimodal")


def _nano_config():
    from transformers import AutoConfig

    from .models.nano_emox.configuration_nano_emox import NanoEmoXConfig

    AutoConfig.register(NanoEmoXConfig.model_type, NanoEmoXConfig, exist_ok=True)


def _nano_models():
    import transformers
    from transformers import AutoModel, AutoModelForImageTextToText

    from .models.nano_emox.configuration_nano_emox import NanoEmoXConfig
    from .models.nano_emox.modeling_nano_emox import NanoEmoXForConditionalGeneration

    auto_classes = [AutoModel, AutoModelForImageTextToText]
    if hasattr(transformers, "AutoModelForMultimodalLM"):  # transformers >= 5: any-modality-to-text models
        auto_classes.append(transformers.AutoModelForMultimodalLM)
    for auto_class in auto_classes:
        auto_class.register(NanoEmoXConfig, NanoEmoXForConditionalGeneration, exist_ok=True)


def _nano_processor():
    from transformers import AutoProcessor

    from .models.nano_emox.configuration_nano_emox import NanoEmoXConfig
    from .models.nano_emox.processing_nano_emox import NanoEmoXProcessor

    AutoProcessor.register(NanoEmoXConfig, NanoEmoXProcessor, exist_ok=True)


def _auto_class_names(module_name: str) -> None:
    """``save_pretrained`` writes ``auto_map`` and copies the code only for classes that called
    ``register_for_auto_class``: done as soon as each class is defined."""
    module = sys.modules[module_name]
    for class_name, auto_class in AUTO_CLASS_NAMES[module_name]:
        getattr(module, class_name).register_for_auto_class(*((auto_class,) if auto_class else ()))


AUTO_CLASS_NAMES = {
    f"{_LGSRR}.configuration_lgsrr": [("LGSRRConfig", None), ("LGSRRTextOnlyConfig", None)],
    f"{_LGSRR}.modeling_lgsrr": [("LGSRRModel", "AutoModel"),
                                 ("LGSRRForSequenceClassification", "AutoModelForSequenceClassification"),
                                 ("LGSRRTextOnlyForSequenceClassification", "AutoModelForSequenceClassification")],
    f"{_LGSRR}.processing_lgsrr": [("LGSRRProcessor", "AutoProcessor")],
    f"{_NANO}.configuration_nano_emox": [("NanoEmoXConfig", None)],
    f"{_NANO}.modeling_nano_emox": [("NanoEmoXForConditionalGeneration", "AutoModel")],
    f"{_NANO}.processing_nano_emox": [("NanoEmoXProcessor", "AutoProcessor")],
}

_AUTO = "transformers.models.auto."
# (transformers module it needs, the mmaffect modules it imports, the registration)
UNITS = [
    (_AUTO + "configuration_auto", (f"{_LGSRR}.configuration_lgsrr",), _lgsrr_config),
    (_AUTO + "configuration_auto", (f"{_NANO}.configuration_nano_emox",), _nano_config),
    (_AUTO + "modeling_auto", (f"{_LGSRR}.modeling_lgsrr",), _lgsrr_models),
    (_AUTO + "modeling_auto", (f"{_NANO}.modeling_nano_emox",), _nano_models),
    (_AUTO + "processing_auto", (f"{_LGSRR}.processing_lgsrr",), _lgsrr_processor),
    (_AUTO + "processing_auto", (f"{_NANO}.processing_nano_emox",), _nano_processor),
    ("transformers.pipelines", (f"{_LGSRR}.pipeline_lgsrr",), _lgsrr_pipeline),
]
WATCHED = {name for trigger, ours, _ in UNITS for name in (trigger, *ours)} | set(AUTO_CLASS_NAMES)

_lock = threading.RLock()
_finished: set[str] = set()  # watched modules whose code has run (importlib may still mark them initializing)
_registered: set[int] = set()  # indices of UNITS done


def _loaded(name: str) -> bool:
    if name in _finished:
        return True
    module = sys.modules.get(name)
    return module is not None and not getattr(getattr(module, "__spec__", None), "_initializing", False)


def _run_units(name: str) -> None:
    """After ``name`` has loaded: every unit that waited for it and whose modules are now all there."""
    for index, (trigger, ours, register) in enumerate(UNITS):
        if index in _registered or name not in (trigger, *ours) or not _loaded(trigger):
            continue
        try:
            for module in ours:
                if not _loaded(module):
                    if module in sys.modules:  # being imported right now: its own end runs this unit
                        break
                    importlib.import_module(module)
            else:
                if index not in _registered:
                    _registered.add(index)
                    register()
        except Exception as error:  # never break the user's transformers import
            _registered.add(index)
            warnings.warn(f"mmaffect could not register {register.__name__.strip('_')} with transformers: "
                          f"{type(error).__name__}: {error}", RuntimeWarning, stacklevel=2)


def _module_done(name: str) -> None:
    with _lock:
        _finished.add(name)
        if name in AUTO_CLASS_NAMES:
            _auto_class_names(name)
        _run_units(name)


class _NotifyingLoader(importlib.abc.Loader):
    """Runs the real loader, then the registrations waiting for this module."""

    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        module.__spec__.loader = module.__loader__ = self._loader  # the module sees its real loader
        self._loader.exec_module(module)
        _module_done(module.__name__)

    def __getattr__(self, name):
        return getattr(self._loader, name)


class RegistrationFinder(importlib.abc.MetaPathFinder):
    """Finds nothing itself: for a watched module, wraps the loader another finder returns."""

    def find_spec(self, fullname, path, target=None):
        if fullname not in WATCHED or fullname in _finished:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _NotifyingLoader(spec.loader)
                return spec
        return None


def install() -> None:
    """Put the finder first on ``sys.meta_path`` (once) and register what transformers already loaded."""
    with _lock:
        if not any(isinstance(f, RegistrationFinder) for f in sys.meta_path):
            sys.meta_path.insert(0, RegistrationFinder())
        for name in sorted({trigger for trigger, _, _ in UNITS}):
            if _loaded(name):
                _module_done(name)


__all__ = ["RegistrationFinder", "UNITS", "install"]
