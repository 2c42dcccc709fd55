"""A tiny synthetic P2E corpus in the published layouts, for tests and smoke runs without the real data.

``make_synthetic_corpus(root)`` writes a handful of samples for every dataset of ``configs/p2e_nano_emox.yaml``,
each in its own release layout (CREMA-D chat records + wavs, M3ED ``annotation.json`` + ``splitInfo``, CAER class
folders of ``.avi``, FERV39k split csv + frame folders, MIntRec chat records, MIntRec2.0 LGSRR tsv files,
MER-Caption+ track csv files, MERR-Fine json, AvaMERG conversation json), with real media: short clips written
with PyAV (frames + an AAC audio track), wavs with soundfile, JPEG frames with Pillow. Pointing ``data_root`` at
it runs the full curriculum config on the tiny model end to end::

    python -m mmaffect.train.p2e --config configs/p2e_tiny.yaml --make-synthetic-data /tmp/p2e_data

``make_learnable_corpus(root)`` writes a learnable MER corpus instead: a MER2023 folder (MER-UniBench layout, read
by the P2E ``mer2023`` reader for training and by ``mmaffect evaluate --dataset mer2023`` for the held-out split)
whose labels are recoverable only from the media (a frame colour and a tone pitch per label, random subtitles).
``derive_corpus`` copies it with the media shuffled across samples or blanked (black frames, silence): the controls
of the learnability test (tests/test_p2e_learnability.py) and of benchmarks/p2e_curriculum.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

EMOTIONS = ("anger", "happy", "sad", "neutral")


def _frames(seed: int, num_frames: int, size: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, size=(1, size, size, 3))
    drift = np.arange(num_frames)[:, None, None, None] * 12
    return ((base + drift) % 255).astype(np.uint8)


def _tone(seed: int, seconds: float, sampling_rate: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * sampling_rate)) / sampling_rate
    rng = np.random.default_rng(seed)
    wave = 0.2 * np.sin(2 * np.pi * (220 + 40 * seed) * t) + 0.01 * rng.standard_normal(t.size)
    return wave.astype(np.float32)


def write_clip(path, seed: int = 0, num_frames: int = 6, size: int = 32, seconds: float = 0.4, audio: bool = True) -> Path:
    """A short clip (MPEG-4 video, optional mono AAC at 16 kHz) with PyAV; the container follows the suffix."""
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        video = container.add_stream("mpeg4", rate=8)
        video.width = video.height = size
        video.pix_fmt = "yuv420p"
        stream = None
        if audio:
            stream = container.add_stream("aac", rate=16000)
            stream.layout = "mono"
        for frame in _frames(seed, num_frames, size):
            for packet in video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        if stream is not None:
            samples = av.AudioFrame.from_ndarray(_tone(seed, seconds)[None], format="fltp", layout="mono")
            samples.sample_rate = 16000
            for packet in stream.encode(samples):
                container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
    return path


def write_wav(path, seed: int = 0, seconds: float = 0.4) -> Path:
    import soundfile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), _tone(seed, seconds), 16000)
    return path


def write_frames(folder, seed: int = 0, num_frames: int = 6, size: int = 32) -> Path:
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(_frames(seed, num_frames, size)):
        Image.fromarray(frame).save(folder / f"{i + 1:05d}.jpg")
    return folder


def _json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")


def make_synthetic_corpus(root, samples: int = 4, size: int = 32, num_frames: int = 6) -> Path:
    """Write the synthetic corpus under ``root`` (idempotent: an existing corpus is left as it is)."""
    root = Path(root)
    if (root / "SYNTHETIC_P2E_CORPUS").is_file():
        return root
    n = max(2, int(samples))
    clip = lambda path, seed, audio=True: write_clip(path, seed, num_frames, size, audio=audio)  # noqa: E731
    _write_crema_d(root, n)
    _write_m3ed(root, n)
    for i in range(n):  # CAER: {split}/{Emotion}/{clip}.avi (video only)
        clip(root / "CAER" / "train" / ("Happy", "Sad", "Anger", "Surprise")[i % 4] / f"{i + 1:04d}.avi", 20 + i, audio=False)
    _write_ferv39k(root, n, size, num_frames)
    _write_mintrec(root, n, clip)
    _write_mintrec2(root, n, clip)
    _write_mer_caption(root, n, clip)
    _write_merr_fine(root, n, clip)
    _write_avamerg(root, n, clip)
    (root / "SYNTHETIC_P2E_CORPUS").write_text("written by mmaffect.train.p2e_synthetic.make_synthetic_corpus\n", encoding="utf-8")
    return root


def _write_crema_d(root: Path, n: int) -> None:
    """CREMA-D: the Nano-EmoX chat records at the top level, as in the release (paths on the authors' disk) +
    CREMA-D/AudioWAV/{stem}.wav"""
    crema = []
    for i in range(n):
        code = ("ANG", "HAP", "SAD", "NEU")[i % 4]
        stem = f"{('Anger', 'Happy', 'Sad', 'Neutral')[i % 4]}_10{i:02d}_DFA_{code}_XX"
        write_wav(root / "CREMA-D" / "AudioWAV" / f"{stem}.wav", seed=i)
        crema.append({"messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": EMOTIONS[i % 4]}],
                      "audios": [f"/home/authors/crema_d/audio/{stem}.wav"]})  # fmt: skip
    _json(root / "crema_d_annotations.json", crema)


def _write_m3ed(root: Path, n: int) -> None:
    """M3ED: annotation.json + splitInfo + modality_speech/{speaker}_{utt}.wav"""
    dialog = {}
    for i in range(n):
        utt = f"movie_a_1_{i + 1}"
        dialog[utt] = {"Speaker": "A" if i % 2 == 0 else "B", "Text": f"台词 {i}", "StartTime": "00:00:01.000",
                       "EndTime": "00:00:02.000", "EmoAnnotation": {"final_main_emo": ("Happy", "Sad", "Anger", "Neutral")[i % 4]}}  # fmt: skip
        write_wav(root / "M3ED" / "modality_speech" / f"{dialog[utt]['Speaker']}_{utt}.wav", seed=10 + i)
    _json(root / "M3ED" / "annotation.json", {"movie_a": {"movie_a_1": {"SpeakerInfo": {"A": {"Name": "x"}, "B": {"Name": "y"}}, "Dialog": dialog}}})
    (root / "M3ED" / "splitInfo").mkdir(parents=True, exist_ok=True)
    for split, movies in (("train", "movie_a\n"), ("val", "movie_b\n"), ("test", "movie_c\n")):
        (root / "M3ED" / "splitInfo" / f"movie_list_{split}.txt").write_text(movies, encoding="utf-8")


def _write_ferv39k(root: Path, n: int, size: int, num_frames: int) -> None:
    """FERV39k: split csv + frame folders"""
    lines = []
    for i in range(n):
        rel = f"Action/Scene{i % 2}/{i + 1:04d}"
        write_frames(root / "FERV39k" / "2_ClipsforFaceCrop" / rel, seed=30 + i, num_frames=num_frames, size=size)
        lines.append(f"{rel} {i % 7}")
    (root / "FERV39k" / "4_setups" / "All_scenes").mkdir(parents=True, exist_ok=True)
    (root / "FERV39k" / "4_setups" / "All_scenes" / "train_All.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _write_mintrec(root: Path, n: int, clip) -> None:
    """MIntRec: Nano-EmoX chat records + video/{S}_{E}_{clip}.mp4"""
    intents = ("Complain", "Praise", "Thank", "Inform")
    for split, count in (("train", n), ("test", 2)):
        records = []
        for i in range(count):
            stem = f"S0{1 if split == 'train' else 2}_E01_{i + 1}"
            clip(root / "MIntRec" / "video" / f"{stem}.mp4", 40 + i + (0 if split == "train" else 50))
            records.append({"messages": [{"role": "user", "content": f"line number {i} for the intent"},
                                         {"role": "assistant", "content": intents[i % 4]}],
                            "videos": [f"/home/authors/MIntRec/video/{stem}.mp4"]})  # fmt: skip
        _json(root / "MIntRec" / f"{split}_MIntRec_ann.json", records)


def _write_mintrec2(root: Path, n: int, clip) -> None:
    """MIntRec2.0 in the release's folder name MIntRec2/: the LGSRR / MIntRec2.0 tsv files + video/dia{D}_utt{U}.mp4"""
    header = "Dialogue_id\tUtterance_id\tText\tLabel\tStart_timestamp\tEnd_timestamp\tSource\tspeaker_name\n"
    labels2 = ("Greet", "Thank", "Inform", "Doubt")
    for split, dialogue in (("train", 0), ("dev", 1), ("test", 2)):
        rows = []
        for u in range(n if split == "train" else 1):
            rows.append(f"{dialogue}\t{u}\tutterance {u} of dialogue {dialogue}\t{labels2[u % 4]}\t00:00:00.000\t00:00:01.000\tsuperstore\tAmy\n")
            if split == "train":
                clip(root / "MIntRec2" / "video" / f"dia{dialogue}_utt{u}.mp4", 60 + u)
        (root / "MIntRec2").mkdir(parents=True, exist_ok=True)
        (root / "MIntRec2" / f"{split}.tsv").write_text(header + "".join(rows), encoding="utf-8")


def _write_mer_caption(root: Path, n: int, clip) -> None:
    """MER-Caption+: track2 (OV labels), track3 (reasons), subtitles, video/{name}.mp4 + audio/{name}.wav"""
    ov, reasons, subs = ["name,openset\n"], ["name,reason\n"], ["name,chinese,english\n"]
    for i in range(n):
        name = f"sample_{i:08d}"
        clip(root / "MER-Caption+" / "video" / f"{name}.mp4", 70 + i)
        write_wav(root / "MER-Caption+" / "audio" / f"{name}.wav", seed=70 + i)
        ov.append(f"{name},\"['worried', 'nervous']\"\n" if i % 2 else f"{name},\"['happy']\"\n")
        reasons.append(f"{name},\"The person frowns and speaks quickly, so the state is tense ({i}).\"\n")
        subs.append(f"{name},你好,\"hello number {i}\"\n")
    for file, rows in (("track2_train_mercaptionplus.csv", ov), ("track3_train_mercaptionplus.csv", reasons), ("subtitle_chieng.csv", subs)):
        (root / "MER-Caption+" / file).write_text("".join(rows), encoding="utf-8")


def _write_merr_fine(root: Path, n: int, clip) -> None:
    """MERR-Fine: json keyed by sample + video/{sample}.mp4"""
    merr = {}
    for i in range(n):
        name = f"sample_{100 + i:08d}"
        clip(root / "MERR" / "video" / f"{name}.mp4", 80 + i)
        merr[name] = {"AU_list": ["AU04"], "visual_prior_list": ["Frowns furrowed"], "audio_prior_list": "a tense tone.",
                      "peak_index": "3", "peak_AU_list": ["AU04"], "pseu_emotion": EMOTIONS[i % 4], "text": f"sentence {i}",
                      "smp_reason_caption": f"The brows are lowered and the voice is tense, suggesting {EMOTIONS[i % 4]}."}  # fmt: skip
    _json(root / "MERR" / "MERR_fine_grained.json", merr)


def _write_avamerg(root: Path, n: int, clip) -> None:
    """AvaMERG: conversations with turns; media of each speaker turn dia{conv}utt{2*turn}_{speaker}.mp4/.wav"""
    conversations = []
    for c in range(max(1, n // 2)):
        turns = []
        history = []
        for t in range(2):
            history = history + [{"role": "speaker", "utterance": f"I feel uneasy about exam {c}-{t}."}]
            turns.append({
                "turn_id": str(t),
                "context": "anxious",
                "dialogue_history": list(history),
                "response": f"That sounds stressful; you prepared well for {c}-{t}.",
                "chain_of_empathy": {"event_scenario": "an upcoming exam", "speaker_emotion": "anxious",
                                     "emotion_cause": "fear of failing", "goal_to_response": "offer reassurance"},
            })  # fmt: skip
            clip(root / "AvaMERG" / "video" / f"dia{c}utt{2 * t}_spk{c}.mp4", 90 + 2 * c + t)
            write_wav(root / "AvaMERG" / "audio" / f"dia{c}utt{2 * t}_spk{c}.wav", seed=90 + 2 * c + t)
            history = history + [{"role": "listener", "utterance": turns[-1]["response"]}]
        conversations.append({"conversation_id": str(c), "speaker_profile": {"ID": f"spk{c}"}, "listener_profile": {"ID": "L"},
                              "topic": "study", "turns": turns})  # fmt: skip
    _json(root / "AvaMERG" / "train.json", conversations)


# --------------------------------------------------------------------------------------------------- learnable
#: one frame colour (RGB) and one tone pitch (Hz) per label of the learnable corpus
LABEL_COLOURS = ((220, 40, 40), (40, 200, 60), (50, 70, 230), (230, 210, 40), (200, 60, 210), (40, 210, 210))
LABEL_PITCHES = (220.0, 440.0, 660.0, 880.0, 1100.0, 1320.0)
_WORDS = ("the", "a", "we", "you", "went", "said", "home", "today", "really", "maybe", "there", "okay", "train", "late",
          "dinner", "again", "it", "is", "was", "not", "so", "very", "later", "call", "me", "tomorrow", "right", "now")
LEARNABLE_MARKER = "SYNTHETIC_LEARNABLE_MER"
#: the labels of the learnable corpus (none neutral: the MER hit rate skips references the wheels do not map)
EMOTIONS_LEARNABLE = ("angry", "happy", "sad", "worried", "surprise", "fear")
_WHEEL = (("Angry", "Mad", "Furious"), ("Happy", "Joyful", "Delighted"), ("Sad", "Lonely", "Grief"),
          ("Worried", "Anxious", "Nervous"), ("Surprise", "Amazed", "Astonished"), ("Fear", "Scared", "Terrified"))


def write_learnable_wheel_dir(folder) -> Path:
    """An emotion-wheel folder (wheel1..5.xlsx, synonym.xlsx, format.csv) with one category per learnable label, so
    the MER hit rate of ``mmaffect evaluate`` on the learnable corpus is its accuracy."""
    import pandas as pd

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(1, 6):
        pd.DataFrame(_WHEEL, columns=["level1", "level2", "level3"]).to_excel(folder / f"wheel{index}.xlsx", index=False)
    words = sorted(w.lower() for row in _WHEEL for w in row)
    pd.DataFrame({"word_run1": words, "synonym_run1": [None] * len(words)}).to_excel(folder / "synonym.xlsx", index=False)
    pd.DataFrame([(w, w) for w in words], columns=["name", "format"]).to_csv(folder / "format.csv", index=False)
    return folder


def _label_frames(label: int, rng: np.random.Generator, num_frames: int, size: int) -> np.ndarray:
    """Frames of one colour per label, with per-clip brightness jitter and pixel noise (no two clips alike)."""
    colour = np.asarray(LABEL_COLOURS[label], dtype=np.float64) * rng.uniform(0.8, 1.1)
    noise = rng.normal(0.0, 18.0, size=(num_frames, size, size, 3))
    return np.clip(colour + noise, 0, 255).astype(np.uint8)


def _label_tone(label: int, rng: np.random.Generator, seconds: float, sampling_rate: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * sampling_rate)) / sampling_rate
    pitch = LABEL_PITCHES[label] * rng.uniform(0.97, 1.03)
    wave = rng.uniform(0.15, 0.3) * np.sin(2 * np.pi * pitch * t + rng.uniform(0, 2 * np.pi)) + 0.02 * rng.standard_normal(t.size)
    return wave.astype(np.float32)


def _write_video(path: Path, frames: np.ndarray) -> None:
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        video = container.add_stream("mpeg4", rate=8)
        video.width, video.height = frames.shape[2], frames.shape[1]
        video.pix_fmt = "yuv420p"
        for frame in frames:
            for packet in video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)


def _write_labels(root: Path, corpora: dict[str, dict[str, str]]) -> None:
    # object arrays of dicts, as the MER-UniBench release stores them (read with the project's npz reader)
    np.savez(root / "label-6way.npz", **{key: np.array({n: {"emo": e} for n, e in rows.items()}, dtype=object)
                                         for key, rows in corpora.items()})  # fmt: skip


def make_learnable_corpus(root, train_per_label: int = 40, test_per_label: int = 10, num_labels: int = 4, seed: int = 0,
                          num_frames: int = 4, size: int = 32, seconds: float = 0.5) -> Path:
    """A MER2023 folder whose emotion is recoverable only from the media (idempotent for the same arguments).

    ``train_corpus`` (training) and ``test1_corpus`` (held out, drawn by the same process) of
    ``label-6way.npz``, ``transcription-engchi-polish.csv`` (random subtitles, independent of the label),
    ``video/{name}.mp4`` (frames of the label's colour, :data:`LABEL_COLOURS`, with noise; no audio track) and
    ``audio/{name}.wav`` (a tone at the label's pitch, :data:`LABEL_PITCHES`), and ``emotion_wheel/``
    (:func:`write_learnable_wheel_dir`, for ``--wheel-dir``).
    """
    import soundfile

    root = Path(root)
    if not 1 < num_labels <= len(EMOTIONS_LEARNABLE):
        raise ValueError(f"num_labels must be 2..{len(EMOTIONS_LEARNABLE)}, got {num_labels}")
    signature = json.dumps([train_per_label, test_per_label, num_labels, seed, num_frames, size, seconds])
    if (root / LEARNABLE_MARKER).is_file() and (root / LEARNABLE_MARKER).read_text(encoding="utf-8") == signature:
        return root
    rng = np.random.default_rng(seed)
    corpora, subtitles = {"train_corpus": {}, "test1_corpus": {}}, ["name,chinese,english\n"]
    for key, per_label, offset in (("train_corpus", train_per_label, 0), ("test1_corpus", test_per_label, 100000)):
        labels = rng.permutation(np.repeat(np.arange(num_labels), per_label))  # the split's order is not label-sorted
        for i, label in enumerate(labels):
            name = f"sample_{offset + i:08d}"
            corpora[key][name] = EMOTIONS_LEARNABLE[label]
            _write_video(root / "video" / f"{name}.mp4", _label_frames(int(label), rng, num_frames, size))
            (root / "audio").mkdir(parents=True, exist_ok=True)
            soundfile.write(str(root / "audio" / f"{name}.wav"), _label_tone(int(label), rng, seconds), 16000)
            words = rng.choice(_WORDS, size=int(rng.integers(3, 7)))
            subtitles.append(f"{name},,{' '.join(words).capitalize()}.\n")
    _write_labels(root, corpora)
    (root / "transcription-engchi-polish.csv").write_text("".join(subtitles), encoding="utf-8")
    write_learnable_wheel_dir(root / "emotion_wheel")
    (root / LEARNABLE_MARKER).write_text(signature, encoding="utf-8")
    return root


def derive_corpus(source, target, media: str = "shuffle", seed: int = 0) -> dict[str, str]:
    """A copy of a learnable corpus's held-out split with its media changed; returns ``{name: label of its media}``.

    ``media="shuffle"``: every test clip gets the video and audio of another test clip (a random permutation, so the
    labels stay as they were); ``"blank"``: black frames and silence for every clip (the returned labels are None).
    Only the held-out split (``test1_corpus``) and the emotion wheel are copied: a folder for ``mmaffect evaluate``.
    """
    import shutil

    from mmaffect.evaluation.benchmarks import _load_corpus

    source, target = Path(source), Path(target)
    if media not in ("shuffle", "blank"):
        raise ValueError(f"media must be 'shuffle' or 'blank', got {media!r}")
    test = {n: e["emo"] for n, e in _load_corpus(source / "label-6way.npz", "test1_corpus").items()}
    (target / "video").mkdir(parents=True, exist_ok=True)
    (target / "audio").mkdir(parents=True, exist_ok=True)
    shutil.copy2(source / "transcription-engchi-polish.csv", target / "transcription-engchi-polish.csv")
    if (source / "emotion_wheel").is_dir():
        shutil.copytree(source / "emotion_wheel", target / "emotion_wheel", dirs_exist_ok=True)
    _write_labels(target, {"test1_corpus": test})
    names = sorted(test)
    donors = [names[i] for i in np.random.default_rng(seed).permutation(len(names))]
    media_labels: dict[str, str] = {}
    for name, donor in zip(names, donors):
        if media == "shuffle":
            shutil.copy2(source / "video" / f"{donor}.mp4", target / "video" / f"{name}.mp4")
            shutil.copy2(source / "audio" / f"{donor}.wav", target / "audio" / f"{name}.wav")
            media_labels[name] = test[donor]
        else:
            import soundfile

            _write_video(target / "video" / f"{name}.mp4", np.zeros((4, 32, 32, 3), dtype=np.uint8))
            soundfile.write(str(target / "audio" / f"{name}.wav"), np.zeros(8000, dtype=np.float32), 16000)
            media_labels[name] = None
    return media_labels


__all__ = ["derive_corpus", "make_learnable_corpus", "make_synthetic_corpus", "write_clip", "write_learnable_wheel_dir", "write_frames", "write_wav"]
