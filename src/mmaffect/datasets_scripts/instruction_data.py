"""P2E instruction data: every training set, read in its own published layout, as one chat format.

Nano-EmoX learns five tasks, each marked by an identifier at the start of the instruction (supplement D,
Table 1): ``[Recognition]`` MER, ``[Recog_OV]`` OV-MER, ``[Inference]`` ERI, ``[Intent]`` MIR and ``[Interaction]``
ERG. A reader turns one dataset into :class:`InstructionRecord` s - task, answer, candidate labels, subtitle,
dialogue context, media paths and the modalities the prompt uses - and :class:`P2ECollator` turns a batch of
records into model inputs with the model's processor (chat template, placeholder tokens, frames, 16 kHz audio,
face crops; labels on the answer only). :func:`to_chat_record` writes the same sample as a plain chat record
(``{"messages": [...], "videos": [...], "audios": [...]}``, the format of the Nano-EmoX release).

Answers (the paper gives templates for the instructions, not for the answers; the release's chat records answer
with the bare label, e.g. CREMA-D ``"anger"``, MIntRec ``"Inform"``, so that is the default):

=========  ========================================================================================
MER        the label (``"sadness"``)
OV-MER     the labels joined by ``", "`` (``"worried, nervous"``)
ERI        the dataset's explanation text
MIR        the intent label (``"Complain"``)
ERG        ``<think>`` + the four Chain-of-Empathy steps (event scenario, the user's emotion, its cause, the
           goal of the reply; supplement D) + ``</think>`` + the reply
=========  ========================================================================================

Readers (``READERS``; each ``reader(path, *, split="train", media_dir=None, tasks=None, **options)``):

===================  ==================================================================================
``meld``             MELD ``{split}_sent_emo.csv`` (via ``mmaffect.load_benchmark``) -> MER
``mintrec``          MIntRec ``{split}.tsv`` or Nano-EmoX ``{split}_MIntRec_ann.json`` -> MIR
``mintrec2``         MIntRec2.0 ``{split}.tsv`` or ``{split}_MIntRec2_ann.json`` -> MIR
``crema_d``          Nano-EmoX ``crema_d_annotations.json``, or a folder of ``{actor}_{sentence}_{EMO}_{lvl}.wav``
``m3ed``             M3ED ``annotation.json`` (+ ``splitInfo/movie_list_{split}.txt``), or chat records -> MER
``caer``             CAER ``{split}/{Emotion}/{clip}.avi`` -> MER (video)
``ferv39k``          FERV39k ``4_setups/All_scenes/{split}_All.csv`` + ``2_ClipsforFaceCrop/`` frame folders
``mer_caption_plus`` MER-Caption+ ``track2_train_mercaptionplus.csv`` (OV labels), ``track3_...csv`` (reasons),
                     ``subtitle_chieng.csv`` -> OV-MER, ERI
``ovmerd``           OV-MERD, the same layout with ``ovmerd`` file names -> OV-MER, ERI
``merr_fine``        MERR-Fine ``MERR_fine_grained.json`` -> ERI (and OV-MER from the pseudo label)
``emer``             EMER ``gt-eng.csv`` -> ERI (and OV-MER)
``avamerg``          AvaMERG conversation JSON (``turns`` with ``dialogue_history``, ``response``,
                     ``chain_of_empathy``) -> ERG, and MER on the speaker's emotion
``mer2023``          MER-UniBench layout: ``label-6way.npz`` + ``transcription-engchi-polish.csv`` -> MER
``mer2024``          the same with ``transcription_merge.csv``
``iemocap``          ``IEMOCAP_full_release`` (``Session*/dialog/EmoEvaluation``) or MER-UniBench
                     ``label_4way.npz`` -> MER
``mosi`` ``mosei``   MMSA ``label.csv`` + ``Raw/{video_id}/{clip_id}.mp4`` or MER-UniBench ``label.npz`` ->
``sims`` ``simsv2``  sentiment as MER with candidates positive / negative / neutral (MSA is not trained in
                     P2E; these serve zero-shot evaluation)
``chat``             any file of chat records (``messages`` + ``videos``/``audios``), e.g. the release's
                     ``caer_ferv39k_ann.json`` or ``m3ed_annotaton.json``
===================  ==================================================================================

Media: readers look files up under ``media_dir`` (or the layout's own media folder) and record their paths;
``on_missing_media="error"`` (default) stops with the list of missing files, ``"skip"`` drops those records with
a warning, ``"keep"`` keeps them without media (then only a text-only prompt, modalities ``"T"``, can use them).
A record whose video is a folder holds extracted frames (FERV39k); audio missing but a video present means the
video's own audio track.
"""

from __future__ import annotations

import ast
import json
import os
import re
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmaffect.datasets_scripts.labels import MELD_SENTIMENTS
from mmaffect.datasets_scripts.media import AUDIO_SUFFIXES, IMAGE_SUFFIXES, VIDEO_SUFFIXES, MissingMediaWarning, find_media
from mmaffect.datasets_scripts.reading import BenchmarkFormatError, read_csv_rows, read_subtitles
from mmaffect.models.nano_emox.processing_nano_emox import TASKS
from mmaffect.untrusted import confine, load_npz, npz_names

SENTIMENT_LABELS = ("positive", "negative", "neutral")
# Candidate lists of the public Nano-EmoX code for the phase-1 sets.
SEVEN_BASIC_EMOTIONS = ("anger", "disgust", "fear", "happy", "neutral", "sad", "surprise")
CREMA_D_EMOTIONS = {"ANG": "anger", "DIS": "disgust", "FEA": "fear", "HAP": "happy", "NEU": "neutral", "SAD": "sad"}
FERV39K_LABELS = ("Happy", "Sad", "Neutral", "Angry", "Surprise", "Disgust", "Fear")  # index order of the csv files
IEMOCAP_CODES = {
    "neu": "neutral", "hap": "happy", "exc": "excited", "sad": "sad", "ang": "angry", "fru": "frustrated",
    "sur": "surprised", "fea": "fearful", "dis": "disgusted", "oth": "other", "xxx": "undecided",
}  # fmt: skip
ON_MISSING_MEDIA = ("error", "skip", "keep")
# Chain of Empathy, supplement D: the four steps of the [Interaction] reasoning.
CHAIN_OF_EMPATHY_STEPS = (
    ("event_scenario", "First, the event scenario of the ongoing dialogue: {}"),
    ("speaker_emotion", "Secondly, the user's implicit and explicit emotion: {}"),
    ("emotion_cause", "Thirdly, the underlying reason for the user's emotion: {}"),
    ("goal_to_response", "Fourthly, the goal of my response: {}"),
)


@dataclass
class InstructionRecord:
    """One training sample in the unified P2E format.

    Attributes:
        id: unique within its dataset (``"dia3_utt1"``, ``"sample_00000023"``, ``"conv12_turn2"``).
        dataset: reader name (``"meld"``...).
        task: ``MER``, ``OV-MER``, ``ERI``, ``MIR`` or ``ERG``.
        answer: the target text (see the module docstring).
        candidate_labels: listed in the MER / MIR instruction; None for open questions.
        subtitle: transcript of the clip (or None).
        user_input: the user's current utterance (ERG).
        dialogue_history: earlier turns as ``{"role": "user"|"assistant", "content": ...}`` (ERG).
        video: path of the clip, or of a folder of extracted frames; None without video.
        audio: path of the audio file; None means the video's own audio track (or no audio).
        modalities: the branches the prompt uses, as letters: ``A`` audio, ``V`` video frames, ``F`` face,
            ``M`` fusion (``"AVFM"`` all; ``"A"`` speech only; ``"T"`` text only).
        instruction: replaces the task template when set (keep the task identifier in it).
        meta: anything else the dataset carries (raw label, valence, speaker...).
    """

    id: str
    dataset: str
    task: str
    answer: str
    candidate_labels: list[str] | None = None
    subtitle: str | None = None
    user_input: str | None = None
    dialogue_history: list[dict[str, str]] | None = None
    video: str | None = None
    audio: str | None = None
    modalities: str = "AVFM"
    instruction: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"record {self.dataset}/{self.id}: unknown task {self.task!r}; expected one of {TASKS}")
        if not isinstance(self.answer, str) or not self.answer.strip():
            raise ValueError(f"record {self.dataset}/{self.id}: empty answer for task {self.task}")

    @property
    def uid(self) -> str:
        return f"{self.dataset}/{self.task}/{self.id}"

    def needs(self) -> set[str]:
        """Media the prompt needs: ``{"video", "audio"}`` subsets (fusion needs both, face needs the video)."""
        letters = set(self.modalities.upper()) - {"T"}
        need = set()
        if letters & {"V", "F", "M"}:
            need.add("video")
        if letters & {"A", "M"}:
            need.add("audio")
        return need


