"""Benchmark readers for evaluation: the test split of every benchmark of the paper, in its public
layout, as a ``datasets.Dataset`` with explicit ``Features`` and the media paths of each clip.

``load_eval_benchmark(name, data_dir)`` returns an :class:`EvalData` (the rows, the candidate labels the
prompt lists, the folders searched for media). Every row has ``id``, ``subtitle``, ``video``, ``audio``
(paths or None) and ``reference`` (the scored label: a string, a label list for OV-MERD, a float for
MSA); ERG rows add ``user_input``, ``dialogue_history`` and ``context``, ERI rows ``emotion``.

=========  =======================================  ===============================================
name       files in ``data_dir`` (public layout)     media
=========  =======================================  ===============================================
mer2023    ``label-6way.npz`` (``test1_corpus``),     ``video/{id}.mp4|.avi``, ``audio/{id}.wav``
           ``transcription-engchi-polish.csv``
mer2024    ``label-6way.npz`` (``test1_corpus``),     ``video/{id}.mp4|.avi``, ``audio/{id}.wav``
           ``transcription_merge.csv``
meld       ``label.npz`` (``test_corpus``, index of   ``subvideo/{id}.mp4``, ``subaudio/{id}.wav``
           anger joy sadness neutral disgust fear
           surprise), ``transcription-engchi-polish.csv``; or declare-lab's ``test_sent_emo.csv``
           (read by :func:`mmaffect.datasets_scripts.load_benchmark`) with clips under ``media_dir``
iemocap    ``label_4way.npz`` (``whole_corpus``; the  ``subvideo-tgt/{id}.avi``, ``subaudio/{id}.wav``
           test split is Session 5; happy sad neutral anger), ``transcription-engchi-polish.csv``
mosi       ``label.npz`` (``test_corpus``, ``val``),  ``subvideo/{id}.mp4``, ``subaudio/{id}.wav``
mosei      ``transcription-engchi-polish.csv``        ``subvideo_new/``, ``subaudio/``
sims                                                  ``video/``, ``audio/``
simsv2                                                ``video_new/``, ``audio/``
ovmerd     ``track2_train_ovmerd.csv`` (``name``,     ``video/video/{id}.mp4`` (or ``video/``),
           ``openset``), ``subtitle_chieng.csv``      ``audio/{id}.wav``
mintrec    MIntRec ``test.tsv`` or Nano-EmoX's         ``video/{id}.mp4``, ``audio/{id}.wav`` (or
mintrec2   ``test_MIntRec[2]_ann.json`` (read by       ``media_dir``; a clip's own audio track)
           :func:`~mmaffect.datasets_scripts.load_benchmark`)
avamerg    ``v_test_v5_0.json`` (last turn of each     ``test_video/{id}.mp4``, ``test_audio/{id}.wav``
           conversation; id ``dia{conv}utt{2*turn}_{speaker}``)
emer       ``gt-eng.csv`` (``names``, ``emotions``,   ``video/{id}.mp4``, ``audio/{id}.wav``
           ``subtitles``, ``reasons``)
=========  =======================================  ===============================================

These are the layouts (and folder names) of the MER-UniBench / AffectGPT and Nano-EmoX releases;
the readers follow their dataset classes: the same test names in the same order, the same label
decoding (MELD / IEMOCAP indices, the OV-MERD empty set read as ``neutral``, AvaMERG's emotion
projection), subtitles from the ``english`` column. When a clip has no separate audio file, its own
audio track is used. A missing label file, column or test row raises an error naming the file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datasets import Dataset, Features, List, Value

from mmaffect.datasets_scripts.labels import MINTREC2_INTENTS, MINTREC_INTENTS
from mmaffect.datasets_scripts.media import AUDIO_SUFFIXES, VIDEO_SUFFIXES, find_media
from mmaffect.datasets_scripts.reading import BenchmarkFormatError, read_subtitles
from mmaffect.metrics.emotion_wheel import string_to_label_list
from mmaffect.metrics.protocol import TASKS

#: MER-UniBench's MELD label indices (``meld.py``) and IEMOCAP-Four's (``iemocap.py``)
MELD_INDEX_EMOTIONS = ("anger", "joy", "sadness", "neutral", "disgust", "fear", "surprise")
IEMOCAP_INDEX_EMOTIONS = ("happy", "sad", "neutral", "anger")

#: AvaMERG's projection of free-text speaker emotions onto its label set (``avamerg_dataset.py``);
#: the official evaluation scores against the projected emotion.
AVAMERG_EMOTION_PROJECTION = {
    "conflicted": "anxious", "vulnerability": "afraid", "helplessness": "afraid", "sadness": "sad",
    "pensive": "sentimental", "frustration": "annoyed", "weary": "tired", "anxiety": "anxious",
    "reflective": "sentimental", "upset": "disappointed", "worried": "anxious", "fear": "afraid",
    "frustrated": "sad", "fatigue": "tired", "lost": "jealous", "disappointment": "disappointed",
    "nostalgia": "nostalgic", "exhaustion": "tired", "uneasy": "anxious", "loneliness": "lonely",
    "fragile": "afraid", "confused": "jealous", "vulnerable": "afraid", "thoughtful": "sentimental",
    "stressed": "anxious", "concerned": "anxious", "tiredness": "tired", "burdened": "anxious",
    "melancholy": "sad", "overwhelmed": "anxious", "worry": "anxious", "heavy-hearted": "sad",
    "melancholic": "sad", "nervous": "anxious", "fearful": "afraid", "stress": "anxious",
    "confusion": "anxious", "inadequacy": "ashamed", "regret": "guilty", "helpless": "afraid",
    "concern": "anxious", "exhausted": "tired", "overwhelm": "anxious", "tired": "tired",
    "disappointed": "sad", "surprised": "surprised", "excited": "happy", "angry": "angry",
    "proud": "happy", "annoyed": "angry", "grateful": "happy", "lonely": "sad", "afraid": "fear",
    "terrified": "fear", "guilty": "sad", "impressed": "surprised", "disgusted": "disgusted",
    "hopeful": "happy", "confident": "happy", "furious": "angry", "anxious": "sad",
    "anticipating": "happy", "joyful": "happy", "nostalgic": "sad", "prepared": "happy",
    "jealous": "contempt", "content": "happy", "devastated": "surprised", "embarrassed": "sad",
    "caring": "happy", "sentimental": "sad", "trusting": "happy", "ashamed": "sad",
    "apprehensive": "fear", "faithful": "happy",
}  # fmt: skip

class EvalDataError(ValueError):
    """A benchmark folder or file breaks its public layout; the message names the file."""


@dataclass
class EvalData:
    """One benchmark's test rows, ready for the harness.

    Attributes:
        benchmark: the :class:`EvalBenchmark` that read it.
        samples: ``datasets.Dataset`` with ``id``, ``subtitle``, ``video``, ``audio``, ``reference``
            (+ task columns).
        candidate_labels: the labels the task prompt offers (MER, MIR); empty otherwise.
        labels: the reference label set in the references' spelling (MIR), for label matching.
        source: the folder read.
        media_folders: where video / audio files were looked for (for error messages).
    """

    benchmark: "EvalBenchmark"
    samples: Dataset
    candidate_labels: tuple[str, ...] = ()
    source: str = ""
    media_folders: dict[str, list[str]] = field(default_factory=dict)
    labels: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.samples)


@dataclass(frozen=True)
class EvalBenchmark:
    """What the harness needs to know about one benchmark."""

    name: str
    title: str  # the paper's column title
    task: str  # mer | ovmer | msa | mir | erg | eri
    read: Callable[..., EvalData]
    release_dir: str  # folder name in the public releases (``--data-root`` discovery)
    aliases: tuple[str, ...] = ()


# --------------------------------------------------------------------------------------- helpers
def _require_dir(data_dir, title: str) -> Path:
    folder = Path(data_dir).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"{title} data_dir {folder} is not a folder")
    return folder


def _require_file(folder: Path, name: str, title: str) -> Path:
    path = folder / name
    if not path.is_file():
        found = sorted(p.name for p in folder.iterdir())[:20]
        raise FileNotFoundError(f"{title}: {path} does not exist (found {found})")
    return path


def _load_corpus(path: Path, key: str) -> dict:
    """``np.load(path)[key]`` of a MER-UniBench label file: ``{name: {"emo"|"val": ...}}``."""
    from mmaffect.untrusted import UnsafeFileError, load_npz, npz_names

    try:
        if key not in npz_names(path):
            raise EvalDataError(f"{path}: no array {key!r}; has {sorted(npz_names(path))}")
        corpus = load_npz(path, [key])[key].tolist()
    except (OSError, ValueError) as error:
        if isinstance(error, (EvalDataError, UnsafeFileError)):
            raise
        raise EvalDataError(f"{path}: not a readable .npz label file ({error})") from None
    if not isinstance(corpus, dict):
        raise EvalDataError(f"{path}: {key!r} holds a {type(corpus).__name__}, expected a dict name -> labels")
    return corpus


def _read_csv(path: Path, columns: Sequence[str]):
    import pandas as pd

    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as error:
        raise EvalDataError(f"{path}: not a readable CSV file ({error})") from None
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise EvalDataError(f"{path}: missing column(s) {missing}; columns: {list(frame.columns)}")
    return frame


def _text(value) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return str(value)


def _subtitles(path: Path) -> dict[str, str]:
    """``name`` -> the ``english`` column, as MER-UniBench's dataset classes read it (unstripped)."""
    try:
        return read_subtitles(path, ("english",), strip=False)
    except (BenchmarkFormatError, UnicodeDecodeError) as error:
        raise EvalDataError(str(error)) from None


