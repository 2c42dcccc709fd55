"""The OpenAI-compatible predictor and the ERI judge against a local chat-completions stub on
127.0.0.1 that returns fixed replies (tests/extraction_support.FakeChatServer)."""

from __future__ import annotations

import json

import pytest

from evaluation_support import EMER_ROWS, make_emer, make_mer2023, write_e2e_wheel_dir
from extraction_support import FakeChatServer
from mmaffect.evaluation import cli as evaluate_cli
from mmaffect.evaluation import OpenAIChatPredictor, evaluate_benchmark
from mmaffect.evaluation.predictors import EvalRequest, plain_prompt
from mmaffect.metrics import LexiconLabelExtractor, hit_rate, load_emotion_wheels

MER_REPLIES = {"I am so glad!": "The character's emotional state is happy.", "Get out of here.": "Angry, even furious."}


def _text(messages) -> str:
    content = messages[-1]["content"]
    return content if isinstance(content, str) else " ".join(p.get("text", "") for p in content if p.get("type") == "text")


def mllm_reply(messages) -> str:
    text = _text(messages)
    return next((reply for subtitle, reply in MER_REPLIES.items() if subtitle in text), "I cannot tell.")


def test_openai_predictor_scores_fixed_replies_and_resumes(tmp_path, capsys):
    data_dir = make_mer2023(tmp_path / "mer2023")
    wheel_dir = write_e2e_wheel_dir(tmp_path / "wheels")
    argv = ["--predictor", "openai", "--base-url", None, "--model-name", "fake-mllm", "--dataset", "mer2023",
            "--data-dir", str(data_dir), "--wheel-dir", str(wheel_dir), "--output-dir", str(tmp_path / "out"),
            "--batch-size", "2", "--quiet"]
    with FakeChatServer(reply=mllm_reply) as server:
        argv[3] = server.url
        assert evaluate_cli.main(argv) == 0, capsys.readouterr().err
        assert len(server.log) == 3 and all(entry["answered"] for entry in server.log)
        first = server.log[0]["payload"]
        assert first["model"] == "fake-mllm" and first["temperature"] == 0.0 and first["max_tokens"] == 1200
        assert server.log[0]["images"] == 4  # the frames of the 4-frame clip (up to num_frames=8 are sampled)
        prompts = [_text(entry["payload"]["messages"]) for entry in server.log]  # concurrent: any order
        assert any(p.startswith("The subtitle of this video is: I am so glad!\n") for p in prompts)
        assert all(p.endswith("Recognize all the possible emotional states the character might be feeling in this context.")
                   and "[Recog" not in p for p in prompts)
        assert evaluate_cli.main(argv) == 0  # a rerun asks the server nothing
        assert len(server.log) == 3
    result = json.loads((tmp_path / "out" / "results.json").read_text())
    rows = [json.loads(line) for line in (tmp_path / "out" / "predictions.jsonl").read_text().splitlines()]
    assert [r["reply"] for r in rows] == ["The character's emotional state is happy.", "Angry, even furious.", "I cannot tell."]
    wheels = load_emotion_wheels(wheel_dir)
    labels = [LexiconLabelExtractor.from_wheels(wheels).extract(r["reply"]) for r in rows]
    direct = hit_rate(labels, [r["reference"] for r in rows], wheels)
    assert result["metrics"]["hit_rate"] == pytest.approx(direct["hit_rate"]) == pytest.approx(2 / 3)
    assert result["predictor"] == "fake-mllm" and result["num_cached"] == 3


def test_openai_predictor_errors_and_text_only(tmp_path):
    with FakeChatServer(faults={1: "401"}) as server:
        predictor = OpenAIChatPredictor(server.url, "fake-mllm", send_video=False, max_retries=0)
        assert predictor.required_media() == set()
        from mmaffect.semantic_extraction.backends import BackendFatalError

        with pytest.raises(BackendFatalError, match="HTTP 401"):
            predictor.predict([EvalRequest(id="a", task="MIR", subtitle="thanks", candidate_labels=("thank", "greet"))])
    request = EvalRequest(id="b", task="ERG", user_input="I lost my job.",
                          dialogue_history=[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}])
    text = plain_prompt(request)
    assert text.startswith("Dialogue history:\nuser: Hi\nassistant: Hello\nCurrent user input: I lost my job.\n")
    assert "[Interaction]" not in text and "Chain of Empathy" in text


