"""Nano-EmoX (flat remote-code folder): configuration, model, processor.

``save_pretrained`` copies these files next to the weights, so a saved model loads with
``AutoModel.from_pretrained(folder, trust_remote_code=True)`` without this package installed.
Names are imported on first use; the Auto-class registration (``AutoConfig``, ``AutoModel``,
``AutoModelForImageTextToText``, ``AutoModelForMultimodalLM``, ``AutoProcessor``) happens in
:mod:`mmaffect._registration` as soon as transformers' Auto modules load.
"""

from mmaffect._lazy import lazy_attributes

_EXPORTS = {
    "NanoEmoXConfig": "configuration_nano_emox",
    "NanoEmoXFaceConfig": "configuration_nano_emox",
    "NanoEmoXFusionConfig": "configuration_nano_emox",
    "NanoEmoXQFormerConfig": "configuration_nano_emox",
    "NanoEmoXCausalLMOutputWithPast": "modeling_nano_emox",
    "NanoEmoXForConditionalGeneration": "modeling_nano_emox",
    "NanoEmoXPreTrainedModel": "modeling_nano_emox",
    "NanoEmoXProcessor": "processing_nano_emox",
    "ReasoningSplit": "processing_nano_emox",
    "format_task_instruction": "processing_nano_emox",
    "split_reasoning": "processing_nano_emox",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_attributes(__name__, _EXPORTS, globals())
