"""LGSRR model folder (remote code): configuration, model, ranking loss, processor and pipeline.

Names are imported on first use, so ``import mmaffect`` does not pull in torch or the transformers
modeling stack; the Auto-class registration (``AutoConfig``, ``AutoModel``,
``AutoModelForSequenceClassification``, ``AutoProcessor``) happens in :mod:`mmaffect._registration`
as soon as transformers' Auto modules load. ``save_pretrained`` copies this folder's files (not this
``__init__``) next to the weights.
"""

from mmaffect._lazy import lazy_attributes

_EXPORTS = {
    "LGSRRConfig": "configuration_lgsrr",
    "LGSRRModel": "modeling_lgsrr",
    "LGSRRForSequenceClassification": "modeling_lgsrr",
    "LGSRRTextOnlyConfig": "configuration_lgsrr",
    "LGSRRTextOnlyForSequenceClassification": "modeling_lgsrr",
    "LGSRRModelOutput": "modeling_lgsrr",
    "LGSRROutput": "modeling_lgsrr",
    "LGSRRPreTrainedModel": "modeling_lgsrr",
    "LGSRRProcessor": "processing_lgsrr",
    "MultimodalIntentRecognitionPipeline": "pipeline_lgsrr",
    "check_example": "pipeline_lgsrr",
    "format_prediction": "pipeline_lgsrr",
    "ndcg": "ranking_loss",
    "neural_ndcg": "ranking_loss",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_attributes(__name__, _EXPORTS, globals())
