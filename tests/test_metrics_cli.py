"""``mmaffect evaluate --task ...`` end to end on small files: every task, the JSON output, the
dispatcher route, LLM backends given as MODULE:FACTORY or as a loopback OpenAI-compatible server,
and the error messages for malformed inputs."""

from __future__ import annotations

import csv
import http.server
import json
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest

from mmaffect.evaluation.cli import main as evaluate_main
from mmaffect.evaluation.cli_score import main
from test_metrics_wheel import REAL_GOLDEN, toy_wheel_dir  # noqa: F401  (fixture)


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def write_csv(path: Path, rows: list[dict], delimiter: str = ",") -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)
    return path


def run(argv, capsys):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_mer_via_dispatcher_with_json_output(toy_wheel_dir, tmp_path, capsys):
    # the hand-computed hit-rate case of test_metrics_mer.py, as files
    references = write_csv(tmp_path / "refs.csv", [
        {"name": "s1", "emotion": "happiness"}, {"name": "s2", "emotion": "loneliness"},
        {"name": "s3", "emotion": "neutral"}, {"name": "s4", "emotion": "grieving"}, {"name": "s5", "emotion": "Cheery"}])
    predictions = write_jsonl(tmp_path / "model_a.jsonl", [
        {"id": "s5", "labels": ["cheery", "unknownword"]}, {"id": "s1", "labels": ["gladness"]},
        {"id": "s2", "labels": "mourn, delight"}, {"id": "s3", "labels": "happiness"}, {"id": "s4", "labels": []},
        {"id": "s99", "labels": ["happiness"]}])
    output = tmp_path / "out" / "mer.json"
    code = evaluate_main(["--task", "mer", "--predictions", str(predictions), "--references", str(references),
                          "--wheel-dir", str(toy_wheel_dir), "--dataset", "TOY", "--output", str(output)])
    out = capsys.readouterr().out
    assert code == 0
    expected = (3 / 4 + 2 / 3 + 0 + 0 + 1 / 3) / 5
    assert f"| model_a | {100 * expected:.2f}" in out and "TOY Hit Rate" in out
    assert "extra predictions ignored: 1" in out
    result = json.loads(output.read_text())
    assert result["metrics"]["hit_rate"] == pytest.approx(expected)
    assert result["table"] == {"Hit Rate": round(100 * expected, 2)}
    assert result["extractor"] == "none (labels given)"
    assert (result["prediction_field"], result["reference_field"]) == ("labels", "emotion")
    assert result["num_empty_predictions"] == 1


def test_ovmer_free_text_with_lexicon_extractor(toy_wheel_dir, tmp_path, capsys):
    references = write_jsonl(tmp_path / "refs.jsonl", [
        {"id": "a", "openset": "['happiness', 'loneliness']"}, {"id": "b", "openset": "grieving"}])
    predictions = write_jsonl(tmp_path / "preds.jsonl", [
        {"id": "a", "text": "She seems happy, yet her loneliness shows."}, {"id": "b", "text": "Pure grief."}])
    output = tmp_path / "ov.json"
    code, out, _ = run(["--task", "ovmer", "--predictions", predictions, "--references", references,
                        "--wheel-dir", toy_wheel_dir, "--extractor", "lexicon", "--output", output], capsys)
    assert code == 0
    result = json.loads(output.read_text())
    assert result["extractor"] == "lexicon:emotion-wheel"
    assert result["metrics"]["f1"] == 1.0  # extracted labels equal the references on every wheel
    assert "extractor: lexicon:emotion-wheel" in out and "OV-MERD F (WAF)" in out


