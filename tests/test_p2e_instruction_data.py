"""P2E instruction data: every reader on files generated in the dataset's published layout, the real releases
in ../shared/data, bad input, the media policy, and the collator (labels on the answer only)."""

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from mmaffect.datasets_scripts.reading import BenchmarkFormatError
from mmaffect.datasets_scripts.instruction_data import (
    CHAIN_OF_EMPATHY_STEPS,
    READERS,
    MissingMediaWarning,
    P2ECollator,
    parse_label_list,
    read_dataset,
    to_chat_record,
)


def touch(path: Path, text: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def write_json(path: Path, data) -> Path:
    return touch(path, json.dumps(data, ensure_ascii=False))


# ------------------------------------------------------------------------------------------------ layouts
def test_meld_csv(tmp_path):
    header = "Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,Episode,StartTime,EndTime\n"
    rows = ['1,"Oh, hi!",Joey,joy,positive,0,0,1,1,00:00:01,00:00:02\n', "2,No.,Ross,anger,negative,0,1,1,1,00:00:03,00:00:04\n"]
    for split in ("train", "dev", "test"):
        touch(tmp_path / f"{split}_sent_emo.csv", header + "".join(rows))
    touch(tmp_path / "media" / "train" / "dia0_utt0.mp4")
    with pytest.warns(MissingMediaWarning, match="kept without media"):
        records = read_dataset("meld", tmp_path, media_dir=tmp_path / "media", on_missing_media="keep")
    assert [(r.id, r.task, r.answer, r.subtitle) for r in records] == [("dia0_utt0", "MER", "joy", "Oh, hi!"), ("dia0_utt1", "MER", "anger", "No.")]
    assert records[0].candidate_labels == ["neutral", "surprise", "fear", "sadness", "joy", "disgust", "anger"]
    assert records[0].video.endswith("dia0_utt0.mp4") and records[0].meta["sentiment"] == "positive"
    with pytest.raises(FileNotFoundError, match="1 of 2 records lack media"):
        read_dataset("meld", tmp_path, media_dir=tmp_path / "media")
    with pytest.warns(MissingMediaWarning, match="dropped"):
        assert len(read_dataset("meld", tmp_path, media_dir=tmp_path / "media", on_missing_media="skip")) == 1


def test_mintrec_release_chat_records_and_mintrec2_tsv(tmp_path):
    chat = [{"messages": [{"role": "user", "content": "thanks a lot"}, {"role": "assistant", "content": "Thank"}], "videos": ["/x/S01_E02_3.mp4"]}]
    for split in ("train", "test"):
        write_json(tmp_path / "mintrec" / f"{split}_MIntRec_ann.json", chat)
    records = read_dataset("mintrec", tmp_path / "mintrec", modalities="T")
    assert (records[0].id, records[0].task, records[0].answer, records[0].subtitle) == ("S01_E02_3", "MIR", "Thank", "thanks a lot")
    assert len(records[0].candidate_labels) == 20
    header = "Dialogue_id\tUtterance_id\tText\tLabel\tStart_timestamp\tEnd_timestamp\tSource\tspeaker_name\n"
    for split in ("train", "dev", "test"):
        touch(tmp_path / "m2" / f"{split}.tsv", header + "4\t2\thello there\tGreet\t0\t1\tsuperstore\tAmy\n")
    records = read_dataset("mintrec2", tmp_path / "m2", split="validation", modalities="T")
    assert (records[0].id, records[0].answer) == ("dia4_utt2", "Greet") and len(records[0].candidate_labels) == 30


def test_crema_d_release_json_and_audiowav_folder(tmp_path):
    write_json(tmp_path / "crema.json", [{"messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": "sad"}],
                                          "audios": ["/home/a/crema_d/audio/Sad_1001_DFA_SAD_XX.wav"]}])  # fmt: skip
    touch(tmp_path / "wav" / "Sad_1001_DFA_SAD_XX.wav")
    (record,) = read_dataset("crema_d", tmp_path / "crema.json", media_dir=tmp_path / "wav")
    assert (record.task, record.answer, record.modalities, record.subtitle) == ("MER", "sad", "A", None)
    assert record.audio == str(tmp_path / "wav" / "Sad_1001_DFA_SAD_XX.wav") and record.video is None
    touch(tmp_path / "AudioWAV" / "1001_IEO_HAP_HI.wav")
    touch(tmp_path / "AudioWAV" / "1002_DFA_NEU_XX.wav")
    records = read_dataset("crema_d", tmp_path / "AudioWAV")
    assert [(r.id, r.answer) for r in records] == [("1001_IEO_HAP_HI", "happy"), ("1002_DFA_NEU_XX", "neutral")]
    touch(tmp_path / "bad" / "1001_IEO_XYZ_HI.wav")
    with pytest.raises(BenchmarkFormatError, match="1001_IEO_XYZ_HI.wav"):
        read_dataset("crema_d", tmp_path / "bad")
    write_json(tmp_path / "crema_bad.json", [{"messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": "bored"}], "audios": ["a.wav"]}])
    with pytest.raises(BenchmarkFormatError, match="unknown CREMA-D emotion 'bored'"):
        read_dataset("crema_d", tmp_path / "crema_bad.json", on_missing_media="keep")