def _subtitle_of(subtitles: dict[str, str], name: str, path: Path) -> str:
    if name not in subtitles:
        raise EvalDataError(f"{path}: no row for test sample {name!r}")
    return subtitles[name]


def _attach_media(rows: list[dict], video_dirs: Sequence[Path], audio_dirs: Sequence[Path],
                  video_suffixes: Sequence[str] = VIDEO_SUFFIXES) -> dict[str, list[str]]:
    """Set ``video`` / ``audio`` of every row (None when absent; audio falls back to the clip)."""
    for row in rows:
        row["video"] = find_media(video_dirs, [row["id"]], video_suffixes)
        row["audio"] = find_media(audio_dirs, [row["id"]], AUDIO_SUFFIXES) or row["video"]
    return {"video": [os.fspath(p) for p in video_dirs], "audio": [os.fspath(p) for p in audio_dirs]}


_BASE_FEATURES = {"id": Value("string"), "subtitle": Value("string"), "video": Value("string"), "audio": Value("string")}


def _dataset(rows: list[dict], reference: Any, title: str, **extra) -> Dataset:
    if not rows:
        raise EvalDataError(f"{title}: the test split has no rows")
    features = Features({**_BASE_FEATURES, "reference": reference, **extra})
    dataset = Dataset.from_dict({name: [row[name] for row in rows] for name in features}, features=features)
    dataset.info.description = f"{title} test split for evaluation (mmaffect.evaluation)"
    return dataset