# ----------------------------------------------------------------------------------------------------
# Prompt building
# ----------------------------------------------------------------------------------------------------
def record_messages(record: InstructionRecord, processor, with_answer: bool = True) -> list[dict[str, str]]:
    """Chat messages of one record with the model's processor (placeholders, templates, identifiers)."""
    return processor.build_messages(
        record.task,
        modalities=record.modalities,
        subtitle=record.subtitle,
        candidate_labels=record.candidate_labels,
        instruction=record.instruction,
        user_input=record.user_input,
        dialogue_history=record.dialogue_history,
        answer=record.answer if with_answer else None,
    )


def to_chat_record(record: InstructionRecord, processor=None, identifier_style: str = "paper") -> dict[str, Any]:
    """The record as a plain chat record: ``{"id", "dataset", "task", "messages", "videos", "audios"}``.

    With a ``processor`` the user turn is exactly the training prompt (placeholders included); without one it is
    the task instruction plus subtitle / user input (the release's chat-record style)."""
    if processor is not None:
        messages = record_messages(record, processor)
    else:
        from mmaffect.models.nano_emox.processing_nano_emox import format_task_instruction

        instruction = record.instruction or format_task_instruction(record.task, record.candidate_labels, identifier_style)
        parts = [f"The subtitle of this video is: {record.subtitle}." if record.subtitle else "", record.user_input or "", instruction]
        messages = list(record.dialogue_history or [])
        messages += [{"role": "user", "content": " ".join(p for p in parts if p)}, {"role": "assistant", "content": record.answer}]
    return {
        "id": record.id,
        "dataset": record.dataset,
        "task": record.task,
        "messages": messages,
        "videos": [record.video] if record.video else [],
        "audios": [record.audio] if record.audio else [],
    }


def write_chat_jsonl(records: Iterable[InstructionRecord], path, processor=None) -> int:
    """Write records as chat-record JSON lines; returns the count."""
    count = 0
    with open(path, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(to_chat_record(record, processor), ensure_ascii=False) + "\n")
            count += 1
    return count


def chain_of_empathy_answer(steps: Mapping[str, str], response: str, where: str = "") -> str:
    """``<think>`` four Chain-of-Empathy steps ``</think>`` + reply (the [Interaction] target, supplement D)."""
    missing = [key for key, _ in CHAIN_OF_EMPATHY_STEPS if not str(steps.get(key) or "").strip()]
    if missing:
        raise ValueError(f"{where}chain_of_empathy lacks {missing} (needs {[k for k, _ in CHAIN_OF_EMPATHY_STEPS]})")
    lines = [template.format(str(steps[key]).strip()) for key, template in CHAIN_OF_EMPATHY_STEPS]
    return "<think>\n" + "\n".join(lines) + "\n</think>\n" + response.strip()


# ----------------------------------------------------------------------------------------------------
# Helpers shared by the readers
# ----------------------------------------------------------------------------------------------------
def _require_file(path, what: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what}: file {path} does not exist")
    return path


def _require_dir(path, what: str) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{what}: folder {path} does not exist")
    return path


def _read_json(path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as error:
        raise BenchmarkFormatError(path, error.lineno, "invalid JSON", detail=error.msg) from None


def parse_label_list(value: Any) -> list[str]:
    """``"['happy', 'excited']"`` / ``"happy, excited"`` / a list -> ``["happy", "excited"]`` (OV label sets)."""
    if isinstance(value, (list, tuple)):
        items = list(value)
    else:
        text = str(value or "").strip()
        if text.startswith("[") and text.endswith("]"):
            try:
                items = list(ast.literal_eval(text))
            except (ValueError, SyntaxError):
                items = text[1:-1].split(",")
        else:
            items = re.split(r"[,;，、]", text)
    labels = []
    for item in items:
        label = str(item).strip().strip("'\"").strip()
        if label and label.lower() not in {x.lower() for x in labels}:
            labels.append(label)
    return labels


def _apply_media_policy(records: list[InstructionRecord], reader: str, policy: str, searched: Any) -> list[InstructionRecord]:
    """Enforce ``on_missing_media`` for records whose prompt needs media they do not have."""
    if policy not in ON_MISSING_MEDIA:
        raise ValueError(f"on_missing_media must be one of {ON_MISSING_MEDIA}, got {policy!r}")
    lacking = []
    for record in records:
        need = record.needs()
        has = set()
        if record.video:
            has.add("video")
        if record.audio or record.video:
            has.add("audio")
        if need - has:
            lacking.append((record, sorted(need - has)))
    if not lacking:
        return records
    examples = [f"{r.id} (no {', '.join(m)})" for r, m in lacking[:5]]
    message = f"{reader}: {len(lacking)} of {len(records)} records lack media their prompt needs in {searched}, e.g. {examples}"
    if policy == "error":
        raise FileNotFoundError(message + "; pass media_dir, or on_missing_media='skip' / 'keep'")
    warnings.warn(message + ("; dropped" if policy == "skip" else "; kept without media"), MissingMediaWarning, stacklevel=3)
    if policy == "skip":
        bad = {id(r) for r, _ in lacking}
        return [r for r in records if id(r) not in bad]
    return records


def _select_tasks(tasks: Sequence[str] | str | None, offered: Sequence[str], default: Sequence[str], reader: str) -> list[str]:
    if tasks is None:
        return list(default)
    tasks = [tasks] if isinstance(tasks, str) else list(tasks)
    unknown = [t for t in tasks if t not in offered]
    if unknown:
        raise ValueError(f"reader {reader!r} offers tasks {list(offered)}, not {unknown}")
    return tasks


def _check_split(split: str, allowed: Sequence[str], reader: str) -> str:
    if split not in allowed:
        raise ValueError(f"reader {reader!r}: split must be one of {list(allowed)}, got {split!r}")
    return split


# ----------------------------------------------------------------------------------------------------
# Readers: benchmarks with loaders (MELD, MIntRec, MIntRec2.0)
# ----------------------------------------------------------------------------------------------------
def _from_benchmark(name: str, task: str, path, split: str, media_dir, modalities: str, on_missing_media: str) -> list[InstructionRecord]:
    from mmaffect.datasets_scripts import LABELS, load_benchmark

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingMediaWarning)  # the media policy is applied below, once
        dataset = load_benchmark(name, path, media_dir=media_dir, keep_in_memory=True)
    if split not in dataset:
        raise ValueError(f"{name}: split {split!r} is not in {Path(path)} (splits: {list(dataset)})")
    labels = list(LABELS[name])
    rows = dataset[split]
    records = []
    for row in rows:
        meta = {k: v for k, v in row.items() if k not in {"id", "text", "label", "video", "audio"}}
        if name == "meld":
            meta["sentiment"] = MELD_SENTIMENTS[meta["sentiment"]] if isinstance(meta.get("sentiment"), int) else meta.get("sentiment")
        records.append(
            InstructionRecord(
                id=row["id"],
                dataset=name,
                task=task,
                answer=labels[row["label"]],
                candidate_labels=labels,
                subtitle=row["text"],
                video=row.get("video"),
                audio=row.get("audio"),
                modalities=modalities,
                meta=meta,
            )
        )
    return _apply_media_policy(records, name, on_missing_media, media_dir)


