"""NeuralNDCG / NDCG behaviour the older tests left open (found by mutation testing,
``benchmarks/mutation.sh``): the default temperature, the stochastic variant with a real beta,
padding in every mode, Sinkhorn's doubly stochastic output, ideal DCGs below 1, k on the exact NDCG,
ties, dtypes and the error messages."""

from __future__ import annotations

import math

import pytest
import torch

from mmaffect.losses import ndcg, neural_ndcg, neural_sort
from mmaffect.models.lgsrr.ranking_loss import _sinkhorn
from test_ranking_loss import exact_ndcg

SCORES = torch.tensor([[0.2, 0.8, 0.1, 0.5, 0.3], [0.9, 0.1, 0.4, 0.3, 0.2]])
RELEVANCE = torch.tensor([[4.0, 0.0, 3.0, 1.0, 2.0], [1.0, 3.0, 2.0, 0.0, 5.0]])


def test_default_temperature_is_one():
    default = neural_ndcg(SCORES, RELEVANCE)
    assert default.item() == pytest.approx(neural_ndcg(SCORES, RELEVANCE, temperature=1.0).item(), abs=1e-7)
    assert abs(default.item() - neural_ndcg(SCORES, RELEVANCE, temperature=2.0).item()) > 1e-4
    assert abs(default.item() - neural_ndcg(SCORES, RELEVANCE, temperature=0.5).item()) > 1e-4


def test_exact_ndcg_with_k_padding_and_non_powered_gain():
    for k in (1, 2, 4, 5, 9):
        for powered in (True, False):
            want = [exact_ndcg(s.tolist(), r.tolist(), k=k, powered=powered) for s, r in zip(SCORES, RELEVANCE)]
            got = ndcg(SCORES, RELEVANCE, k=k, powered_relevance=powered)
            assert got.tolist() == pytest.approx(want, abs=1e-6)
    # a padded entry with the highest score is ranked last and adds no gain, whatever k
    padded_scores = torch.tensor([[0.3, 0.1, 0.7, 9.0]])
    padded = torch.tensor([[2.0, 1.0, 3.0, -1.0]])
    for k in (None, 3, 4):
        assert ndcg(padded_scores, padded, k=k).item() == pytest.approx(
            exact_ndcg([0.3, 0.1, 0.7], [2.0, 1.0, 3.0], k=k), abs=1e-6)
    # a custom padding value
    assert ndcg(padded_scores, torch.tensor([[2.0, 1.0, 3.0, 99.0]]), padding_value=99).item() == pytest.approx(1.0)


def test_ideal_dcg_below_one_still_normalises():
    # non-powered gains 0.5 / 0: ideal DCG 0.5; ranked right -> 1, ranked wrong -> 1/log2(3)
    rel = torch.tensor([[0.5, 0.0], [0.5, 0.0], [0.0, 0.0]])
    scores = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    got = ndcg(scores, rel, powered_relevance=False)
    assert got.tolist() == pytest.approx([1.0, 1 / math.log2(3), 0.0], abs=1e-6)
    loss = neural_ndcg(scores[:2], rel[:2], temperature=1e-4, powered_relevance=False)
    assert loss.item() == pytest.approx(1 - (1 + 1 / math.log2(3)) / 2, abs=1e-4)


def test_ties_keep_slate_order_and_integer_relevance_is_accepted():
    scores = torch.tensor([[1.0, 1.0, 1.0]])
    rel = torch.tensor([[0, 1, 3]])  # integer relevance
    want = (1 / math.log2(3) + 7 / 2) / (7 + 1 / math.log2(3))  # stable order: items 0, 1, 2
    assert ndcg(scores, rel).item() == pytest.approx(want, abs=1e-6)
    assert ndcg(scores, rel).dtype == torch.float32


def test_sinkhorn_output_is_doubly_stochastic_on_the_valid_block():
    generator = torch.Generator().manual_seed(0)
    perm = torch.rand(3, 4, 4, generator=generator) + 0.05
    mask = torch.tensor([[False] * 4, [False, False, False, True], [False, True, False, True]])
    out = _sinkhorn(perm, mask)
    for b, n_valid in enumerate((4, 3, 2)):
        valid = ~mask[b]
        block = out[b, :n_valid][:, valid]
        assert torch.allclose(block.sum(0), torch.ones(n_valid), atol=1e-5)
        assert torch.allclose(block.sum(1), torch.ones(n_valid), atol=1e-5)
        assert out[b, n_valid:].abs().sum() == 0  # rows past the slate length
        assert out[b][:, mask[b]].abs().sum() == 0  # columns of padded items


