"""Benchmark loaders on small files written in each release's format: every column, the split
mapping, the files' quirks (BOM, CRLF, quoting, non-ASCII), every bad-input case, media paths and
the Arrow cache."""

from __future__ import annotations

import json
import warnings

import pytest
from datasets import ClassLabel, DatasetDict

from mmaffect.datasets_scripts import (
    IEMOCAP_DA_ACTS,
    MELD_EMOTIONS,
    MELD_SENTIMENTS,
    MINTREC2_INTENTS,
    MINTREC_INTENTS,
    BadRowsWarning,
    BenchmarkFormatError,
    MissingMediaWarning,
    load_benchmark,
)
from mmaffect.datasets_scripts.reading import unquote

MINTREC2_HEADER = "Dialogue_id\tUtterance_id\tText\tLabel\tStart_timestamp\tEnd_timestamp\tSource\tspeaker_name"


def write(path, lines, newline="\n", bom=False, encoding="utf-8"):
    path.parent.mkdir(parents=True, exist_ok=True)
    data = newline.join(lines) + newline
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data.encode(encoding))
    return path


def mintrec2_files(root, train=None, dev=None, test=None):
    """MIntRec2.0 text files as in the LGSRR release (LF line ends, UTF-8, no quoting)."""
    rows = {
        "train": train or [
            "0\t0\tso without further ado, emma dubanowski.\tIntroduce\t00:00:02,035\t00:00:09,309\tsuperstore\tGlenn",
            "0\t3\twe might consider schrödinger's cat.\tAdvise\t00:00:31,064\t00:00:33,901\tbigbang\tSheldon",
            "7\t12\tokay.  fine.\tAcknowledge\t00:01:00,000\t00:01:01,500\tfriends\tsuperstore person3",
        ],
        "dev": dev or ["2\t0\they. don't distract jonah.\tPrevent\t00:02:19,907\t00:02:22,075\tsuperstore\tAmy"],
        "test": test or ["9\t1\tnot everyone can pull off a vest.\tWarn\t00:08:16,496\t00:08:17,764\tsuperstore\tAmy"],
    }
    for stem, lines in rows.items():
        write(root / f"{stem}.tsv", [MINTREC2_HEADER, *lines])
    return root


def load(name, root, **kwargs):
    kwargs.setdefault("keep_in_memory", True)
    return load_benchmark(name, root, **kwargs)


# --------------------------------------------------------------------------- MIntRec2.0
def test_mintrec2_every_column_and_split_mapping(tmp_path):
    ds = load("mintrec2", mintrec2_files(tmp_path))
    assert isinstance(ds, DatasetDict) and list(ds) == ["train", "validation", "test"]
    assert [ds[s].num_rows for s in ds] == [3, 1, 1]
    label = ds["train"].features["label"]
    assert isinstance(label, ClassLabel) and label.names == list(MINTREC2_INTENTS)
    assert ds["train"][1] == {
        "id": "dia0_utt3",
        "text": "we might consider schrödinger's cat.",
        "label": MINTREC2_INTENTS.index("Advise"),
        "dialogue_id": 0,
        "utterance_id": 3,
        "speaker": "Sheldon",
        "source": "bigbang",
        "start_time": "00:00:31,064",
        "end_time": "00:00:33,901",
    }
    assert ds["train"][2]["text"] == "okay.  fine."  # inner whitespace kept verbatim
    assert ds["train"][2]["speaker"] == "superstore person3"
    assert ds["validation"][0]["id"] == "dia2_utt0" and ds["test"][0]["label"] == MINTREC2_INTENTS.index("Warn")
    assert ds["train"].info.dataset_name == "mintrec2"


def test_mintrec2_label_list_is_the_official_order():
    assert len(MINTREC2_INTENTS) == 30 and MINTREC2_INTENTS[0] == "Acknowledge" and MINTREC2_INTENTS[-1] == "Warn"
    assert MINTREC2_INTENTS[5:7] == ("Ask for help", "Asking for opinions")
    assert len(set(MINTREC2_INTENTS)) == 30


