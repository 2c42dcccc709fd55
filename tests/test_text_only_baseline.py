"""The text-only baseline pools as LGSRR does (issue 22, item 1): the same feature F_T for the same encoder
weights and config, so the two differ only in the relational head and the descriptions; its saved folder
loads through the standard Auto class and text-classification pipeline in a process without mmaffect."""

from __future__ import annotations

import json

import pytest
import torch
from lgsrr_inference_support import run_without_mmaffect
from test_train_lgsrr_fixtures import tiny_config, write_tiny_encoder

from mmaffect import LGSRRForSequenceClassification
from mmaffect.models.text_only import TextOnlyClassifier

LABELS = ["a", "b", "c"]


def _text_batch(seed: int = 0):
    """Right-padded utterances of different lengths (so mean pooling differs from the [CLS] token)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 30, (4, 11), generator=g)
    mask = torch.ones_like(ids)
    for row, length in enumerate((11, 7, 4, 9)):
        mask[row, length:] = 0
        ids[row, length:] = 0
    return ids, mask


@pytest.mark.parametrize("pooling, packing", [("mean", "auto"), ("mean", "none"), ("mean", "separate"),
                                              ("mean_padded", "none")])
def test_mean_pooled_baseline_feature_equals_lgsrr_text_feature(tmp_path, pooling, packing):
    encoder = write_tiny_encoder(tmp_path / "encoder")
    lgsrr = LGSRRForSequenceClassification.from_pretrained_encoder(
        str(encoder), labels=LABELS, pooling=pooling, sequence_packing=packing).eval()
    baseline = TextOnlyClassifier.from_pretrained_encoder(
        str(encoder), LABELS, pooling=pooling, sequence_packing=packing).eval()
    assert baseline.model.config.model_type == "lgsrr_text_only" and baseline.pooling == pooling
    ids, mask = _text_batch()
    aspects = torch.randint(5, 30, (4, 3, 6))
    with torch.no_grad():
        expected = lgsrr(ids, attention_mask=mask, aspect_input_ids=aspects).text_embeds
        feature = baseline.encode(input_ids=ids, attention_mask=mask)["text_embeds"]
        logits = baseline(input_ids=ids, attention_mask=mask).logits
    torch.testing.assert_close(feature, expected, rtol=1e-5, atol=1e-5)
    # the classifier reads exactly that feature
    torch.testing.assert_close(logits, baseline.model.classifier(feature), rtol=1e-5, atol=1e-5)
    # and it is not the [CLS] token (what the encoder's own head would read)
    assert not torch.allclose(feature, lgsrr.lgsrr.text_encoder(ids, attention_mask=mask).last_hidden_state[:, 0])


def test_baseline_pooling_follows_the_config(tmp_path):
    encoder = write_tiny_encoder(tmp_path / "encoder")
    cls = TextOnlyClassifier.from_pretrained_encoder(str(encoder), LABELS, pooling="cls")
    assert type(cls.model).__name__ == "BertForSequenceClassification" and cls.pooling == "pooler"
    mean = TextOnlyClassifier.from_pretrained_encoder(str(encoder), LABELS, pooling="mean",
                                                      aspects=["x", "y"], fusion="sum")  # head-only settings ignored
    assert type(mean.model).__name__ == "LGSRRTextOnlyForSequenceClassification"
    assert mean.model.config.pooling == "mean" and mean.model.config.id2label == dict(enumerate(LABELS))
    # one encoder, nothing unused: every parameter is reached by the loss
    ids, mask = _text_batch()
    mean(input_ids=ids, attention_mask=mask, labels=torch.tensor([0, 1, 2, 0])).loss.backward()
    assert all(p.grad is not None for p in mean.parameters())
    with pytest.raises(ValueError, match="pooling"):
        TextOnlyClassifier.from_pretrained_encoder(str(encoder), LABELS, pooling="maen")


def test_saved_mean_pooled_baseline_loads_in_a_fresh_process_through_the_standard_pipeline(tmp_path):
    from mmaffect.train import cli
    from mmaffect.evaluation import cli_classifier as evaluate

    config = tiny_config(tmp_path, variant="text_only", num_train_epochs=2)  # model.pooling: mean
    assert cli.main(["--config", str(config)]) == 0
    best = tmp_path / "run" / "best_model"
    saved = json.loads((best / "config.json").read_text())
    assert saved["model_type"] == "lgsrr_text_only" and saved["pooling"] == "mean"
    assert saved["auto_map"]["AutoModelForSequenceClassification"] == \
        "modeling_lgsrr.LGSRRTextOnlyForSequenceClassification"
    assert "custom_pipelines" not in saved
    evaluate.main(["--model", str(best), "--dataset", "mintrec2", "--data-dir", str(tmp_path / "release/data_text"),
                   "--output-dir", str(tmp_path / "eval")])
    evaluated = [json.loads(line) for line in (tmp_path / "eval" / "predictions.jsonl").read_text().splitlines()]
    (tmp_path / "expected.json").write_text(json.dumps([[r["text"], r["predicted"], r["score"]] for r in evaluated]))
    script = f"""
        import json
        from transformers import AutoModelForSequenceClassification, pipeline
        folder = {str(best)!r}
        model = AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True)
        assert type(model).__name__ == "LGSRRTextOnlyForSequenceClassification", type(model)
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        classify = pipeline("text-classification", model=folder, trust_remote_code=True, device="cpu")
        for text, label, score in json.load(open({str(tmp_path / 'expected.json')!r})):
            top = classify(text, truncation=True)[0]
            assert top["label"] == label, (text, top, label)
            assert abs(top["score"] - score) < 1e-5, (text, top, score)
        print("ok", model.config.id2label[0])
    """
    done = run_without_mmaffect(script, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["ok", "Acknowledge"]
    card = (best / "README.md").read_text()
    assert "trust_remote_code=True" in card and "custom_code" in card and "mean pooling" in card
