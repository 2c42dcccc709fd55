"""The local ``evaluate.Metric`` wrappers give the same numbers as the pure functions (offline)."""

from __future__ import annotations

import pytest

pytest.importorskip("evaluate")

from mmaffect import metrics  # noqa: E402
from mmaffect.metrics import evaluate_modules as em  # noqa: E402
from test_metrics_wheel import toy_wheel_dir  # noqa: E402,F401  (fixture)


def test_wrappers_are_lazy_exports():
    assert metrics.MERHitRate is em.MERHitRate
    assert issubclass(em.ClassificationScore, __import__("evaluate").Metric)


def test_mer_and_ovmer_modules(toy_wheel_dir, tmp_path):
    references = ["happiness", "loneliness", "neutral", "grieving", "Cheery"]
    predictions = [["gladness"], ["mourn", "delight"], ["happiness"], [], ["cheery", "unknownword"]]
    module = em.MERHitRate(cache_dir=str(tmp_path))  # on-disk Arrow cache in a temp folder
    module.add_batch(predictions=predictions[:2], references=references[:2])
    module.add_batch(predictions=predictions[2:], references=references[2:])
    result = module.compute(wheel_dir=str(toy_wheel_dir))
    expected = metrics.hit_rate(predictions, references, toy_wheel_dir)
    assert result["hit_rate"] == pytest.approx(expected["hit_rate"])
    assert result["hit_rate_wheel3"] == 0.0 and result["num_samples"] == 5

    ov = em.OVMERScore(keep_in_memory=True)
    ov_refs = [["happiness", "loneliness"], ["grieving"], ["neutral"], ["delight"]]
    ov_preds = [["gladness", "mourn"], ["loneliness", "serenity"], ["happiness"], []]
    result = ov.compute(predictions=ov_preds, references=ov_refs, wheel_dir=str(toy_wheel_dir))
    assert result["f1"] == pytest.approx(31 / 105)
    assert result["recall_wheel5"] == pytest.approx(1 / 4)


def test_classification_msa_erg_modules():
    scores = em.ClassificationScore(keep_in_memory=True)
    assert scores.compute(predictions=[0, 2, 2, 1], references=[0, 1, 2, 1]) == pytest.approx(
        metrics.classification_metrics([0, 1, 2, 1], [0, 2, 2, 1]))
    result = scores.compute(predictions=["a", "b", "b", "b"], references=["a", "a", "b", "c"])
    assert result["weighted_f1"] == pytest.approx((2 * 2 / 3 + 1 / 2) / 4)

    msa = em.MSAScore(keep_in_memory=True)
    result = msa.compute(predictions=["positive", "negative", "positive", "neutral", "negative", "Negative."],
                         references=[1.2, -0.8, 0.0, 2.0, -1.5, 0.4])
    assert result["waf"] == pytest.approx(17 / 30) and result["num_scored"] == 5

    erg = em.ERGScore(keep_in_memory=True)
    result = erg.compute(predictions=["Joyful", "lonely"], references=["joyful", "anxious"], responses=["a b", "a a"],
                         protocol="mmaffect")
    assert result.pop("protocol") == "accuracy=mmaffect,hit_rate=mmaffect,dist_n=mmaffect"
    assert result == pytest.approx({"accuracy": 0.5, "hit_rate": 1.0, "dist_1": 0.75, "dist_2": 1.0, "num_samples": 2})
    # each metric's default protocol: official raw-string accuracy, guarded hit rate, official Dist-n
    default = erg.compute(predictions=["Joyful", "lonely"], references=["joyful", "anxious"], responses=["a b", "a a"])
    assert default["protocol"] == "accuracy=official,hit_rate=mmaffect,dist_n=official"
    assert default["accuracy"] == 0.0 and default["hit_rate"] == 1.0
    with pytest.raises(ValueError, match="not in the coarse map"):
        erg.compute(predictions=["meh"], references=["sad"])


class _Judge:
    name = "constant-judge"

    def chat(self, messages, **kwargs):
        return "Score: 7" if "clue" in messages[-1]["content"] else "Score: 5"


def test_eri_module(tmp_path):
    module = em.ERIOverlap(keep_in_memory=True)
    result = module.compute(predictions=["a frown", ""], references=["frowning", "smiling"], judge=_Judge(),
                            cache_path=str(tmp_path / "cache.jsonl"), protocol="mmaffect")
    assert result["clue_overlap"] == pytest.approx((7 + 1) / 2)
    assert result["label_overlap"] == pytest.approx((5 + 1) / 2)
    assert result["num_queried"] == 2
    with pytest.raises(ValueError, match="needs judge="):
        module.compute(predictions=["x"], references=["y"])