def test_neural_sort_rows_past_the_valid_length_are_zero():
    scores = torch.tensor([[0.3, 2.0, 5.0, -1.0]])
    mask = torch.tensor([[False, False, True, False]])
    perm = neural_sort(scores, mask, temperature=1e-3)
    assert perm[0, 3].abs().sum() == 0 and perm[0, :, 2].abs().sum() == 0
    assert perm[0, :3].argmax(-1).tolist() == [1, 0, 3]
    assert torch.allclose(perm[0, :3].sum(-1), torch.ones(3))


def test_neural_ndcg_ignores_a_padded_top_score_in_every_mode():
    scores = torch.tensor([[0.3, 0.1, 0.7, 9.0]])
    rel = torch.tensor([[2.0, 1.0, 3.0, -1.0]])
    unpadded = neural_ndcg(scores[:, :3], rel[:, :3], temperature=0.5)
    assert neural_ndcg(scores, rel, temperature=0.5).item() == pytest.approx(unpadded.item(), abs=1e-5)
    # stochastic with beta 0 is the deterministic loss on log(shifted scores); padding excluded from the shift
    stochastic = neural_ndcg(scores, rel, temperature=0.5, stochastic=True, beta=0.0, n_samples=3)
    low = torch.tensor([[0.3, 0.1, 0.7, -50.0]])  # a padded score below the others must not move the shift
    assert neural_ndcg(low, rel, temperature=0.5, stochastic=True, beta=0.0).item() == pytest.approx(
        stochastic.item(), abs=1e-5)


def test_stochastic_with_beta_zero_is_the_deterministic_loss_of_the_log_scores():
    scores = torch.tensor([[0.5, 2.0, 1.0, 3.0], [-1.0, 0.5, 2.0, 0.0]])
    rel = torch.tensor([[1.0, 3.0, 2.0, 5.0], [2.0, 3.0, 1.0, 0.0]])
    shifted = scores - scores.min(dim=1, keepdim=True).values.clamp(max=0.0)
    logs = torch.log(shifted + 1e-10)
    want = neural_ndcg(logs, rel, temperature=0.7)
    got = neural_ndcg(scores, rel, temperature=0.7, stochastic=True, beta=0.0, n_samples=4)
    assert got.item() == pytest.approx(want.item(), abs=1e-5)


def test_stochastic_with_a_real_beta_is_seeded_and_depends_on_the_samples():
    scores = torch.tensor([[0.5, 2.0, 1.0, 3.0]], requires_grad=True)
    rel = torch.tensor([[1.0, 3.0, 2.0, 5.0]])

    def loss(seed, **kwargs):
        generator = torch.Generator().manual_seed(seed)
        options = {"temperature": 0.5, "stochastic": True, "beta": 1.0, "n_samples": 8, **kwargs}
        return neural_ndcg(scores, rel, generator=generator, **options)

    assert loss(0).item() == loss(0).item()
    assert loss(0).item() != loss(1).item()
    assert loss(0).item() != loss(0, n_samples=2).item()
    assert loss(0).item() != loss(0, beta=0.5).item()
    deterministic = neural_ndcg(scores, rel, temperature=0.5)
    assert loss(0).item() != pytest.approx(deterministic.item(), abs=1e-4)
    # the noisy average is still a loss in [0, 1] with a gradient
    value = loss(3)
    value.backward()
    assert 0.0 <= value.item() <= 1.0 and scores.grad is not None and scores.grad.abs().sum() > 0