def read_meld(path, *, split="train", media_dir=None, tasks=None, modalities="AVFM", on_missing_media="error", **_):
    """MELD ``{train,dev,test}_sent_emo.csv`` (declare-lab release) -> MER over the 7 MELD emotions."""
    _select_tasks(tasks, ["MER"], ["MER"], "meld")
    return _from_benchmark("meld", "MER", path, split, media_dir, modalities, on_missing_media)


def read_mintrec(path, *, split="train", media_dir=None, tasks=None, modalities="AVFM", on_missing_media="error", **_):
    """MIntRec ``{split}.tsv`` or the Nano-EmoX ``{split}_MIntRec_ann.json`` -> MIR over the 20 intents."""
    _select_tasks(tasks, ["MIR"], ["MIR"], "mintrec")
    return _from_benchmark("mintrec", "MIR", path, split, media_dir, modalities, on_missing_media)


def read_mintrec2(path, *, split="train", media_dir=None, tasks=None, modalities="AVFM", on_missing_media="error", **_):
    """MIntRec2.0 ``{split}.tsv`` (in-scope) or ``{split}_MIntRec2_ann.json`` -> MIR over the 30 intents."""
    _select_tasks(tasks, ["MIR"], ["MIR"], "mintrec2")
    return _from_benchmark("mintrec2", "MIR", path, split, media_dir, modalities, on_missing_media)


# ----------------------------------------------------------------------------------------------------
# Chat records (Nano-EmoX release style)
# ----------------------------------------------------------------------------------------------------
def _chat_items(path) -> list[tuple[str, dict]]:
    """``(where, record)`` of a JSON array of chat records; ``where`` is ``"record #i"`` for error messages.
    (``json.loads`` once: line-accurate parsing is quadratic on the multi-MB release files.)"""
    path = _require_file(path, "chat records")
    data = _read_json(path)
    if not isinstance(data, list):
        raise BenchmarkFormatError(path, 1, "chat records must be a JSON array", type(data).__name__)
    return [(f"record #{i}", item) for i, item in enumerate(data)]


def _chat_pair(path, where: str, item: Any) -> tuple[str, str, list[str], list[str]]:
    if not isinstance(item, dict) or not isinstance(item.get("messages"), list):
        raise BenchmarkFormatError(path, None, f"{where}: chat record without a 'messages' list", str(item)[:120])
    user = next((m.get("content") for m in item["messages"] if isinstance(m, dict) and m.get("role") == "user"), None)
    answer = next((m.get("content") for m in item["messages"] if isinstance(m, dict) and m.get("role") == "assistant"), None)
    if not isinstance(user, str) or not isinstance(answer, str) or not answer.strip():
        raise BenchmarkFormatError(path, None, f"{where}: chat record needs a user and a non-empty assistant message", str(item)[:120])
    videos = [v for v in item.get("videos") or [] if isinstance(v, str)]
    audios = [a for a in item.get("audios") or [] if isinstance(a, str)]
    return user, answer, videos, audios


def _stem(release_path: str) -> str:
    return Path(release_path.replace("\\", "/")).stem


def read_chat(
    path,
    *,
    split="train",
    media_dir=None,
    tasks=None,
    task="MER",
    candidate_labels=None,
    modalities=None,
    on_missing_media="error",
    dataset_name="chat",
    **_,
):
    """Chat records ``[{"messages": [user, assistant], "videos"|"audios": [path]}]`` (Nano-EmoX release).

    The user message is the subtitle, the assistant message the answer. The media paths of the release point to
    the authors' disk: files are looked up by name under ``media_dir`` (the path itself is used when it exists).
    ``candidate_labels="auto"`` lists the sorted distinct answers."""
    task = _select_tasks(tasks, TASKS, [task], "chat")[0]
    items = _chat_items(path)
    media_root = Path(media_dir) if media_dir else None
    parsed = []
    for where, item in items:
        user, answer, videos, audios = _chat_pair(path, where, item)
        parsed.append((where, user, answer, videos, audios))
    if candidate_labels == "auto":
        candidate_labels = sorted({answer.strip() for _, _, answer, _, _ in parsed})
    records, seen = [], set()
    for where, user, answer, videos, audios in parsed:
        source = (videos or audios or [where.replace(" #", "")])[0]
        stem = _stem(source)
        if stem in seen:
            raise BenchmarkFormatError(path, None, f"{where}: duplicate sample", stem)
        seen.add(stem)
        video = audio = None
        if videos:
            video = videos[0] if Path(videos[0]).is_file() else find_media([media_root], [stem], VIDEO_SUFFIXES)
        if audios:
            audio = audios[0] if Path(audios[0]).is_file() else find_media([media_root], [stem], AUDIO_SUFFIXES)
        mods = modalities or ("AVFM" if videos else "A")
        records.append(
            InstructionRecord(
                id=stem, dataset=dataset_name, task=task, answer=answer.strip(), candidate_labels=candidate_labels,
                subtitle=user.strip() or None, video=video, audio=audio, modalities=mods,
            )
        )  # fmt: skip
    return _apply_media_policy(records, dataset_name, on_missing_media, media_dir)


# ----------------------------------------------------------------------------------------------------
# Phase-1 speech sets: CREMA-D, M3ED
# ----------------------------------------------------------------------------------------------------
def read_crema_d(path, *, split="train", media_dir=None, tasks=None, modalities="A", on_missing_media="error", **_):
    """CREMA-D: the Nano-EmoX ``crema_d_annotations.json`` (chat records with ``audios``), or the published
    ``AudioWAV`` folder whose file names ``{ActorID}_{Sentence}_{EMO}_{Level}.wav`` carry the emotion
    (ANG DIS FEA HAP NEU SAD). No official split: everything is ``train``. -> MER (speech only)."""
    _select_tasks(tasks, ["MER"], ["MER"], "crema_d")
    _check_split(split, ["train"], "crema_d")
    path = Path(path)
    candidates = list(CREMA_D_EMOTIONS.values())
    if path.is_file():
        with warnings.catch_warnings():  # the media policy is applied below, once
            warnings.simplefilter("ignore", MissingMediaWarning)
            records = read_chat(path, media_dir=media_dir, task="MER", candidate_labels=candidates, modalities=modalities,
                                on_missing_media="keep", dataset_name="crema_d")  # fmt: skip
        for record in records:
            if record.answer not in candidates:
                raise BenchmarkFormatError(path, None, "unknown CREMA-D emotion", record.answer, detail=f"expected {candidates}")
            record.subtitle = None  # the release's user turn is empty
        return _apply_media_policy(records, "crema_d", on_missing_media, media_dir)
    folder = _require_dir(path, "CREMA-D AudioWAV")
    records = []
    for wav in sorted(folder.glob("*.wav")):
        parts = wav.stem.split("_")
        if len(parts) != 4 or parts[2] not in CREMA_D_EMOTIONS:
            raise BenchmarkFormatError(wav, None, "CREMA-D file name is not {ActorID}_{Sentence}_{EMO}_{Level}.wav", wav.name)
        records.append(
            InstructionRecord(
                id=wav.stem, dataset="crema_d", task="MER", answer=CREMA_D_EMOTIONS[parts[2]], candidate_labels=candidates,
                audio=os.fspath(wav), modalities=modalities, meta={"actor": parts[0], "sentence": parts[1], "level": parts[3]},
            )
        )  # fmt: skip
    if not records:
        raise FileNotFoundError(f"CREMA-D: no .wav files in {folder}")
    return records


