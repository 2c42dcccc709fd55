"""Evaluation readers: every benchmark's public layout, built with a few rows and tiny media files,
read into the test split with its references decoded as the official dataset classes do."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from evaluation_support import (
    AVAMERG_NAMES,
    EMER_ROWS,
    MER_TEST,
    MINTREC2_TEST,
    MINTREC_TEST,
    MOSI_TEST,
    make_avamerg,
    make_emer,
    make_iemocap,
    make_meld,
    make_mer2023,
    make_mintrec,
    make_mintrec2,
    make_mosi,
    make_ovmerd,
)
from mmaffect.evaluation import EVAL_BENCHMARKS, EvalDataError, discover_data_dirs, get_eval_benchmark, load_eval_benchmark


def _rows(data):
    return [dict(row) for row in data.samples]


def test_mer2023_and_mer2024(tmp_path):
    data = load_eval_benchmark("mer2023", make_mer2023(tmp_path / "mer2023"))
    rows = _rows(data)
    assert [r["id"] for r in rows] == list(MER_TEST) and [r["reference"] for r in rows] == list(MER_TEST.values())
    assert [r["subtitle"] for r in rows] == ["I am so glad!", "Get out of here.", ""]  # NaN subtitle -> ""
    assert all(r["video"].endswith(f"video/{r['id']}.mp4") and r["audio"].endswith(f"audio/{r['id']}.wav") for r in rows)
    assert data.candidate_labels == ("angry", "happy", "neutral", "sad", "surprise", "worried")  # the train labels
    assert data.benchmark.task == "mer" and data.samples.features["reference"].dtype == "string"
    mer2024 = load_eval_benchmark("mer2024", make_mer2023(tmp_path / "mer2024", transcript="transcription_merge.csv"))
    assert len(mer2024) == 3
    with pytest.raises(FileNotFoundError, match="transcription_merge.csv does not exist"):
        load_eval_benchmark("mer2024", tmp_path / "mer2023")


def test_meld_indices_and_iemocap_session_five(tmp_path):
    meld = load_eval_benchmark("meld", make_meld(tmp_path / "meld"))
    assert [r["reference"] for r in _rows(meld)] == ["joy", "neutral", "anger"]
    assert all("/subvideo/" in r["video"] and "/subaudio/" in r["audio"] for r in _rows(meld))
    iemocap = load_eval_benchmark("iemocapfour", make_iemocap(tmp_path / "iemocap"))
    assert [(r["id"], r["reference"]) for r in _rows(iemocap)] == [("Ses05F_impro01_F000", "sad"), ("Ses05M_script01_M001", "anger")]
    assert all(r["video"].endswith(".avi") for r in _rows(iemocap))


def test_meld_declare_lab_release_through_the_existing_loader(tmp_path):
    header = ["Sr No.", "Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID", "Utterance_ID", "Season", "Episode",
              "StartTime", "EndTime"]
    for split in ("train", "dev", "test"):
        with open(tmp_path / f"{split}_sent_emo.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerow([1, "Oh my God!", "Ross", "surprise", "positive", 3, 1, 1, 1, "00:00:01,000", "00:00:02,000"])
    media = tmp_path / "clips"
    media.mkdir()
    (media / "dia3_utt1.mp4").write_bytes(b"")
    data = load_eval_benchmark("meld", tmp_path, media_dir=media)
    assert _rows(data) == [{"id": "dia3_utt1", "subtitle": "Oh my God!", "video": str(media / "dia3_utt1.mp4"),
                            "audio": str(media / "dia3_utt1.mp4"), "reference": "surprise"}]  # audio: the clip's track


@pytest.mark.parametrize("name, video_dir, audio_dir", [
    ("cmumosi", "subvideo", "subaudio"), ("mosei", "subvideo_new", "subaudio"), ("sims", "video", "audio"),
    ("simsv2", "video_new", "audio"),
])
def test_msa_layouts_read_valence_scores(name, video_dir, audio_dir, tmp_path):
    data = load_eval_benchmark(name, make_mosi(tmp_path / name, video_dir, audio_dir))
    assert [r["reference"] for r in _rows(data)] == list(MOSI_TEST.values())
    assert data.samples.features["reference"].dtype == "float64" and data.benchmark.task == "msa"
    assert all(f"/{video_dir}/" in r["video"] and f"/{audio_dir}/" in r["audio"] for r in _rows(data))


def test_msa_bad_value_names_the_sample(tmp_path):
    make_mosi(tmp_path / "mosi")
    np.savez(tmp_path / "mosi" / "label.npz", test_corpus={"abc_1": {"val": "high"}})
    with pytest.raises(EvalDataError, match=r"test_corpus\['abc_1'\]\['val'\] is not a number: 'high'"):
        load_eval_benchmark("mosi", tmp_path / "mosi")


def test_ovmerd_open_sets(tmp_path):
    data = load_eval_benchmark("ov-merd", make_ovmerd(tmp_path / "MER2025"))
    assert [r["reference"] for r in _rows(data)] == [["happy", "excited"], ["sad", "lonely"], ["neutral"]]
    assert all("/video/video/" in r["video"] for r in _rows(data))


def test_mintrec_chat_records_with_media(tmp_path):
    data = load_eval_benchmark("mintrec", make_mintrec(tmp_path / "MIntRec"))
    assert [(r["id"], r["subtitle"], r["reference"]) for r in _rows(data)] == MINTREC_TEST
    assert data.candidate_labels[:3] == ("complain", "praise", "apologise") and len(data.candidate_labels) == 20
    assert "Ask for help" in data.labels
    assert all(r["audio"].endswith(".wav") for r in _rows(data))
    mintrec2 = load_eval_benchmark("mintrec2.0", make_mintrec2(tmp_path / "MIntRec2"))
    assert [(r["id"], r["subtitle"], r["reference"]) for r in _rows(mintrec2)] == MINTREC2_TEST
    assert len(mintrec2.candidate_labels) == 30 and "asking for opinions" in mintrec2.candidate_labels


def test_avamerg_last_turns_projection_and_history(tmp_path):
    data = load_eval_benchmark("avamerg", make_avamerg(tmp_path / "AvaMERG"))
    rows = _rows(data)
    assert [r["id"] for r in rows] == AVAMERG_NAMES
    assert [(r["speaker_emotion"], r["reference"]) for r in rows] == [("worried", "anxious"), ("excited", "happy")]
    assert rows[0]["user_input"] == "I don't know how to tell my family."
    assert rows[0]["dialogue_history"] == [{"role": "user", "content": "I got fired."},
                                           {"role": "assistant", "content": "I'm sorry to hear that."}]
    assert rows[1]["dialogue_history"] == [] and rows[0]["context"] == "job loss"
    assert rows[0]["video"].endswith("test_video/dia00012utt2_7.mp4")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "v_test_v5_0.json").write_text(json.dumps([{"conversation_id": "1", "turns": []}]))
    with pytest.raises(EvalDataError, match=r"conversation #0: missing or malformed field"):
        load_eval_benchmark("avamerg", broken)


def test_emer_gt_eng(tmp_path):
    data = load_eval_benchmark("emer", make_emer(tmp_path / "EMER"))
    assert [(r["id"], r["emotion"], r["subtitle"], r["reference"]) for r in _rows(data)] == [tuple(row) for row in EMER_ROWS]


@pytest.mark.shared_data
def test_emer_real_ground_truth(shared_data):
    data = load_eval_benchmark("emer", shared_data / "nano_emox_release" / "data" / "EMER")
    assert len(data) == 100 and data.samples[0]["id"] == "sample_00000648"
    assert data.samples[0]["reference"].startswith("In the video, he roared")
    assert data.samples[0]["video"] is None  # the release has no media


def test_bad_folders_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="MER2023 data_dir .* is not a folder"):
        load_eval_benchmark("mer2023", tmp_path / "absent")
    root = make_mer2023(tmp_path / "mer")
    np.savez(root / "label-6way.npz", test_corpus={})
    with pytest.raises(EvalDataError, match=r"label-6way.npz: no array 'test1_corpus'; has \['test_corpus'\]"):
        load_eval_benchmark("mer2023", root)
    root = make_mer2023(tmp_path / "mer3")
    (root / "transcription-engchi-polish.csv").write_text("name,chinese\nsample_00000001,x\n")
    with pytest.raises(EvalDataError, match=r"missing column\(s\) \['english'\]"):
        load_eval_benchmark("mer2023", root)
    (root / "transcription-engchi-polish.csv").write_text("name,english\nsample_00000001,x\n")
    with pytest.raises(EvalDataError, match="no row for test sample 'sample_00000002'"):
        load_eval_benchmark("mer2023", root)
    with pytest.raises(ValueError, match="unknown benchmark 'mer2099'"):
        get_eval_benchmark("mer2099")


def test_data_root_discovery_uses_the_release_folder_names(tmp_path):
    make_mer2023(tmp_path / "MER-UniBench" / "mer2023-dataset-process")
    make_mosi(tmp_path / "cmumosi-process")
    make_emer(tmp_path / "EMER")
    found = discover_data_dirs(tmp_path)
    assert found == {"mer2023": tmp_path / "MER-UniBench" / "mer2023-dataset-process", "mosi": tmp_path / "cmumosi-process",
                     "emer": tmp_path / "EMER"}
    assert {bench.task for bench in EVAL_BENCHMARKS.values()} == {"mer", "ovmer", "msa", "mir", "erg", "eri"}
