"""Files from others (issue 21, items 1-4; docs/conventions.md "Files from others"): a data file cannot run
code (``.npz`` object arrays, the P2E trainer state), cannot make a reader open media outside the data root
without an explicit opt-in, and a backend spec's secrets never reach an error, a log or a written file."""

from __future__ import annotations

import builtins
import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from evaluation_support import make_mer2023, write_e2e_wheel_dir
from extraction_support import make_mintrec2 as make_extraction_mintrec2
from mmaffect.cli import main as mmaffect_main
from mmaffect.datasets_scripts import load_benchmark
from mmaffect.datasets_scripts.instruction_data import read_dataset
from mmaffect.errors import CheckpointError
from mmaffect.evaluation.cli import main as evaluate_main
from mmaffect.evaluation.benchmarks import load_eval_benchmark
from mmaffect.metrics.records import read_records
from mmaffect.semantic_extraction import LAYOUTS, read_samples
from mmaffect.semantic_extraction.backends import build_backend
from mmaffect.semantic_extraction import load_config
from mmaffect.semantic_extraction.cli import build_parser as build_extract_parser
from mmaffect.semantic_extraction.cli import main as extract_main
from mmaffect.semantic_extraction.cli import overrides_from_args
from mmaffect.train.mixture_sampler import MixtureSampler
from mmaffect.untrusted import OutsideDataRootError, UnsafeFileError, load_npz

SHARED_DATA = Path(os.environ.get("MMAFFECT_SHARED_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data"))


# ------------------------------------------------------------------------------ malicious pickles
class _OpensAFile:
    """Unpickling calls ``builtins.open(marker, "w")``: creates the marker file."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return builtins.open, (self.marker, "w")


class _RunsAShell:
    """Unpickling calls ``os.system("touch marker")``."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch '{self.marker}'",)


@pytest.fixture(params=[_OpensAFile, _RunsAShell], ids=["builtins.open", "os.system"])
def evil(request, tmp_path):
    """``(object whose unpickling creates a file, that file, the class name the error must name)``."""
    marker = tmp_path / "pwned"
    name = "open" if request.param is _OpensAFile else "system"
    return request.param(marker), marker, name


def _object_array(*items) -> np.ndarray:
    array = np.empty(len(items), dtype=object)
    array[:] = list(items)
    return array


def test_malicious_predictions_npz_through_mmaffect_evaluate(evil, tmp_path, capsys):
    payload, marker, name = evil
    predictions = tmp_path / "x.npz"
    np.savez(predictions, filenames=np.array(["a", "b"]), fileitems=_object_array(payload, 1.0))
    references = tmp_path / "refs.jsonl"
    references.write_text('{"id": "a", "score": 1.0}\n{"id": "b", "score": -1.0}\n', encoding="utf-8")
    code = evaluate_main(["--task", "msa", "--predictions", str(predictions), "--references", str(references)])
    err = capsys.readouterr().err
    assert code == 2
    assert str(predictions) in err and "refused to load" in err and name in err, err
    assert not marker.exists()
    with pytest.raises(UnsafeFileError, match=rf"{name}.*not plain data"):
        read_records(predictions)
    assert not marker.exists()


def test_malicious_label_file_through_the_evaluation_benchmark_reader(evil, tmp_path):
    payload, marker, name = evil
    root = make_mer2023(tmp_path / "mer2023")
    np.savez(root / "label-6way.npz", test1_corpus={"sample_00000001": {"emo": payload}})
    with pytest.raises(UnsafeFileError, match=rf"label-6way\.npz.*asks for \S*{name}"):
        load_eval_benchmark("mer2023", root)
    assert not marker.exists()


def test_malicious_label_file_through_the_instruction_data_reader(evil, tmp_path):
    payload, marker, name = evil
    root = tmp_path / "mer2023"
    root.mkdir()
    np.savez(root / "label-6way.npz", train_corpus=_object_array({"s1": {"emo": "happy"}}, payload))
    with pytest.raises(UnsafeFileError, match=rf"label-6way\.npz.*asks for \S*{name}"):
        read_dataset("mer2023", root, on_missing_media="keep")
    assert not marker.exists()