def _media_dirs(root: Path, media_dir, names: Sequence[str]) -> list[Path]:
    base = Path(media_dir) if media_dir is not None else root
    return [base / name for name in names] + ([base] if media_dir is not None else [])


# --------------------------------------------------------------------------------------- readers
def _mer_unibench_discrete(label_file: str, corpus_key: str, transcript: str, video: Sequence[str],
                           audio: Sequence[str], index_emotions: Sequence[str] | None = None,
                           test_filter: Callable[[str], bool] | None = None):
    """MER2023 / MER2024 / MELD / IEMOCAP in the MER-UniBench layout (``emo``: a word or an index)."""

    def read(bench: EvalBenchmark, data_dir, media_dir=None) -> EvalData:
        root = _require_dir(data_dir, bench.title)
        label_path = _require_file(root, label_file, bench.title)
        corpus = _load_corpus(label_path, corpus_key)
        subtitles_path = _require_file(root, transcript, bench.title)
        subtitles = _subtitles(subtitles_path)

        def decode(name, entry):
            if not isinstance(entry, dict) or "emo" not in entry:
                raise EvalDataError(f"{label_path}: {corpus_key}[{name!r}] has no 'emo' ({entry!r})")
            emotion = entry["emo"]
            if index_emotions is not None and not isinstance(emotion, str):
                if not 0 <= int(emotion) < len(index_emotions):
                    raise EvalDataError(f"{label_path}: {name!r} has emotion index {emotion} outside 0..{len(index_emotions) - 1}")
                emotion = index_emotions[int(emotion)]
            return str(emotion)

        names = [str(name) for name in corpus if test_filter is None or test_filter(str(name))]
        rows = [{"id": name, "subtitle": _subtitle_of(subtitles, name, subtitles_path),
                 "reference": decode(name, corpus[name])} for name in names]
        if index_emotions is not None:
            candidates = tuple(index_emotions)
        else:  # the dataset class lists the train labels (a Python set: its order varies; sorted here)
            with_train = _load_corpus(label_path, "train_corpus") if _has_key(label_path, "train_corpus") else corpus
            candidates = tuple(sorted({decode(n, e) for n, e in with_train.items()}))
        folders = _attach_media(rows, _media_dirs(root, media_dir, video), _media_dirs(root, media_dir, audio))
        return EvalData(bench, _dataset(rows, Value("string"), bench.title), candidates, os.fspath(root), folders)

    return read


