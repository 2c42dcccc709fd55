"""Test support for the evaluation harness: every benchmark's public layout written with a few
samples and tiny synthetic media (PyAV clips without audio + separate soundfile WAVs), and a tiny
random Nano-EmoX saved with ``save_pretrained``."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from mmaffect.semantic_extraction.video import write_test_video


def write_media(video: Path, audio: Path | None, seed: int, frames: int = 4) -> None:
    video.parent.mkdir(parents=True, exist_ok=True)
    write_test_video(video, [((40 * seed + 30 * k) % 256, (70 * k) % 256, (90 + 50 * seed) % 256) for k in range(frames)])
    if audio is not None:
        import soundfile

        audio.parent.mkdir(parents=True, exist_ok=True)
        t = np.arange(4800) / 16000
        soundfile.write(audio, (0.2 * np.sin(2 * np.pi * (220 + 40 * seed) * t)).astype(np.float32), 16000)


def _csv(path: Path, header: list[str], rows: list[list]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _media(root: Path, names, video_dir: str, audio_dir: str | None, suffix: str = ".mp4") -> None:
    for index, name in enumerate(names):
        write_media(root / video_dir / f"{name}{suffix}", None if audio_dir is None else root / audio_dir / f"{name}.wav", index)


def _subtitles(path: Path, names, texts) -> None:
    _csv(path, ["name", "chinese", "english"], [[n, "", t] for n, t in zip(names, texts)])


MER_TEST = {"sample_00000001": "happy", "sample_00000002": "angry", "sample_00000003": "worried"}
MER_TRAIN = {"sample_00000100": "happy", "sample_00000101": "sad", "sample_00000102": "neutral",
             "sample_00000103": "angry", "sample_00000104": "worried", "sample_00000105": "surprise"}


def make_mer2023(root: Path, transcript: str = "transcription-engchi-polish.csv") -> Path:
    """``label-6way.npz`` (train_corpus / test1_corpus of ``{"emo": word}``), the subtitles, video/ and audio/."""
    root.mkdir(parents=True, exist_ok=True)
    np.savez(root / "label-6way.npz", train_corpus={n: {"emo": e} for n, e in MER_TRAIN.items()},
             test1_corpus={n: {"emo": e} for n, e in MER_TEST.items()})
    _subtitles(root / transcript, list(MER_TEST), ["I am so glad!", "Get out of here.", float("nan")])
    _media(root, MER_TEST, "video", "audio")
    return root


MELD_TEST = {"dia0_utt0": 1, "dia0_utt1": 3, "dia1_utt0": 0}  # joy, neutral, anger (MER-UniBench's indices)


def make_meld(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    np.savez(root / "label.npz", test_corpus={n: {"emo": i} for n, i in MELD_TEST.items()})
    _subtitles(root / "transcription-engchi-polish.csv", list(MELD_TEST), ["Yay!", "Okay.", "Stop it."])
    _media(root, MELD_TEST, "subvideo", "subaudio")
    return root


IEMOCAP_ALL = {"Ses01F_impro01_F000": 0, "Ses05F_impro01_F000": 1, "Ses05M_script01_M001": 3, "Ses02M_impro02_M003": 2}


def make_iemocap(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    np.savez(root / "label_4way.npz", whole_corpus={n: {"emo": i} for n, i in IEMOCAP_ALL.items()})
    _subtitles(root / "transcription-engchi-polish.csv", list(IEMOCAP_ALL), ["a", "I miss her.", "No way!", "b"])
    _media(root, [n for n in IEMOCAP_ALL if n[4] == "5"], "subvideo-tgt", "subaudio", suffix=".avi")
    return root


MOSI_TEST = {"abc_1": 1.8, "abc_2": -0.6, "def_3": 0.0, "def_4": 2.2}


def make_mosi(root: Path, video_dir: str = "subvideo", audio_dir: str = "subaudio") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    np.savez(root / "label.npz", test_corpus={n: {"val": v} for n, v in MOSI_TEST.items()})
    _subtitles(root / "transcription-engchi-polish.csv", list(MOSI_TEST), ["great movie", "boring", "it is a film", "loved it"])
    _media(root, MOSI_TEST, video_dir, audio_dir)
    return root


OVMERD_TEST = {"samplenew_1": "['happy', 'excited']", "samplenew_2": "sad, lonely", "samplenew_3": ""}


def make_ovmerd(root: Path) -> Path:
    _csv(root / "track2_train_ovmerd.csv", ["name", "openset"], [[n, o] for n, o in OVMERD_TEST.items()])
    _subtitles(root / "subtitle_chieng.csv", list(OVMERD_TEST), ["We won!", "She left.", "Fine."])
    _media(root, OVMERD_TEST, "video/video", "audio")
    return root


MINTREC_TEST = [("S06_E04_70", "you're gonna go back and work on that register", "Arrange"),
                ("S04_E16_164", "thank you so much", "Thank"), ("S05_E01_3", "this is terrible", "Complain")]


def _chat_release(root: Path, release: str, train: list[tuple], test: list[tuple]) -> Path:
    """Nano-EmoX's chat records ``{split}_{release}_ann.json`` (train + test), video/ and audio/ next to them."""
    root.mkdir(parents=True, exist_ok=True)
    for split, items in (("train", train), ("test", test)):
        records = [{"messages": [{"role": "user", "content": text}, {"role": "assistant", "content": label}],
                    "videos": [f"/home/lab/dataset/{release}/video/{name}.mp4"]} for name, text, label in items]
        (root / f"{split}_{release}_ann.json").write_text(json.dumps(records))
    _media(root, [name for name, _, _ in test], "video", "audio")
    return root


