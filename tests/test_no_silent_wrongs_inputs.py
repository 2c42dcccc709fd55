"""Issue 16, input side: extraction flags over a config file, CSV/TSV quoting read one way, MELD records
broken by a quote, saved models with missing / unexpected / corrupt tensors, non-finite media."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

MELD_HEADER = "Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,Episode,StartTime,EndTime"
MINTREC2_HEADER = "Dialogue_id\tUtterance_id\tText\tLabel\tStart_timestamp\tEnd_timestamp\tSource\tspeaker_name"


def meld_row(sr: int, text: str = "Hi.", utterance: int | None = None) -> str:
    return f'{sr},{text},Ross,neutral,neutral,0,{sr if utterance is None else utterance},1,1,"00:00:0{sr},000","00:00:0{sr},500"'


def write_meld(root: Path, train_text: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "train_sent_emo.csv").write_text(MELD_HEADER + "\n" + train_text, encoding="utf-8")
    for split in ("dev", "test"):
        (root / f"{split}_sent_emo.csv").write_text(MELD_HEADER + "\n" + meld_row(1) + "\n", encoding="utf-8")
    return root


def load_meld(root, **kwargs):
    from mmaffect.datasets_scripts import load_benchmark

    return load_benchmark("meld", root, keep_in_memory=True, **kwargs)


# --------------------------------------------------------------------------- 6. MELD CSV
def test_meld_last_line_cut_inside_a_quoted_cell_is_a_bad_row(tmp_path):
    from mmaffect.datasets_scripts import BadRowsWarning, BenchmarkFormatError

    cut = meld_row(2)[:-6]  # ...,"00:00:02,5  (the file ends inside the quoted EndTime)
    root = write_meld(tmp_path, meld_row(1) + "\n" + cut)
    with pytest.raises(BenchmarkFormatError, match=r"train_sent_emo.csv:3: the file ends inside a quoted cell"):
        load_meld(root)
    with pytest.warns(BadRowsWarning, match="skipped 1 bad row"):
        assert load_meld(root, on_bad_rows="skip")["train"]["end_time"] == ["00:00:01,500"]


def plain_meld_row(sr: int, text: str = "Hi.") -> str:
    return f"{sr},{text},Ross,neutral,neutral,0,{sr},1,1,0,1"  # times without commas: no quotes on the line


@pytest.mark.parametrize("variant, reason", [
    ("runs_into_the_next_line", "unclosed quote"),  # closed by the next line's first quote, where the CSV breaks
    ("runs_to_the_end_of_the_file", "unclosed quote"),  # nothing closes it
    ("closed_by_a_later_cell", "malformed CSV quoting"),  # the StartTime's opening quote closes it on line 5
])  # fmt: skip
def test_meld_unclosed_quote_is_reported_where_the_record_starts_and_every_drop_is_counted(tmp_path, variant, reason):
    from mmaffect.datasets_scripts import BadRowsWarning, BenchmarkFormatError

    row = meld_row if variant != "runs_to_the_end_of_the_file" else plain_meld_row
    broken = {"runs_into_the_next_line": plain_meld_row(4, '"Unclosed he said'),
              "runs_to_the_end_of_the_file": plain_meld_row(4, '"Unclosed he said'),
              "closed_by_a_later_cell": meld_row(4, '"Unclosed, he said')}[variant]
    rows = [row(1), row(2), row(3), broken, row(5), row(6)]
    root = write_meld(tmp_path, "\n".join(rows) + "\n")
    with pytest.raises(BenchmarkFormatError, match=rf"train_sent_emo.csv:5: {reason}"):
        load_meld(root)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train = load_meld(root, on_bad_rows="skip")["train"]
    messages = [str(w.message) for w in caught if issubclass(w.category, BadRowsWarning)]
    assert len(messages) == 1 and "skipped 1 bad row" in messages[0] and "train_sent_emo.csv:5" in messages[0]
    assert train["sr_no"] == [1, 2, 3, 5, 6]  # only the broken record is dropped: 5 kept + 1 counted = 6 rows


def test_meld_bad_value_in_a_multiline_record_names_the_line_it_starts_on(tmp_path):
    from mmaffect.datasets_scripts import BenchmarkFormatError

    root = write_meld(tmp_path, meld_row(1) + "\n" + '2,"Two\nlines",Ross,nope,neutral,0,2,1,1,0,1\n')
    with pytest.raises(BenchmarkFormatError, match=r"train_sent_emo.csv:3: unknown label 'nope'"):
        load_meld(root)


# --------------------------------------------------------------------------- also: one way to read a TSV
def test_extraction_samples_read_text_cells_as_the_loader_does(tmp_path):
    from mmaffect.datasets_scripts import load_benchmark
    from mmaffect.semantic_extraction.samples import LAYOUTS, read_samples

    texts = ['"Hi," he said.', '"fully quoted"', '"never closed', "plain"]
    lines = [MINTREC2_HEADER] + [f"{i}\t0\t{t}\tGreet\t00:00:01,000\t00:00:02,000\tx\tAnn" for i, t in enumerate(texts)]
    for split in ("train", "dev", "test"):
        (tmp_path / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    loaded = load_benchmark("mintrec2", tmp_path, keep_in_memory=True)["train"]["text"]
    samples = read_samples(LAYOUTS["mintrec2"], tmp_path, "train")
    assert [s.text for s in samples] == loaded == texts
    assert [s.line for s in samples] == [2, 3, 4, 5]


def test_extraction_descriptions_are_read_like_the_loader_reads_them(tmp_path):
    from mmaffect.datasets_scripts.lgsrr_extras import read_descriptions as loader_read
    from mmaffect.semantic_extraction.aspects import DEFAULT_ASPECTS
    from mmaffect.semantic_extraction.rank import read_descriptions as extraction_read
    from mmaffect.semantic_extraction.samples import LAYOUTS

    cells = ['"He waves," she notes.', '"""He says """"hi."""""""', "plain"]
    path = tmp_path / "train.tsv"
    path.write_text("Dialogue_id\tUtterance_id\tSpeakers Actions\tEmotions and Facial Expressions\tInteraction with Others\n"
                    + "0\t0\t" + "\t".join(cells) + "\n", encoding="utf-8")
    ours = extraction_read(path, LAYOUTS["mintrec2"], DEFAULT_ASPECTS)["dia0_utt0"]
    theirs = loader_read(path)["dia0_utt0"][1]
    assert list(ours.values()) == theirs == ['"He waves," she notes.', 'He says "hi."', "plain"]


# --------------------------------------------------------------------------- 5. extraction flags over a file
def _extract_config(tmp_path, monkeypatch, file_config: dict, *flags: str):
    from mmaffect.semantic_extraction import cli

    path = tmp_path / "extract.yaml"
    path.write_text(yaml.safe_dump(file_config), encoding="utf-8")
    seen = []
    monkeypatch.setattr(cli, "run_step", lambda config, step: seen.append(config) or SimpleNamespace(reports=[]))
    code = cli.main(["all", "--config", str(path), *flags])
    return code, (seen[0] if seen else None)


def test_extract_flags_override_the_backends_of_the_config_file(tmp_path, monkeypatch):
    file_config = {
        "data_dir": "data", "output_dir": "out",
        "backend": {"type": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "m", "num_frames": 16,
                    "max_retries": 5, "timeout": 120, "concurrency": 8},
        "describe": {"backend": {"type": "transformers-video", "model": "v", "num_frames": 16}},
    }  # fmt: skip
    code, config = _extract_config(tmp_path, monkeypatch, file_config, "--num-frames", "4", "--max-retries", "1",
                                   "--timeout", "5", "--concurrency", "2")
    assert code == 0
    assert config.step_backend("rank") == {"type": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "m",
                                           "num_frames": 4, "max_retries": 1, "timeout": 5.0, "concurrency": 2}
    assert config.step_backend("describe") == {"type": "transformers-video", "model": "v", "num_frames": 4}


def test_extract_flag_that_fits_no_configured_backend_is_an_error(tmp_path, monkeypatch, capsys):
    file_config = {"data_dir": "data", "backend": {"type": "transformers", "model": "m"}}
    code, config = _extract_config(tmp_path, monkeypatch, file_config, "--concurrency", "2")
    assert code == 1 and config is None
    assert "--concurrency applies to openai backends; the configured backends are transformers" in capsys.readouterr().err


# --------------------------------------------------------------------------- 7. saved models that do not match
@pytest.fixture(scope="module")
def lgsrr_folder(tmp_path_factory):
    from mmaffect import LGSRRConfig, LGSRRForSequenceClassification

    folder = tmp_path_factory.mktemp("lgsrr") / "model"
    torch.manual_seed(0)
    LGSRRForSequenceClassification(LGSRRConfig.tiny(num_labels=3)).save_pretrained(folder)
    return folder


def _damaged_copy(folder: Path, target: Path, drop: str | None = None, add: str | None = None) -> Path:
    import shutil

    shutil.copytree(folder, target)
    weights = load_file(str(target / "model.safetensors"))
    if drop:
        del weights[drop]
    if add:
        weights[add] = torch.zeros(2)
    save_file(weights, str(target / "model.safetensors"), metadata={"format": "pt"})
    return target


def test_evaluate_refuses_a_model_with_a_missing_or_unexpected_tensor(lgsrr_folder, tmp_path):
    from mmaffect.train.evaluate import load_trained

    load_trained(lgsrr_folder)  # the intact folder loads
    missing = _damaged_copy(lgsrr_folder, tmp_path / "missing", drop="classifier.weight")
    with pytest.raises(ValueError, match=rf"{missing}/model.safetensors does not match .*missing tensor\(s\) \['classifier.weight'\]"):
        load_trained(missing)
    extra = _damaged_copy(lgsrr_folder, tmp_path / "extra", add="relations.surplus")
    with pytest.raises(ValueError, match=r"unexpected tensor\(s\) \['relations.surplus'\]"):
        load_trained(extra)


def test_text_only_folder_with_a_missing_tensor_is_refused(tmp_path):
    from test_train_lgsrr_fixtures import write_tiny_encoder

    from mmaffect.train.evaluate import load_trained
    from mmaffect.train.lgsrr import TextOnlyClassifier

    encoder = write_tiny_encoder(tmp_path / "encoder")
    TextOnlyClassifier.from_pretrained_encoder(str(encoder), ["a", "b"]).save_pretrained(tmp_path / "model")
    load_trained(tmp_path / "model")
    # the baseline is the encoder's own BertForSequenceClassification: its tensors live under `bert.`
    _damaged_copy(tmp_path / "model", tmp_path / "broken", drop="bert.embeddings.word_embeddings.weight")
    with pytest.raises(ValueError, match=r"missing tensor\(s\) \['bert.embeddings.word_embeddings.weight'\]"):
        load_trained(tmp_path / "broken")


@pytest.mark.parametrize("damage", ["zero_bytes", "truncated", "random_bytes"])
def test_corrupt_safetensors_names_the_file(lgsrr_folder, tmp_path, damage):
    import shutil

    from mmaffect.train.evaluate import load_trained

    folder = Path(shutil.copytree(lgsrr_folder, tmp_path / "model"))
    path = folder / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes({"zero_bytes": b"", "truncated": data[: len(data) // 2], "random_bytes": os.urandom(len(data))}[damage])
    expected = {"zero_bytes": "empty file", "truncated": "truncated", "random_bytes": "not a safetensors file"}[damage]
    with pytest.raises(ValueError, match=rf"{path}: {expected}"):
        load_trained(folder)


def test_p2e_phase_model_with_a_missing_tensor_is_refused(tmp_path):
    from mmaffect.models.nano_emox import NanoEmoXConfig, NanoEmoXForConditionalGeneration, NanoEmoXProcessor
    from mmaffect.train.p2e import load_phase_model

    torch.manual_seed(0)
    model = NanoEmoXForConditionalGeneration(NanoEmoXConfig.tiny())
    model.save_pretrained(tmp_path / "phase")
    NanoEmoXProcessor.tiny().save_pretrained(tmp_path / "phase")
    load_phase_model(tmp_path / "phase")
    name = next(k for k in load_file(str(tmp_path / "phase" / "model.safetensors")) if "fusion_projector" in k)
    _damaged_copy(tmp_path / "phase", tmp_path / "broken", drop=name)
    with pytest.raises(ValueError, match=rf"missing tensor\(s\) \['{name}'\]"):
        load_phase_model(tmp_path / "broken")


# --------------------------------------------------------------------------- 8. NaN / Inf media
@pytest.fixture(scope="module")
def processor():
    from mmaffect.models.nano_emox import NanoEmoXProcessor

    return NanoEmoXProcessor.tiny()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_waveform_is_refused(processor, bad):
    prompt = processor.build_prompt("OV-MER", modalities="A")
    wave = np.zeros(3000, np.float32)
    wave[1234] = bad
    with pytest.raises(ValueError, match=r"audio\[0\] has 1 non-finite sample\(s\) \(NaN or Inf\), first at index 1234"):
        processor(text=[prompt], audio=[wave])


def test_non_finite_audio_file_is_refused_naming_it(processor, tmp_path):
    import soundfile

    path = tmp_path / "nan.wav"
    wave = np.zeros(1600, np.float32)
    wave[10] = np.nan
    soundfile.write(path, wave, 16000, subtype="FLOAT")
    with pytest.raises(ValueError, match=rf"{path}: the audio track has 1 non-finite sample\(s\) \(NaN or Inf\), first at index 10"):
        processor(text=[processor.build_prompt("OV-MER", modalities="A")], audio=[str(path)])


def test_non_finite_frames_and_face_crops_are_refused(processor):
    prompt = processor.build_prompt("OV-MER", modalities="V")
    frames = np.zeros((4, 8, 8, 3), np.float32)
    frames[2, 1, 1, 0] = np.nan
    with pytest.raises(ValueError, match=r"videos\[0\] frame 2 has non-finite values \(NaN or Inf\)"):
        processor(text=[prompt], videos=[frames])
    faces = np.zeros((4, 32, 32, 3), np.float32)
    faces[0, 0, 0, 0] = np.inf
    with pytest.raises(ValueError, match=r"faces\[0\] has non-finite values \(NaN or Inf\)"):
        processor(text=[processor.build_prompt("OV-MER", modalities="F")], videos=[np.zeros((4, 8, 8, 3), np.uint8)],
                  faces=[faces])