SCORES = {"《预测描述》": "'预测分数'：7；'原因'：覆盖3条线索，满分10", "《预测情感》": "重叠度一般，4分（满分10）"}


def judge_and_mllm_reply(messages) -> str:
    text = _text(messages)
    if "仅输出情感词" in text:
        return "感激" if "grateful" in text else "愤怒"
    for marker, reply in SCORES.items():
        if marker in text:
            return reply
    return "" if EMER_ROWS[0][2] in text else "He smiles and thanks her: grateful."  # the MLLM under test


def test_official_eri_judge_on_a_stub_server(tmp_path, capsys):
    data_dir = make_emer(tmp_path / "EMER")
    with FakeChatServer(reply=judge_and_mllm_reply) as server:
        argv = ["--predictor", "openai", "--base-url", server.url, "--model-name", "fake-mllm", "--dataset", "emer",
                "--data-dir", str(data_dir), "--judge-base-url", server.url, "--output-dir", str(tmp_path / "out"), "--quiet"]
        assert evaluate_cli.main(argv) == 0, capsys.readouterr().err
        judge_calls = [e for e in server.log if e["payload"]["model"] == "gpt-3.5-turbo-0125"]
        assert len(judge_calls) == 2 * 4  # per sample: clue, two summaries, label
        for entry in judge_calls:
            payload = entry["payload"]
            assert payload["temperature"] == 0 and "max_tokens" not in payload and entry["images"] == 0
        clue_prompts = [_text(e["payload"]["messages"]) for e in judge_calls if "《预测描述》" in _text(e["payload"]["messages"])]
        assert any("《预测描述》：\n\n" in p for p in clue_prompts)  # the empty prediction was sent too
        assert evaluate_cli.main(argv) == 0
        assert len([e for e in server.log if e["payload"]["model"] == "gpt-3.5-turbo-0125"]) == 8  # cached
    result = json.loads((tmp_path / "out" / "results.json").read_text())
    assert result["metrics"]["clue_overlap"] == 7.0 and result["metrics"]["label_overlap"] == 4.0
    assert result["protocols"] == {"eri": "official"} and result["judge_is_official"] is True
    assert result["table"] == {"Clue Overlap": 7.0, "Label Overlap": 4.0}
    csv_lines = (tmp_path / "out" / "eri_predictions.csv").read_text(encoding="utf-8").splitlines()
    assert csv_lines[1] == f"{EMER_ROWS[0][0]},," and csv_lines[2].startswith(EMER_ROWS[1][0])


def test_package_eri_judge_through_the_harness(tmp_path):
    from mmaffect.metrics import make_overlap_judge

    class Backend:
        model_id = "local-judge"

        def chat(self, messages, **kwargs):
            return "Reasoning... Score: 6"

    class Fixed:
        name, batch_size = "fixed", 4

        def fingerprint(self):
            return {"fixed": 1}

        def required_media(self):
            return set()

        def predict(self, requests):
            return ["", "He is grateful."][: len(requests)]

    judge = make_overlap_judge(Backend(), "mmaffect", cache_path=tmp_path / "judge.jsonl")
    result = evaluate_benchmark(Fixed(), "emer", tmp_path / "out", data_dir=make_emer(tmp_path / "EMER"), judge=judge,
                                protocol="mmaffect", progress=False)
    # the package's judge scores the empty explanation 1 without asking, the other by its last 'Score: N'
    assert result["metrics"]["clue_overlap"] == pytest.approx((1 + 6) / 2) and result["metrics"]["num_queried"] == 2
    with pytest.raises(ValueError, match="the ERI judge follows protocol 'mmaffect', but 'official' was asked for"):
        evaluate_benchmark(Fixed(), "emer", tmp_path / "out2", data_dir=tmp_path / "EMER", judge=judge, progress=False)