def test_object_arrays_of_plain_data_and_numeric_arrays_still_load(tmp_path):
    corpus = {"sample_1": {"emo": "happy", "val": np.float64(1.5), "index": np.int64(3), "au": np.arange(3)},
              "sample_2": {"emo": 2, "val": -0.5, "tags": ["a", ("b", 1)], "none": None, "z": 1 + 2j}}
    np.savez(tmp_path / "label.npz", test_corpus=corpus, weights=np.linspace(0, 1, 5), names=np.array(["x", "y"]))
    arrays = load_npz(tmp_path / "label.npz")
    loaded = arrays["test_corpus"].tolist()
    assert loaded["sample_1"]["val"] == 1.5 and loaded["sample_1"]["index"] == 3
    assert loaded["sample_1"]["au"].tolist() == [0, 1, 2] and loaded["sample_2"]["tags"] == ["a", ("b", 1)]
    assert loaded["sample_2"]["none"] is None and loaded["sample_2"]["z"] == 1 + 2j
    assert arrays["weights"].tolist() == np.linspace(0, 1, 5).tolist() and arrays["names"].tolist() == ["x", "y"]
    old = _object_array({"emo": "sad", "val": np.float32(-1.0)})
    with open(tmp_path / "old.npy", "wb") as handle:  # protocol 2 (Python 2 era files): bytes via _codecs.encode
        np.lib.format.write_array_header_1_0(handle, np.lib.format.header_data_from_array_1_0(old))
        pickle.dump(old, handle, protocol=2)
    assert load_npz(tmp_path / "old.npy")["arr_0"].tolist() == [{"emo": "sad", "val": -1.0}]
    # the readers: MER-UniBench label files (object arrays) and numeric prediction files
    rows = load_eval_benchmark("mer2023", make_mer2023(tmp_path / "mer2023")).samples
    assert rows["reference"] == ["happy", "angry", "worried"]
    np.savez(tmp_path / "preds.npz", filenames=np.array(["a", "b"]), fileitems=np.array([0.5, -1.0]))
    assert {k: r["value"] for k, r in read_records(tmp_path / "preds.npz").records.items()} == {"a": 0.5, "b": -1.0}


def _real_npz_files() -> list[Path]:
    return sorted(SHARED_DATA.rglob("*.npz")) if SHARED_DATA.is_dir() else []


@pytest.mark.parametrize("path", _real_npz_files() or [None], ids=lambda p: p.name if p else "none")
def test_real_npz_files_load_with_the_restricted_reader(path):
    if path is None:
        pytest.skip(f"no .npz file under {SHARED_DATA}")
    arrays = load_npz(path)
    with np.load(path, allow_pickle=False) as plain:  # what can be compared without unpickling
        for key in plain.files:
            if plain[key].dtype != object:
                assert np.array_equal(arrays[key], plain[key])


# ------------------------------------------------------------------------------ P2E trainer state
def test_p2e_trainer_state_written_by_the_trainer_resumes_and_a_pickle_is_refused(tmp_path):
    from mmaffect.train.p2e import TRAINER_STATE, read_trainer_state

    sampler = MixtureSampler({"MER": 0.6, "ERG": 0.4}, {"MER": {"meld": (10, 1.0)}, "ERG": {"avamerg": (4, 1.0)}}, seed=3)
    sampler.position = 17
    # exactly what P2ETrainer._train_phase writes
    torch.save({"phase": "phase1", "step": 4, "micro_batches": 8, "sampler": sampler.state_dict()}, tmp_path / TRAINER_STATE)
    state = read_trainer_state(tmp_path / TRAINER_STATE)
    resumed = MixtureSampler({"MER": 0.6, "ERG": 0.4}, {"MER": {"meld": (10, 1.0)}, "ERG": {"avamerg": (4, 1.0)}}, seed=3)
    resumed.load_state_dict(state["sampler"])
    assert (state["phase"], state["micro_batches"], resumed.position) == ("phase1", 8, 17)

    marker = tmp_path / "pwned"
    torch.save({"phase": "phase1", "micro_batches": 0, "sampler": _OpensAFile(marker)}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match=r"evil\.pt: not a loadable P2E trainer state"):
        read_trainer_state(tmp_path / "evil.pt")
    assert not marker.exists()