def test_bom_and_crlf_are_accepted(tmp_path):
    root = mintrec2_files(tmp_path)
    write(root / "train.tsv", [MINTREC2_HEADER, "1\t2\thi there.\tGreet\t0\t1\tsuperstore\tAmy"], newline="\r\n", bom=True)
    ds = load("mintrec2", root)
    assert ds["train"][0]["id"] == "dia1_utt2" and ds["train"][0]["text"] == "hi there."
    assert ds["train"][0]["speaker"] == "Amy"  # no stray "\r" on the last column


def test_blank_lines_and_trailing_tabs_are_tolerated(tmp_path):
    root = mintrec2_files(tmp_path)
    write(root / "train.tsv", [MINTREC2_HEADER, "", "1\t2\thi.\tGreet\t0\t1\tsuperstore\tAmy\t\t", ""])
    assert load("mintrec2", root)["train"]["id"] == ["dia1_utt2"]


@pytest.mark.parametrize(
    "line, reason, value",
    [
        ("1\t2\thi.\tGreat\t0\t1\tsuperstore\tAmy", "unknown label", "Great"),
        ("1\t2\thi.\t\t0\t1\tsuperstore\tAmy", "unknown label", ""),
        ("x1\t2\thi.\tGreet\t0\t1\tsuperstore\tAmy", "Dialogue_id is not an integer", "x1"),
        ("1\t2.5\thi.\tGreet\t0\t1\tsuperstore\tAmy", "Utterance_id is not an integer", "2.5"),
        ("1\t2\thi.\tGreet\t0\t1\tsuperstore", "expected 8 tab-separated cells, found 7", None),
        ("0\t0\tagain.\tGreet\t0\t1\tsuperstore\tAmy", "duplicate id", "dia0_utt0"),
    ],
)
def test_mintrec2_bad_rows_raise_with_file_line_value_or_are_skipped(tmp_path, line, reason, value):
    train = ["0\t0\tfirst.\tInform\t0\t1\tsuperstore\tAmy", line, "5\t5\tlast.\tThank\t0\t1\tsuperstore\tAmy"]
    root = mintrec2_files(tmp_path, train=train)
    with pytest.raises(BenchmarkFormatError) as info:
        load("mintrec2", root)
    error = info.value
    assert error.path == str(root / "train.tsv") and error.line == 3 and error.reason == reason
    assert f"train.tsv:3: {reason}" in str(error)
    if value is not None:
        assert error.value == value and repr(value) in str(error)
    if reason == "duplicate id":
        assert "first on line 2" in str(error)

    with pytest.warns(BadRowsWarning, match=rf"skipped 1 bad row\(s\) \(1 x {reason}") as record:
        ds = load("mintrec2", root, on_bad_rows="skip")
    assert "train.tsv:3" in str(record[0].message)
    assert ds["train"]["id"] == ["dia0_utt0", "dia5_utt5"]


def test_skip_counts_several_reasons_in_one_warning(tmp_path):
    train = [
        "0\t0\tok.\tInform\t0\t1\ts\tA",
        "0\t1\tbad.\tNope\t0\t1\ts\tA",
        "0\t2\tbad.\tNope2\t0\t1\ts\tA",
        "0\t0\tdup.\tInform\t0\t1\ts\tA",
    ]
    with pytest.warns(BadRowsWarning, match=r"skipped 3 bad row\(s\) \(2 x unknown label, 1 x duplicate id\)"):
        ds = load("mintrec2", mintrec2_files(tmp_path, train=train), on_bad_rows="skip")
    assert ds["train"].num_rows == 1