def make_mintrec(root: Path) -> Path:
    return _chat_release(root, "MIntRec", [("S01_E01_1", "hello there", "Greet")], MINTREC_TEST)


MINTREC2_TEST = [("dia15_utt0", "thank you.", "Thank"), ("dia15_utt1", "could you help me with this box?", "Ask for help")]


def make_mintrec2(root: Path) -> Path:
    """MIntRec2.0 (ids from the video names dia{d}_utt{u})."""
    return _chat_release(root, "MIntRec2", [("dia1_utt0", "hi", "Greet")], MINTREC2_TEST)


AVAMERG_CONVERSATIONS = [
    {"conversation_id": "00012", "speaker_profile": {"ID": 7}, "listener_profile": {"ID": 8}, "topic": "work",
     "turns": [{"turn_id": "0", "context": "job loss", "dialogue_history": [{"role": "speaker", "utterance": "I got fired."}],
                "response": "I'm sorry.", "chain_of_empathy": {"speaker_emotion": "devastated", "emotion_cause": "x",
                                                               "event_scenario": "y", "goal_to_response": "z"}},
               {"turn_id": "1", "context": "job loss",
                "dialogue_history": [{"role": "speaker", "utterance": "I got fired."},
                                     {"role": "listener", "utterance": "I'm sorry to hear that."},
                                     {"role": "speaker", "utterance": "I don't know how to tell my family."}],
                "response": "That sounds hard.", "chain_of_empathy": {"speaker_emotion": "worried", "emotion_cause": "x",
                                                                      "event_scenario": "y", "goal_to_response": "z"}}]},
    {"conversation_id": "00013", "speaker_profile": {"ID": 3}, "listener_profile": {"ID": 4}, "topic": "trip",
     "turns": [{"turn_id": "2", "context": "vacation", "dialogue_history": [{"role": "speaker", "utterance": "We leave tomorrow!"}],
                "response": "How fun!", "chain_of_empathy": {"speaker_emotion": "excited", "emotion_cause": "x",
                                                             "event_scenario": "y", "goal_to_response": "z"}}]},
]
AVAMERG_NAMES = ["dia00012utt2_7", "dia00013utt4_3"]


def make_avamerg(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "v_test_v5_0.json").write_text(json.dumps(AVAMERG_CONVERSATIONS))
    _media(root, AVAMERG_NAMES, "test_video", "test_audio")
    return root


EMER_ROWS = [("sample_00000648", "angry", "Don't talk to me about feelings anymore.", "He roared. Therefore he is angry."),
             ("sample_00000680", "happy", "Last night, I forgot to thank you.", "He smiled. Therefore he is grateful and happy.")]


def make_emer(root: Path) -> Path:
    _csv(root / "gt-eng.csv", ["names", "emotions", "subtitles", "reasons"], [list(row) for row in EMER_ROWS])
    _media(root, [row[0] for row in EMER_ROWS], "video", "audio")
    return root


LAYOUTS = {"mer2023": make_mer2023, "meld": make_meld, "iemocap": make_iemocap, "mosi": make_mosi, "ovmerd": make_ovmerd,
           "mintrec": make_mintrec, "mintrec2": make_mintrec2, "avamerg": make_avamerg, "emer": make_emer}


def save_tiny_nano_emox(folder: Path) -> Path:
    """A tiny random Nano-EmoX + processor, saved with save_pretrained (loaded by path in the tests)."""
    import torch

    from mmaffect.models.nano_emox import NanoEmoXConfig, NanoEmoXForConditionalGeneration, NanoEmoXProcessor

    torch.manual_seed(0)
    model = NanoEmoXForConditionalGeneration(NanoEmoXConfig.tiny()).eval()
    processor = NanoEmoXProcessor.tiny()
    # never generate special tokens: the random model then writes non-empty printable replies of a fixed length
    model.generation_config.suppress_tokens = sorted(set(processor.tokenizer.all_special_ids))
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


# a small emotion-wheel folder whose vocabulary covers every synthetic reference above (same tree on
# all five wheels, so every non-neutral reference is scorable on every wheel)
_WHEEL_ROWS = [("Happy", "Joyful", "Delighted"), (None, "Excited", "Thrilled"), ("Sad", "Lonely", "Grief"),
               ("Angry", "Mad", "Furious"), ("Fear", "Worried", "Anxious")]
_SYNONYMS = [("happy", "glad, joy, cheerful, happiness, grateful"), ("angry", "anger, annoyed"), ("sad", "sadness, tearful"),
             ("worried", "nervous"), ("excited", "eager")]


def write_e2e_wheel_dir(folder: Path) -> Path:
    import pandas as pd

    folder.mkdir(parents=True, exist_ok=True)
    for index in range(1, 6):
        pd.DataFrame(_WHEEL_ROWS, columns=["level1", "level2", "level3"]).to_excel(folder / f"wheel{index}.xlsx", index=False)
    wheel_words = sorted({w.lower() for row in _WHEEL_ROWS for w in row if w})
    synonyms = dict(_SYNONYMS)  # every wheel word maps to itself (the synonym file lists it), some have synonyms
    pd.DataFrame({"word_run1": wheel_words, "synonym_run1": [synonyms.get(w) for w in wheel_words]}).to_excel(
        folder / "synonym.xlsx", index=False)
    words = {w.lower() for row in _WHEEL_ROWS for w in row if w} | {s.strip() for _, syn in _SYNONYMS for s in syn.split(",")}
    pd.DataFrame([(w, w) for w in sorted(words)], columns=["name", "format"]).to_csv(folder / "format.csv", index=False)
    return folder