# ------------------------------------------------------------------------------ data root
def _outside_clip(tmp_path: Path) -> Path:
    clip = tmp_path / "elsewhere" / "secret.mp4"
    clip.parent.mkdir(parents=True, exist_ok=True)
    clip.write_bytes(b"not yours")
    return clip


def test_evaluation_benchmark_refuses_ids_that_leave_the_data_root(tmp_path):
    _outside_clip(tmp_path)
    root = make_mer2023(tmp_path / "data" / "mer2023")
    np.savez(root / "label-6way.npz", test1_corpus={"../../../elsewhere/secret": {"emo": "happy"}})
    (root / "transcription-engchi-polish.csv").write_text("name,english\n../../../elsewhere/secret,hi\n", encoding="utf-8")
    with pytest.raises(OutsideDataRootError, match=r"mer2023: MER2023 test row 1 \(sample id '\.\./\.\./\.\./elsewhere/secret'\)"):
        load_eval_benchmark("mer2023", root)
    data = load_eval_benchmark("mer2023", root, allow_outside_data_root=True)
    assert Path(data.samples[0]["video"]).resolve() == (tmp_path / "elsewhere" / "secret.mp4").resolve()


def test_evaluation_cli_refuses_them_unless_the_flag_is_given(tmp_path, capsys):
    _outside_clip(tmp_path)
    root = make_mer2023(tmp_path / "data" / "mer2023")
    np.savez(root / "label-6way.npz", test1_corpus={"../../../elsewhere/secret": {"emo": "happy"}})
    (root / "transcription-engchi-polish.csv").write_text("name,english\n../../../elsewhere/secret,hi\n", encoding="utf-8")
    command = ["--predictor", "openai", "--base-url", "http://127.0.0.1:9/v1", "--model-name", "m", "--dataset", "mer2023",
               "--data-dir", str(root), "--output-dir", str(tmp_path / "out"), "--quiet",
               "--wheel-dir", str(write_e2e_wheel_dir(tmp_path / "wheel"))]
    assert mmaffect_main(["evaluate", *command]) == 2
    assert "outside the data root" in capsys.readouterr().err
    # with the flag the run reads that file as the sample's video (here: not a video, so it stops there)
    assert mmaffect_main(["evaluate", *command, "--allow-outside-data-root"]) == 2
    err = capsys.readouterr().err
    assert "outside the data root" not in err and "elsewhere/secret.mp4: cannot decode video" in err, err


def test_instruction_data_refuses_media_outside_the_data_root(tmp_path):
    clip = _outside_clip(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    records = [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "happy"}], "videos": [str(clip)]}]
    (data / "chat.json").write_text(json.dumps(records), encoding="utf-8")
    with pytest.raises(OutsideDataRootError, match=r"chat\.json: chat record 'secret'.*outside the data root"):
        read_dataset("chat", data / "chat.json")
    assert read_dataset("chat", data / "chat.json", allow_outside_data_root=True)[0].video == str(clip)
    # a sample name in a label file climbing out of the media folder
    root = data / "mer2023"
    (root / "video").mkdir(parents=True)
    np.savez(root / "label-6way.npz", train_corpus={"../../../elsewhere/secret": {"emo": "happy"}})  # from mer2023/video/
    with pytest.raises(OutsideDataRootError, match=r"mer2023 record '\.\./\.\./\.\./elsewhere/secret'"):
        read_dataset("mer2023", root)


