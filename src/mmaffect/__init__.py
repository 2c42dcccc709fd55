"""mmaffect: Hugging Face-native multimodal intent and affect understanding.

Two models, each a flat remote-code folder under ``mmaffect/models/<name>/``:

* **LGSRR** (EMNLP 2025) - LLM-guided semantic relational reasoning for intent / dialogue-act
  classification over text plus LLM-written descriptions.
* **Nano-EmoX** - a compact multimodal LM for six affective tasks, trained with the P2E curriculum.

Importing ``mmaffect`` registers both models with the transformers Auto classes, lazily: the
registration runs when transformers' Auto modules load (:mod:`mmaffect._registration`), so
``import mmaffect`` imports neither torch nor transformers. Every public name below is imported on
first access, so a missing optional piece never breaks the import either.
"""

from importlib import import_module

__version__ = "0.1.0"

from ._registration import install as _install_registration

_install_registration()

# public name -> "module:attribute", resolved on first access
_LAZY = {
    "LGSRRConfig": "mmaffect.models.lgsrr:LGSRRConfig",
    "LGSRRModel": "mmaffect.models.lgsrr:LGSRRModel",
    "LGSRRForSequenceClassification": "mmaffect.models.lgsrr:LGSRRForSequenceClassification",
    "LGSRRTextOnlyForSequenceClassification": "mmaffect.models.lgsrr:LGSRRTextOnlyForSequenceClassification",
    "LGSRROutput": "mmaffect.models.lgsrr:LGSRROutput",
    "LGSRRProcessor": "mmaffect.models.lgsrr:LGSRRProcessor",
    "MultimodalIntentRecognitionPipeline": "mmaffect.models.lgsrr:MultimodalIntentRecognitionPipeline",
    "TextOnlyClassifier": "mmaffect.models.text_only:TextOnlyClassifier",
    "NanoEmoXConfig": "mmaffect.models.nano_emox:NanoEmoXConfig",
    "NanoEmoXForConditionalGeneration": "mmaffect.models.nano_emox:NanoEmoXForConditionalGeneration",
    "NanoEmoXProcessor": "mmaffect.models.nano_emox:NanoEmoXProcessor",
    "load_benchmark": "mmaffect.datasets_scripts:load_benchmark",
    "LGSRRDataCollator": "mmaffect.datasets_scripts:LGSRRDataCollator",
    "tokenize_for_lgsrr": "mmaffect.datasets_scripts:tokenize_for_lgsrr",
    "losses": "mmaffect.losses:",
    "models": "mmaffect.models:",
    "metrics": "mmaffect.metrics:",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name):
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'mmaffect' has no attribute {name!r}")
    module_name, _, attr = target.partition(":")
    module = import_module(module_name)
    value = getattr(module, attr) if attr else module
    globals()[name] = value
    return value