def _has_key(path: Path, key: str) -> bool:
    from mmaffect.untrusted import npz_names

    return key in npz_names(path)


def _read_meld(bench: EvalBenchmark, data_dir, media_dir=None) -> EvalData:
    """MER-UniBench's ``meld-process`` layout, or declare-lab's release (``test_sent_emo.csv``)."""
    root = _require_dir(data_dir, bench.title)
    if (root / "label.npz").is_file() or not (root / "test_sent_emo.csv").is_file():
        return _mer_unibench_discrete("label.npz", "test_corpus", "transcription-engchi-polish.csv",
                                      ("subvideo",), ("subaudio",), MELD_INDEX_EMOTIONS)(bench, root, media_dir)
    from mmaffect.datasets_scripts import load_benchmark

    split = load_benchmark("meld", root, keep_in_memory=True)["test"]
    labels = split.features["label"].names
    rows = [{"id": row["id"], "subtitle": row["text"], "reference": labels[row["label"]]} for row in split]
    folders = _attach_media(rows, _media_dirs(root, media_dir, ("video", "subvideo")), _media_dirs(root, media_dir, ("audio", "subaudio")))
    return EvalData(bench, _dataset(rows, Value("string"), bench.title), tuple(labels), os.fspath(root), folders)


def _mer_unibench_sentiment(video: str, audio: str):
    """CMU-MOSI / CMU-MOSEI / SIMS / SIMSv2: ``label.npz`` ``test_corpus`` ``{name: {"val": score}}``."""

    def read(bench: EvalBenchmark, data_dir, media_dir=None) -> EvalData:
        root = _require_dir(data_dir, bench.title)
        label_path = _require_file(root, "label.npz", bench.title)
        corpus = _load_corpus(label_path, "test_corpus")
        subtitles_path = _require_file(root, "transcription-engchi-polish.csv", bench.title)
        subtitles = _subtitles(subtitles_path)
        rows = []
        for name, entry in corpus.items():
            if not isinstance(entry, dict) or "val" not in entry:
                raise EvalDataError(f"{label_path}: test_corpus[{name!r}] has no 'val' ({entry!r})")
            try:
                value = float(entry["val"])
            except (TypeError, ValueError):
                raise EvalDataError(f"{label_path}: test_corpus[{name!r}]['val'] is not a number: {entry['val']!r}") from None
            rows.append({"id": str(name), "subtitle": _subtitle_of(subtitles, str(name), subtitles_path), "reference": value})
        folders = _attach_media(rows, _media_dirs(root, media_dir, (video,)), _media_dirs(root, media_dir, (audio,)))
        return EvalData(bench, _dataset(rows, Value("float64"), bench.title), (), os.fspath(root), folders)

    return read