def test_m3ed_annotation_and_split_lists(tmp_path):
    dialog = {"m1_1_1": {"Speaker": "A", "Text": "你好", "EmoAnnotation": {"final_main_emo": "Happy"}},
              "m1_1_2": {"Speaker": "B", "Text": "再见", "EmoAnnotation": {"final_main_emo": "Sad"}}}  # fmt: skip
    write_json(tmp_path / "annotation.json", {"m1": {"m1_1": {"SpeakerInfo": {}, "Dialog": dialog}}, "m2": {"m2_1": {"Dialog": {}}}})
    for split, movie in (("train", "m1"), ("val", "m2"), ("test", "m3")):
        touch(tmp_path / "splitInfo" / f"movie_list_{split}.txt", movie + "\n")
    touch(tmp_path / "modality_speech" / "A_m1_1_1.wav")
    touch(tmp_path / "modality_speech" / "B_m1_1_2.wav")
    records = read_dataset("m3ed", tmp_path / "annotation.json")
    assert [(r.id, r.answer, r.subtitle) for r in records] == [("m1_1_1", "happy", "你好"), ("m1_1_2", "sad", "再见")]
    assert records[0].candidate_labels == ["happy", "sad"] and records[0].audio.endswith("A_m1_1_1.wav")


def test_caer_and_ferv39k(tmp_path):
    touch(tmp_path / "CAER" / "train" / "Happy" / "0001.avi")
    touch(tmp_path / "CAER" / "train" / "Anger" / "0002.avi")
    records = read_dataset("caer", tmp_path / "CAER")
    assert sorted((r.id, r.answer) for r in records) == [("Anger/0002", "anger"), ("Happy/0001", "happy")]
    assert records[0].modalities == "VF" and records[0].video.endswith(".avi")
    touch(tmp_path / "CAER" / "train" / "Bored" / "0003.avi")
    with pytest.raises(BenchmarkFormatError, match="unknown CAER emotion folder 'Bored'"):
        read_dataset("caer", tmp_path / "CAER")

    root = tmp_path / "FERV39k"
    touch(root / "4_setups" / "All_scenes" / "train_All.csv", "Action/Fight/0001 3\nDaily/Talk/0002 0\n")
    touch(root / "2_ClipsforFaceCrop" / "Action" / "Fight" / "0001" / "00001.jpg")
    touch(root / "2_ClipsforFaceCrop" / "Daily" / "Talk" / "0002" / "00001.jpg")
    records = read_dataset("ferv39k", root)
    assert [(r.id, r.answer) for r in records] == [("Action/Fight/0001", "anger"), ("Daily/Talk/0002", "happy")]
    assert Path(records[0].video).is_dir()
    touch(root / "4_setups" / "All_scenes" / "train_All.csv", "Action/Fight/0001 9\n")
    with pytest.raises(BenchmarkFormatError, match=r"train_All.csv:1: expected 'clip_path label_index'"):
        read_dataset("ferv39k", root)


