"""The three steps end to end over HTTP (a loopback chat-completions server injecting faults):
release-format files, failure accounting, resume after a crash or a kill with no repeated LLM
calls, --retry-failed, the real release descriptions, and the MIntRec2.0 loader + one LGSRR
training step on the produced files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml
from extraction_support import ASPECT_NAMES, PERMUTATIONS, FakeChatServer, _digest, make_mintrec2

from mmaffect.semantic_extraction.backends import build_backend
from mmaffect.semantic_extraction.cli import main as extract_main
from mmaffect.semantic_extraction.config import load_config
from mmaffect.semantic_extraction.pipeline import run_step

RANK_LABELS = {"Speakers' Actions": "Speakers' Actions", "Facial Expressions": "Emotions and Facial Expressions",
               "Interaction with Others": "Interaction with Others"}
DESC_HEADER = b"Dialogue_id\tUtterance_id\tSpeakers Actions\tEmotions and Facial Expressions\tInteraction with Others\r\n"
RANK_HEADER = b"Dia\tUtt\tRank_First\tRank_Second\tRank_Third\r\n"

TEXTS = {
    "train": ["so without further ado, welcome our newest employee", "i keep a copy of all the photos [[desc-retry]]",
              "thanks a lot for coming", "we should go now [[rank-retry]]", "no way that happens [[rank-never]]",
              "what is this thing", "please sit down", "i am so sorry"],
    "dev": ["okay then", "fine by me [[desc-never]]", "see you"],
    "test": ["bye everyone", "hello again"],
}
CLEAN_TEXTS = {
    "train": ["good morning everyone", "i will call you later", "that is a great idea", "stop doing that",
              "can you help me", "we need to talk"],
    "dev": ["okay then", "see you"],
    "test": ["bye everyone", "hello again"],
}


def expected_ranking(text: str) -> list[str]:
    """The fake LLM's ranking for a sample (it ranks by a hash of the spoken text)."""
    return [RANK_LABELS[ASPECT_NAMES[i]] for i in PERMUTATIONS[_digest(text) % 6]]


def config_for(data_dir, video_dir, out, url, *, concurrency=2, timeout=10.0, **extra):
    values = {
        "data_dir": str(data_dir), "video_dir": str(video_dir), "output_dir": str(out), "progress": False,
        "backend": {"type": "openai", "base_url": url, "model": "fake-llm", "backoff": 0.01, "timeout": timeout,
                    "concurrency": concurrency, "num_frames": 4, "frame_max_side": 32, "max_retries": 4},
        "discover": {"num_samples": 6, "samples_per_prompt": 2},
    }  # fmt: skip
    values.update(extra)
    return load_config(None, values)


def output_files(out: Path) -> dict[str, bytes]:
    """The produced files (not the cache), relative path -> bytes."""
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and "cache" not in p.parts}


@pytest.fixture
def dataset(tmp_path):
    return make_mintrec2(tmp_path / "data", TEXTS)


