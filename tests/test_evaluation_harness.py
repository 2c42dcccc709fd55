"""The evaluation harness end to end: a tiny random Nano-EmoX saved with save_pretrained, evaluated on
synthetic clips in every benchmark's public layout; scores equal direct calls of the metric functions
on the same replies; a killed run resumes without generating a finished sample again; the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from evaluation_support import LAYOUTS, make_mer2023, make_mintrec, make_mosi, make_ovmerd, make_avamerg, make_emer, \
    save_tiny_nano_emox, write_e2e_wheel_dir
from mmaffect import cli
from mmaffect.evaluation import cli as evaluate_cli
from mmaffect.evaluation import NanoEmoXPredictor, evaluate_benchmark, load_eval_benchmark
from mmaffect.evaluation.scoring import WheelPolarityExtractor, match_candidate_label
from mmaffect.metrics import (
    ERGEmotionMatcher,
    LexiconLabelExtractor,
    OfficialOverlapJudge,
    classification_metrics,
    distinct_n,
    eri_overlap_scores,
    erg_accuracy,
    erg_hit_rate,
    extract_emotion_from_response,
    hit_rate,
    load_emotion_wheels,
    msa_scores,
    ov_mer_scores,
)
from mmaffect.train.runtime import resolve_mixed_precision


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return save_tiny_nano_emox(tmp_path_factory.mktemp("nano_emox") / "tiny")


@pytest.fixture(scope="module")
def predictor(tiny_model):
    return NanoEmoXPredictor(tiny_model, batch_size=2, decoding="sample", max_new_tokens=3)


@pytest.fixture(scope="module")
def wheel_dir(tmp_path_factory):
    return write_e2e_wheel_dir(tmp_path_factory.mktemp("wheels"))


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    root = tmp_path_factory.mktemp("layouts")
    return {name: make(root / name) for name, make in LAYOUTS.items()}


class FakeJudge:
    """A deterministic chat backend for the ERI judge: the score depends on the prompt's length."""

    model_id = "fake-judge"

    def __init__(self):
        self.calls = 0

    def chat(self, messages, **kwargs):
        self.calls += 1
        prompt = messages[0]["content"]
        return "平静" if "仅输出情感词" in prompt else f"'预测分数'：{len(prompt) % 10 + 1}；'原因'：..."


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _same(a, b):
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == pytest.approx(b)