def read_m3ed(path, *, split="train", media_dir=None, tasks=None, modalities="A", on_missing_media="error", **_):
    """M3ED: the official ``annotation.json`` (``{movie: {clip: {"SpeakerInfo", "Dialog": {utt_id: {"Speaker",
    "Text", "EmoAnnotation": {"final_main_emo"}}}}}}``) with ``splitInfo/movie_list_{train,val,test}.txt`` next to
    it, audio ``{media_dir}/{speaker}_{utt_id}.wav`` (default ``modality_speech/``); or chat records (the public
    code's ``m3ed_annotaton.json``). -> MER (speech only; the subtitle is the Chinese transcript)."""
    _select_tasks(tasks, ["MER"], ["MER"], "m3ed")
    path = _require_file(path, "M3ED annotation")
    data = _read_json(path)
    if isinstance(data, list):
        return read_chat(path, media_dir=media_dir, task="MER", candidate_labels="auto", modalities=modalities,
                         on_missing_media=on_missing_media, dataset_name="m3ed")  # fmt: skip
    _check_split(split, ["train", "validation", "test"], "m3ed")
    split_file = path.parent / "splitInfo" / f"movie_list_{ {'validation': 'val'}.get(split, split) }.txt"
    movies = {line.strip() for line in _require_file(split_file, "M3ED split list").read_text(encoding="utf-8").splitlines() if line.strip()}
    speech_dir = Path(media_dir) if media_dir else path.parent / "modality_speech"
    rows = []
    for movie, clips in data.items():
        if movie not in movies:
            continue
        if not isinstance(clips, dict):
            raise BenchmarkFormatError(path, None, f"movie {movie!r} is not an object of dialogues", type(clips).__name__)
        for clip_id, clip in clips.items():
            dialog = clip.get("Dialog") if isinstance(clip, dict) else None
            if not isinstance(dialog, dict):
                raise BenchmarkFormatError(path, None, f"{movie}/{clip_id} has no 'Dialog' object", str(clip)[:80])
            for utt_id, utt in dialog.items():
                try:
                    emotion = utt["EmoAnnotation"]["final_main_emo"]
                except (KeyError, TypeError):
                    raise BenchmarkFormatError(path, None, f"{movie}/{clip_id}/{utt_id} has no EmoAnnotation.final_main_emo", str(utt)[:80]) from None
                rows.append((utt_id, str(utt.get("Speaker", "")), str(utt.get("Text", "")).strip(), str(emotion).strip().lower(), movie))
    if not rows:
        raise ValueError(f"M3ED {split}: no utterance of the movies in {split_file} found in {path}")
    labels = sorted({row[3] for row in rows})
    records = []
    for utt_id, speaker, text, emotion, movie in rows:
        audio = find_media([speech_dir], [f"{speaker}_{utt_id}", utt_id], AUDIO_SUFFIXES)
        records.append(
            InstructionRecord(
                id=utt_id, dataset="m3ed", task="MER", answer=emotion, candidate_labels=labels, subtitle=text or None,
                audio=audio, modalities=modalities, meta={"movie": movie, "speaker": speaker},
            )
        )  # fmt: skip
    return _apply_media_policy(records, "m3ed", on_missing_media, speech_dir)


# ----------------------------------------------------------------------------------------------------
# Phase-1 visual sets: CAER, FERV39k
# ----------------------------------------------------------------------------------------------------
_CAER_SPLITS = {"train": ("train",), "validation": ("validation", "val"), "test": ("test",)}


def read_caer(path, *, split="train", media_dir=None, tasks=None, modalities="VF", on_missing_media="error", **_):
    """CAER (video): ``{root}/{train,validation,test}/{Anger,Disgust,Fear,Happy,Neutral,Sad,Surprise}/{clip}.avi``.
    The class folder is the label (lower-cased, CAER's ``Anger`` -> ``anger``). -> MER (frames + faces)."""
    _select_tasks(tasks, ["MER"], ["MER"], "caer")
    _check_split(split, list(_CAER_SPLITS), "caer")
    root = _require_dir(path, "CAER")
    split_dir = next((root / name for name in _CAER_SPLITS[split] if (root / name).is_dir()), None)
    if split_dir is None:
        raise FileNotFoundError(f"CAER: no {_CAER_SPLITS[split]} folder in {root}")
    records = []
    for class_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
        label = class_dir.name.lower()
        if label not in SEVEN_BASIC_EMOTIONS:
            raise BenchmarkFormatError(class_dir, None, "unknown CAER emotion folder", class_dir.name, detail=f"expected {SEVEN_BASIC_EMOTIONS}")
        for clip in sorted(class_dir.iterdir()):
            if clip.suffix.lower() in VIDEO_SUFFIXES:
                records.append(
                    InstructionRecord(
                        id=f"{class_dir.name}/{clip.stem}", dataset="caer", task="MER", answer=label,
                        candidate_labels=list(SEVEN_BASIC_EMOTIONS), video=os.fspath(clip), modalities=modalities,
                    )
                )  # fmt: skip
    if not records:
        raise FileNotFoundError(f"CAER {split}: no video clips under {split_dir}")
    return records


def read_ferv39k(path, *, split="train", media_dir=None, tasks=None, modalities="VF", on_missing_media="error", **_):
    """FERV39k: ``4_setups/All_scenes/{train,test}_All.csv`` (space separated ``clip_path label_index``, labels
    Happy Sad Neutral Angry Surprise Disgust Fear) and frame folders under ``2_ClipsforFaceCrop/{clip_path}``
    (``media_dir`` overrides; a video file ``{clip_path}.mp4`` works too). -> MER (frames + faces)."""
    _select_tasks(tasks, ["MER"], ["MER"], "ferv39k")
    _check_split(split, ["train", "test"], "ferv39k")
    root = _require_dir(path, "FERV39k")
    table = _require_file(root / "4_setups" / "All_scenes" / f"{split}_All.csv", "FERV39k split")
    clips_root = Path(media_dir) if media_dir else root / "2_ClipsforFaceCrop"
    mapping = {"Angry": "anger", "Happy": "happy", "Sad": "sad", "Neutral": "neutral", "Surprise": "surprise", "Disgust": "disgust", "Fear": "fear"}
    records, seen = [], set()
    for line, text in enumerate(table.read_text(encoding="utf-8-sig").splitlines(), start=1):
        if not text.strip():
            continue
        parts = text.strip().split()
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit() or not 0 <= int(parts[1]) < len(FERV39K_LABELS):
            raise BenchmarkFormatError(table, line, "expected 'clip_path label_index' with index 0..6", text.strip())
        clip, label = parts[0].strip("/"), FERV39K_LABELS[int(parts[1])]
        if clip in seen:
            raise BenchmarkFormatError(table, line, "duplicate clip", clip)
        seen.add(clip)
        frames = clips_root / clip
        video = os.fspath(frames) if frames.is_dir() else find_media([clips_root], [clip], VIDEO_SUFFIXES)
        records.append(
            InstructionRecord(
                id=clip, dataset="ferv39k", task="MER", answer=mapping[label], candidate_labels=list(SEVEN_BASIC_EMOTIONS),
                video=video, modalities=modalities,
            )
        )  # fmt: skip
    return _apply_media_policy(records, "ferv39k", on_missing_media, clips_root)


# ----------------------------------------------------------------------------------------------------
# OV-MER / ERI sets: MER-Caption+, OV-MERD, MERR-Fine, EMER
# ----------------------------------------------------------------------------------------------------
def _clip_media(root: Path, media_dir, name: str) -> tuple[str | None, str | None]:
    folders = [Path(media_dir)] if media_dir else []
    folders += [root / "video", root / "video" / "video", root / "subvideo", root]
    video = find_media(folders, [name], VIDEO_SUFFIXES)
    audio = find_media(([Path(media_dir)] if media_dir else []) + [root / "audio", root / "subaudio"], [name], AUDIO_SUFFIXES)
    return video, audio