def test_msa_and_mir(tmp_path, capsys):
    references = write_csv(tmp_path / "msa_refs.csv", [
        {"id": str(i), "score": s} for i, s in enumerate([1.2, -0.8, 0.0, 2.0, -1.5, 0.4])])
    predictions = write_jsonl(tmp_path / "msa.jsonl", [
        {"id": str(i), "sentiment": p} for i, p in enumerate(["positive", "negative", "positive", "neutral", "negative", "Negative."])])
    code, out, _ = run(["--task", "msa", "--predictions", predictions, "--references", references, "--dataset", "MOSI"], capsys)
    assert code == 0
    assert f"| {100 * 17 / 30:.2f}" in out and "MOSI WAF" in out  # hand-computed in test_metrics_classification.py

    references = write_csv(tmp_path / "test.tsv", [
        {"Dialogue_id": "1", "Utterance_id": "0", "Text": "hi", "Label": "Greet"},
        {"Dialogue_id": "1", "Utterance_id": "1", "Text": "thanks", "Label": "Thank"},
        {"Dialogue_id": "2", "Utterance_id": "0", "Text": "hello", "Label": "Greet"},
        {"Dialogue_id": "2", "Utterance_id": "1", "Text": "why?", "Label": "Ask for help"}], delimiter="\t")
    predictions = write_jsonl(tmp_path / "mir.jsonl", [
        {"id": "dia1_utt0", "prediction": "Greet"}, {"id": "dia1_utt1", "prediction": "Greet"},
        {"id": "dia2_utt0", "prediction": "Greet"}, {"id": "dia2_utt1", "prediction": "Complain"}])
    output = tmp_path / "mir.json"
    code, out, _ = run(["--task", "mir", "--predictions", predictions, "--references", references, "--per-class",
                        "--confusion-png", tmp_path / "cm.png", "--output", output], capsys)
    assert code == 0
    result = json.loads(output.read_text())
    assert result["metrics"]["accuracy"] == 0.5
    assert result["metrics"]["num_out_of_label_set_predictions"] == 1
    assert result["metrics"]["weighted_precision"] == pytest.approx((2 * 2 / 3) / 4)
    assert [row["label"] for row in result["per_class"]] == ["Ask for help", "Greet", "Thank"]
    assert (tmp_path / "cm.png").stat().st_size > 0
    assert "MIR Acc" in out and "WF1" in out and "precision" in out


def test_erg_labels_and_free_text(tmp_path, capsys):
    references = write_jsonl(tmp_path / "refs.jsonl", [
        {"id": "1", "emotion": "joyful"}, {"id": "2", "emotion": "anxious"}, {"id": "3", "emotion": "afraid"}])
    predictions = write_jsonl(tmp_path / "preds.jsonl", [
        {"id": "1", "emotion": "joyful", "response": "<think>joyful user</think>That is great news!"},
        {"id": "2", "emotion": "lonely", "response": "I hear you. I hear you."},
        {"id": "3", "emotion": "sad", "response": "Stay safe."}])
    output = tmp_path / "erg.json"
    code, out, _ = run(["--task", "erg", "--predictions", predictions, "--references", references, "--output", output], capsys)
    assert code == 0
    metrics = json.loads(output.read_text())["metrics"]
    assert (metrics["accuracy"], metrics["hit_rate"]) == pytest.approx((1 / 3, 2 / 3))
    assert metrics["dist_1"] == pytest.approx((1 + 3 / 6 + 1) / 3)
    assert "33.33 / 66.67" in out

    texts = write_jsonl(tmp_path / "texts.jsonl", [
        {"id": "1", "response": "<think>The user feels joyful.</think>Congrats!"},
        {"id": "2", "response": "<think>The user seems anxious.</think>That sounds hard."},
        {"id": "3", "response": "<think>No idea.</think>Okay."}])
    code, out, _ = run(["--task", "erg", "--predictions", texts, "--references", references, "--extractor", "lexicon",
                        "--output", output], capsys)
    assert code == 0
    result = json.loads(output.read_text())
    assert result["extractor"] == "lexicon:e3rg"
    assert result["metrics"]["accuracy"] == pytest.approx(2 / 3)  # third falls back to neutral


FAKE_BACKEND_MODULE = '''
CALLS = []

class FakeJudge:
    def __init__(self, model="fake-judge"):
        self.model_id = model

    def fingerprint(self):
        return {"backend": "fake", "model": self.model_id}

    def chat(self, messages, **kwargs):
        CALLS.append(messages[-1]["content"])
        candidate = messages[-1]["content"].split("Candidate explanation:")[1]
        return "Score: 8" if "frown" in candidate else "Score: 4"
'''