def test_mer_caption_plus_and_ovmerd(tmp_path):
    for prefix, folder in (("mercaptionplus", "mcp"), ("ovmerd", "ov")):
        root = tmp_path / folder
        touch(root / f"track2_train_{prefix}.csv", "name,openset\ns1,\"['worried', 'nervous']\"\ns2,\n")
        touch(root / f"track3_train_{prefix}.csv", "name,reason\ns1,He frowns.\ns2,She smiles.\n")
        touch(root / "subtitle_chieng.csv", "name,chinese,english\ns1,你,hello\ns2,我,\n")
        for name in ("s1", "s2"):
            touch(root / "video" / f"{name}.mp4")
            touch(root / "audio" / f"{name}.wav")
        records = read_dataset("mer_caption_plus" if prefix == "mercaptionplus" else "ovmerd", root)
        ov = [r for r in records if r.task == "OV-MER"]
        eri = [r for r in records if r.task == "ERI"]
        assert [r.answer for r in ov] == ["worried, nervous", "neutral"]  # empty open set -> neutral (public code)
        assert [r.answer for r in eri] == ["He frowns.", "She smiles."]
        assert ov[0].subtitle == "hello" and ov[1].subtitle is None and ov[0].audio.endswith("s1.wav")
    only_eri = read_dataset("mer_caption_plus", tmp_path / "mcp", tasks=["ERI"])
    assert {r.task for r in only_eri} == {"ERI"}
    assert parse_label_list("happy; sad, happy") == ["happy", "sad"]


def test_merr_fine_and_emer(tmp_path):
    write_json(tmp_path / "merr.json", {"sample_1": {"text": "hi", "pseu_emotion": "angry", "smp_reason_caption": "Frowning, loud.", "AU_list": ["AU04"]}})
    records = read_dataset("merr_fine", tmp_path / "merr.json", tasks=["ERI", "OV-MER"], on_missing_media="keep", modalities="T")
    assert [(r.task, r.answer) for r in records] == [("ERI", "Frowning, loud."), ("OV-MER", "angry")]
    assert records[0].meta["AU_list"] == ["AU04"]
    write_json(tmp_path / "merr_bad.json", {"sample_1": {"text": "hi"}})
    with pytest.raises(BenchmarkFormatError, match="sample 'sample_1' has no smp_reason_caption"):
        read_dataset("merr_fine", tmp_path / "merr_bad.json", modalities="T")
    touch(tmp_path / "emer" / "gt-eng.csv", 'names,emotions,subtitles,reasons\nsample_9,"sad, tired",Bye.,"Tears, so sad."\n')
    records = read_dataset("emer", tmp_path / "emer", tasks=["ERI", "OV-MER"], modalities="T")
    assert [(r.task, r.answer) for r in records] == [("ERI", "Tears, so sad."), ("OV-MER", "sad, tired")]
    touch(tmp_path / "emer2" / "gt-eng.csv", "names,subtitles\nx,y\n")
    with pytest.raises(BenchmarkFormatError, match=r"missing column\(s\) \['emotions', 'reasons'\]"):
        read_dataset("emer", tmp_path / "emer2", modalities="T")


def avamerg_conversation(steps=None):
    steps = steps or {"event_scenario": "a lost job", "speaker_emotion": "sad", "emotion_cause": "being laid off", "goal_to_response": "comfort"}
    return {
        "conversation_id": "7",
        "speaker_profile": {"ID": "spk3"},
        "listener_profile": {"ID": "L"},
        "topic": "work",
        "turns": [
            {"turn_id": "0", "context": "sad", "dialogue_history": [{"role": "speaker", "utterance": "I lost my job."}],
             "response": "I'm so sorry.", "chain_of_empathy": steps},
            {"turn_id": "1", "context": "sad", "dialogue_history": [{"role": "speaker", "utterance": "I lost my job."},
             {"role": "listener", "utterance": "I'm so sorry."}, {"role": "speaker", "utterance": "What do I do now?"}],
             "response": "Take a breath; we can plan together.", "chain_of_empathy": steps},
        ],
    }  # fmt: skip


