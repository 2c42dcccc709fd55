"""`import mmaffect` imports neither torch nor transformers, yet the Auto classes and every public import path
work after it (registration runs when transformers' Auto modules load: mmaffect._registration)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap


def _run(script: str) -> dict:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True,
                            timeout=300, env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


HEAVY = ("torch", "transformers", "numpy", "datasets", "gradio")


def test_import_mmaffect_and_the_cli_help_stay_light():
    report = _run(f"""
        import io, json, sys, contextlib
        import mmaffect
        after_import = [m for m in {HEAVY!r} if m in sys.modules]
        from mmaffect import cli
        with contextlib.redirect_stdout(io.StringIO()):
            cli.main(["--help"])
        print(json.dumps({{"after_import": after_import, "after_help": [m for m in {HEAVY!r} if m in sys.modules]}}))
    """)
    assert report == {"after_import": [], "after_help": []}


def test_auto_classes_after_import_mmaffect():
    report = _run("""
        import json, tempfile
        import mmaffect
        from transformers import (AutoConfig, AutoModel, AutoModelForSequenceClassification, AutoProcessor,
                                  AutoModelForImageTextToText)
        config = mmaffect.LGSRRConfig.tiny(num_labels=3)
        assert type(AutoConfig.for_model("lgsrr")) is type(config)
        model = AutoModelForSequenceClassification.from_config(config)
        base = AutoModel.from_config(config)
        nano = AutoConfig.for_model("nano_emox")
        from transformers.models.auto.processing_auto import PROCESSOR_MAPPING
        from transformers.pipelines import PIPELINE_REGISTRY
        folder = tempfile.mkdtemp()
        model.save_pretrained(folder)
        loaded = AutoModelForSequenceClassification.from_pretrained(folder)
        print(json.dumps({"config": type(config).__name__, "model": type(model).__name__, "base": type(base).__name__,
                          "nano": type(nano).__name__, "loaded": type(loaded).__module__,
                          "processor": PROCESSOR_MAPPING[type(config)].__name__,
                          "pipeline": "multimodal-intent-recognition" in PIPELINE_REGISTRY.get_supported_tasks(),
                          "nano_model": AutoModelForImageTextToText._model_mapping[type(nano)].__name__}))
    """)
    assert report == {"config": "LGSRRConfig", "model": "LGSRRForSequenceClassification", "base": "LGSRRModel",
                      "nano": "NanoEmoXConfig", "loaded": "mmaffect.models.lgsrr.modeling_lgsrr",
                      "processor": "LGSRRProcessor", "pipeline": True,
                      "nano_model": "NanoEmoXForConditionalGeneration"}


def test_registration_when_transformers_came_first_and_every_import_path():
    report = _run("""
        import json
        from transformers import AutoConfig, AutoModelForSequenceClassification  # before mmaffect
        import mmaffect
        from mmaffect import LGSRRForSequenceClassification, LGSRRConfig, load_benchmark, LGSRRProcessor
        from mmaffect.models.nano_emox import NanoEmoXConfig, NanoEmoXForConditionalGeneration, NanoEmoXProcessor
        from mmaffect.models.lgsrr import neural_ndcg, MultimodalIntentRecognitionPipeline
        from mmaffect.losses import neural_ndcg as loss
        model = AutoModelForSequenceClassification.from_config(LGSRRConfig.tiny(num_labels=2))
        print(json.dumps({"model": type(model).__name__, "config": AutoConfig.for_model("lgsrr").__class__.__name__,
                          "same_loss": loss is neural_ndcg, "metrics": hasattr(mmaffect.metrics, "classification_metrics")
                          or "metrics" in dir(mmaffect), "bench": callable(load_benchmark)}))
    """)
    assert report == {"model": "LGSRRForSequenceClassification", "config": "LGSRRConfig", "same_loss": True,
                      "metrics": True, "bench": True}