def _read_caption_layout(path, prefix: str, reader: str, split, media_dir, tasks, modalities, on_missing_media):
    root = _require_dir(path, reader)
    tasks = _select_tasks(tasks, ["OV-MER", "ERI"], ["OV-MER", "ERI"], reader)
    _check_split(split, ["train"], reader)
    ov_file, reason_file = root / f"track2_train_{prefix}.csv", root / f"track3_train_{prefix}.csv"
    subtitles = read_subtitles(_require_file(root / "subtitle_chieng.csv", f"{reader} subtitles"))
    records = []
    if "OV-MER" in tasks:
        for _, row in read_csv_rows(_require_file(ov_file, f"{reader} OV labels"), ["name", "openset"]):
            labels = parse_label_list(row["openset"]) or ["neutral"]  # the public code's rule for empty sets
            video, audio = _clip_media(root, media_dir, row["name"])
            records.append(
                InstructionRecord(
                    id=row["name"], dataset=reader, task="OV-MER", answer=", ".join(labels),
                    subtitle=subtitles.get(row["name"]) or None, video=video, audio=audio, modalities=modalities,
                    meta={"labels": labels},
                )
            )  # fmt: skip
    if "ERI" in tasks:
        for line, row in read_csv_rows(_require_file(reason_file, f"{reader} reasons"), ["name", "reason"]):
            if not row["reason"].strip():
                raise BenchmarkFormatError(reason_file, line, "empty reason for", row["name"])
            video, audio = _clip_media(root, media_dir, row["name"])
            records.append(
                InstructionRecord(
                    id=row["name"], dataset=reader, task="ERI", answer=row["reason"].strip(),
                    subtitle=subtitles.get(row["name"]) or None, video=video, audio=audio, modalities=modalities,
                )
            )  # fmt: skip
    return _apply_media_policy(records, reader, on_missing_media, media_dir or root)


def read_mer_caption_plus(path, *, split="train", media_dir=None, tasks=None, modalities="AVFM", on_missing_media="error", **_):
    """MER-Caption+ (AffectGPT / MER2025 release): ``track2_train_mercaptionplus.csv`` (``name, openset``),
    ``track3_train_mercaptionplus.csv`` (``name, reason``), ``subtitle_chieng.csv`` (``name, chinese,
    english``), clips ``video/{name}.mp4`` (or ``video/video/``), audio ``audio/{name}.wav``. -> OV-MER, ERI."""
    return _read_caption_layout(path, "mercaptionplus", "mer_caption_plus", split, media_dir, tasks, modalities, on_missing_media)


def read_ovmerd(path, *, split="train", media_dir=None, tasks=None, modalities="AVFM", on_missing_media="error", **_):
    """OV-MERD: the MER-Caption+ layout with ``track2_train_ovmerd.csv`` / ``track3_train_ovmerd.csv``."""
    return _read_caption_layout(path, "ovmerd", "ovmerd", split, media_dir, tasks, modalities, on_missing_media)


def read_merr_fine(path, *, split="train", media_dir=None, tasks=None, modalities="AVFM", on_missing_media="error", **_):
    """MERR-Fine ``MERR_fine_grained.json`` (``{sample: {"text", "pseu_emotion", "smp_reason_caption",
    "AU_list", "visual_prior_list", "audio_prior_list", ...}}``); clips ``{media_dir}/{sample}.mp4|.avi`` and
    ``{sample}.wav``. -> ERI (the reason caption); ``tasks=["ERI", "OV-MER"]`` adds the pseudo label."""
    tasks = _select_tasks(tasks, ["ERI", "OV-MER"], ["ERI"], "merr_fine")
    _check_split(split, ["train"], "merr_fine")
    path = _require_file(path, "MERR-Fine")
    data = _read_json(path)
    if not isinstance(data, dict):
        raise BenchmarkFormatError(path, 1, "MERR-Fine must be an object keyed by sample name", type(data).__name__)
    folders = [Path(media_dir)] if media_dir else []
    records = []
    for name, sample in data.items():
        if not isinstance(sample, dict):
            raise BenchmarkFormatError(path, None, f"sample {name!r} is not an object", str(sample)[:80])
        video = find_media(folders, [name], VIDEO_SUFFIXES)
        audio = find_media(folders, [name], AUDIO_SUFFIXES)
        meta = {k: sample.get(k) for k in ("AU_list", "visual_prior_list", "audio_prior_list", "peak_AU_list", "pseu_emotion")}
        subtitle = str(sample.get("text") or "").strip() or None
        if "ERI" in tasks:
            reason = str(sample.get("smp_reason_caption") or "").strip()
            if not reason:
                raise BenchmarkFormatError(path, None, f"sample {name!r} has no smp_reason_caption")
            records.append(InstructionRecord(id=name, dataset="merr_fine", task="ERI", answer=reason, subtitle=subtitle,
                                             video=video, audio=audio, modalities=modalities, meta=meta))  # fmt: skip
        if "OV-MER" in tasks and str(sample.get("pseu_emotion") or "").strip():
            records.append(InstructionRecord(id=name, dataset="merr_fine", task="OV-MER", answer=str(sample["pseu_emotion"]).strip(),
                                             subtitle=subtitle, video=video, audio=audio, modalities=modalities, meta=meta))  # fmt: skip
    return _apply_media_policy(records, "merr_fine", on_missing_media, media_dir)


def read_emer(path, *, split="train", media_dir=None, tasks=None, modalities="AVFM", on_missing_media="error", **_):
    """EMER ground truth ``gt-eng.csv`` (``names, emotions, subtitles, reasons``; a folder holding it works too);
    clips ``{media_dir}/{name}.mp4|.avi``. -> ERI (reasons); ``tasks=["ERI", "OV-MER"]`` adds the emotions."""
    tasks = _select_tasks(tasks, ["ERI", "OV-MER"], ["ERI"], "emer")
    path = Path(path)
    path = _require_file(path / "gt-eng.csv" if path.is_dir() else path, "EMER")
    folders = [Path(media_dir)] if media_dir else []
    records = []
    for line, row in read_csv_rows(path, ["names", "emotions", "subtitles", "reasons"]):
        name = row["names"].strip()
        video, audio = find_media(folders, [name], VIDEO_SUFFIXES), find_media(folders, [name], AUDIO_SUFFIXES)
        subtitle = row["subtitles"].strip() or None
        if "ERI" in tasks:
            if not row["reasons"].strip():
                raise BenchmarkFormatError(path, line, "empty reasons for", name)
            records.append(InstructionRecord(id=name, dataset="emer", task="ERI", answer=row["reasons"].strip(), subtitle=subtitle,
                                             video=video, audio=audio, modalities=modalities, meta={"emotions": row["emotions"]}))  # fmt: skip
        if "OV-MER" in tasks:
            labels = parse_label_list(row["emotions"])
            if labels:
                records.append(InstructionRecord(id=name, dataset="emer", task="OV-MER", answer=", ".join(labels), subtitle=subtitle,
                                                 video=video, audio=audio, modalities=modalities))  # fmt: skip
    return _apply_media_policy(records, "emer", on_missing_media, media_dir)