def _read_ovmerd(bench: EvalBenchmark, data_dir, media_dir=None) -> EvalData:
    root = _require_dir(data_dir, bench.title)
    labels_path = _require_file(root, "track2_train_ovmerd.csv", bench.title)
    frame = _read_csv(labels_path, ("name", "openset"))
    subtitles_path = _require_file(root, "subtitle_chieng.csv", bench.title)
    subtitles = _subtitles(subtitles_path)
    rows = []
    for name, openset in zip(frame["name"], frame["openset"]):
        labels = string_to_label_list(_text(openset)) or ["neutral"]  # the dataset class's rule
        rows.append({"id": str(name), "subtitle": _subtitle_of(subtitles, str(name), subtitles_path), "reference": labels})
    folders = _attach_media(rows, _media_dirs(root, media_dir, ("video/video", "video")), _media_dirs(root, media_dir, ("audio",)))
    return EvalData(bench, _dataset(rows, List(Value("string")), bench.title), (), os.fspath(root), folders)


def _read_mintrec(bench: EvalBenchmark, data_dir, media_dir=None) -> EvalData:
    from mmaffect.datasets_scripts import load_benchmark

    root = _require_dir(data_dir, bench.title)
    split = load_benchmark(bench.name, root, keep_in_memory=True)["test"]
    labels = split.features["label"].names
    rows = [{"id": row["id"], "subtitle": row["text"], "reference": labels[row["label"]]} for row in split]
    folders = _attach_media(rows, _media_dirs(root, media_dir, ("video", "test")), _media_dirs(root, media_dir, ("audio", "test")))
    # the prompt lists the labels lower-cased, in the official order (Nano-EmoX's MIntRec dataset class)
    candidates = tuple(label.lower() for label in (MINTREC_INTENTS if bench.name == "mintrec" else MINTREC2_INTENTS))
    return EvalData(bench, _dataset(rows, Value("string"), bench.title), candidates, os.fspath(root), folders, tuple(labels))


_HISTORY = List({"role": Value("string"), "content": Value("string")})