def test_the_loss_keeps_the_input_dtype_and_k_bounds():
    scores = SCORES.to(torch.bfloat16)
    assert neural_ndcg(scores, RELEVANCE).dtype == torch.bfloat16
    assert neural_ndcg(SCORES.double(), RELEVANCE).dtype == torch.float64
    # k = 0 is read as 1, k past the slate as the whole slate
    assert neural_ndcg(SCORES, RELEVANCE, k=0).item() == pytest.approx(neural_ndcg(SCORES, RELEVANCE, k=1).item())
    assert neural_ndcg(SCORES, RELEVANCE, k=50).item() == pytest.approx(neural_ndcg(SCORES, RELEVANCE).item())
    assert neural_ndcg(SCORES, RELEVANCE, k=2).item() != pytest.approx(neural_ndcg(SCORES, RELEVANCE).item())


def test_only_slates_with_an_ideal_dcg_count_and_an_all_zero_batch_is_zero_with_a_graph():
    scores = torch.tensor([[0.1, 0.9], [0.9, 0.1]], requires_grad=True)
    rel = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    loss = neural_ndcg(scores, rel, temperature=1e-3)
    assert loss.item() == pytest.approx(1 - 1 / math.log2(3), abs=1e-4)  # row 2 left out of the mean
    empty = neural_ndcg(scores, torch.zeros(2, 2), temperature=1e-3)
    assert empty.item() == 0.0 and empty.requires_grad
    empty.backward()
    assert scores.grad.abs().sum() == 0


def test_error_messages_name_both_shapes_and_the_temperature():
    message = r"^scores and relevance must both be \(batch, slate\) tensors of the same shape; got scores \(2, 4\) and relevance \(2, 3\)$"
    with pytest.raises(ValueError, match=message):
        neural_ndcg(torch.zeros(2, 4), torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"got scores \(4,\) and relevance \(4,\)$"):
        ndcg(torch.zeros(4), torch.zeros(4))
    with pytest.raises(ValueError, match=r"got scores \(2, 3\) and relevance \(2, 4\)$"):
        ndcg(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="^temperature must be > 0, got -0.5$"):
        neural_ndcg(torch.zeros(2, 4), torch.ones(2, 4), temperature=-0.5)
    assert neural_ndcg(torch.zeros(1, 2), torch.ones(1, 2), temperature=1e-9).isfinite()


def test_stochastic_loss_is_the_mean_over_gumbel_perturbed_log_scores():
    # the stochastic NeuralSort recipe written out: log(shifted scores) + beta * Gumbel, with the same draws
    scores = torch.tensor([[0.5, 2.0, 1.0, 3.0], [1.5, 0.5, 2.0, 0.2]])
    rel = torch.tensor([[1.0, 3.0, 2.0, 5.0], [2.0, 3.0, 1.0, 4.0]])
    n_samples, beta = 5, 0.8
    uniform = torch.rand((n_samples, 2, 4), generator=torch.Generator().manual_seed(4))
    gumbel = -torch.log(-torch.log(uniform))
    logs = torch.log(scores)  # every score is positive: no shift
    per_sample = [1 - neural_ndcg(logs + beta * gumbel[i], rel, temperature=0.5) for i in range(n_samples)]
    want = 1 - sum(value.item() for value in per_sample) / n_samples
    got = neural_ndcg(scores, rel, temperature=0.5, stochastic=True, n_samples=n_samples, beta=beta,
                      generator=torch.Generator().manual_seed(4))
    assert got.item() == pytest.approx(want, abs=1e-5)


def test_stochastic_defaults_are_32_samples_and_beta_0_1():
    scores, rel = SCORES.abs() + 0.1, RELEVANCE

    def run(**kwargs):
        return neural_ndcg(scores, rel, stochastic=True, generator=torch.Generator().manual_seed(7), **kwargs).item()

    assert run() == pytest.approx(run(n_samples=32, beta=0.1), abs=1e-7)
    assert run() != pytest.approx(run(n_samples=33, beta=0.1), abs=1e-7)
    assert run() != pytest.approx(run(n_samples=32, beta=1.1), abs=1e-7)


def test_integer_relevance_and_dtype_of_the_empty_loss():
    assert neural_ndcg(SCORES, RELEVANCE.long()).item() == pytest.approx(neural_ndcg(SCORES, RELEVANCE).item())
    empty = neural_ndcg(SCORES.to(torch.bfloat16), torch.zeros_like(RELEVANCE))
    assert empty.dtype == torch.bfloat16 and empty.item() == 0.0
