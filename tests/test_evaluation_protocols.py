"""protocol="official" reproduces the published scoring scripts on the examples of the issue; the
package's guarded protocol="mmaffect" gives the values it documents. Official values are recomputed
independently here (numpy / scikit-learn, as the scripts do) where that is possible."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
import sklearn.metrics as sk

from mmaffect.metrics import (
    DEFAULT_PROTOCOLS,
    ERGEmotionMatcher,
    OfficialOverlapJudge,
    OverlapJudge,
    distinct_n,
    erg_accuracy,
    erg_hit_rate,
    extract_emotion_from_response,
    hit_rate,
    msa_scores,
    ov_mer_scores,
    parse_judge_score,
    parse_official_score,
    read_official_eri_files,
)
from mmaffect.metrics import eri as eri_module
from test_metrics_wheel import toy_wheel_dir  # noqa: F401  (fixture)

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------ MSA
def test_msa_exact_comparison_issue_example():
    predictions, references = ["Positive", "Negative", "positive"], [1, -1, 1]
    official = msa_scores(predictions, references, protocol="official")
    # evaluation.py: item == 'positive' -> 1 / 'negative' -> -1 / else 0; f1_score(labels > 0, preds > 0, 'weighted')
    values = np.array([1 if p == "positive" else -1 if p == "negative" else 0 for p in predictions])
    labels = np.array(references)
    assert official["waf"] == pytest.approx(sk.f1_score(labels > 0, values > 0, average="weighted")) == pytest.approx(2 / 3)
    assert official["accuracy"] == pytest.approx(sk.accuracy_score(labels > 0, values > 0))
    assert official["num_unparsed_predictions"] == 2
    assert msa_scores(predictions, references, protocol="mmaffect")["waf"] == 1.0
    assert msa_scores(predictions, references)["protocol"] == "official"  # the default


@pytest.mark.parametrize("answer", ["positive.", "[positive]", '"positive"', " positive", "0.8"])
def test_msa_lenient_forms_count_only_in_the_package_protocol(answer):
    references = [1.0, -1.0]
    assert msa_scores([answer, "negative"], references, protocol="mmaffect")["accuracy"] == 1.0
    assert msa_scores([answer, "negative"], references, protocol="official")["accuracy"] == 0.5


# ---------------------------------------------------------------------------------------- Dist-n
def _official_dist(responses, n):
    """eval_merg_exp.py's evaluate_dist_n after its <think> cleaning, written out independently."""
    cleaned = [re.sub(r"<think>.*?</think>", "", r, flags=re.DOTALL).strip() for r in responses]
    scores = []
    for sentence in (c for c in cleaned if c):
        tokens = sentence.strip().lower().split()
        grams = [" ".join(tokens[i:i + n]) for i in range(len(tokens) - (n - 1))]
        if grams:
            scores.append(len(set(grams)) / len(grams))
    return float(np.average(scores)) if scores else 0.0


def test_dist_n_issue_example():
    assert distinct_n(["Good good GOOD"], 1, protocol="official") == pytest.approx(1 / 3) == pytest.approx(_official_dist(["Good good GOOD"], 1))
    assert distinct_n(["Good good GOOD"], 1, protocol="mmaffect") == 1.0
    assert distinct_n(["Good good GOOD"], 1) == pytest.approx(1 / 3)  # official is the default


@pytest.mark.parametrize("responses, n, official, package", [
    (["a b", "ok"], 2, 1.0, 0.5),                      # no bigram: skipped vs scored 0
    (["<think>x y</think>", "a b a"], 1, 2 / 3, 1 / 3),  # empty after <think>: dropped vs scored 0
    (["", "<think>only</think>  "], 1, 0.0, 0.0),       # nothing left: 0.0
    (["<think>a a</think>B b"], 1, 0.5, 1.0),
])
def test_dist_n_skips_and_drops(responses, n, official, package):
    assert distinct_n(responses, n, protocol="official") == pytest.approx(official) == pytest.approx(_official_dist(responses, n))
    assert distinct_n(responses, n, protocol="mmaffect") == pytest.approx(package)


# ------------------------------------------------------------------------------------------- ERG
def test_erg_accuracy_raw_strings_issue_example():
    assert erg_accuracy(["Joyful"], ["joyful"], protocol="official") == 0.0
    assert erg_accuracy(["Joyful"], ["joyful"], protocol="mmaffect") == 1.0
    assert erg_accuracy(["Joyful"], ["joyful"]) == 0.0


