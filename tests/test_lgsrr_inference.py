"""LGSRR in users' hands: the processor, the multimodal-intent-recognition pipeline (in this process and in
a fresh one without mmaffect), the model card's snippet, and `mmaffect predict` (formats, resume, bad
input, and equality with `mmaffect evaluate` on the real MIntRec2.0 test split)."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from lgsrr_inference_support import EXAMPLE, run_without_mmaffect, tiny_lgsrr, trained_demo_model

from mmaffect import LGSRRForSequenceClassification, LGSRRProcessor


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_lgsrr(tmp_path_factory.mktemp("tiny_lgsrr"))


@pytest.fixture(scope="module")
def demo_model(tmp_path_factory):
    """A model trained by `python train.py` (the embedded demo, one epoch), shared by the tests below."""
    return trained_demo_model(tmp_path_factory.getbasetemp() / "lgsrr_demo")


def _pipeline(folder, **kwargs):
    from mmaffect.models.lgsrr import MultimodalIntentRecognitionPipeline

    return MultimodalIntentRecognitionPipeline(model=LGSRRForSequenceClassification.from_pretrained(folder),
                                               processor=LGSRRProcessor.from_pretrained(folder), device="cpu", **kwargs)


# --------------------------------------------------------------------------------------------- processor
def test_processor_returns_exactly_the_model_inputs(tiny):
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny)  # registered by `import mmaffect`
    assert type(processor) is LGSRRProcessor
    assert processor.aspects == ["actions", "expressions", "interactions"]
    assert (processor.max_text_length, processor.max_aspect_length) == (16, 20)
    one = processor(text=EXAMPLE["text"], descriptions=EXAMPLE["descriptions"])
    assert set(one) == {"input_ids", "attention_mask", "token_type_ids", "aspect_input_ids", "aspect_attention_mask"}
    assert one["input_ids"].shape[0] == 1 and one["aspect_input_ids"].shape[:2] == (1, 3)
    # a list in model order is the same input; the mapping's key order does not matter
    as_list = processor(text=EXAMPLE["text"], descriptions=list(EXAMPLE["descriptions"].values()))
    shuffled = processor(text=EXAMPLE["text"], descriptions=dict(reversed(list(EXAMPLE["descriptions"].items()))))
    for key in one:
        assert torch.equal(one[key], as_list[key]) and torch.equal(one[key], shuffled[key])
    # each description is tokenised on its own row, in model order
    tokenizer = processor.tokenizer
    for k, name in enumerate(processor.aspects):
        ids = tokenizer(EXAMPLE["descriptions"][name])["input_ids"]
        assert one["aspect_input_ids"][0, k, : len(ids)].tolist() == ids
    # a batch pads to its longest text and description; truncation at the trained lengths
    long = "thanks " * 40
    batch = processor(text=[EXAMPLE["text"], long], descriptions=[EXAMPLE["descriptions"], [long, "hi", "kind"]])
    assert batch["input_ids"].shape == (2, 16) and batch["aspect_input_ids"].shape == (2, 3, 20)
    assert batch["attention_mask"][0].sum() == one["attention_mask"].sum()
    model = LGSRRForSequenceClassification.from_pretrained(tiny).eval()
    assert model(**batch).logits.shape == (2, 3)


@pytest.mark.parametrize("call, error, message", [
    (dict(text="", descriptions=EXAMPLE["descriptions"]), ValueError, "text: the utterance text is empty"),
    (dict(text="hi", descriptions={"actions": "a", "expressions": "b"}), ValueError, r"missing aspect\(s\) \['interactions'\]"),
    (dict(text="hi", descriptions={**EXAMPLE["descriptions"], "scene": "x"}), ValueError, r"unknown aspect name\(s\) \['scene'\]"),
    (dict(text="hi", descriptions="she smiles"), TypeError, "expected a dict"),
    (dict(text="hi", descriptions=["a", "b"]), ValueError, "a list of 2 description"),
    (dict(text="hi", descriptions={**EXAMPLE["descriptions"], "actions": " "}), ValueError, r"\['actions'\]: the description is empty"),
    (dict(text=["a", "b"], descriptions=[EXAMPLE["descriptions"]]), ValueError, "2 utterances but descriptions has 1"),
    (dict(text=["a", ""], descriptions=[EXAMPLE["descriptions"]] * 2), ValueError, r"text\[1\]"),
    (dict(text="hi"), ValueError, "needs descriptions="),
])
def test_processor_bad_input_names_the_field(tiny, call, error, message):
    processor = LGSRRProcessor.from_pretrained(tiny)
    with pytest.raises(error, match=message):
        processor(**call)


def test_saved_tokenizer_is_clean_and_truncates_at_the_trained_length(tiny):
    config = json.loads((tiny / "tokenizer_config.json").read_text())
    assert config["model_max_length"] == 16
    assert not {"local_files_only", "is_local"} & set(config)
    assert json.loads((tiny / "config.json").read_text())["base_model_name_or_path"] is None  # a local folder


# --------------------------------------------------------------------------------------------- pipeline
def test_pipeline_fields_batching_and_top_k(tiny):
    from transformers import pipeline

    pipe = pipeline("multimodal-intent-recognition", model=str(tiny), trust_remote_code=True, device="cpu")
    one = pipe(EXAMPLE)
    assert set(one) == {"label", "score", "top_k", "importance", "complementarity", "inconsistency"}
    assert one["label"] == one["top_k"][0]["label"] and one["score"] == one["top_k"][0]["score"]
    assert len(one["top_k"]) == 3  # every label of the tiny model (the default top_k is 5)
    assert list(one["importance"]) == ["text", "actions", "expressions", "interactions"]
    assert sum(one["importance"].values()) == pytest.approx(1.0, abs=1e-5)
    assert set(one["complementarity"]) == set(one["inconsistency"]) == {"actions", "expressions", "interactions"}
    # the same numbers as the model's own forward on the processor's inputs
    processor, model = LGSRRProcessor.from_pretrained(tiny), LGSRRForSequenceClassification.from_pretrained(tiny).eval()
    with torch.no_grad():
        out = model(**processor(text=EXAMPLE["text"], descriptions=EXAMPLE["descriptions"]))
    assert one["score"] == pytest.approx(out.logits.softmax(-1).max().item(), abs=1e-6)
    assert one["importance"]["actions"] == pytest.approx(out.importance[0, 1].item(), abs=1e-6)
    assert one["inconsistency"]["interactions"] == pytest.approx(out.inconsistency[0, 2].item(), abs=1e-6)
    # a list, batched or not, gives each example's own result; keyword inputs too
    other = {"text": "broken again terrible", "descriptions": ["the door is broken", "annoyed", "again"]}
    batched = pipe([EXAMPLE, other, EXAMPLE], batch_size=2, top_k=1)
    single = [pipe(x, top_k=1) for x in (EXAMPLE, other, EXAMPLE)]
    assert [b["label"] for b in batched] == [s["label"] for s in single] and len(batched[0]["top_k"]) == 1
    for b, s in zip(batched, single):
        assert b["score"] == pytest.approx(s["score"], abs=1e-5)
    assert pipe(text=EXAMPLE["text"], descriptions=EXAMPLE["descriptions"])["label"] == one["label"]


def test_pipeline_bad_input_names_the_example_and_field(tiny):
    pipe = _pipeline(tiny)
    with pytest.raises(ValueError, match="input 1: missing field 'text'"):
        pipe([EXAMPLE, {"descriptions": EXAMPLE["descriptions"]}])
    with pytest.raises(ValueError, match=r"input: descriptions: unknown aspect name\(s\) \['scene'\]"):
        pipe({"text": "hi", "descriptions": {**EXAMPLE["descriptions"], "scene": "x"}})
    with pytest.raises(TypeError, match="input 0: expected a dict"):
        pipe(["just a string"])
    with pytest.raises(ValueError, match="no extraction backend"):
        pipe({"text": "hi", "video": __file__})
    with pytest.raises(ValueError, match="top_k must be a positive integer"):
        pipe(EXAMPLE, top_k=0)


def test_pipeline_writes_descriptions_from_a_clip_with_a_describer(tiny, tmp_path):
    """video= goes through the describer once per clip (cached), and the descriptions come back."""
    calls = []

    def describer(text, video=None, audio=None):
        calls.append((text, video, audio))
        return {"interactions": "hello to the woman", "actions": "he hugs her", "expressions": "grateful"}

    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"not decoded by this describer")
    pipe = _pipeline(tiny, describer=describer)
    first = pipe({"text": "thanks so kind", "video": str(clip)})
    again = pipe([{"text": "thanks so kind", "video": str(clip)}, EXAMPLE], batch_size=2)
    assert len(calls) == 1 and calls[0] == ("thanks so kind", str(clip), None)
    assert first["descriptions"] == {"actions": "he hugs her", "expressions": "grateful",
                                     "interactions": "hello to the woman"}
    assert again[0]["descriptions"] == first["descriptions"] and "descriptions" not in again[1]
    given = pipe({"text": "thanks so kind", "descriptions": first["descriptions"]})
    assert given["label"] == first["label"] and given["score"] == pytest.approx(first["score"], abs=1e-6)
    with pytest.raises(FileNotFoundError, match="video file .*missing.mp4 does not exist"):
        pipe({"text": "hi", "video": str(tmp_path / "missing.mp4")})
    late = _pipeline(tiny)  # a describer given with the call
    assert late({"text": "thanks so kind", "video": str(clip)}, describer=describer)["descriptions"] == first["descriptions"]


def test_clip_describer_with_an_openai_compatible_server(tiny, tmp_path):
    """The real describer: CoT step 2 through the loopback fake LLM, cached on disk, then classified."""
    from extraction_support import FakeChatServer

    from mmaffect.semantic_extraction import ClipDescriber
    from mmaffect.semantic_extraction.video import write_test_video

    clip = tmp_path / "clip.mp4"
    write_test_video(clip, [(200, 30, 30), (30, 200, 30)])
    with FakeChatServer() as server:
        spec = {"type": "openai", "base_url": server.url, "model": "fake-vl"}
        with ClipDescriber(spec, tmp_path / "cache.jsonl") as describer:
            result = _pipeline(tiny, describer=describer)({"text": "thanks so kind", "video": str(clip)})
        calls = server.count
        with ClipDescriber(spec, tmp_path / "cache.jsonl") as describer:  # a new process would read the cache
            assert describer(text="thanks so kind", video=str(clip)) == result["descriptions"]
        assert server.count == calls  # no new LLM call
    assert set(result["descriptions"]) == {"actions", "expressions", "interactions"}
    assert all("thanks so kind" in d for d in result["descriptions"].values())


# --------------------------------------------------------------------------------------------- a trained model, no mmaffect
def test_pipeline_of_a_train_py_model_in_a_fresh_process_without_mmaffect(demo_model, tmp_path):
    script = f"""
        import json
        from transformers import AutoProcessor, AutoTokenizer, pipeline
        classify = pipeline("multimodal-intent-recognition", model={str(demo_model)!r}, trust_remote_code=True,
                            device="cpu")
        assert type(classify).__module__.startswith("transformers_modules"), type(classify).__module__
        examples = [{{"text": "Thank you so much for the lovely dinner!", "descriptions": {{
                        "actions": "She hands him a gift.", "expressions": "She smiles warmly.",
                        "interactions": "She hugs her host."}}}},
                    {{"text": "Why is the printer broken again?", "descriptions": [
                        "He slams the printer lid.", "He frowns, annoyed.", "He complains to a coworker."]}}]
        out = classify(examples, batch_size=2, top_k=4)
        processor = AutoProcessor.from_pretrained({str(demo_model)!r}, trust_remote_code=True)
        tokenizer = AutoTokenizer.from_pretrained({str(demo_model)!r}, trust_remote_code=True)
        print(json.dumps({{"out": out, "aspects": processor.aspects, "lengths": [processor.max_text_length,
                          processor.max_aspect_length], "tokenizer_max": tokenizer.model_max_length}}))
    """
    result = run_without_mmaffect(script, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    config = json.loads((demo_model / "config.json").read_text())
    labels = set(config["id2label"].values())
    assert report["aspects"] == ["actions", "expressions", "interactions"] and report["lengths"] == [32, 32]
    assert report["tokenizer_max"] == 32
    for prediction in report["out"]:
        assert prediction["label"] in labels and 0 < prediction["score"] <= 1
        assert [t["label"] for t in prediction["top_k"]][0] == prediction["label"] and len(prediction["top_k"]) == 4
        assert [t["score"] for t in prediction["top_k"]] == sorted((t["score"] for t in prediction["top_k"]), reverse=True)
        assert list(prediction["importance"]) == ["text", "actions", "expressions", "interactions"]
        assert sum(prediction["importance"].values()) == pytest.approx(1.0, abs=1e-5)
        assert all(0 <= a <= 1 for a in prediction["importance"].values())
        assert list(prediction["complementarity"]) == list(prediction["inconsistency"]) == report["aspects"]
        assert all(-1 <= b <= 1 for b in prediction["complementarity"].values())
        assert all(g >= 0 for g in prediction["inconsistency"].values())
    # the same predictions as mmaffect's own classes in this process
    mine = _pipeline(demo_model)({"text": "Why is the printer broken again?", "descriptions": [
        "He slams the printer lid.", "He frowns, annoyed.", "He complains to a coworker."]}, top_k=4)
    assert mine["label"] == report["out"][1]["label"]
    assert mine["score"] == pytest.approx(report["out"][1]["score"], abs=1e-5)


def test_the_model_card_is_honest_and_its_snippet_runs(demo_model, tmp_path):
    from mmaffect.train.model_card import card_snippet

    card = (demo_model / "README.md").read_text()
    meta = yaml.safe_load(card.split("---")[1])
    results = json.loads((demo_model.parent / "results.json").read_text())
    assert "Demo checkpoint" in card and "mmaffect demo data" in card
    assert "model-index" not in meta and "datasets" not in meta  # demo rows are no benchmark
    assert "pipeline_tag" not in meta  # no Hub widget for a custom task
    assert meta["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert json.loads((demo_model / "config.json").read_text())["base_model_name_or_path"] == meta["base_model"]
    for wrong in ("thuiar", "VideoLLaMA2", "GPT-3.5", "https://github.com/)", "30 intents", "/tmp/"):
        assert wrong not in card, wrong
    test_row = f"| test | {100 * results['test']['accuracy']:.2f} | {100 * results['test']['macro_f1']:.2f} |"
    assert test_row in card
    assert "30 labels (6 of them occur in the training rows)" in card

    snippet = card_snippet(card)
    assert 'pipeline("multimodal-intent-recognition", model="."' in snippet
    result = run_without_mmaffect(snippet, demo_model)  # as after `git clone` of the Hub repository
    assert result.returncode == 0, result.stderr[-3000:]
    label, score = result.stdout.strip().splitlines()[-2].rsplit(" ", 1)
    example = json.loads(json.dumps(eval(snippet.split("example = ", 1)[1].split("\nprediction")[0])))  # noqa: S307
    mine = _pipeline(demo_model)(example, top_k=3)
    assert label == mine["label"] and float(score) == pytest.approx(mine["score"], abs=1e-5)


# --------------------------------------------------------------------------------------------- mmaffect predict
def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_predict_jsonl_and_tsv_give_the_pipeline_fields(tiny, tmp_path, capsys):
    from mmaffect.cli import main

    rows = [{"id": "a", **EXAMPLE}, {"id": 7, "text": "broken again", "descriptions": ["broken door", "annoyed", "again"]},
            {"text": "hello morning", "descriptions": {"actions": "waves", "expressions": "welcome", "interactions": "hi"}}]
    source = _write_jsonl(tmp_path / "rows.jsonl", rows)
    assert main(["predict", "--model", str(tiny), "--input", str(source), "--output", str(tmp_path / "p.jsonl"),
                 "--batch-size", "2", "--top-k", "2"]) == 0
    records = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert [r["id"] for r in records] == ["a", "7", "3"]  # input order; a row without id is named by its line
    expected = _pipeline(tiny)(EXAMPLE, top_k=2)
    assert records[0]["label"] == expected["label"] and len(records[0]["top_k"]) == 2
    assert records[0]["score"] == pytest.approx(expected["score"], abs=1e-5)
    assert set(records[0]) == {"id", "text", "label", "score", "top_k", "importance", "complementarity", "inconsistency"}
    assert "3 predicted, 0 already there" in capsys.readouterr().out

    tsv = tmp_path / "rows.tsv"
    tsv.write_text("id\ttext\tactions\texpressions\tinteractions\n"
                   f"a\t{EXAMPLE['text']}\t" + "\t".join(EXAMPLE["descriptions"].values()) + "\n")
    assert main(["predict", "--model", str(tiny), "--input", str(tsv), "--output", str(tmp_path / "t.jsonl")]) == 0
    from_tsv = json.loads((tmp_path / "t.jsonl").read_text())
    assert from_tsv["label"] == records[0]["label"] and from_tsv["score"] == pytest.approx(records[0]["score"], abs=1e-6)


def test_predict_resumes_by_id_and_keeps_what_it_wrote(tiny, tmp_path):
    from mmaffect import predict

    rows = [{"id": f"r{i}", "text": f"thanks {'so ' * i}kind", "descriptions": EXAMPLE["descriptions"]} for i in range(5)]
    source, output = _write_jsonl(tmp_path / "rows.jsonl", rows), tmp_path / "p.jsonl"
    assert predict.main(["--model", str(tiny), "--input", str(source), "--output", str(output), "--no-progress"]) == 0
    complete = output.read_text()
    # a run killed in the middle of writing: two records and half of a third
    lines = complete.splitlines(keepends=True)
    output.write_text(lines[3] + lines[1] + lines[0][:25])
    assert predict.predict_file(tiny, source, output, progress=False) == {"rows": 5, "predicted": 3, "skipped": 2, "bad_rows": 0}
    assert output.read_text() == complete  # the same file as one uninterrupted run, in input order
    # a bad row stops the next run before anything runs, naming file and line; the output stays
    _write_jsonl(source, rows + [{"id": "r9", "text": "hi", "descriptions": {"actions": "a"}}])
    with pytest.raises(predict.InputError, match=r"rows.jsonl:6: descriptions: missing aspect\(s\)"):
        predict.predict_file(tiny, source, output, progress=False)
    assert output.read_text() == complete


@pytest.mark.parametrize("content, message", [
    ('{"id": "a", "text": "hi", "descriptions": {"actions": "a", "expressions": "b", "interactions": "c"}}\n{"text": oops}\n',
     r"rows.jsonl:2: not valid JSON"),
    ('["hi"]\n', r"rows.jsonl:1: expected a JSON object, got list"),
    ('{"id": "a", "text": "", "descriptions": ["a", "b", "c"]}\n', r"rows.jsonl:1: text: the utterance text is empty"),
    ('{"id": "a", "descriptions": ["a", "b", "c"]}\n', r"rows.jsonl:1: missing field 'text'"),
    ('{"id": "a", "text": "hi", "descriptions": "a b c"}\n', r"rows.jsonl:1: descriptions: expected a dict"),
    ('{"id": "a", "text": "hi", "descriptions": {"actions": "a", "expressions": "b", "interactions": "c", "scene": "d"}}\n',
     r"rows.jsonl:1: descriptions: unknown aspect name\(s\) \['scene'\]"),
    ('{"id": "a", "text": "hi", "descriptions": ["a", "b", "c"]}\n{"id": "a", "text": "ho", "descriptions": ["a", "b", "c"]}\n',
     r"rows.jsonl:2: id 'a' repeats line 1"),
    ('{"id": "a", "text": "hi", "descripton": ["a", "b", "c"]}\n', r"rows.jsonl:1: unknown field\(s\) \['descripton'\]"),
])
def test_predict_bad_rows_name_file_and_line(tiny, tmp_path, capsys, content, message):
    from mmaffect.cli import main

    source = tmp_path / "rows.jsonl"
    source.write_text(content)
    assert main(["predict", "--model", str(tiny), "--input", str(source), "--output", str(tmp_path / "p.jsonl")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mmaffect predict: error: ") and len(err.strip().splitlines()) == 1
    import re

    assert re.search(message, err), err
    assert not (tmp_path / "p.jsonl").exists()


def test_predict_bad_tsv_header_and_cells(tiny, tmp_path):
    from mmaffect import predict

    for content, message in (("id\tutterance\n", r"rows.tsv:1: the header has no 'text' column"),
                             ("text\tactions\n", r"rows.tsv:1: the header lacks the aspect column\(s\) \['expressions', 'interactions'\]"),
                             ("text\tactions\texpressions\tinteractions\thue\n", r"rows.tsv:1: unknown column\(s\) \['hue'\]"),
                             ("text\tactions\texpressions\tinteractions\nhi\ta\tb\n", r"rows.tsv:2: 3 cells but the header has 4")):
        (tmp_path / "rows.tsv").write_text(content)
        with pytest.raises(predict.InputError, match=message):
            predict.predict_file(tiny, tmp_path / "rows.tsv", tmp_path / "p.jsonl", progress=False)


@pytest.mark.shared_data
def test_predict_equals_evaluate_on_the_real_mintrec2_test_split(demo_model, shared_data, tmp_path):
    """The first 96 rows of the real test split (the whole split: benchmarks/lgsrr_predict_vs_evaluate.py)."""
    import importlib.util

    from lgsrr_inference_support import REPO

    spec = importlib.util.spec_from_file_location("predict_vs_evaluate", REPO / "benchmarks" / "lgsrr_predict_vs_evaluate.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    result = bench.compare(demo_model, shared_data / "lgsrr_release", tmp_path, max_samples=96)
    assert result["rows"] == 96 and result["same_ids"]
    assert result["same_labels"], result["differing_ids"]
    # evaluate rounds to 6 decimals (and takes the softmax in float64): the same probabilities
    assert result["max_score_difference"] < 1e-6 and result["max_importance_difference"] < 1e-6