def test_eri_with_factory_backend_and_cache(tmp_path, capsys, monkeypatch):
    (tmp_path / "fake_eri_backend.py").write_text(FAKE_BACKEND_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    references = write_csv(tmp_path / "gt-eng.csv", [
        {"names": "x1", "emotions": "angry", "reasons": "He frowns and shouts. Angry."},
        {"names": "x2", "emotions": "happy", "reasons": "She laughs. Happy."}])
    predictions = write_jsonl(tmp_path / "eri.jsonl", [
        {"name": "x1", "reason": "A frown, a loud voice: anger."}, {"name": "x2", "reason": "She looks tired."}])
    output = tmp_path / "eri.json"
    argv = ["--task", "eri", "--predictions", predictions, "--references", references, "--output", output,
            "--llm-backend", "fake_eri_backend:FakeJudge", "--llm-kwargs", '{"model": "judge-v1"}',
            "--protocol", "mmaffect"]  # the package's judge: English prompts, last 'Score: N'
    code, out, err = run(argv, capsys)
    assert code == 0, err
    module = sys.modules["fake_eri_backend"]
    assert len(module.CALLS) == 4
    result = json.loads(output.read_text())
    assert result["metrics"]["clue_overlap"] == 6.0 and result["metrics"]["label_overlap"] == 6.0
    assert result["extractor"] == "judge:judge-v1"
    assert Path(result["judge_cache"]) == tmp_path / "eri.eri_judge.jsonl"
    assert "Clue Overlap" in out and "| 6.00" in out
    code, _, _ = run(argv, capsys)  # rerun: every verdict comes from the cache
    assert code == 0 and len(module.CALLS) == 4
    assert json.loads(output.read_text())["metrics"]["num_cached"] == 4


class _ChatCompletionsHandler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 - http.server API
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = body["messages"][-1]["content"]
        text = prompt.split("Text:")[1]
        reply = "['happy']" if "smiling" in text else "['sad', 'lonely']"
        payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": reply}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


def test_mer_with_llm_extractor_over_loopback_openai_server(toy_wheel_dir, tmp_path, capsys):
    pytest.importorskip("mmaffect.semantic_extraction.backends")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ChatCompletionsHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        references = write_jsonl(tmp_path / "refs.jsonl", [{"id": "1", "label": "happiness"}, {"id": "2", "label": "loneliness"}])
        predictions = write_jsonl(tmp_path / "preds.jsonl", [
            {"id": "1", "text": "He is smiling."}, {"id": "2", "text": "He sits alone."}])
        output = tmp_path / "mer_llm.json"
        kwargs = json.dumps({"base_url": f"http://127.0.0.1:{server.server_port}/v1", "model": "loopback-llm",
                             "api_key_env": None, "max_retries": 0})
        code, out, err = run(["--task", "mer", "--predictions", predictions, "--references", references,
                              "--wheel-dir", toy_wheel_dir, "--extractor", "llm", "--llm-backend", "openai",
                              "--llm-kwargs", kwargs, "--output", output], capsys)
    finally:
        server.shutdown()
        server.server_close()
    assert code == 0, err
    result = json.loads(output.read_text())
    assert result["extractor"] == "llm:loopback-llm"
    assert result["metrics"]["per_wheel"]["wheel1"] == 1.0
    cache = tmp_path / "mer_llm.extract_cache.jsonl"
    assert len(cache.read_text().splitlines()) == 2


@pytest.mark.parametrize(
    "extra, message",
    [
        ([], "1 of 2 reference id(s) have no prediction"),
        (["--pred-field", "nope"], "no field 'nope' for the predictions"),
        (["--task", "ovmer", "--missing", "empty"], "no emotion-wheel folder given"),
    ],
)
def test_cli_errors(tmp_path, capsys, monkeypatch, extra, message):
    monkeypatch.delenv("MMAFFECT_WHEEL_DIR", raising=False)
    references = write_jsonl(tmp_path / "refs.jsonl", [{"id": "1", "label": "a"}, {"id": "2", "label": "b"}])
    predictions = write_jsonl(tmp_path / "preds.jsonl", [{"id": "1", "prediction": "a"}])
    code, _, err = run(["--task", "mir", "--predictions", predictions, "--references", references, *extra], capsys)
    assert code == 2
    assert message in err


def test_cli_input_handling(tmp_path, capsys):
    references = write_jsonl(tmp_path / "refs.jsonl", [{"id": "1", "label": "a"}, {"id": "2", "label": "b"}])
    partial = write_jsonl(tmp_path / "partial.jsonl", [{"id": "1", "prediction": "a"}])
    output = tmp_path / "o.json"
    code, _, _ = run(["--task", "mir", "--predictions", partial, "--references", references, "--missing", "empty",
                      "--output", output], capsys)
    assert code == 0 and json.loads(output.read_text())["metrics"]["accuracy"] == 0.5
    duplicate = write_jsonl(tmp_path / "dup.jsonl", [{"id": "1", "prediction": "a"}, {"id": "1", "prediction": "b"}])
    code, _, err = run(["--task", "mir", "--predictions", duplicate, "--references", references], capsys)
    assert code == 2 and "dup.jsonl:2: duplicate id '1' (first at line 1)" in err
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"id": "1", "prediction": "a"}\n{"id": \n')
    code, _, err = run(["--task", "mir", "--predictions", broken, "--references", references], capsys)
    assert code == 2 and "broken.jsonl:2: not valid JSON" in err
    code, _, err = run(["--task", "mir", "--predictions", tmp_path / "x.parquet", "--references", references], capsys)
    assert code == 2 and "does not exist" in err
    text_only = write_jsonl(tmp_path / "text.jsonl", [{"id": "1", "text": "happy"}, {"id": "2", "text": "sad"}])
    code, _, err = run(["--task", "mer", "--predictions", text_only, "--references", references], capsys)
    assert code == 2 and "pass --extractor lexicon or llm" in err
    code, _, err = run(["--task", "eri", "--predictions", text_only, "--references", references,
                        "--ref-field", "label"], capsys)
    assert code == 2 and "needs a judge" in err
    empty_refs = write_jsonl(tmp_path / "empty_refs.jsonl", [{"id": "1", "label": ""}])
    code, _, err = run(["--task", "erg", "--predictions", partial, "--references", empty_refs, "--pred-field", "prediction"], capsys)
    assert code == 2 and "reference(s) are empty" in err


@pytest.mark.shared_data
def test_meld_constant_joy_through_cli(shared_data, tmp_path, capsys):
    meld = shared_data / "meld" / "test_sent_emo.csv"
    with meld.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    counts = Counter(row["Emotion"] for row in rows)
    predictions = write_jsonl(tmp_path / "joy.jsonl", [
        {"id": f"dia{row['Dialogue_ID']}_utt{row['Utterance_ID']}", "labels": ["joy"]} for row in rows])
    output = tmp_path / "meld.json"
    code, out, err = run(["--task", "mer", "--predictions", predictions, "--references", meld, "--dataset", "MELD",
                          "--wheel-dir", shared_data / "nano_emox_release" / "emotion_wheel", "--output", output], capsys)
    assert code == 0, err
    per_wheel = []
    for wheel in range(5):
        scored = [label for label in counts if REAL_GOLDEN[label][wheel] is not None]
        hits = sum(counts[label] for label in scored if REAL_GOLDEN[label][wheel] == REAL_GOLDEN["joy"][wheel])
        per_wheel.append(hits / sum(counts[label] for label in scored))
    result = json.loads(output.read_text())
    assert result["metrics"]["hit_rate"] == pytest.approx(sum(per_wheel) / 5)
    assert result["reference_field"] == "Emotion" and result["num_scored_samples"] == 2610
    assert "MELD Hit Rate" in out