def _read_avamerg(bench: EvalBenchmark, data_dir, media_dir=None) -> EvalData:
    root = _require_dir(data_dir, bench.title)
    path = _require_file(root, "v_test_v5_0.json", bench.title)
    try:
        conversations = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise EvalDataError(f"{path}: not valid JSON ({error.msg} at line {error.lineno})") from None
    if not isinstance(conversations, list):
        raise EvalDataError(f"{path}: expected a list of conversations, got {type(conversations).__name__}")
    rows, seen = [], set()
    for index, conversation in enumerate(conversations):
        where = f"{path}: conversation #{index}"
        try:
            conversation_id = conversation["conversation_id"]
            speaker_id = conversation["speaker_profile"]["ID"]
            turn = conversation["turns"][-1]  # the test sample is the last turn of each conversation
            turn_id = int(turn["turn_id"])
            history = turn["dialogue_history"]
            raw_emotion = turn["chain_of_empathy"]["speaker_emotion"]
        except (KeyError, IndexError, TypeError, ValueError) as error:
            raise EvalDataError(f"{where}: missing or malformed field ({type(error).__name__}: {error})") from None
        name = f"dia{conversation_id}utt{turn_id + turn_id}_{speaker_id}"
        if name in seen:
            raise EvalDataError(f"{where}: duplicate sample {name!r}")
        seen.add(name)
        if not isinstance(history, list) or not all(isinstance(t, dict) and "utterance" in t for t in history):
            raise EvalDataError(f"{where}: dialogue_history must be a list of {{'role', 'utterance'}} turns")
        past = history[:-1] if len(history) > 1 else []
        rows.append({
            "id": name,
            "subtitle": "",
            "user_input": str(history[-1]["utterance"]) if history else "",
            "dialogue_history": [{"role": "user" if str(t.get("role", "")).lower() in ("speaker", "user") else "assistant",
                                  "content": str(t["utterance"])} for t in past],
            "context": _text(turn.get("context")),
            "speaker_emotion": str(raw_emotion),
            "reference": AVAMERG_EMOTION_PROJECTION.get(raw_emotion, raw_emotion),
        })  # fmt: skip
    folders = _attach_media(rows, _media_dirs(root, media_dir, ("test_video",)), _media_dirs(root, media_dir, ("test_audio",)))
    samples = _dataset(rows, Value("string"), bench.title, user_input=Value("string"), dialogue_history=_HISTORY,
                       context=Value("string"), speaker_emotion=Value("string"))
    return EvalData(bench, samples, (), os.fspath(root), folders)


def _read_emer(bench: EvalBenchmark, data_dir, media_dir=None) -> EvalData:
    root = _require_dir(data_dir, bench.title)
    path = _require_file(root, "gt-eng.csv", bench.title)
    frame = _read_csv(path, ("names", "subtitles", "reasons"))
    emotions = frame["emotions"] if "emotions" in frame.columns else [""] * len(frame)
    rows = [{"id": str(name), "subtitle": _text(subtitle), "reference": _text(reason), "emotion": _text(emotion)}
            for name, subtitle, reason, emotion in zip(frame["names"], frame["subtitles"], frame["reasons"], emotions)]
    folders = _attach_media(rows, _media_dirs(root, media_dir, ("video",)), _media_dirs(root, media_dir, ("audio",)))
    return EvalData(bench, _dataset(rows, Value("string"), bench.title, emotion=Value("string")), (), os.fspath(root), folders)


# --------------------------------------------------------------------------------------- registry
def _session5(name: str) -> bool:
    return len(name) > 4 and name[4] == "5"  # Ses05...: the dataset class tests on the fifth session