@pytest.mark.parametrize("reply, official", [
    # the chain-of-empathy sentence inside <think> decides (the format Nano-EmoX is trained on)
    ("<think>Firstly, the event scenario is: a move\nSecondly, the emotion of the speaker is Nostalgic\n"
     "Thirdly, ...</think>\n I hope you feel happy again.", "nostalgic"),
    # otherwise the keyword table, in its order, as substrings
    ("You sound so thankful for your friends.", "grateful"),
    ("Those unkind words must hurt.", "caring"),      # 'kind' is inside 'unkind'
    ("<think>no sentence here</think> I am happy and sad.", "joyful"),  # 'joyful' precedes 'sad' in the table
    ("</think> the emotion of the speaker is angry <think>", "angry"),  # tags out of order: keyword path
    ("Nothing to read.", "unknown"),
    ("", "unknown"),
])
def test_erg_emotion_extraction_official_vs_e3rg(reply, official):
    assert extract_emotion_from_response(reply) == official
    e3rg = ERGEmotionMatcher().extract(reply)[0]
    if official == "nostalgic":
        assert e3rg == "happy"  # E3RG's first candidate: the coarse 'happy' comes before 'nostalgic'
    assert extract_emotion_from_response(reply, {"grateful": "thankful"}) == {"grateful": "thankful"}.get(official, official)


def test_erg_hit_rate_official_raw_lookup_and_undefined_cases():
    assert erg_hit_rate(["joyful", "furious"], ["excited", "annoyed"], protocol="official") == 1.0
    with pytest.raises(ValueError, match="official script raises KeyError"):
        erg_hit_rate(["unknown"], ["sad"], protocol="official")  # extract_emotion_from_response's fallback
    with pytest.raises(ValueError, match="official script raises KeyError"):
        erg_hit_rate(["Joyful"], ["joyful"], protocol="official")  # raw strings: 'Joyful' is not a key
    assert erg_hit_rate(["Joyful"], ["joyful"]) == 1.0  # default mmaffect: normalised
    assert erg_hit_rate(["unknown", "sad"], ["sad", "lonely"], unknown_prediction="neutral", protocol="official") == 0.5


# ----------------------------------------------------------------------------------- hit rate / OV-MER
def test_hit_rate_multi_label_reference_adds_the_overlap(toy_wheel_dir):
    labels = [["happiness", "loneliness"]]
    # per wheel |pred & gt|: w1 {happy, sad} 2, w2 {sorrow} 1, w3 {sad} 1, w4 {blue} 1, w5 {happy, sad} 2
    official = hit_rate(labels, labels, toy_wheel_dir, protocol="official")
    assert official["per_wheel"] == {"wheel1": 2.0, "wheel2": 1.0, "wheel3": 1.0, "wheel4": 1.0, "wheel5": 2.0}
    assert official["hit_rate"] == pytest.approx(1.4)
    assert hit_rate(labels, labels, toy_wheel_dir, protocol="mmaffect")["hit_rate"] == 1.0
    assert hit_rate(labels, labels, toy_wheel_dir)["hit_rate"] == 1.0  # default: mmaffect (official exceeds 1)


def test_ov_mer_all_zero_precision_and_recall_is_nan_officially(toy_wheel_dir):
    # 'loneliness' maps on every wheel (sad, sorrow, sad, blue, sad); 'gladness' meets it on wheel 5 only
    official = ov_mer_scores(["gladness"], ["loneliness"], toy_wheel_dir, protocol="official")
    for wheel in ("wheel1", "wheel2", "wheel3", "wheel4"):
        assert official["per_wheel"][wheel]["precision"] == 0.0 and math.isnan(official["per_wheel"][wheel]["f1"])
    assert official["per_wheel"]["wheel5"]["f1"] == 1.0
    assert math.isnan(official["f1"]) and official["precision"] == pytest.approx(0.2)
    with np.errstate(divide="ignore", invalid="ignore"):  # numpy's 0/0, as in ew_metric.py
        assert math.isnan(2 * np.float64(0.0) * np.float64(0.0) / (np.float64(0.0) + np.float64(0.0)))
    package = ov_mer_scores(["gladness"], ["loneliness"], toy_wheel_dir)
    assert package["f1"] == pytest.approx(0.2) and package["protocol"] == "mmaffect"


def test_wheel_without_scorable_reference_is_nan_officially_and_an_error_here(toy_wheel_dir):
    # 'happiness' maps to nothing on wheels 2-4
    official = hit_rate(["happiness"], ["happiness"], toy_wheel_dir, protocol="official")
    assert math.isnan(official["per_wheel"]["wheel2"]) and official["num_scored"]["wheel2"] == 0
    assert official["per_wheel"]["wheel1"] == 1.0 and math.isnan(official["hit_rate"])
    assert math.isnan(ov_mer_scores(["happiness"], ["happiness"], toy_wheel_dir, protocol="official")["f1"])
    with pytest.raises(ValueError, match="no reference label maps onto wheel2"):
        hit_rate(["happiness"], ["happiness"], toy_wheel_dir)
    with pytest.raises(ValueError, match="no reference label maps onto wheel2"):
        ov_mer_scores(["happiness"], ["happiness"], toy_wheel_dir)