def test_lgsrr_benchmark_refuses_ids_that_leave_the_media_folder(tmp_path, capsys):
    _outside_clip(tmp_path)
    root, media = tmp_path / "iemocap-da", tmp_path / "media"
    root.mkdir()
    media.mkdir()
    header = "TURN\tUTTERANCE\tDA\tEMOTION"
    (root / "train.tsv").write_text(f"{header}\n../elsewhere/secret\thello\tq\txxx\n", encoding="utf-8")
    (root / "dev.tsv").write_text(f"{header}\nSes03M_impro08b_F024\talright thanks.\tg\tneu\n", encoding="utf-8")
    (root / "test.tsv").write_text(f"{header}\nSes05F_impro03_M016\toh, okay.\tb\txxx\n", encoding="utf-8")
    with pytest.raises(OutsideDataRootError, match=r"train\.tsv:2: media path '\.\./elsewhere/secret'"):
        load_benchmark("iemocap-da", root, media_dir=media, keep_in_memory=True)
    with pytest.warns(UserWarning):  # dev/test clips are missing: reported, not an error
        dataset = load_benchmark("iemocap-da", root, media_dir=media, keep_in_memory=True, allow_outside_data_root=True)
    assert Path(dataset["train"][0]["video"]).resolve() == (tmp_path / "elsewhere" / "secret.mp4").resolve()
    command = ["data-stats", "iemocap-da", "--data-dir", str(root), "--media-dir", str(media)]
    assert mmaffect_main(command) == 2
    assert "train.tsv:2: media path '../elsewhere/secret'" in capsys.readouterr().err
    with pytest.warns(UserWarning):
        assert mmaffect_main([*command, "--allow-outside-data-root"]) == 0


def test_extraction_samples_refuse_video_names_that_leave_the_video_dir(tmp_path, capsys):
    data_dir, video_dir = make_extraction_mintrec2(tmp_path, {"train": ["hello there"]}, videos=False)
    train = data_dir / "train.tsv"
    train.write_text(train.read_text(encoding="utf-8").replace("\n1\t0\t", "\n/../../elsewhere/x\t0\t", 1), encoding="utf-8")
    with pytest.raises(OutsideDataRootError, match=r"train\.tsv:2: media path 'dia/\.\./\.\./elsewhere/x_utt0\.mp4'"):
        read_samples(LAYOUTS["mintrec2"], data_dir, "train", video_dir)
    sample = read_samples(LAYOUTS["mintrec2"], data_dir, "train", video_dir, allow_outside_data_root=True)[0]
    assert Path(sample.video).resolve() == (tmp_path / "elsewhere" / "x_utt0.mp4").resolve()
    command = ["describe", "--backend", "openai", "--model", "m", "--base-url", "http://127.0.0.1:9/v1", "--data-dir",
               str(data_dir), "--video-dir", str(video_dir), "--output-dir", str(tmp_path / "o"), "--splits", "train"]
    assert extract_main(command) == 1
    assert "outside the data root" in capsys.readouterr().err
    args = build_extract_parser().parse_args([*command, "--allow-outside-data-root"])
    assert load_config(None, overrides_from_args(args)).allow_outside_data_root is True


# ------------------------------------------------------------------------------ secrets
SECRETS = ("sk-secret-header-0123456789", "sk-secret-apikey-0123456789", "sk-secret-env-0123456789")


def test_a_backend_spec_without_type_never_shows_its_secrets(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MY_SERVICE_API_KEY", SECRETS[2])
    spec = {"base_url": f"http://127.0.0.1:9/v1?key={SECRETS[2]}", "model": "m", "api_key": SECRETS[1],
            "headers": {"Authorization": f"Bearer {SECRETS[0]}", "X-Team": "research"}}
    with pytest.raises(ValueError) as error:
        build_backend(spec)
    message = str(error.value)
    assert "'type'" in message and "<redacted>" in message and "X-Team" in message
    assert not any(secret in message for secret in SECRETS), message
    # the same spec from a config file through `mmaffect extract`: stderr and every written file are clean
    data_dir, video_dir = make_extraction_mintrec2(tmp_path, {"train": ["hello"]})
    config = tmp_path / "extract.yaml"
    config.write_text(json.dumps({"data_dir": str(data_dir), "video_dir": str(video_dir), "output_dir": str(tmp_path / "out"),
                                  "splits": ["train"], "backend": spec}), encoding="utf-8")
    assert extract_main(["discover", "--config", str(config), "--no-progress"]) == 1
    captured = capsys.readouterr()
    assert "a backend spec is a mapping with a 'type'" in captured.err
    written = [p for p in (tmp_path / "out").rglob("*") if p.is_file()] if (tmp_path / "out").exists() else []
    for text in [captured.out, captured.err, *(p.read_text(encoding="utf-8", errors="replace") for p in written)]:
        assert not any(secret in text for secret in SECRETS)