def test_avamerg_turn_based_erg_with_chain_of_empathy(tmp_path):
    write_json(tmp_path / "train.json", [avamerg_conversation()])
    for t in (0, 1):
        touch(tmp_path / "video" / f"dia7utt{2 * t}_spk3.mp4")
        touch(tmp_path / "audio" / f"dia7utt{2 * t}_spk3.wav")
    records = read_dataset("avamerg", tmp_path / "train.json", tasks=["ERG", "MER"], media_dir=tmp_path / "video")
    erg = [r for r in records if r.task == "ERG"]
    mer = [r for r in records if r.task == "MER"]
    assert [r.id for r in erg] == ["7_0", "7_1"] and [r.answer for r in mer] == ["sad", "sad"]
    second = erg[1]
    assert second.user_input == "What do I do now?"
    assert second.dialogue_history == [{"role": "user", "content": "I lost my job."}, {"role": "assistant", "content": "I'm so sorry."}]
    think, reply = second.answer.split("</think>")
    assert think.startswith("<think>") and reply.strip() == "Take a breath; we can plan together."
    steps = think.strip().splitlines()[1:]
    assert [s.split(":")[0] for s in steps] == [t.split(":")[0] for _, t in CHAIN_OF_EMPATHY_STEPS]
    assert "being laid off" in steps[2] and "comfort" in steps[3]
    assert second.video.endswith("dia7utt2_spk3.mp4") and second.audio.endswith("dia7utt2_spk3.wav")
    write_json(tmp_path / "bad.json", [avamerg_conversation({"event_scenario": "x", "speaker_emotion": "sad"})])
    with pytest.raises(ValueError, match=r"turn 0: chain_of_empathy lacks \['emotion_cause', 'goal_to_response'\]"):
        read_dataset("avamerg", tmp_path / "bad.json", modalities="T")


def test_mer_unibench_npz_layouts(tmp_path):
    root = tmp_path / "mer2023"
    np.savez(root.with_suffix(".npz") if False else _mkdir(root) / "label-6way.npz",
             train_corpus={"s1": {"emo": "worried", "val": -1.0}, "s2": {"emo": "happy", "val": 2.0}},
             test1_corpus={"s3": {"emo": "sad", "val": -2.0}})  # fmt: skip
    touch(root / "transcription-engchi-polish.csv", "name,chinese,english\ns1,a,I am worried\ns2,b,great\ns3,c,bye\n")
    for name in ("s1", "s2", "s3"):
        touch(root / "video" / f"{name}.mp4")
    records = read_dataset("mer2023", root)
    assert [(r.id, r.answer, r.subtitle) for r in records] == [("s1", "worried", "I am worried"), ("s2", "happy", "great")]
    assert records[0].candidate_labels == ["happy", "worried"] and records[0].meta["val"] == -1.0
    assert [r.answer for r in read_dataset("mer2023", root, split="test1")] == ["sad"]
    sims = _mkdir(tmp_path / "sims-process")
    np.savez(sims / "label.npz", train_corpus={"c1": {"val": 0.6}, "c2": {"val": -0.2}, "c3": {"val": 0.0}})
    records = read_dataset("sims", sims, modalities="T")
    assert [r.answer for r in records] == ["positive", "negative", "neutral"]
    assert records[0].candidate_labels == ["positive", "negative", "neutral"]


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def test_mmsa_label_csv_layout(tmp_path):
    header = "video_id,clip_id,text,label,label_T,label_A,label_V,annotation,mode\n"
    touch(tmp_path / "label.csv", header + "vid1,1,so good,0.8,1,1,0.6,Positive,train\nvid1,2,bad,-0.4,-1,0,0,Negative,valid\n")
    touch(tmp_path / "Raw" / "vid1" / "0001.mp4")
    (record,) = read_dataset("simsv2", tmp_path)
    assert (record.id, record.answer, record.meta["valence"], record.meta["label_A"]) == ("vid1/1", "positive", 0.8, "1")
    assert record.video.endswith("0001.mp4")
    with pytest.warns(MissingMediaWarning):
        (dev,) = read_dataset("mosi", tmp_path, split="validation", on_missing_media="keep")
    assert dev.answer == "negative"
    touch(tmp_path / "bad" / "label.csv", header + "v,1,x,abc,0,0,0,P,train\n")
    with pytest.raises(BenchmarkFormatError, match=r"label.csv:2: label is not a number 'abc'"):
        read_dataset("mosei", tmp_path / "bad", modalities="T")