# ----------------------------------------------------------------------------------------------------
# ERG: AvaMERG
# ----------------------------------------------------------------------------------------------------
def read_avamerg(
    path,
    *,
    split="train",
    media_dir=None,
    tasks=None,
    modalities="AVFM",
    on_missing_media="error",
    include_context: bool = False,
    **_,
):
    """AvaMERG conversation JSON: ``[{"conversation_id", "speaker_profile": {"ID"}, "listener_profile",
    "topic", "turns": [{"turn_id", "context", "dialogue_history": [{"role", "utterance"}], "response",
    "chain_of_empathy": {"event_scenario", "speaker_emotion", "emotion_cause", "goal_to_response"}}]}]``.

    Turn-based (Sec. 3.2): the earlier utterances of ``dialogue_history`` become chat turns (speaker = user,
    listener = assistant), its last utterance is the current user input, ``response`` the target, after the
    Chain-of-Empathy reasoning in ``<think>``. Media of the current user turn: ``{media_dir}/{conv}_{turn}.mp4``
    or the release naming ``dia{conv}utt{2*turn}_{speaker_id}.mp4`` (audio ``.wav`` beside, or under
    ``{media_dir}/../audio``). ``tasks`` may add ``"MER"``: recognise the speaker's emotion (open question).
    ``include_context=True`` prefixes the turn's ``context`` field as the public code does."""
    tasks = _select_tasks(tasks, ["ERG", "MER"], ["ERG"], "avamerg")
    path = _require_file(path, "AvaMERG")
    data = _read_json(path)
    if not isinstance(data, list):
        raise BenchmarkFormatError(path, 1, "AvaMERG must be a JSON array of conversations", type(data).__name__)
    video_dirs = [Path(media_dir)] if media_dir else [path.parent / "video"]
    audio_dirs = [Path(media_dir), Path(media_dir).parent / "audio"] if media_dir else [path.parent / "audio"]
    records = []
    for c_index, conversation in enumerate(data):
        where = f"{path}: conversation #{c_index}"
        if not isinstance(conversation, dict) or not isinstance(conversation.get("turns"), list):
            raise BenchmarkFormatError(path, None, f"conversation #{c_index} has no 'turns' list", str(conversation)[:80])
        conv_id = str(conversation.get("conversation_id", c_index))
        speaker_id = str((conversation.get("speaker_profile") or {}).get("ID", ""))
        for turn in conversation["turns"]:
            turn_id = str(turn.get("turn_id", ""))
            history = turn.get("dialogue_history")
            if not isinstance(history, list) or not history:
                raise BenchmarkFormatError(path, None, f"conversation {conv_id} turn {turn_id}: empty dialogue_history")
            for h in history:
                if not isinstance(h, dict) or "utterance" not in h:
                    raise BenchmarkFormatError(path, None, f"conversation {conv_id} turn {turn_id}: history item needs 'utterance'", str(h)[:80])
            turns = [{"role": "user" if str(h.get("role", "speaker")).lower() in ("speaker", "user") else "assistant",
                      "content": str(h["utterance"]).strip()} for h in history[:-1]]  # fmt: skip
            current = str(history[-1]["utterance"]).strip()
            if include_context and turn.get("context"):
                current = f"Context: {turn['context']}\n{current}"
            stems = [f"{conv_id}_{turn_id}"]
            if turn_id.isdigit():
                stems.append(f"dia{conv_id}utt{2 * int(turn_id)}_{speaker_id}")
            video = find_media(video_dirs, stems, VIDEO_SUFFIXES)
            audio = find_media(audio_dirs, stems, AUDIO_SUFFIXES)
            coe = turn.get("chain_of_empathy") or {}
            record_id = f"{conv_id}_{turn_id}"
            meta = {"conversation_id": conv_id, "turn_id": turn_id, "topic": conversation.get("topic"), **coe}
            if "ERG" in tasks:
                response = str(turn.get("response") or "").strip()
                if not response:
                    raise BenchmarkFormatError(path, None, f"conversation {conv_id} turn {turn_id}: empty response")
                answer = chain_of_empathy_answer(coe, response, where=f"{where} turn {turn_id}: ")
                records.append(InstructionRecord(id=record_id, dataset="avamerg", task="ERG", answer=answer, user_input=current,
                                                 dialogue_history=turns, video=video, audio=audio, modalities=modalities, meta=meta))  # fmt: skip
            if "MER" in tasks and str(coe.get("speaker_emotion") or "").strip():
                records.append(InstructionRecord(id=record_id, dataset="avamerg", task="MER", answer=str(coe["speaker_emotion"]).strip(),
                                                 user_input=current, dialogue_history=turns, video=video, audio=audio,
                                                 modalities=modalities, meta=meta))  # fmt: skip
    return _apply_media_policy(records, "avamerg", on_missing_media, video_dirs)


# ----------------------------------------------------------------------------------------------------
# MER-UniBench layout (AffectGPT): label npz + transcription csv + video/audio folders
# ----------------------------------------------------------------------------------------------------
_UNIBENCH_SPLITS = {"train": ("train_corpus",), "test": ("test_corpus", "test1_corpus", "whole_corpus"),
                    "test1": ("test1_corpus",), "test2": ("test2_corpus",), "test3": ("test3_corpus",),
                    "whole": ("whole_corpus",)}  # fmt: skip


def _read_unibench(root: Path, reader: str, label_files: Sequence[str], transcription_files: Sequence[str], split: str,
                   media_dir, kind: str, modalities: str, on_missing_media: str) -> list[InstructionRecord]:  # fmt: skip
    import numpy as np

    label_path = next((root / name for name in label_files if (root / name).is_file()), None)
    if label_path is None:
        raise FileNotFoundError(f"{reader}: none of {list(label_files)} in {root}")
    if split not in _UNIBENCH_SPLITS:
        raise ValueError(f"{reader}: split must be one of {list(_UNIBENCH_SPLITS)}, got {split!r}")
    arrays = npz_names(label_path)
    key = next((k for k in _UNIBENCH_SPLITS[split] if k in arrays), None)
    if key is None:
        raise BenchmarkFormatError(label_path, None, f"no {list(_UNIBENCH_SPLITS[split])} array", detail=f"arrays: {arrays}")
    corpus = load_npz(label_path, [key])[key].tolist()  # object arrays through the data-only unpickler
    if not isinstance(corpus, dict):
        raise BenchmarkFormatError(label_path, None, f"{key} is not a dict of samples", type(corpus).__name__)
    transcription = next((root / name for name in transcription_files if (root / name).is_file()), None)
    subtitles = read_subtitles(transcription) if transcription else {}
    video_dirs = ([Path(media_dir)] if media_dir else []) + [root / d for d in ("video", "subvideo", "subvideo-tgt", "video_new", "subvideo_new")]
    audio_dirs = ([Path(media_dir)] if media_dir else []) + [root / d for d in ("audio", "subaudio")]
    if kind == "emotion":
        labels = sorted({str(v.get("emo")) for v in corpus.values() if isinstance(v, dict) and v.get("emo") is not None})
    records = []
    for name, value in corpus.items():
        if not isinstance(value, dict):
            raise BenchmarkFormatError(label_path, None, f"{key}[{name!r}] is not a dict", str(value)[:80])
        meta = {k: (float(v) if isinstance(v, (int, float, np.floating)) else v) for k, v in value.items()}
        if kind == "emotion":
            if value.get("emo") is None:
                raise BenchmarkFormatError(label_path, None, f"{key}[{name!r}] has no 'emo'", str(value)[:80])
            answer, candidates = str(value["emo"]), labels
        else:
            if value.get("val") is None:
                raise BenchmarkFormatError(label_path, None, f"{key}[{name!r}] has no 'val'", str(value)[:80])
            answer, candidates = sentiment_of(float(value["val"])), list(SENTIMENT_LABELS)
        records.append(
            InstructionRecord(
                id=str(name), dataset=reader, task="MER", answer=answer, candidate_labels=candidates,
                subtitle=subtitles.get(str(name)) or None, video=find_media(video_dirs, [str(name)], VIDEO_SUFFIXES),
                audio=find_media(audio_dirs, [str(name)], AUDIO_SUFFIXES), modalities=modalities, meta=meta,
            )
        )  # fmt: skip
    return _apply_media_policy(records, reader, on_missing_media, video_dirs)