def test_predictor_loads_by_path_in_native_precision(predictor, tiny_model):
    assert predictor.precision == resolve_mixed_precision("auto")
    expected = {"bf16": torch.bfloat16, "fp16": torch.float16, "no": torch.float32}[predictor.precision]
    assert next(predictor.model.parameters()).dtype == expected
    assert predictor.fingerprint()["model"] == str(tiny_model) and predictor.required_media() == {"video", "audio"}


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_end_to_end_scores_equal_direct_metric_calls(name, predictor, layouts, wheel_dir, tmp_path):
    judge = OfficialOverlapJudge(FakeJudge(), cache_path=tmp_path / "judge.jsonl") if name == "emer" else None
    result = evaluate_benchmark(predictor, name, tmp_path / "out", data_dir=layouts[name], wheel_dir=wheel_dir,
                                judge=judge, progress=False)
    rows = _read(tmp_path / "out" / "predictions.jsonl")
    data = load_eval_benchmark(name, layouts[name])
    assert [r["id"] for r in rows] == data.samples["id"] and result["num_generated"] == len(data) == result["num_samples"]
    assert len(_read(tmp_path / "out" / "replies.jsonl")) == len(data)
    assert json.loads((tmp_path / "out" / "results.json").read_text()) == result
    assert (tmp_path / "out" / "summary.md").read_text().count("|") > 6
    replies = [r["reply"] for r in rows]
    references = [r["reference"] for r in rows]
    assert all(isinstance(r, str) and r for r in replies)  # the tiny model's (random) replies
    task, metrics = result["task"], result["metrics"]
    wheels = load_emotion_wheels(wheel_dir)
    if task in ("mer", "ovmer"):
        labels = [LexiconLabelExtractor.from_wheels(wheels).extract(r) for r in replies]
        assert [r["prediction"] for r in rows] == labels
        direct = (hit_rate if task == "mer" else ov_mer_scores)(labels, references, wheels)
        key = "hit_rate" if task == "mer" else "f1"
        assert _same(metrics[key], direct[key]) and result["protocols"] == {"hit_rate" if task == "mer" else "ov_mer": "mmaffect"}
    elif task == "msa":
        sentiments = [(WheelPolarityExtractor(wheels).extract(r) or [""])[0] for r in replies]
        direct = msa_scores(sentiments, references)
        assert metrics["waf"] == pytest.approx(direct["waf"]) and metrics["accuracy"] == pytest.approx(direct["accuracy"])
        assert result["table"]["WAF"] == pytest.approx(100 * direct["waf"])
    elif task == "mir":
        direct = classification_metrics(references, replies)  # official: the reply is the label
        assert metrics == pytest.approx(direct) and result["table"]["WF1"] == pytest.approx(100 * direct["weighted_f1"])
    elif task == "erg":
        emotions = [extract_emotion_from_response(r) for r in replies]
        assert [r["prediction"] for r in rows] == emotions
        assert metrics["accuracy"] == erg_accuracy(emotions, references)
        assert metrics["hit_rate"] == erg_hit_rate(emotions, references, unknown_prediction="neutral")
        assert metrics["dist_1"] == pytest.approx(distinct_n(replies, 1)) and metrics["dist_2"] == pytest.approx(distinct_n(replies, 2))
    else:  # eri
        direct = eri_overlap_scores(replies, references, OfficialOverlapJudge(FakeJudge()), ids=[r["id"] for r in rows])
        assert metrics["clue_overlap"] == direct["clue_overlap"] and metrics["label_overlap"] == direct["label_overlap"]
        csv_text = (tmp_path / "out" / "eri_predictions.csv").read_text(encoding="utf-8")
        assert csv_text.splitlines()[0] == "names,pred_label,chi_reasons"


class ScriptedPredictor:
    """Fixed replies by sample id; records what it was asked (the Predictor interface, no model)."""

    name = "scripted"

    def __init__(self, replies: dict[str, str], batch_size: int = 2, crash_after: int | None = None):
        self.replies, self.batch_size, self.crash_after = replies, batch_size, crash_after
        self.asked: list[str] = []
        self.calls = 0

    def fingerprint(self):
        return {"predictor": "scripted", "replies": sorted(self.replies.items())}

    def required_media(self):
        return {"video"}

    def predict(self, requests):
        if self.crash_after is not None and self.calls >= self.crash_after:
            raise KeyboardInterrupt("killed")
        self.calls += 1
        self.asked += [r.id for r in requests]
        return [self.replies[r.id] for r in requests]