def test_iemocap_full_release_and_unibench(tmp_path):
    session = tmp_path / "Session1"
    touch(session / "dialog" / "EmoEvaluation" / "Ses01F_impro01.txt",
          "% header\n[6.2901 - 8.2357]\tSes01F_impro01_F000\tneu\t[2.5000, 2.5000, 2.5000]\n"
          "C-E1:\tNeutral;\t()\n[10.0 - 11.5]\tSes01F_impro01_M001\texc\t[3.0, 3.5, 3.0]\n"
          "[12.0 - 13.0]\tSes01F_impro01_M002\tfru\t[2.0, 3.5, 3.0]\n")  # fmt: skip
    touch(session / "dialog" / "transcriptions" / "Ses01F_impro01.txt", "Ses01F_impro01_F000 [006.2901-008.2357]: Excuse me.\n")
    touch(session / "sentences" / "wav" / "Ses01F_impro01" / "Ses01F_impro01_F000.wav")
    touch(session / "sentences" / "wav" / "Ses01F_impro01" / "Ses01F_impro01_M001.wav")
    _mkdir(tmp_path / "Session5" / "dialog" / "EmoEvaluation")
    records = read_dataset("iemocap", tmp_path)
    assert [(r.id, r.answer) for r in records] == [("Ses01F_impro01_F000", "neutral"), ("Ses01F_impro01_M001", "happy")]  # fru dropped, exc -> happy
    assert records[0].subtitle == "Excuse me." and records[0].modalities == "A"
    assert records[0].candidate_labels == ["angry", "happy", "neutral", "sad"]
    with pytest.warns(MissingMediaWarning, match=r"Ses01F_impro01_M002 \(no audio\)"):
        all_codes = read_dataset("iemocap", tmp_path, four_way=False, on_missing_media="keep")
    assert [r.answer for r in all_codes] == ["neutral", "excited", "frustrated"]
    four = _mkdir(tmp_path / "iemocap-process")
    np.savez(four / "label_4way.npz", whole_corpus={"u1": {"emo": "sad"}})
    assert [r.answer for r in read_dataset("iemocap", four, split="whole", modalities="T")] == ["sad"]


def test_generic_chat_reader_and_chat_export(tmp_path):
    write_json(tmp_path / "caer_ferv39k_ann.json", [
        {"messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": "happy"}], "videos": ["/d/x1.avi"]},
        {"messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": "sad"}], "videos": ["/d/x2.mp4"]},
    ])  # fmt: skip
    touch(tmp_path / "media" / "x1.avi")
    touch(tmp_path / "media" / "x2.mp4")
    records = read_dataset("chat", tmp_path / "caer_ferv39k_ann.json", media_dir=tmp_path / "media", candidate_labels="auto", modalities="VF")
    assert [r.answer for r in records] == ["happy", "sad"] and records[0].candidate_labels == ["happy", "sad"]
    chat = to_chat_record(records[0])
    assert chat["messages"][-1] == {"role": "assistant", "content": "happy"} and chat["videos"] == [str(tmp_path / "media" / "x1.avi")]
    assert chat["messages"][0]["content"].startswith("[Recognition] Please select the label")
    write_json(tmp_path / "broken.json", [{"messages": [{"role": "user", "content": "x"}]}])
    with pytest.raises(BenchmarkFormatError, match="record #0: chat record needs a user and a non-empty assistant message"):
        read_dataset("chat", tmp_path / "broken.json")
    with pytest.raises(ValueError, match="unknown instruction-data reader 'nope'"):
        read_dataset("nope", tmp_path)


def test_every_reader_is_documented():
    for name, reader in READERS.items():
        assert reader.__doc__ and len(reader.__doc__) > 40, name


# ------------------------------------------------------------------------------------------------ collator
@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from mmaffect.train.p2e_synthetic import make_synthetic_corpus

    return make_synthetic_corpus(tmp_path_factory.mktemp("p2e_corpus"))