def sentiment_of(valence: float) -> str:
    """MSA polarity from a valence score (> 0 positive, < 0 negative, 0 neutral)."""
    return "positive" if valence > 0 else "negative" if valence < 0 else "neutral"


def read_mer2023(path, *, split="train", media_dir=None, tasks=None, modalities="AVFM", on_missing_media="error", **_):
    """MER2023 (MER-UniBench layout): ``label-6way.npz`` (``train_corpus`` / ``test1_corpus`` ...: ``{name:
    {"emo", "val"}}``), ``transcription-engchi-polish.csv``, ``video/``, ``audio/``. -> MER."""
    _select_tasks(tasks, ["MER"], ["MER"], "mer2023")
    return _read_unibench(_require_dir(path, "MER2023"), "mer2023", ["label-6way.npz"], ["transcription-engchi-polish.csv"],
                          split, media_dir, "emotion", modalities, on_missing_media)  # fmt: skip


def read_mer2024(path, *, split="train", media_dir=None, tasks=None, modalities="AVFM", on_missing_media="error", **_):
    """MER2024 (MER-UniBench layout): ``label-6way.npz`` + ``transcription_merge.csv``. -> MER."""
    _select_tasks(tasks, ["MER"], ["MER"], "mer2024")
    return _read_unibench(_require_dir(path, "MER2024"), "mer2024", ["label-6way.npz"],
                          ["transcription_merge.csv", "transcription-engchi-polish.csv"], split, media_dir, "emotion",
                          modalities, on_missing_media)  # fmt: skip