def test_scripted_replies_give_the_hand_computed_scores(layouts, wheel_dir, tmp_path):
    mer = ScriptedPredictor({"sample_00000001": "The character's emotional state is happy.",
                             "sample_00000002": "He looks sad and lonely.", "sample_00000003": "Nervous, maybe anxious."})
    result = evaluate_benchmark(mer, "mer2023", tmp_path / "mer", data_dir=layouts["mer2023"], wheel_dir=wheel_dir, progress=False)
    assert result["metrics"]["hit_rate"] == pytest.approx(2 / 3) and result["table"] == {"Hit Rate": pytest.approx(200 / 3)}
    ov = ScriptedPredictor({"samplenew_1": "happy and thrilled", "samplenew_2": "sad", "samplenew_3": "calm"})
    result = evaluate_benchmark(ov, "ovmerd", tmp_path / "ov", data_dir=layouts["ovmerd"], wheel_dir=wheel_dir, progress=False)
    # references map to {happy}, {sad}, {} (neutral: not scored): P = R = 1 on every wheel
    assert result["metrics"]["f1"] == 1.0 and result["metrics"]["per_wheel"]["wheel1"]["num_scored"] == 2
    msa = ScriptedPredictor({"abc_1": "Positive", "abc_2": "negative", "def_3": "neutral", "def_4": "She is delighted."})
    result = evaluate_benchmark(msa, "mosi", tmp_path / "msa", data_dir=layouts["mosi"], wheel_dir=wheel_dir, progress=False)
    assert [r["prediction"] for r in _read(tmp_path / "msa" / "predictions.jsonl")] == ["positive", "negative", "neutral", "positive"]
    assert result["metrics"]["accuracy"] == 1.0
    mir = ScriptedPredictor({"S06_E04_70": "Arrange", "S04_E16_164": "thank", "S05_E01_3": "I think: Complain."})
    official = evaluate_benchmark(mir, "mintrec", tmp_path / "mir", data_dir=layouts["mintrec"], progress=False)
    assert official["metrics"]["accuracy"] == pytest.approx(1 / 3)  # raw replies: only 'Arrange' equals its label
    package = evaluate_benchmark(mir, "mintrec", tmp_path / "mir2", data_dir=layouts["mintrec"], protocol="mmaffect", progress=False)
    assert package["metrics"]["accuracy"] == 1.0 and match_candidate_label("ask for help please", ["Ask for help", "Thank"]) == "Ask for help"
    erg = ScriptedPredictor({"dia00012utt2_7": "<think>Secondly, the emotion of the speaker is anxious\n</think>\n It will be OK.",
                             "dia00013utt4_3": "<think>the emotion of the speaker is joyful</think> Have fun fun fun"})
    result = evaluate_benchmark(erg, "avamerg", tmp_path / "erg", data_dir=layouts["avamerg"], progress=False)
    # references are projected (worried -> anxious, excited -> happy): acc 1/2; coarse: sad=sad, happy=happy
    assert result["metrics"]["accuracy"] == 0.5 and result["metrics"]["hit_rate"] == 1.0
    assert result["metrics"]["dist_1"] == pytest.approx((1 + 2 / 4) / 2)  # "have fun fun fun": 2 of 4 distinct
    assert result["table"]["Acc / Hit Rate"] == "50.00 / 100.00"
    e3rg = evaluate_benchmark(erg, "avamerg", tmp_path / "erg2", data_dir=layouts["avamerg"], protocol="mmaffect", progress=False)
    assert [r["prediction"] for r in _read(tmp_path / "erg2" / "predictions.jsonl")] == [
        ERGEmotionMatcher().extract(erg.replies[n])[0] for n in erg.replies]
    assert e3rg["protocols"]["erg_emotion"] == "mmaffect"


def test_killed_run_resumes_without_regenerating(layouts, wheel_dir, tmp_path):
    replies = {f"abc_{i}": f"reply {i}" for i in (1, 2)} | {f"def_{i}": f"reply {i}" for i in (3, 4)}
    killed = ScriptedPredictor(replies, batch_size=2, crash_after=1)
    with pytest.raises(KeyboardInterrupt):
        evaluate_benchmark(killed, "mosi", tmp_path / "run", data_dir=layouts["mosi"], wheel_dir=wheel_dir, progress=False)
    assert [r["id"] for r in _read(tmp_path / "run" / "replies.jsonl")] == killed.asked == ["abc_1", "abc_2"]
    resumed = ScriptedPredictor(replies, batch_size=2)
    result = evaluate_benchmark(resumed, "mosi", tmp_path / "run", data_dir=layouts["mosi"], wheel_dir=wheel_dir, progress=False)
    assert resumed.asked == ["def_3", "def_4"] and (result["num_generated"], result["num_cached"]) == (2, 2)
    again = ScriptedPredictor(replies)
    evaluate_benchmark(again, "mosi", tmp_path / "run", data_dir=layouts["mosi"], wheel_dir=wheel_dir, progress=False)
    assert again.asked == [] and len(_read(tmp_path / "run" / "replies.jsonl")) == 4


