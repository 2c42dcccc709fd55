"""Save → load through trust_remote_code in a process where `import mmaffect` fails, and wrapping a
real pretrained encoder loaded from a local folder."""

from __future__ import annotations

import json

import torch
from lgsrr_inference_support import run_without_mmaffect
from transformers import AutoModel, AutoTokenizer

from mmaffect import LGSRRConfig, LGSRRForSequenceClassification


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 128, (3, 6), generator=g)
    aspect_ids = torch.randint(1, 128, (3, 3, 9), generator=g)
    return {"input_ids": ids, "aspect_input_ids": aspect_ids}


def test_save_and_load_as_remote_code_without_mmaffect(tmp_path):
    torch.manual_seed(0)
    model = LGSRRForSequenceClassification(LGSRRConfig.tiny(id2label={0: "a", 1: "b", 2: "c"})).eval()
    model.save_pretrained(tmp_path / "ckpt")
    files = {p.name for p in (tmp_path / "ckpt").iterdir()}
    assert {"configuration_lgsrr.py", "modeling_lgsrr.py", "ranking_loss.py", "model.safetensors"} <= files
    assert not any(name.endswith(".bin") for name in files)
    auto_map = json.loads((tmp_path / "ckpt" / "config.json").read_text())["auto_map"]
    assert auto_map["AutoModelForSequenceClassification"] == "modeling_lgsrr.LGSRRForSequenceClassification"

    batch = _batch()
    torch.save(batch, tmp_path / "batch.pt")
    expected = model(**batch).logits
    script = f"""
        import torch
        from transformers import AutoModel, AutoModelForSequenceClassification
        model = AutoModelForSequenceClassification.from_pretrained({str(tmp_path / 'ckpt')!r}, trust_remote_code=True).eval()
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        base = AutoModel.from_pretrained({str(tmp_path / 'ckpt')!r}, trust_remote_code=True)
        assert type(base).__name__ == "LGSRRModel"
        batch = torch.load({str(tmp_path / 'batch.pt')!r})
        with torch.no_grad():
            torch.save(model(**batch).logits, {str(tmp_path / 'logits.pt')!r})
        print(model.config.id2label)
    """
    result = run_without_mmaffect(script, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "'a'" in result.stdout
    assert torch.equal(torch.load(tmp_path / "logits.pt"), expected.detach())


def test_from_pretrained_encoder_wraps_a_local_pretrained_encoder(minilm_path, tmp_path):
    labels = ["Acknowledge", "Advise", "Agree"]
    model = LGSRRForSequenceClassification.from_pretrained_encoder(minilm_path, labels=labels, pooling="mean").eval()
    assert model.config.id2label == dict(enumerate(labels)) and model.config.hidden_size == 384
    reference = AutoModel.from_pretrained(minilm_path)
    for name, tensor in model.lgsrr.text_encoder.state_dict().items():
        assert torch.equal(tensor, reference.state_dict()[name]), name

    tokenizer = AutoTokenizer.from_pretrained(minilm_path)
    text = tokenizer(["I'm so sorry.", "Good job!"], padding=True, return_tensors="pt")
    desc = tokenizer(["She nods.", "He smiles warmly.", "They hug."] * 2, padding=True, return_tensors="pt")
    out = model(
        input_ids=text["input_ids"], attention_mask=text["attention_mask"], token_type_ids=text["token_type_ids"],
        aspect_input_ids=desc["input_ids"].view(2, 3, -1), aspect_attention_mask=desc["attention_mask"].view(2, 3, -1),
        labels=torch.tensor([0, 2]), aspect_ranks=torch.tensor([[0, 1, 2], [2, 0, 1]]),
    )
    # mean pooling over real tokens equals the encoder's own masked mean
    hidden = reference(**text).last_hidden_state
    mask = text["attention_mask"][..., None].float()
    assert torch.allclose(out.text_embeds, (hidden * mask).sum(1) / mask.sum(1), atol=1e-5)
    assert torch.isfinite(out.loss)

    model.save_pretrained(tmp_path / "wrapped")
    again = LGSRRForSequenceClassification.from_pretrained(tmp_path / "wrapped").eval()
    assert torch.allclose(again(**{k: v for k, v in _minilm_inputs(text, desc).items()}).logits,
                          model(**_minilm_inputs(text, desc)).logits)


def _minilm_inputs(text, desc):
    return {
        "input_ids": text["input_ids"], "attention_mask": text["attention_mask"],
        "aspect_input_ids": desc["input_ids"].view(2, 3, -1), "aspect_attention_mask": desc["attention_mask"].view(2, 3, -1),
    }