EVAL_BENCHMARKS: dict[str, EvalBenchmark] = {
    bench.name: bench
    for bench in (
        EvalBenchmark("mer2023", "MER2023", "mer", _mer_unibench_discrete(
            "label-6way.npz", "test1_corpus", "transcription-engchi-polish.csv", ("video",), ("audio",)),
            "MER-UniBench/mer2023-dataset-process"),
        EvalBenchmark("mer2024", "MER2024", "mer", _mer_unibench_discrete(
            "label-6way.npz", "test1_corpus", "transcription_merge.csv", ("video",), ("audio",)),
            "MER-UniBench/mer2024-dataset-process"),
        EvalBenchmark("meld", "MELD", "mer", _read_meld, "MER-UniBench/meld-process"),
        EvalBenchmark("iemocap", "IEMOCAP", "mer", _mer_unibench_discrete(
            "label_4way.npz", "whole_corpus", "transcription-engchi-polish.csv", ("subvideo-tgt",), ("subaudio",),
            IEMOCAP_INDEX_EMOTIONS, _session5), "MER-UniBench/iemocap-process", ("iemocapfour", "iemocap-four")),
        EvalBenchmark("mosi", "MOSI", "msa", _mer_unibench_sentiment("subvideo", "subaudio"),
                      "MER-UniBench/cmumosi-process", ("cmumosi", "cmu-mosi")),
        EvalBenchmark("mosei", "MOSEI", "msa", _mer_unibench_sentiment("subvideo_new", "subaudio"),
                      "MER-UniBench/cmumosei-process", ("cmumosei", "cmu-mosei")),
        EvalBenchmark("sims", "SIMS", "msa", _mer_unibench_sentiment("video", "audio"), "MER-UniBench/sims-process"),
        EvalBenchmark("simsv2", "SIMSV2", "msa", _mer_unibench_sentiment("video_new", "audio"),
                      "MER-UniBench/simsv2-process", ("sims-v2", "simsv2.0")),
        EvalBenchmark("ovmerd", "OV-MERD", "ovmer", _read_ovmerd, "MER2025", ("ov-merd", "ov_merd")),
        EvalBenchmark("mintrec", "MIntRec", "mir", _read_mintrec, "MIntRec"),
        EvalBenchmark("mintrec2", "MIntRec 2.0", "mir", _read_mintrec, "MIntRec2", ("mintrec2.0", "mintrec-2")),
        EvalBenchmark("avamerg", "AvaMERG", "erg", _read_avamerg, "AvaMERG"),
        EvalBenchmark("emer", "EMER", "eri", _read_emer, "EMER"),
    )
}
_ALIASES = {alias: bench.name for bench in EVAL_BENCHMARKS.values() for alias in bench.aliases}


def get_eval_benchmark(name: str) -> EvalBenchmark:
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in EVAL_BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; choose one of {sorted(EVAL_BENCHMARKS)}")
    return EVAL_BENCHMARKS[key]


def load_eval_benchmark(name: str, data_dir: str | os.PathLike, media_dir: str | os.PathLike | None = None, *,
                        allow_outside_data_root: bool = False) -> EvalData:
    """The test split of benchmark ``name`` read from ``data_dir`` in its public layout (module doc).

    ``media_dir`` replaces ``data_dir`` as the root of the media sub-folders (and is searched itself).
    A sample id that makes a media path leave ``data_dir`` / ``media_dir`` (``../../x``, an absolute
    path) is an error unless ``allow_outside_data_root`` (docs/conventions.md, "Files from others").
    """
    from mmaffect.untrusted import confine

    bench = get_eval_benchmark(name)
    data = bench.read(bench, data_dir, media_dir)
    samples = data.samples
    for row, (sample_id, video, audio) in enumerate(zip(samples["id"], samples["video"], samples["audio"]), start=1):
        for path in (video, audio):
            confine(path, (data.source, media_dir), where=f"{data.source}: {bench.title} test row {row} (sample id {sample_id!r})",
                    allow_outside=allow_outside_data_root)
    return data


def discover_data_dirs(data_root: str | os.PathLike) -> dict[str, Path]:
    """Benchmarks found under ``data_root`` by their release folder names (``MER-UniBench/...``,
    ``MER2025``, ``MIntRec``, ``AvaMERG``, ``EMER``; also the last path part or the short name)."""
    root = Path(data_root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"--data-root {root} is not a folder")
    found = {}
    for bench in EVAL_BENCHMARKS.values():
        for candidate in (root / bench.release_dir, root / Path(bench.release_dir).name, root / bench.name):
            if candidate.is_dir():
                found[bench.name] = candidate
                break
    return found


__all__ = [
    "AVAMERG_EMOTION_PROJECTION", "EVAL_BENCHMARKS", "EvalBenchmark", "EvalData", "EvalDataError",
    "IEMOCAP_INDEX_EMOTIONS", "MELD_INDEX_EMOTIONS", "TASKS", "discover_data_dirs", "get_eval_benchmark",
    "load_eval_benchmark",
]