def test_resumed_sampled_generation_matches_an_uninterrupted_run(predictor, layouts, wheel_dir, tmp_path):
    full = evaluate_benchmark(predictor, "mosi", tmp_path / "full", data_dir=layouts["mosi"], wheel_dir=wheel_dir, progress=False)
    lines = (tmp_path / "full" / "replies.jsonl").read_text().splitlines()
    (tmp_path / "part").mkdir()
    # a run killed while writing its third reply: two complete lines and a torn one
    (tmp_path / "part" / "replies.jsonl").write_text("\n".join(lines[:2]) + "\n" + lines[2][:25])
    with pytest.warns(UserWarning, match=r"replies.jsonl:3: unreadable cache line skipped"):
        part = evaluate_benchmark(predictor, "mosi", tmp_path / "part", data_dir=layouts["mosi"], wheel_dir=wheel_dir, progress=False)
    assert (part["num_generated"], part["num_cached"]) == (2, 2)
    assert [r["reply"] for r in _read(tmp_path / "part" / "predictions.jsonl")] == [
        r["reply"] for r in _read(tmp_path / "full" / "predictions.jsonl")]
    assert part["metrics"] == full["metrics"]
    greedy = NanoEmoXPredictor(predictor.model, predictor.processor, batch_size=2, decoding="greedy", max_new_tokens=3)
    with pytest.warns(UserWarning, match="unreadable cache line skipped"):  # the torn line stays in the file
        other = evaluate_benchmark(greedy, "mosi", tmp_path / "part", data_dir=layouts["mosi"], wheel_dir=wheel_dir, progress=False)
    assert other["num_generated"] == 4  # other decoding settings never reuse the sampled replies


def test_missing_media_stops_before_generating_or_omits_the_modality(layouts, wheel_dir, tmp_path):
    root = make_mosi(tmp_path / "mosi")
    (root / "subaudio" / "abc_2.wav").unlink()
    (root / "subvideo" / "def_3.mp4").unlink()
    scripted = ScriptedPredictor({n: "positive" for n in ("abc_1", "abc_2", "def_3", "def_4")})
    with pytest.raises(FileNotFoundError, match=r"1 of 4 samples have no video file .*\['def_3'\]"):
        evaluate_benchmark(scripted, "mosi", tmp_path / "out", data_dir=root, wheel_dir=wheel_dir, progress=False)
    assert scripted.asked == []
    result = evaluate_benchmark(scripted, "mosi", tmp_path / "out", data_dir=root, wheel_dir=wheel_dir, missing_media="omit",
                                progress=False)
    assert result["num_missing_media"] == {"video": 1, "audio": 0}  # abc_2 falls back to its clip's audio track
    rows = load_eval_benchmark("mosi", root).samples
    assert rows[1]["audio"].endswith("subvideo/abc_2.mp4") and rows[2]["video"] is None


def test_prompts_come_from_the_processor_with_per_sample_modalities(predictor, layouts):
    from mmaffect.evaluation.predictors import EvalRequest

    request = EvalRequest(id="x", task="MIR", subtitle="thank you", video=None, audio="a.wav", candidate_labels=("thank", "greet"))
    modalities = predictor._sample_modalities(request)
    assert modalities == ["audio"]
    prompt = predictor._prompt(request, modalities)
    assert prompt == predictor.processor.build_prompt("MIR", modalities=["audio"], subtitle="thank you",
                                                      candidate_labels=["thank", "greet"])
    assert "<audio>" in prompt and "<video>" not in prompt and "<fusion>" not in prompt


def test_cli_evaluates_one_benchmark_and_checks_the_task(tiny_model, layouts, wheel_dir, tmp_path, capsys):
    argv = ["--model", str(tiny_model), "--dataset", "mer2023", "--data-dir", str(layouts["mer2023"]), "--wheel-dir",
            str(wheel_dir), "--output-dir", str(tmp_path / "out"), "--max-new-tokens", "3", "--max-samples", "2", "--quiet"]
    assert evaluate_cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "MER2023 Hit Rate" in out and "protocols: hit_rate=mmaffect" in out
    result = json.loads((tmp_path / "out" / "results.json").read_text())
    assert result["num_samples"] == 2 and result["predictor_fingerprint"]["decoding"] == "sample"
    # errors: one line through the command line's handler, exit status 2
    assert cli.main(["evaluate", *argv, "--task", "msa"]) == 2
    assert capsys.readouterr().err.strip() == "mmaffect evaluate: error: --dataset mer2023 is a mer benchmark, not msa"
    assert cli.main(["evaluate", *argv[:2], "--dataset", "mer2023"]) == 2
    assert "pass --dataset NAME --data-dir DIR" in capsys.readouterr().err
    with pytest.raises(ValueError, match="not msa"):  # --debug lets the exception through
        cli.main(["evaluate", *argv, "--task", "msa", "--debug"])