def test_no_warning_when_nothing_is_skipped(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load("mintrec2", mintrec2_files(tmp_path), on_bad_rows="skip")


def test_missing_column_always_raises(tmp_path):
    root = mintrec2_files(tmp_path)
    write(root / "dev.tsv", ["Dialogue_id\tUtterance_id\tText\tStart_timestamp\tEnd_timestamp\tSource\tspeaker_name", "1\t1\thi\t0\t1\ts\tA"])
    for mode in ("raise", "skip"):
        with pytest.raises(BenchmarkFormatError, match=r"dev.tsv:1: missing column\(s\) \['Label'\]"):
            load("mintrec2", root, on_bad_rows=mode)


def test_missing_split_file_and_folder(tmp_path):
    root = mintrec2_files(tmp_path)
    (root / "test.tsv").unlink()
    with pytest.raises(FileNotFoundError, match="test.tsv"):
        load("mintrec2", root)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no split files"):
        load("mintrec2", empty)
    with pytest.raises(FileNotFoundError, match="not a folder"):
        load("mintrec2", tmp_path / "nowhere")


def test_undecodable_bytes_name_the_line(tmp_path):
    root = mintrec2_files(tmp_path)
    (root / "test.tsv").write_bytes((MINTREC2_HEADER + "\n9\t1\tcaf\xe9\tWarn\t0\t1\ts\tA\n").encode("latin-1"))
    with pytest.raises(BenchmarkFormatError, match=r"test.tsv:2: bytes that are not valid utf-8"):
        load("mintrec2", root)
    ds = load("mintrec2", root, encoding="latin-1")
    assert ds["test"][0]["text"] == "café"


def test_unknown_benchmark_name_and_aliases(tmp_path):
    with pytest.raises(ValueError, match="unknown benchmark 'mintrec3'"):
        load("mintrec3", tmp_path)
    assert load("MIntRec2.0", mintrec2_files(tmp_path))["train"].num_rows == 3
    with pytest.raises(ValueError, match="on_bad_rows"):
        load("mintrec2", tmp_path, on_bad_rows="ignore")


def test_a_split_with_no_usable_rows_is_an_error(tmp_path):
    root = mintrec2_files(tmp_path, dev=["1\t1\tx\tNope\t0\t1\ts\tA"])
    with pytest.warns(BadRowsWarning), pytest.raises(ValueError, match="validation: no usable rows"):
        load("mintrec2", root, on_bad_rows="skip")


# --------------------------------------------------------------------------- IEMOCAP-DA
def iemocap_files(root, train=None):
    header = "TURN\tUTTERANCE\tDA\tEMOTION"
    write(root / "train.tsv", [header, *(train or [
        "Ses03F_script01_3_M044\ti want you now, annie.\tans\txxx",
        "Ses04F_script03_2_F034\tvery well if you insist.\tdag\tang",
        "Ses01F_script01_2_M000\twhy does that bother you?\tq\txxx",
    ])])  # fmt: skip
    write(root / "dev.tsv", [header, "Ses03M_impro08b_F024\talright thanks.\tg\tneu"])
    write(root / "test.tsv", [header, "Ses05F_impro03_M016\toh, okay, yeah.\tb\txxx"])
    return root


def test_iemocap_da_codes_map_to_the_official_acts(tmp_path):
    ds = load("iemocap-da", iemocap_files(tmp_path))
    assert ds["train"].features["label"].names == list(IEMOCAP_DA_ACTS)
    assert ds["train"][0] == {"id": "Ses03F_script01_3_M044", "text": "i want you now, annie.",
                              "label": IEMOCAP_DA_ACTS.index("Answer"), "emotion": "xxx"}  # fmt: skip
    names = ds["train"].features["label"].names
    assert [names[i] for i in ds["train"]["label"]] == ["Answer", "Disagreement", "Question"]
    assert names[ds["validation"][0]["label"]] == "Greeting" and names[ds["test"][0]["label"]] == "Backchannel"


def test_iemocap_da_every_code():
    from mmaffect.datasets_scripts import IEMOCAP_DA_CODES

    assert sorted(IEMOCAP_DA_CODES) == sorted("g q ans o s ap c ag dag a b oth".split())
    assert [IEMOCAP_DA_CODES[c] for c in "g q ans o s ap c ag dag a b oth".split()] == list(IEMOCAP_DA_ACTS)


def test_iemocap_da_bad_code_and_empty_turn(tmp_path):
    root = iemocap_files(tmp_path, train=["Ses01_a\thello.\tans\txxx", "Ses01_b\thi.\tGreeting\tneu"])
    with pytest.raises(BenchmarkFormatError, match=r"train.tsv:3: unknown label 'Greeting' \(not one of the 12 IEMOCAP-DA act codes\)"):
        load("iemocap-da", root)
    root = iemocap_files(tmp_path, train=["Ses01_a\thello.\tans\txxx", " \thi.\tg\tneu"])
    with pytest.raises(BenchmarkFormatError, match=r"train.tsv:3: empty id"):
        load("iemocap-da", root)


# --------------------------------------------------------------------------- MIntRec
def mintrec_files(root):
    header = "season\tepisode\tclip\ttext\tlabel"
    write(root / "train.tsv", [header, "S04\tE16\t164\they, so i couldn't find the movie  hop\tAsk for help",
                               "S05\tE15\t110\teveryone happy with their cereal?\tCare"])  # fmt: skip
    write(root / "dev.tsv", [header, "S05\tE10\t142\tsorry i'm late.\tApologise"])
    write(root / "test.tsv", [header, "S06\tE05\t4\tthat he misses you all.\tInform"])
    return root


def test_mintrec_tsv_every_column(tmp_path):
    ds = load("mintrec", mintrec_files(tmp_path))
    assert ds["train"].features["label"].names == list(MINTREC_INTENTS) and len(MINTREC_INTENTS) == 20
    assert ds["train"][0] == {"id": "S04_E16_164", "text": "hey, so i couldn't find the movie  hop",
                              "label": MINTREC_INTENTS.index("Ask for help"), "season": 4, "episode": 16, "clip": 164}  # fmt: skip
    assert ds["validation"][0]["id"] == "S05_E10_142" and ds["test"][0]["id"] == "S06_E05_4"


def test_mintrec_bad_clip_and_season(tmp_path):
    root = mintrec_files(tmp_path)
    write(root / "dev.tsv", ["season\tepisode\tclip\ttext\tlabel", "S05\tE10\tabc\tsorry.\tApologise"])
    with pytest.raises(BenchmarkFormatError, match=r"dev.tsv:2: clip is not an integer 'abc'"):
        load("mintrec", root)
    write(root / "dev.tsv", ["season\tepisode\tclip\ttext\tlabel", "X5\tE10\t1\tsorry.\tApologise"])
    with pytest.raises(BenchmarkFormatError, match=r"dev.tsv:2: season is not an integer 'X5'"):
        load("mintrec", root)


def chat(text, label, video="/home/lab00/hjh/dataset/MIntRec/video/S05_E16_329.mp4"):
    return {"messages": [{"role": "user", "content": text}, {"role": "assistant", "content": label}], "videos": [video]}


def mintrec_chat_files(root, train=None):
    train = train or [chat("apparently, teens are drinking the slushie.", "Inform"),
                      chat("we are the manager.", "Introduce", "/x/video/S06_E06_589.mp4")]  # fmt: skip
    (root / "train_MIntRec_ann.json").write_text(json.dumps(train, indent=1, ensure_ascii=False))
    (root / "test_MIntRec_ann.json").write_text(json.dumps([chat("you're gonna go back", "Arrange", "/v/S06_E04_70.mp4")]))
    return root


def test_mintrec_chat_records(tmp_path):
    ds = load("mintrec", mintrec_chat_files(tmp_path))
    assert list(ds) == ["train", "test"]  # the chat release merges dev into train
    assert ds["train"][0] == {"id": "S05_E16_329", "text": "apparently, teens are drinking the slushie.",
                              "label": MINTREC_INTENTS.index("Inform"), "season": 5, "episode": 16, "clip": 329}  # fmt: skip
    assert ds["train"][1]["id"] == "S06_E06_589" and ds["test"][0]["label"] == MINTREC_INTENTS.index("Arrange")
    # the tsv and the chat records give the same features
    assert ds["train"].features == load("mintrec", mintrec_files(tmp_path / "tsv"))["train"].features


@pytest.mark.parametrize(
    "record, reason",
    [
        (chat("hi", "Hello"), "unknown label 'Hello'"),
        ({"messages": [{"role": "user", "content": "hi"}], "videos": ["/v/S01_E01_1.mp4"]}, "chat record without a user and an assistant"),
        ({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Greet"}]}, "chat record without a video path"),
        (chat("hi", "Greet", "/v/clip_one.mp4"), "video file name is not a clip id '/v/clip_one.mp4'"),
        (chat(["hi"], "Greet", "/v/S01_E01_2.mp4"), "chat message content is not a string"),
        (chat("again", "Greet"), "duplicate id 'S05_E16_329'"),
    ],
)
def test_mintrec_chat_bad_records_name_file_and_line(tmp_path, record, reason):
    root = mintrec_chat_files(tmp_path, train=[chat("first", "Inform"), record])
    with pytest.raises(BenchmarkFormatError) as info:
        load("mintrec", root)
    # json.dumps(indent=1): "[" on line 1, the first record from line 2, the second after it
    first_record_lines = len(json.dumps([chat("first", "Inform")], indent=1).splitlines()) - 1
    assert info.value.line == 1 + first_record_lines and reason in str(info.value)
    assert str(root / "train_MIntRec_ann.json") in str(info.value)
    with pytest.warns(BadRowsWarning):
        assert load("mintrec", root, on_bad_rows="skip")["train"]["text"] == ["first"]


def test_invalid_json_names_the_line(tmp_path):
    root = mintrec_chat_files(tmp_path)
    (root / "test_MIntRec_ann.json").write_text('[\n {"messages": []},\n {"messages": [}\n]')
    with pytest.raises(BenchmarkFormatError, match=r"test_MIntRec_ann.json:3: invalid JSON"):
        load("mintrec", root)
    (root / "test_MIntRec_ann.json").write_text('{"messages": []}')
    with pytest.raises(BenchmarkFormatError, match="expected a JSON array"):
        load("mintrec", root)


def test_mintrec2_chat_records(tmp_path):
    record = chat("thank you.", "Thank", "/home/x/MIntRec2/video/dia15_utt0.mp4")
    (tmp_path / "train_MIntRec2_ann.json").write_text(json.dumps([record]))
    (tmp_path / "test_MIntRec2_ann.json").write_text(json.dumps([chat("so.", "Explain", "/v/dia3_utt4.mp4")]))
    ds = load("mintrec2", tmp_path)
    assert ds["train"][0] == {"id": "dia15_utt0", "text": "thank you.", "label": MINTREC2_INTENTS.index("Thank"),
                              "dialogue_id": 15, "utterance_id": 0, "speaker": None, "source": None,
                              "start_time": None, "end_time": None}  # fmt: skip


# --------------------------------------------------------------------------- MELD
MELD_HEADER = "Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,Episode,StartTime,EndTime"


def meld_files(root, train=None):
    write(root / "train_sent_emo.csv", [MELD_HEADER, *(train or [
        '1,"Oh my God, he’s lost it. He’s totally lost it.",Phoebe,sadness,negative,0,0,4,7,"00:20:57,256","00:21:00,049"',
        '2,What?,Monica,surprise,negative,0,1,4,7,"00:21:01,927","00:21:03,261"',
        '3,"""Y’know, harm can it do?""",Monica,neutral,neutral,1,0,6,22,"0:16:41,375","0:16:44,669"',
    ])], newline="\r\n")  # fmt: skip
    write(root / "dev_sent_emo.csv", [MELD_HEADER, '1,Nice!,Chandler,joy,positive,0,0,6,3,"00:05:30,872","00:05:34,291"'], newline="\r\n")
    write(root / "test_sent_emo.csv", [MELD_HEADER, '1,Why?,Mark,anger,negative,0,0,3,19,"00:14:38,127","00:14:40,378"'], newline="\r\n")
    return root


def test_meld_every_column_quoting_and_non_ascii(tmp_path):
    ds = load("meld", meld_files(tmp_path))
    assert ds["train"].features["label"].names == list(MELD_EMOTIONS)
    assert ds["train"].features["sentiment"].names == list(MELD_SENTIMENTS)
    assert ds["train"][0] == {
        "id": "dia0_utt0", "text": "Oh my God, he’s lost it. He’s totally lost it.", "label": MELD_EMOTIONS.index("sadness"),
        "sentiment": MELD_SENTIMENTS.index("negative"), "speaker": "Phoebe", "dialogue_id": 0, "utterance_id": 0,
        "season": 4, "episode": 7, "start_time": "00:20:57,256", "end_time": "00:21:00,049", "sr_no": 1,
    }  # fmt: skip
    assert ds["train"][2]["text"] == '"Y’know, harm can it do?"'  # CSV quoting undone once; the quotes are the transcript's
    assert ds["validation"][0]["sentiment"] == MELD_SENTIMENTS.index("positive")
    # ids repeat across MELD splits (dialogue numbers restart per split): only within-split duplicates are errors
    assert ds["validation"][0]["id"] == ds["test"][0]["id"] == "dia0_utt0"


def test_meld_label_indices_follow_the_meld_readme():
    assert {e: i for i, e in enumerate(MELD_EMOTIONS)} == {
        "neutral": 0, "surprise": 1, "fear": 2, "sadness": 3, "joy": 4, "disgust": 5, "anger": 6}  # fmt: skip
    assert {s: i for i, s in enumerate(MELD_SENTIMENTS)} == {"neutral": 0, "positive": 1, "negative": 2}


@pytest.mark.parametrize(
    "row, message",
    [
        ('2,Hi.,Ross,happy,positive,0,1,1,1,0,1', r"train_sent_emo.csv:3: unknown label 'happy'"),
        ('2,Hi.,Ross,joy,upbeat,0,1,1,1,0,1', r"train_sent_emo.csv:3: unknown label 'upbeat' \(not one of the 3 MELD sentiments\)"),
        ('2,Hi.,Ross,joy,positive,zero,1,1,1,0,1', r"train_sent_emo.csv:3: Dialogue_ID is not an integer 'zero'"),
        ('2,Hi.,Ross,joy,positive,0,0,1,1,0,1', r"train_sent_emo.csv:3: duplicate id 'dia0_utt0'"),
        ('2,Hi.,Ross,joy,positive,0,1,1,1', r"train_sent_emo.csv:3: expected 11 comma-separated cells, found 9"),
    ],
)
def test_meld_bad_rows(tmp_path, row, message):
    root = meld_files(tmp_path, train=['1,Ok.,Ross,neutral,neutral,0,0,1,1,0,1', row])
    with pytest.raises(BenchmarkFormatError, match=message):
        load("meld", root)
    with pytest.warns(BadRowsWarning, match="skipped 1 bad row"):
        assert load("meld", root, on_bad_rows="skip")["train"]["text"] == ["Ok."]


def test_meld_multiline_cell_and_the_line_of_the_next_record(tmp_path):
    root = meld_files(tmp_path, train=['1,"Two\nlines",Ross,neutral,neutral,0,0,1,1,0,1', '2,Hi.,Ross,nope,neutral,0,1,1,1,0,1'])
    with pytest.raises(BenchmarkFormatError, match=r"train_sent_emo.csv:4: unknown label 'nope'"):
        load("meld", root)
    assert load("meld", meld_files(tmp_path, train=['1,"Two\nlines",Ross,neutral,neutral,0,0,1,1,0,1']))["train"][0]["text"] == "Two\nlines"


def test_meld_missing_column(tmp_path):
    root = meld_files(tmp_path)
    write(root / "test_sent_emo.csv", [MELD_HEADER.replace(",Sentiment", ""), "1,Why?,Mark,anger,0,0,3,19,0,1"])
    with pytest.raises(BenchmarkFormatError, match=r"test_sent_emo.csv:1: missing column\(s\) \['Sentiment'\]"):
        load("meld", root)


# --------------------------------------------------------------------------- quoting helper
@pytest.mark.parametrize(
    "cell, expected",
    [
        ('plain text', 'plain text'),
        ('"quoted"', 'quoted'),
        ('"""The man says """"hi."""" ok."""', 'The man says "hi." ok.'),
        ('"""takes the """"card."""""""', 'takes the "card."'),
        ('"hi" he said', '"hi" he said'),
        ('"a"b"', '"a"b"'),
        ('""', ''),
        ('"', '"'),
    ],
)
def test_unquote(cell, expected):
    assert unquote(cell) == expected


# --------------------------------------------------------------------------- media
def test_media_paths_and_missing_media_warning(tmp_path):
    root = mintrec2_files(tmp_path / "text")
    media = tmp_path / "media"
    media.mkdir()
    for name in ("dia0_utt0.mp4", "dia0_utt3.mp4", "dia0_utt3.wav", "dia2_utt0.mp4"):
        (media / name).write_bytes(b"")
    (media / "test").mkdir()
    (media / "test" / "dia9_utt1.mp4").write_bytes(b"")  # a split sub-folder is searched too
    with pytest.warns(MissingMediaWarning, match=r"MIntRec2.0 train: 1 of 3 rows have no media file .*dia7_utt12.mp4"):
        ds = load("mintrec2", root, media_dir=media)
    train = {row["id"]: row for row in ds["train"]}
    assert train["dia0_utt0"]["video"] == str(media / "dia0_utt0.mp4") == train["dia0_utt0"]["audio"]
    assert train["dia0_utt3"]["audio"] == str(media / "dia0_utt3.wav")
    assert train["dia7_utt12"]["video"] is None and train["dia7_utt12"]["audio"] is None
    assert ds["test"][0]["video"] == str(media / "test" / "dia9_utt1.mp4")
    with pytest.raises(FileNotFoundError, match="media_dir folder"):
        load("mintrec2", root, media_dir=tmp_path / "no_media_here")


def test_media_mintrec_raw_layout_and_per_split_mapping(tmp_path):
    root = mintrec_files(tmp_path / "text")
    raw = tmp_path / "raw_data"
    for sub, name in (("S04_E16", "164.mp4"), ("S05_E15", "110.mp4"), ("S05_E10", "142.mp4"), ("S06_E05", "4.mp4")):
        (raw / sub).mkdir(parents=True, exist_ok=True)
        (raw / sub / name).write_bytes(b"")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = load("mintrec", root, media_dir=raw)
    assert ds["train"][0]["video"] == str(raw / "S04_E16" / "164.mp4")

    meld = meld_files(tmp_path / "meld")
    folders = {"train": tmp_path / "train_splits", "validation": tmp_path / "dev_splits_complete", "test": tmp_path / "output_repeated_splits_test"}
    for folder in folders.values():
        folder.mkdir()
        (folder / "dia0_utt0.mp4").write_bytes(b"")
    with pytest.warns(MissingMediaWarning, match="MELD train: 2 of 3"):
        ds = load("meld", meld, media_dir=folders)
    assert ds["validation"][0]["video"] == str(folders["validation"] / "dia0_utt0.mp4")
    assert ds["test"][0]["video"] == str(folders["test"] / "dia0_utt0.mp4")


# --------------------------------------------------------------------------- Arrow cache
def test_arrow_backed_and_cache_keyed_by_content(tmp_path):
    root = mintrec2_files(tmp_path / "text")
    cache = tmp_path / "cache"
    first = load_benchmark("mintrec2", root, cache_dir=cache)
    assert first["train"].cache_files and str(cache) in first["train"].cache_files[0]["filename"]
    again = load_benchmark("mintrec2", root, cache_dir=cache)
    assert again["train"].cache_files == first["train"].cache_files
    # a changed file must never be served from the old cache
    write(root / "train.tsv", [MINTREC2_HEADER, "4\t4\tchanged.\tJoke\t0\t1\ts\tA"])
    changed = load_benchmark("mintrec2", root, cache_dir=cache)
    assert changed["train"]["text"] == ["changed."]
    assert changed["train"].cache_files != first["train"].cache_files
    assert changed["validation"].cache_files == first["validation"].cache_files