# ------------------------------------------------------------------------------------------- ERI
@pytest.mark.parametrize("reply, official, package", [
    ("'预测分数'：7；'原因'：覆盖了3条线索", 7.0, None),
    ("The prediction matches 2 clues. Score: 6", 2.0, 6.0),   # official: the FIRST number
    ("Score: 8.5/10", 8.5, 8.5),
    ("无法评分", 0.0, None),                                   # no number: 0.0 officially, an error here
    ("", 0.0, None),
])
def test_eri_score_parsing(reply, official, package):
    assert parse_official_score(reply) == official
    if package is None:
        with pytest.raises(ValueError):
            parse_judge_score(reply)
    else:
        assert parse_judge_score(reply) == package


class _RecordingBackend:
    model_id = "gpt-3.5-turbo-0125"

    def __init__(self, replies):
        self.replies, self.calls = replies, []

    def chat(self, messages, **kwargs):
        self.calls.append((messages[0]["content"], kwargs))
        prompt = messages[0]["content"]
        for marker, reply in self.replies.items():
            if marker in prompt:
                return reply
        return "5"


def test_official_judge_prompts_summaries_first_number_and_empty_predictions(tmp_path):
    backend = _RecordingBackend({"仅输出情感词": "焦虑", "《预测描述》": "'预测分数'：7；'原因'：3 of 4", "《预测情感》": "6分，因为"})
    judge = OfficialOverlapJudge(backend, cache_path=tmp_path / "judge.jsonl")
    assert judge.is_official_model and judge.chat_kwargs == {"temperature": 0}
    assert judge.score("clue_overlap", "", "He frowns.", "s1") == 7.0  # an empty prediction is still sent
    clue_prompt, kwargs = backend.calls[0]
    assert kwargs == {"temperature": 0}
    assert clue_prompt.startswith("\n                下面给出人物的《真实描述》以及《预测描述》。")
    assert "《真实描述》：He frowns.\n\n                《预测描述》：\n\n                输出：" in clue_prompt
    assert judge.score("label_overlap", "She smiles.", "He frowns.", "s1") == 6.0
    prompts = [prompt for prompt, _ in backend.calls[1:]]
    # both texts are summarised into emotion words, then the summaries are scored
    assert [("视频描述：He frowns." in p, "视频描述：She smiles." in p) for p in prompts[:2]] == [(True, False), (False, True)]
    assert "《真实情感》：焦虑\n\n                《预测情感》：焦虑" in prompts[2]
    assert OverlapJudge(backend).score("clue_overlap", "", "He frowns.") == 1.0  # the package scores empty as 1 unasked
    calls = len(backend.calls)
    again = OfficialOverlapJudge(backend, cache_path=tmp_path / "judge.jsonl")
    assert again.score("label_overlap", "She smiles.", "He frowns.", "s1") == 6.0 and len(backend.calls) == calls


def test_official_eri_files_read_chi_reasons(tmp_path):
    (tmp_path / "gt-eng.csv").write_text("names,emotions,subtitles,reasons\na,happy,hi,He smiles.\nb,sad,bye,She cries.\n")
    (tmp_path / "nano_emox.csv").write_text("names,pred_label,chi_reasons,reasons\nb,,,WRONG COLUMN\na,,A smile.,WRONG\n")
    names, predictions, references = read_official_eri_files(tmp_path / "nano_emox.csv", tmp_path / "gt-eng.csv")
    assert names == ["a", "b"] and predictions == ["A smile.", ""] and references == ["He smiles.", "She cries."]
    (tmp_path / "bad.csv").write_text("names,reason\na,x\n")
    with pytest.raises(ValueError, match="no column 'chi_reasons'"):
        read_official_eri_files(tmp_path / "bad.csv", tmp_path / "gt-eng.csv")


def test_official_prompt_constants_keep_the_script_layout():
    # the summary prompt's one-shot example and the label prompt's output format, verbatim
    assert "              视频描述：他虽然看起来很高兴，但是实际上很焦虑\n              \n              输出结果：焦虑\n\n" in eri_module.OFFICIAL_SUMMARY_PROMPT
    assert eri_module.OFFICIAL_LABEL_PROMPT.endswith("输出：\n\n                ")
    assert "输出格式为: '预测分数'：预测分数；'原因'：原因\n" in eri_module.OFFICIAL_LABEL_PROMPT
    assert "'原因'：原因、\n                \n                输入：" in eri_module.OFFICIAL_CLUE_PROMPT


# ----------------------------------------------------------------------------------------- docs
def test_docs_table_lists_every_protocol_dependent_metric():
    text = (REPO / "docs" / "metrics.md").read_text(encoding="utf-8")
    section = text.split("## Scoring protocols", 1)[1]
    for metric, default in DEFAULT_PROTOCOLS.items():
        assert re.search(rf"^\| `{metric}` \| {default} \|", section, flags=re.MULTILINE), metric