def test_predictor_refuses_other_checkpoints(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 8, "num_hidden_layers": 1,
                                                      "num_attention_heads": 1, "intermediate_size": 8}))
    with pytest.raises(ValueError, match="model_type 'bert' is not a Nano-EmoX checkpoint .*--predictor openai"):
        NanoEmoXPredictor(tmp_path)


def test_dispatcher_keeps_the_lgsrr_path(tiny_model, tmp_path):
    lgsrr = tmp_path / "lgsrr"
    lgsrr.mkdir()
    (lgsrr / "config.json").write_text(json.dumps({"model_type": "lgsrr"}))
    assert evaluate_cli._is_classifier_folder(str(lgsrr))
    with pytest.raises(FileNotFoundError, match="has no config.json"):  # neither path: say so (issue 21, item 8)
        evaluate_cli._is_classifier_folder(str(tmp_path))
    assert not evaluate_cli._is_classifier_folder(str(tiny_model)) and not evaluate_cli._is_classifier_folder("org/some-hub-id")


def test_cli_suite_writes_the_paper_tables_and_a_chart(tiny_model, wheel_dir, tmp_path, capsys):
    root = tmp_path / "data"
    make_mer2023(root / "MER-UniBench" / "mer2023-dataset-process")
    make_mosi(root / "MER-UniBench" / "cmumosi-process")
    make_ovmerd(root / "MER2025")
    make_mintrec(root / "MIntRec")
    make_avamerg(root / "AvaMERG")
    make_emer(root / "EMER")
    bad = root / "broken-sims"
    bad.mkdir()
    argv = ["--suite", "paper", "--model", str(tiny_model), "--data-root", str(root), "--data", f"sims={bad}",
            "--wheel-dir", str(wheel_dir), "--output-dir", str(tmp_path / "paper"), "--max-new-tokens", "2", "--quiet"]
    assert evaluate_cli.main(argv) == 1  # the broken SIMS folder is reported, the rest runs
    text = (tmp_path / "paper" / "paper_tables.md").read_text()
    assert capsys.readouterr().out.startswith("Table 2.")
    for title in ("Table 2.", "Table 3.", "Table 4.", "Table 5.", "MER2023", "OV-MERD", "MIntRec 2.0", "Acc / Hit Rate"):
        assert title in text, title
    table2 = next(line for line in text.splitlines() if line.startswith("| tiny"))
    cells = [c.strip() for c in table2.strip("|").split("|")]
    assert cells[2] != "-" and cells[3] == "-" and cells[8] == "error" and cells[6] != "-"  # MER2023, MER2024, SIMS, MOSI
    assert "not scored" in text  # ERI without a judge
    data = json.loads((tmp_path / "paper" / "paper_tables.json").read_text())
    assert "sims" in data["errors"] and data["tables"]["table2"]["num_averaged"] == 3
    results = json.loads((tmp_path / "paper" / "mer2023" / "results.json").read_text())
    assert data["tables"]["table2"]["values"]["MER2023"] == pytest.approx(results["table"]["Hit Rate"])
    png = (tmp_path / "paper" / "paper_chart.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image

    assert Image.open(tmp_path / "paper" / "paper_chart.png").size[1] > 400


def test_missing_model_folder_is_one_clear_line(tmp_path, capsys):
    argv = ["evaluate", "--model", str(tmp_path / "nowhere"), "--dataset", "mer2023", "--data-dir", str(tmp_path)]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"mmaffect evaluate: error: --model {tmp_path / 'nowhere'}: no such folder") and len(err.splitlines()) == 1