def test_collator_builds_prompts_media_and_answer_only_labels(corpus):
    from mmaffect.models.nano_emox import NanoEmoXProcessor

    processor = NanoEmoXProcessor.tiny(face_input="full_frame")
    erg = read_dataset("avamerg", corpus / "AvaMERG" / "train.json", media_dir=corpus / "AvaMERG" / "video")[1]
    speech = read_dataset("crema_d", corpus / "crema_d_annotations.json", media_dir=corpus / "CREMA-D" / "AudioWAV")[0]
    frames = read_dataset("ferv39k", corpus / "FERV39k")[0]
    batch = P2ECollator(processor)([erg, speech, frames])
    inputs = batch["inputs"]
    assert batch["tasks"] == ["ERG", "MER", "MER"]
    assert inputs["video_sample_index"].tolist() == [0, 2] and inputs["audio_sample_index"].tolist() == [0, 1]
    assert inputs["face_sample_index"].tolist() == [0, 2]
    tokenizer = processor.tokenizer
    for row, record in enumerate([erg, speech, frames]):
        target = inputs["labels"][row][inputs["labels"][row] != -100]
        assert tokenizer.decode(target, skip_special_tokens=False) == record.answer + "###" + tokenizer.eos_token  # public-code format
    prompt = tokenizer.decode(inputs["input_ids"][0][inputs["attention_mask"][0].bool()])
    assert "[Interaction]" in prompt and "Chain of Empathy" in prompt
    assert "I feel uneasy about exam 0-0." in prompt.split("<Dialogue History>")[1]  # the earlier turn, in the history sentence
    assert erg.answer.startswith("<think>")
    with pytest.raises(FileNotFoundError, match="has no video"):
        P2ECollator(processor)([type(frames)(**{**frames.__dict__, "video": None})])


def test_synthetic_corpus_reads_with_the_full_config(corpus):
    from mmaffect.train.p2e_phases import load_config

    config = load_config(Path(__file__).resolve().parents[1] / "configs" / "p2e_nano_emox.yaml", data_root=str(corpus))
    with warnings.catch_warnings():
        warnings.simplefilter("error", MissingMediaWarning)
        counts = {name: len(spec.read()) for name, spec in config.datasets.items()}
    assert all(n >= 4 for n in counts.values()), counts


# ------------------------------------------------------------------------------------------------ real data
@pytest.mark.shared_data
def test_real_releases(shared_data):
    release = shared_data / "nano_emox_release" / "data"
    meld = read_dataset("meld", shared_data / "meld", on_missing_media="keep", modalities="T")
    assert len(meld) == 9989 and {r.answer for r in meld} == {"neutral", "surprise", "fear", "sadness", "joy", "disgust", "anger"}
    assert len(read_dataset("meld", shared_data / "meld", split="test", modalities="T")) == 2610
    mintrec = read_dataset("mintrec", release / "MIntRec", modalities="T")
    assert len(mintrec) == 1779 and all(r.answer in r.candidate_labels for r in mintrec)
    mintrec2 = read_dataset("mintrec2", shared_data / "lgsrr_release" / "data_text" / "MIntRec2.0", modalities="T")
    assert len(mintrec2) == 6165 and len(mintrec2[0].candidate_labels) == 30
    crema = read_dataset("crema_d", release / "crema_d_annotations.json", on_missing_media="keep", modalities="T")
    assert len(crema) == 7442 and {r.answer for r in crema} == {"anger", "disgust", "fear", "happy", "neutral", "sad"}
    merr = read_dataset("merr_fine", release / "MERR" / "MERR_fine_grained.json", modalities="T")
    assert len(merr) == 4487 and all(r.task == "ERI" and len(r.answer) > 20 for r in merr)
    emer = read_dataset("emer", release / "EMER" / "gt-eng.csv", modalities="T")
    assert len(emer) == 100 and emer[0].id == "sample_00000648" and "anger" in emer[0].answer


def test_collator_drops_the_oldest_dialogue_turns_to_fit_max_length(corpus):
    from mmaffect.models.nano_emox import NanoEmoXProcessor

    processor = NanoEmoXProcessor.tiny(face_input="full_frame")
    erg = read_dataset("avamerg", corpus / "AvaMERG" / "train.json", media_dir=corpus / "AvaMERG" / "video")[1]
    assert len(erg.dialogue_history) == 2
    full = P2ECollator(processor)([erg])["inputs"]["input_ids"].shape[1]
    short = P2ECollator(processor, max_length=full - 1)([erg])["inputs"]
    assert short["input_ids"].shape[1] < full
    assert "I feel uneasy about exam 0-0." not in processor.tokenizer.decode(short["input_ids"][0])
    with pytest.raises(ValueError, match=r"record avamerg/ERG/0_1 needs \d+ tokens, over max_length=20"):
        P2ECollator(processor, max_length=20)([erg])