def _iemocap_full_release(root: Path, split: str, media_dir, modalities, on_missing_media, four_way: bool, test_sessions) -> list[InstructionRecord]:
    sessions = sorted(p for p in root.glob("Session*") if p.is_dir())
    if not sessions:
        raise FileNotFoundError(f"IEMOCAP: no Session* folders in {root}")
    test_sessions = {f"Session{s}" if str(s).isdigit() else str(s) for s in test_sessions}
    wanted = [s for s in sessions if (s.name in test_sessions) == (split == "test")]
    line_re = re.compile(r"^\[(\d+\.?\d*) - (\d+\.?\d*)\]\t(\S+)\t(\S+)\t\[")
    text_re = re.compile(r"^(\S+) \[[^\]]*\]: ?(.*)$")
    rows = []
    for session in wanted:
        for evaluation in sorted((session / "dialog" / "EmoEvaluation").glob("*.txt")):
            transcripts = {}
            transcript_file = session / "dialog" / "transcriptions" / evaluation.name
            if transcript_file.is_file():
                for text_line in transcript_file.read_text(encoding="utf-8", errors="replace").splitlines():
                    match = text_re.match(text_line.strip())
                    if match:
                        transcripts[match.group(1)] = match.group(2).strip()
            for n, text_line in enumerate(evaluation.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
                match = line_re.match(text_line)
                if not match:
                    continue
                turn, code = match.group(3), match.group(4)
                if code not in IEMOCAP_CODES:
                    raise BenchmarkFormatError(evaluation, n, "unknown IEMOCAP emotion code", code, detail=f"expected {sorted(IEMOCAP_CODES)}")
                emotion = IEMOCAP_CODES[code]
                if four_way:
                    emotion = {"excited": "happy"}.get(emotion, emotion)
                    if emotion not in ("angry", "happy", "neutral", "sad"):
                        continue
                wav_dir = (Path(media_dir) if media_dir else session / "sentences" / "wav") / evaluation.stem
                audio = find_media([wav_dir], [turn], AUDIO_SUFFIXES)
                rows.append((turn, emotion, transcripts.get(turn), audio, session.name))
    labels = ["angry", "happy", "neutral", "sad"] if four_way else sorted({r[1] for r in rows})
    records = [
        InstructionRecord(id=turn, dataset="iemocap", task="MER", answer=emotion, candidate_labels=labels, subtitle=text,
                          audio=audio, modalities=modalities, meta={"session": session})  # fmt: skip
        for turn, emotion, text, audio, session in rows
    ]
    if not records:
        raise ValueError(f"IEMOCAP {split}: no labelled utterances in {[s.name for s in wanted]}")
    return _apply_media_policy(records, "iemocap", on_missing_media, media_dir or root)


def read_iemocap(path, *, split="train", media_dir=None, tasks=None, modalities=None, on_missing_media="error",
                 four_way: bool = True, test_sessions=(5,), **_):  # fmt: skip
    """IEMOCAP: the ``IEMOCAP_full_release`` layout (``Session{1..5}/dialog/EmoEvaluation/*.txt`` lines
    ``[start - end]<TAB>turn<TAB>code<TAB>[V, A, D]``, ``dialog/transcriptions``, ``sentences/wav/{dialog}/{turn}.wav``;
    sessions in ``test_sessions`` are the test split; ``four_way`` keeps angry/happy(+excited)/neutral/sad, speech
    only by default), or the MER-UniBench ``label_4way.npz`` layout. -> MER."""
    _select_tasks(tasks, ["MER"], ["MER"], "iemocap")
    root = _require_dir(path, "IEMOCAP")
    if any(root.glob("Session*")):
        _check_split(split, ["train", "test"], "iemocap")
        return _iemocap_full_release(root, split, media_dir, modalities or "A", on_missing_media, four_way, test_sessions)
    return _read_unibench(root, "iemocap", ["label_4way.npz", "label.npz"], ["transcription-engchi-polish.csv"], split,
                          media_dir, "emotion", modalities or "AVFM", on_missing_media)  # fmt: skip


_MMSA_SPLITS = {"train": ("train",), "validation": ("valid", "val", "dev"), "test": ("test",)}


def _read_msa(path, reader: str, split: str, media_dir, modalities: str, on_missing_media: str) -> list[InstructionRecord]:
    root = _require_dir(path, reader)
    table = next((root / name for name in ("label.csv", "meta.csv") if (root / name).is_file()), None)
    if table is None:
        return _read_unibench(root, reader, ["label.npz"], ["transcription-engchi-polish.csv"], split, media_dir,
                              "sentiment", modalities, on_missing_media)  # fmt: skip
    if split not in _MMSA_SPLITS:
        raise ValueError(f"{reader}: split must be one of {list(_MMSA_SPLITS)}, got {split!r}")
    raw = Path(media_dir) if media_dir else root / "Raw"
    records = []
    for line, row in read_csv_rows(table, ["video_id", "clip_id", "text", "label", "mode"]):
        if row["mode"].strip().lower() not in _MMSA_SPLITS[split]:
            continue
        try:
            valence = float(row["label"])
        except ValueError:
            raise BenchmarkFormatError(table, line, "label is not a number", row["label"]) from None
        video_id, clip_id = row["video_id"].strip(), row["clip_id"].strip()
        stems = [clip_id] + ([clip_id.zfill(4)] if clip_id.isdigit() else [])
        video = find_media([raw / video_id], stems, VIDEO_SUFFIXES)
        meta = {"valence": valence, "annotation": row.get("annotation"), "video_id": video_id, "clip_id": clip_id}
        meta.update({k: row[k] for k in ("label_T", "label_A", "label_V") if k in row})
        records.append(
            InstructionRecord(id=f"{video_id}/{clip_id}", dataset=reader, task="MER", answer=sentiment_of(valence),
                              candidate_labels=list(SENTIMENT_LABELS), subtitle=row["text"].strip() or None, video=video,
                              modalities=modalities, meta=meta)  # fmt: skip
        )
    if not records:
        raise ValueError(f"{reader}: no rows with mode in {_MMSA_SPLITS[split]} in {table}")
    return _apply_media_policy(records, reader, on_missing_media, raw)


def _msa_reader(reader: str, title: str):
    def read(path, *, split="train", media_dir=None, tasks=None, modalities="AVFM", on_missing_media="error", **_):
        _select_tasks(tasks, ["MER"], ["MER"], reader)
        return _read_msa(path, reader, split, media_dir, modalities, on_missing_media)

    read.__name__ = f"read_{reader}"
    read.__doc__ = (
        f"{title}: the MMSA release (``label.csv`` / ``meta.csv`` with ``video_id, clip_id, text, label, ..., mode``; "
        "clips ``Raw/{video_id}/{clip_id}.mp4``) or the MER-UniBench ``label.npz`` layout. Sentiment polarity as MER "
        "with candidates positive / negative / neutral; the valence is kept in ``meta``."
    )
    return read


read_mosi = _msa_reader("mosi", "CMU-MOSI")
read_mosei = _msa_reader("mosei", "CMU-MOSEI")
read_sims = _msa_reader("sims", "CH-SIMS")
read_simsv2 = _msa_reader("simsv2", "CH-SIMS v2.0")

READERS: dict[str, Callable[..., list[InstructionRecord]]] = {
    "meld": read_meld,
    "mintrec": read_mintrec,
    "mintrec2": read_mintrec2,
    "crema_d": read_crema_d,
    "m3ed": read_m3ed,
    "caer": read_caer,
    "ferv39k": read_ferv39k,
    "mer_caption_plus": read_mer_caption_plus,
    "ovmerd": read_ovmerd,
    "merr_fine": read_merr_fine,
    "emer": read_emer,
    "avamerg": read_avamerg,
    "mer2023": read_mer2023,
    "mer2024": read_mer2024,
    "iemocap": read_iemocap,
    "mosi": read_mosi,
    "mosei": read_mosei,
    "sims": read_sims,
    "simsv2": read_simsv2,
    "chat": read_chat,
}


def read_dataset(reader: str, path, *, allow_outside_data_root: bool = False, **options) -> list[InstructionRecord]:
    """``READERS[reader](path, **options)`` with a clear error for an unknown reader.

    Every media path must lie under the data root - ``path`` (its folder for a file), ``media_dir`` or the
    folder holding ``media_dir`` (AvaMERG keeps ``audio/`` next to ``video/``) - so a sample id or a media path
    such as ``../../x`` or ``/etc/x`` in a data file cannot make training read an unrelated file; pass
    ``allow_outside_data_root=True`` for media kept elsewhere on purpose (docs/conventions.md)."""
    if reader not in READERS:
        raise ValueError(f"unknown instruction-data reader {reader!r}; choose one of {sorted(READERS)}")
    records = READERS[reader](path, **options)
    if not records:
        raise ValueError(f"reader {reader!r} found no records in {path} with options {options}")
    media_dir = options.get("media_dir")
    roots = [path if Path(path).is_dir() else Path(path).parent]
    roots += [media_dir, Path(media_dir).parent] if media_dir else []
    for record in records:
        for media in (record.video, record.audio):
            confine(media, roots, where=f"{path}: {reader} record {record.id!r}", allow_outside=allow_outside_data_root)
    return records


# ----------------------------------------------------------------------------------------------------
# Media loading and batching
# ----------------------------------------------------------------------------------------------------
def load_frames_dir(folder, num_frames: int):
    """Uniformly sampled frames of a folder of images (sorted by name) as ``(num_frames, H, W, 3)`` uint8."""
    import numpy as np
    from PIL import Image

    from mmaffect.models.nano_emox.media_nano_emox import MediaError, uniform_frame_indices

    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise MediaError(f"frame folder {folder} has no images ({IMAGE_SUFFIXES})")
    frames = []
    for i in uniform_frame_indices(len(files), num_frames):
        with Image.open(files[i]) as image:
            frames.append(np.asarray(image.convert("RGB")))
    size = frames[0].shape
    if any(f.shape != size for f in frames):
        raise MediaError(f"frame folder {folder} mixes image sizes {sorted({f.shape for f in frames})}")
    return np.stack(frames)


class P2ECollator:
    """Batch of :class:`InstructionRecord` -> model inputs (``BatchFeature``) + the task of each row.

    Builds each prompt with ``processor.build_messages`` / ``format_prompt``, reads the media (video file or
    frame folder; audio file or the video's track), and lets the processor tokenise, expand placeholders and
    mask everything but the answer in ``labels``. A record whose prompt needs media it lacks raises an error
    naming the record."""

    def __init__(self, processor, max_length: int | None = None, padding_side: str = "left"):
        self.processor = processor
        self.max_length = max_length
        self.padding_side = padding_side

    def _length(self, prompt: str, answer: str) -> int:
        """Tokens after placeholder expansion (each placeholder is one token of the tokenizer)."""
        tokenizer = self.processor.tokenizer
        expansion = sum(prompt.count(tok) * (n - 1) for tok, n in self._placeholders())
        answer_ids = tokenizer(answer + getattr(self.processor, "answer_suffix", ""), add_special_tokens=False)["input_ids"]
        return len(tokenizer(prompt, add_special_tokens=False)["input_ids"]) + expansion + len(answer_ids) + 1

    def _placeholders(self):
        from mmaffect.models.nano_emox.processing_nano_emox import PLACEHOLDERS

        counts = self.processor.tokens_per_modality()
        return [(token, counts[name]) for name, token in PLACEHOLDERS.items()]

    def _prompt(self, record: InstructionRecord) -> str:
        """The chat prompt; over ``max_length``, the oldest dialogue turns are dropped (a user/assistant pair at a
        time) until it fits - anything else that does not fit is an error naming the record."""
        prompt = self.processor.format_prompt(record_messages(record, self.processor))
        if self.max_length is None:
            return prompt
        history = list(record.dialogue_history or [])
        while self._length(prompt, record.answer) > self.max_length and history:
            history = history[2:]
            shorter = InstructionRecord(**{**record.__dict__, "dialogue_history": history})
            prompt = self.processor.format_prompt(record_messages(shorter, self.processor))
        length = self._length(prompt, record.answer)
        if length > self.max_length:
            raise ValueError(f"record {record.uid} needs {length} tokens, over max_length={self.max_length} (raise training.max_length)")
        return prompt

    def _video(self, record: InstructionRecord):
        if record.video is None:
            return None
        if Path(record.video).is_dir():
            return load_frames_dir(record.video, self.processor.num_frames)
        return record.video

    def __call__(self, records: Sequence[InstructionRecord]) -> dict[str, Any]:
        prompts, videos, audio, answers = [], [], [], []
        for record in records:
            need = record.needs()
            if "video" in need and record.video is None:
                raise FileNotFoundError(f"record {record.uid} uses modalities {record.modalities!r} but has no video")
            if "audio" in need and record.audio is None and record.video is None:
                raise FileNotFoundError(f"record {record.uid} uses modalities {record.modalities!r} but has no audio")
            prompts.append(self._prompt(record))
            videos.append(self._video(record) if "video" in need else None)
            audio.append((record.audio or record.video) if "audio" in need else None)
            answers.append(record.answer)
        try:
            batch = self.processor(
                text=prompts, videos=videos, audio=audio, answers=answers, padding_side=self.padding_side, max_length=self.max_length
            )
        except Exception as error:
            if hasattr(error, "add_note"):  # Python >= 3.11: keep the type, name the records
                error.add_note(f"while collating records {[r.uid for r in records]}")
            raise
        return {"inputs": batch, "tasks": [r.task for r in records], "ids": [r.uid for r in records]}


__all__ = [
    "CHAIN_OF_EMPATHY_STEPS",
    "READERS",
    "TASKS",
    "InstructionRecord",
    "MissingMediaWarning",
    "P2ECollator",
    "chain_of_empathy_answer",
    "load_frames_dir",
    "parse_label_list",
    "read_dataset",
    "record_messages",
    "to_chat_record",
    "write_chat_jsonl",
] + [f.__name__ for f in READERS.values()]