def test_all_steps_over_http_with_faults(dataset, tmp_path):
    data_dir, video_dir = dataset
    out = tmp_path / "out"
    faults = {1: "500", 4: "429", 6: "malformed", 9: "timeout", 12: "drop", 15: "no_choices", 18: "503"}
    with FakeChatServer(faults=faults, slow_seconds=1.5) as server:
        extraction = run_step(config_for(data_dir, video_dir, out, server.url, timeout=0.5), "all")
    assert {e["fault"] for e in server.log} >= set(faults.values())

    # step 1: every reply lists the three paper aspects under various spellings, some add others
    discovery = json.loads((out / "discover.json").read_text(encoding="utf-8"))
    assert discovery["aspects"] == ["Interaction with Others", "Speakers' Actions", "Facial Expressions"]
    assert discovery["aspect_keys"] == ["interactions", "actions", "expressions"]
    assert discovery["replies_parsed"] == 3 and discovery["failed_prompts"] == []
    assert discovery["variants"]["Speakers' Actions"] == ["Body language and gestures"]
    assert list(discovery["counts"].values())[:3] == [3, 3, 3]

    # step 2: release layout, one row per described sample, in file order
    train = (out / "data_desc/mintrec2.0/train.tsv").read_bytes()
    assert train.startswith(DESC_HEADER) and train.endswith(b"\r\n") and not train.startswith(b"\xef\xbb\xbf")
    rows = train.decode("utf-8").split("\r\n")[1:-1]
    assert [r.split("\t")[:2] for r in rows] == [["1", "0"], ["1", "1"], ["1", "2"], ["2", "0"], ["2", "1"],
                                                  ["2", "2"], ["3", "0"], ["3", "1"]]
    first = rows[0].split("\t")
    # the reply's line break and tab are gone; its quotes are CSV-quoted as in the release
    assert first[2] == ('"About ""so without further ado, welcome our newest employee"", the speakers\' actions '
                        'show detail {} Second line."'.format(first[2].split("detail ")[1].split(" ")[0]))
    dev = (out / "data_desc/mintrec2.0/dev.tsv").read_bytes().decode().split("\r\n")
    assert [r.split("\t")[:2] for r in dev[1:-1]] == [["4", "0"], ["4", "2"]]  # desc-never is left out
    reports = {(r.step, r.split): r for r in extraction.reports}
    assert reports["describe", "dev"].failures == [
        ("dev/dia4_utt1", "no paragraph for Facial Expressions after 3 replies")]
    assert reports["describe", "train"].failed == 0
    describe_requests = [e for e in server.log if "Generate detailed descriptions" in str(e["payload"]["messages"])]
    assert describe_requests and all(e["images"] == 4 for e in describe_requests)
    corrections = [e["payload"]["messages"] for e in describe_requests if len(e["payload"]["messages"]) == 3]
    assert [m["role"] for m in corrections[0]] == ["user", "assistant", "user"]
    assert [p["type"] for p in corrections[0][0]["content"]] == ["image_url"] * 4 + ["text"]  # video stays with the task
    assert corrections[0][2]["content"].startswith("Your answer has no paragraph for: Facial Expressions.")

    # step 3: the fake's ranking for every train sample but the one whose replies stay unusable
    ranks = (out / "data_rank/rank_mintrec2_train.tsv").read_bytes()
    assert ranks.startswith(RANK_HEADER)
    got = [line.split("\t") for line in ranks.decode().split("\r\n")[1:-1]]
    expected = [[str(1 + i // 3), str(i % 3), *expected_ranking(text)]
                for i, text in enumerate(TEXTS["train"]) if "rank-never" not in text]
    assert got == expected
    rank_report = reports["rank", "train"]
    repeated = ASPECT_NAMES[PERMUTATIONS[_digest(TEXTS["train"][4]) % 6][0]]  # the fake names it twice
    assert rank_report.failures == [
        ("train/dia2_utt1", f"no usable ranking after 3 replies; last: it names {repeated} more than once")]
    assert sum(rank_report.extra["distribution"][k][0] for k in ("actions", "expressions", "interactions")) == 7
    retried = [e for e in server.log if "I could not use your answer: it does not rank" in str(e["payload"]["messages"])]
    assert retried and "[[rank-retry]]" in str(retried[0]["payload"]["messages"][0])


def test_rerun_is_free_and_retry_failed_asks_only_for_failures(dataset, tmp_path):
    data_dir, video_dir = dataset
    out = tmp_path / "out"
    with FakeChatServer() as server:
        config = config_for(data_dir, video_dir, out, server.url)
        run_step(config, "all")
        first = output_files(out)
        calls = server.count
        run_step(config_for(data_dir, video_dir, out, server.url), "all")  # everything from the cache
        assert server.count == calls and output_files(out) == first
        run_step(config_for(data_dir, video_dir, out, server.url, retry_failed=True), "all")
        again = [str(e["payload"]["messages"][0]["content"]) for e in server.log[calls:]]
    # the fake answers the same way, so files stay the same; only failed samples were asked again
    assert output_files(out) == first
    assert again and all("[[desc-never]]" in text or "[[rank-never]]" in text for text in again)
    assert len(again) == 6  # 3 replies for each of the two failed samples


def test_input_problems_are_rechecked_on_the_next_run(tmp_path):
    data_dir, video_dir = make_mintrec2(tmp_path / "data", {"train": ["hello there", "see you", "go away"]})
    clip = video_dir / "dia1_utt1.mp4"
    saved = clip.read_bytes()
    clip.write_bytes(b"broken" * 50)
    out = tmp_path / "out"
    with FakeChatServer() as server:
        config = config_for(data_dir, video_dir, out, server.url, splits=["train"])
        extraction = run_step(config, "describe")
        (failure,) = extraction.reports[0].failures
        assert failure[0] == "train/dia1_utt1" and "dia1_utt1.mp4: cannot decode video" in failure[1]
        extraction = run_step(config_for(data_dir, video_dir, out, server.url, splits=["train"]), "rank")
        assert extraction.reports[0].failures == [("train/dia1_utt1", "no descriptions for this sample")]
        calls = server.count
        clip.write_bytes(saved)  # the user fixes the file and reruns: no --retry-failed needed
        extraction = run_step(config_for(data_dir, video_dir, out, server.url, splits=["train"]), "all")
        assert not any(report.failed for report in extraction.reports)
        asked = [str(e["payload"]) for e in server.log[calls:] if "key analytical" not in str(e["payload"])]
    assert len(asked) == 2 and all("see you" in text for text in asked)  # one description, one ranking
    assert len((out / "data_rank/rank_mintrec2_train.tsv").read_text().splitlines()) == 4


class CrashingFactory:
    """Builds the real backend, wrapped to raise after ``crash_after`` successful calls (a crash
    in the middle of a run); other in-flight calls still finish."""

    def __init__(self, crash_after: int | None):
        self.crash_after = crash_after
        self.calls = 0

    def __call__(self, spec):
        real = build_backend(spec)
        factory = self

        class Crashing:
            model_id, concurrency, supports_video = real.model_id, real.concurrency, real.supports_video

            def fingerprint(self):
                return real.fingerprint()

            def chat(self, messages, **kwargs):
                reply = real.chat(messages, **kwargs)
                factory.calls += 1
                if factory.crash_after is not None and factory.calls == factory.crash_after:
                    raise RuntimeError("injected crash")
                return reply

        return Crashing()


@pytest.mark.parametrize("crash_after", [5, 23])
def test_crash_then_restart_gives_the_same_files_without_repeating_calls(dataset, tmp_path, crash_after):
    data_dir, video_dir = dataset
    with FakeChatServer() as reference_server:
        run_step(config_for(data_dir, video_dir, tmp_path / "ref", reference_server.url, concurrency=3), "all")
    with FakeChatServer() as server:
        config = config_for(data_dir, video_dir, tmp_path / "out", server.url, concurrency=3)
        with pytest.raises(RuntimeError, match="injected crash"):
            run_step(config, "all", backend_factory=CrashingFactory(crash_after))
        before = len(server.log)
        assert 0 < before < reference_server.count
        run_step(config_for(data_dir, video_dir, tmp_path / "out", server.url, concurrency=3), "all")
        answered_before = [e["prompt"] for e in server.log[:before]]
        asked_after = [e["prompt"] for e in server.log[before:]]
    assert output_files(tmp_path / "out") == output_files(tmp_path / "ref")
    # the crashing call's reply was never cached: it is the only one asked again
    assert len(set(answered_before) & set(asked_after)) == 1
    assert Counter(answered_before + asked_after) == Counter(e["prompt"] for e in reference_server.log) + Counter(
        [next(iter(set(answered_before) & set(asked_after)))])


@pytest.mark.slow
def test_killed_process_restarts_where_it_stopped(dataset, tmp_path):
    """SIGKILL the CLI in a subprocess while it waits for a reply, restart it, compare with an
    uninterrupted run: same bytes, and no LLM call answered before the kill is made again."""
    data_dir, video_dir = dataset
    with FakeChatServer() as reference_server:
        run_step(config_for(data_dir, video_dir, tmp_path / "ref", reference_server.url, concurrency=1), "all")
    kill_at = 17
    child: dict[str, subprocess.Popen] = {}

    def kill_client(number, payload):
        if number == kill_at:
            child["process"].send_signal(signal.SIGKILL)
            return "drop"
        return None

    with FakeChatServer(on_request=kill_client) as server:
        config = config_for(data_dir, video_dir, tmp_path / "out", server.url, concurrency=1)
        config_path = tmp_path / "extract.yaml"
        values = {k: v for k, v in vars(config).items() if k not in ("progress",)}
        config_path.write_text(yaml.safe_dump(values), encoding="utf-8")
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
        child["process"] = subprocess.Popen(
            [sys.executable, "-m", "mmaffect.cli", "extract", "all", "--config", str(config_path), "--no-progress"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        output, _ = child["process"].communicate(timeout=240)
        assert child["process"].returncode == -signal.SIGKILL, output.decode(errors="replace")[-2000:]
        killed_log = list(server.log)
        assert len(killed_log) == kill_at
        assert extract_main(["all", "--config", str(config_path), "--no-progress"]) == 3  # 2 samples fail by design
        restarted = server.log[kill_at:]
    assert output_files(tmp_path / "out") == output_files(tmp_path / "ref")
    answered_before = {e["prompt"] for e in killed_log if e["answered"]}
    assert len(answered_before) == kill_at - 1
    assert not answered_before & {e["prompt"] for e in restarted}
    assert restarted[0]["prompt"] == killed_log[-1]["prompt"]  # the call cut by the kill comes first
    assert len(killed_log) - 1 + len(restarted) == reference_server.count


def test_discovered_aspects_drive_describe_and_rank(tmp_path):
    from extraction_support import fake_llm_reply

    def reply(messages):
        if "key analytical perspectives" in str(messages[0]["content"]):
            return "1. **Tone of voice**: pitch\n2. Facial expressions - faces\n3. Scene: where\n4. Gestures"
        return fake_llm_reply(messages)

    data_dir, video_dir = make_mintrec2(tmp_path / "data", {"train": ["hello there", "see you"]})
    out = tmp_path / "out"
    with FakeChatServer(reply=reply) as server:
        config = config_for(data_dir, video_dir, out, server.url, splits=["train"], use_discovered_aspects=True,
                            discover={"num_samples": 2, "samples_per_prompt": 2, "attach_videos": True})
        run_step(config, "all")
    assert server.log[0]["images"] == 2 * 4  # both samples' videos, 4 frames each
    discovery = json.loads((out / "discover.json").read_text(encoding="utf-8"))
    assert discovery["aspects"] == ["Tone and Manner of Speaking", "Facial Expressions", "Scene Description"]
    header = (out / "data_desc/mintrec2.0/train.tsv").read_text(encoding="utf-8").splitlines()[0]
    assert header.split("\t") == ["Dialogue_id", "Utterance_id", "Emotions and Facial Expressions",
                                  "Tone and Manner of Speaking", "Scene Description"]
    ranks = (out / "data_rank/rank_mintrec2_train.tsv").read_text(encoding="utf-8").splitlines()
    assert len(ranks) == 3 and sorted(ranks[1].split("\t")[2:]) == [
        "Emotions and Facial Expressions", "Scene Description", "Tone and Manner of Speaking"]


def test_iemocap_da_layout(tmp_path):
    from mmaffect.semantic_extraction.video import write_test_video

    data_dir, video_dir = tmp_path / "IEMOCAP-DA", tmp_path / "video"
    data_dir.mkdir()
    video_dir.mkdir()
    turns = {"train": [("Ses01F_impro01_F000", "where are you going", "q"), ("Ses01F_impro01_M001", "home", "ans")],
             "dev": [("Ses02F_script01_1_F003", "hello", "g")], "test": [("Ses03M_impro02_M010", "sorry", "ap")]}
    for split, rows in turns.items():
        lines = ["TURN\tUTTERANCE\tDA\tEMOTION"] + [f"{turn}\t{text}\t{code}\tneu" for turn, text, code in rows]
        (data_dir / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
        for turn, _, _ in rows:
            write_test_video(video_dir / f"{turn}.mp4", [(200, 10, 10)] * 4)
    out = tmp_path / "out"
    with FakeChatServer() as server:
        run_step(config_for(data_dir, video_dir, out, server.url, dataset="iemocap-da", concurrency=1), "describe")
        run_step(config_for(data_dir, video_dir, out, server.url, dataset="iemocap-da", concurrency=1), "rank")  # one at a time: rank_prompts[0] is the first train row
    rank_prompts = [str(e["payload"]["messages"]) for e in server.log if "rank these semantics" in str(e["payload"])]
    assert "The intent of the video is Question." in rank_prompts[0]
    desc = (out / "data_desc/iemocap_da/train.tsv").read_bytes().split(b"\r\n")
    assert desc[0] == b"TURN\tSpeakers' Actions\tEmotions and Facial Expressions\tInteraction with Others"
    assert [line.split(b"\t")[0] for line in desc[1:-1]] == [b"Ses01F_impro01_F000", b"Ses01F_impro01_M001"]
    ranks = (out / "data_rank/rank_iemocap_da_train.tsv").read_bytes().split(b"\r\n")
    assert ranks[0] == b"Turn\tRank_First\tRank_Second\tRank_Third"
    assert ranks[1].split(b"\t")[1:] == [name.encode() for name in expected_ranking("where are you going")]
    try:
        from mmaffect.datasets_scripts import load_benchmark
    except ImportError as error:
        pytest.skip(f"IEMOCAP-DA loader not importable yet: {error}")
    ds = load_benchmark("iemocap-da", data_dir, descriptions_dir=out / "data_desc/iemocap_da",
                        ranks_file=out / "data_rank/rank_iemocap_da_train.tsv", cache_dir=tmp_path / "hf_cache")
    assert ds["train"][0]["id"] == "Ses01F_impro01_F000" and len(ds["train"][0]["aspects"]) == 3
    assert ds["train"][1]["aspect_ranks"] is not None


def test_rank_on_the_real_release_descriptions_with_the_reference_style(shared_data, tmp_path):
    release = shared_data / "lgsrr_release"
    with FakeChatServer() as server:
        config = load_config(None, {
            "data_dir": str(release / "data_text/MIntRec2.0"), "output_dir": str(tmp_path / "out"), "limit": 6,
            "progress": False, "backend": {"type": "openai", "base_url": server.url, "model": "fake", "backoff": 0.01},
            "rank": {"style": "reference", "descriptions_dir": str(release / "data_desc/mintrec2.0")},
        })  # fmt: skip
        run_step(config, "rank")
    first = next(e["payload"]["messages"] for e in server.log if "further ado" in str(e["payload"]))
    assert [m["role"] for m in first] == ["system", "user", "assistant", "user"]
    assert "Intent: Introduce\nSpoken text: so without further ado" in first[3]["content"]
    assert "Facial Expressions: Both the man and the woman maintain a professional demeanor" in first[3]["content"]
    # the released rows 148/1 etc. carry doubled CSV quotes; the first rows read back as plain text
    lines = (tmp_path / "out/data_rank/rank_mintrec2_train.tsv").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "Dia\tUtt\tRank_First\tRank_Second\tRank_Third" and len(lines) == 7
    assert [line.split("\t")[:2] for line in lines[1:3]] == [["0", "0"], ["0", "3"]]


def test_cli_errors_are_clear(tmp_path, capsys):
    assert extract_main(["rank", "--data-dir", str(tmp_path), "--output-dir", str(tmp_path / "o")]) == 1
    assert "no LLM backend configured for step 'rank'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        extract_main(["rank", "--backend", "openai", "--model", "m", "--data-dir", str(tmp_path)])
    describe = ["describe", "--backend", "openai", "--model", "m", "--base-url", "http://127.0.0.1:9/v1",
                "--data-dir", str(tmp_path), "--output-dir", str(tmp_path / "o")]
    assert extract_main(describe) == 1
    assert "describe needs the videos: give --video-dir" in capsys.readouterr().err
    assert extract_main([*describe, "--video-dir", str(tmp_path)]) == 1
    assert "text annotations for split 'train' not found" in capsys.readouterr().err


def test_config_file_paths_overrides_and_errors(tmp_path):
    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "extract.yaml"
    path.write_text(yaml.safe_dump({"extract": {"data_dir": "data", "output_dir": "../out", "limit": 5,
                                                "rank": {"style": "reference"}}}), encoding="utf-8")
    config = load_config(path, {"limit": 7, "rank": {"max_corrections": 0}, "video_dir": None})
    assert config.data_dir == str(tmp_path / "sub" / "data") and config.output_dir == str(tmp_path / "out")
    assert config.limit == 7 and config.video_dir is None
    assert config.rank_config().style == "reference" and config.rank_config().max_corrections == 0
    path.write_text(yaml.safe_dump({"data_dir": "x", "colour": "red"}), encoding="utf-8")
    with pytest.raises(ValueError, match=r"unknown setting\(s\) \['colour'\]"):
        load_config(path)
    with pytest.raises(ValueError, match=r"unknown 'rank' setting\(s\) \['order'\]"):
        load_config(None, {"rank": {"order": 1}}).rank_config()


def test_produced_files_load_and_train_lgsrr_one_step(tmp_path):
    """The files of a run load through the MIntRec2.0 loader and feed one LGSRR training step."""
    try:
        from mmaffect.datasets_scripts import LGSRRDataCollator, load_benchmark, tokenize_for_lgsrr
        from mmaffect.models.lgsrr import LGSRRConfig, LGSRRForSequenceClassification
    except ImportError as error:  # the loader / model are other issues; skip only if they are absent
        pytest.skip(f"MIntRec2.0 loader or LGSRR model not importable yet: {error}")
    import torch
    from torch.utils.data import DataLoader
    from transformers import BertConfig, BertTokenizerFast

    data_dir, video_dir = make_mintrec2(tmp_path / "data", CLEAN_TEXTS)
    out = tmp_path / "out"
    with FakeChatServer() as server:
        extraction = run_step(config_for(data_dir, video_dir, out, server.url), "all")
    assert not any(r.failed for r in extraction.reports)

    ds = load_benchmark("mintrec2", data_dir, descriptions_dir=out / "data_desc/mintrec2.0",
                        ranks_file=out / "data_rank/rank_mintrec2_train.tsv", cache_dir=tmp_path / "hf_cache")
    assert {split: ds[split].num_rows for split in ds} == {"train": 6, "validation": 2, "test": 2}
    row = ds["train"][0]
    assert row["id"] == "dia1_utt0" and row["aspects"][0].startswith('About "good morning everyone", the speakers')
    order = ["Speakers' Actions", "Emotions and Facial Expressions", "Interaction with Others"]
    for i, text in enumerate(CLEAN_TEXTS["train"]):
        ranking = expected_ranking(text)
        assert ds["train"][i]["aspect_ranks"] == [ranking.index(name) for name in order]

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"abcdefghijklmnopqrstuvwxyz0123456789.,'\"",
             *(f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz0123456789")]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast(vocab_file=str(tmp_path / "vocab.txt"))
    tokenized = tokenize_for_lgsrr(ds, tokenizer, 24, 24)
    labels = ds["train"].features["label"].names
    config = LGSRRConfig(text_config=BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1,
                                                num_attention_heads=2, intermediate_size=64),
                         id2label=dict(enumerate(labels)), weight_hidden_dim=16)
    torch.manual_seed(0)
    model = LGSRRForSequenceClassification(config)
    batch = next(iter(DataLoader(tokenized["train"], batch_size=6, collate_fn=LGSRRDataCollator(tokenizer))))
    assert batch["aspect_input_ids"].shape[:2] == (6, 3) and batch["aspect_ranks"].shape == (6, 3)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    before = model.classifier.weight.detach().clone()
    output = model(**batch)
    assert torch.isfinite(output.loss)
    output.loss.backward()
    optimizer.step()
    assert not torch.equal(before, model.classifier.weight)
