"""Issue 21, items 5-10: no stale predictions, no silent neutral scores, errors that name the file, one
run per output folder. Each test fails on the code before the fix (see each docstring)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings

import pytest
from evaluation_support import make_mosi, save_tiny_nano_emox, write_e2e_wheel_dir
from lgsrr_inference_support import EXAMPLE, run_without_mmaffect, tiny_lgsrr

from mmaffect import cli


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_lgsrr(tmp_path_factory.mktemp("tiny_lgsrr"))


def _rows(n=3, word="kind"):
    return [{"id": f"r{i}", "text": f"thanks {'so ' * i}{word}", "descriptions": EXAMPLE["descriptions"]} for i in range(n)]


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _predict(*argv):
    return cli.main(["predict", *map(str, argv), "--no-progress"])


# --------------------------------------------------------------------------- 5. mmaffect predict: stale rows
def test_predict_refuses_its_input_as_output(tiny, tmp_path, capsys):
    """Before: the input's ids counted as done; exit 0 and a file without labels."""
    source = _write_jsonl(tmp_path / "rows.jsonl", _rows())
    before = source.read_text()
    assert _predict("--model", tiny, "--input", source, "--output", tmp_path / "." / "rows.jsonl") == 2
    err = capsys.readouterr().err
    assert "is the --input file" in err and len(err.strip().splitlines()) == 1
    assert source.read_text() == before


@pytest.fixture
def finished(tiny, tmp_path, capsys):
    """A finished `mmaffect predict` run: (input, output, the output's text)."""
    source, output = _write_jsonl(tmp_path / "rows.jsonl", _rows()), tmp_path / "p.jsonl"
    assert _predict("--model", tiny, "--input", source, "--output", output) == 0
    capsys.readouterr()
    return source, output, output.read_text()


def test_predict_says_how_many_rows_it_reused(tiny, finished, capsys):
    """Before: nothing said that rows were reused."""
    source, output, complete = finished
    output.write_text(complete.splitlines(keepends=True)[1])  # a killed run: one record left
    assert _predict("--model", tiny, "--input", source, "--output", output) == 0
    assert "1 of 3 row(s) reused" in capsys.readouterr().err and output.read_text() == complete


def test_predict_refuses_an_output_of_another_model(tiny, finished, tmp_path, capsys):
    """Before: another model's predictions were kept as if they were this model's."""
    from safetensors.torch import load_file, save_file

    source, output, complete = finished
    other = tmp_path / "other_model"  # the same folder with one weight changed
    shutil.copytree(tiny, other)
    tensors = load_file(other / "model.safetensors")
    name = sorted(tensors)[0]
    tensors[name] = tensors[name] + 1
    save_file(tensors, other / "model.safetensors", metadata={"format": "pt"})
    assert _predict("--model", other, "--input", source, "--output", output) == 2
    err = capsys.readouterr().err
    assert f"--output {output} was written for another model" in err and len(err.strip().splitlines()) == 1
    assert output.read_text() == complete
    assert _predict("--model", tiny, "--input", source, "--output", output, "--top-k", "2") == 2  # other settings
    assert "top_k 5; now" in capsys.readouterr().err


def test_predict_refuses_an_output_of_other_input_rows(tiny, finished, capsys):
    """Before: the same ids with other text kept their old predictions."""
    source, output, complete = finished
    _write_jsonl(source, _rows(word="rude"))
    assert _predict("--model", tiny, "--input", source, "--output", output) == 2
    err = capsys.readouterr().err
    assert f"--output {output}:1: row 'r0' was predicted from another input row than --input line 1" in err
    assert output.read_text() == complete


def test_predict_refuses_a_file_it_did_not_write(tiny, finished, tmp_path, capsys):
    """Before: its records counted as done, and its unfinished last line was cut off."""
    source = finished[0]
    foreign = tmp_path / "notes.jsonl"
    foreign.write_text('{"id": "r0", "label": "mine"}\n{"id": "r1"')
    assert _predict("--model", tiny, "--input", source, "--output", foreign) == 2
    assert "was not written by mmaffect predict" in capsys.readouterr().err
    assert foreign.read_text() == '{"id": "r0", "label": "mine"}\n{"id": "r1"'


def test_predict_on_bad_rows_skip_lists_every_skipped_row(tiny, tmp_path, capsys):
    """Before: there was no --on-bad-rows (argparse exit 2); the first bad row stopped everything."""
    good = _rows(2)
    lines = [json.dumps(good[0]), '{"text": oops}', json.dumps({"id": "x", "text": "", "descriptions": ["a", "b", "c"]}),
             json.dumps(good[1]), json.dumps({**good[1], "text": "again"})]
    source = tmp_path / "rows.jsonl"
    source.write_text("\n".join(lines) + "\n")
    output = tmp_path / "p.jsonl"
    assert _predict("--model", tiny, "--input", source, "--output", output) == 2  # strict by default
    assert f"{source}:2: not valid JSON" in capsys.readouterr().err and not output.exists()

    assert _predict("--model", tiny, "--input", source, "--output", output, "--on-bad-rows", "skip") == 0
    assert [json.loads(line)["id"] for line in output.read_text().splitlines()] == ["r0", "r1"]
    err = capsys.readouterr().err
    assert "skipped 3 bad row(s)" in err
    for where in (f"{source}:2: not valid JSON", f"{source}:3: text: the utterance text is empty",
                  f"{source}:5: id 'r1' repeats line 4"):
        assert where in err, err
    side = [json.loads(line) for line in (tmp_path / "p.jsonl.skipped.jsonl").read_text().splitlines()]
    assert [(s["line"], s["file"]) for s in side] == [(2, str(source)), (3, str(source)), (5, str(source))]
    assert "repeats line 4" in side[2]["reason"]


# --------------------------------------------------------------------------- 6. MSA scores that are not numbers
def test_msa_counts_predictions_scored_as_neutral_and_names_a_nan_reference(tmp_path, capsys):
    """Before: NaN / "abc" predictions became neutral without a word; a NaN reference named no file."""
    from mmaffect.evaluation.cli_score import main
    from mmaffect.metrics.msa import msa_scores

    predictions = tmp_path / "pred.jsonl"
    predictions.write_text('{"id": "a", "sentiment": "positive"}\n{"id": "b", "sentiment": NaN}\n'
                           '{"id": "c", "sentiment": "abc"}\n{"id": "d", "sentiment": "negative"}\n')
    references = tmp_path / "refs.csv"
    references.write_text("id,score\na,1.2\nb,-0.4\nc,0.8\nd,-2\n")
    output = tmp_path / "result.json"
    argv = ["--task", "msa", "--predictions", str(predictions), "--references", str(references), "--output", str(output)]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert f"2 of 4 prediction(s) in {predictions} are not a sentiment" in err and "scored as neutral" in err
    assert json.loads(output.read_text())["metrics"]["num_treated_as_neutral"] == 2
    assert msa_scores(["positive", float("nan"), "abc"], [1, -1, 1])["num_treated_as_neutral"] == 2

    references.write_text("id,score\na,1.2\nb,nan\nc,0.8\nd,-2\n")
    assert main(argv) == 2
    assert f"{references}:3: reference is NaN" in capsys.readouterr().err


# --------------------------------------------------------------------------- 7. errors that name the file
def test_non_utf8_bytes_name_the_file_and_line(tiny, tmp_path, capsys):
    """Before: `'utf-8' codec can't decode byte 0xff ...` with no file."""
    from mmaffect.evaluation.cli_score import main

    references = tmp_path / "refs.csv"
    references.write_text("id,score\na,1\nb,-1\n")
    for name, content in (("pred.jsonl", b'{"id": "a", "sentiment": "positive"}\n{"id": "b", "sentiment": "n\xffg"}\n'),
                          ("pred.csv", b"id,sentiment\na,positive\nb,n\xffg\n")):
        (tmp_path / name).write_bytes(content)
        assert main(["--task", "msa", "--predictions", str(tmp_path / name), "--references", str(references)]) == 2
        err = capsys.readouterr().err
        line = 2 if name.endswith(".jsonl") else 3
        assert f"{tmp_path / name}:{line}: not UTF-8 text (byte 0xff" in err, err
    for name, content in (("rows.jsonl", b'{"id": "a", "text": "caf\xe9", "descriptions": ["a", "b", "c"]}\n'),
                          ("rows.tsv", b"text\tactions\texpressions\tinteractions\nhi\ta\tb\tc\ncaf\xe9\ta\tb\tc\n")):
        (tmp_path / name).write_bytes(content)
        assert _predict("--model", tiny, "--input", tmp_path / name, "--output", tmp_path / "p.jsonl") == 2
        err = capsys.readouterr().err
        line = 1 if name.endswith(".jsonl") else 3
        assert f"{tmp_path / name}:{line}: not UTF-8 text (byte 0xe9" in err, err


class _Scripted:
    """Fixed replies by id; records what it was asked (the Predictor interface, no model)."""

    name = "scripted"
    batch_size = 2

    def __init__(self, replies):
        self.replies, self.asked = replies, []

    def fingerprint(self):
        return {"predictor": "scripted", "replies": sorted(self.replies.items())}

    def required_media(self):
        return set()

    def predict(self, requests):
        self.asked += [r.id for r in requests]
        return [self.replies[r.id] for r in requests]


MOSI_REPLIES = {"abc_1": "positive", "abc_2": "negative", "def_3": "neutral", "def_4": "positive"}


@pytest.fixture(scope="module")
def mosi(tmp_path_factory):
    root = tmp_path_factory.mktemp("mosi")
    return make_mosi(root / "data"), write_e2e_wheel_dir(root / "wheels")


def _damaged_replies(mosi, folder, damage):
    """A finished run whose replies.jsonl lines are damaged by ``damage(records) -> list of bytes``; the
    rerun's predictor and result, and the warnings."""
    from mmaffect.evaluation import evaluate_benchmark

    data, wheels = mosi
    evaluate_benchmark(_Scripted(MOSI_REPLIES), "mosi", folder, data_dir=data, wheel_dir=wheels, progress=False)
    replies = folder / "replies.jsonl"
    records = [json.loads(line) for line in replies.read_text(encoding="utf-8").splitlines()]
    replies.write_bytes(b"\n".join(damage(records)) + b"\n")
    again = _Scripted(MOSI_REPLIES)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = evaluate_benchmark(again, "mosi", folder, data_dir=data, wheel_dir=wheels, progress=False)
    return again, result, [str(w.message) for w in caught]


def test_reply_lines_of_the_wrong_shape_are_skipped_and_regenerated(mosi, tmp_path):
    """Before: a line without `reply` raised KeyError; a number as `reply` was scored as a reply."""
    def damage(records):
        del records[0]["reply"]
        records[1]["reply"] = 5
        return [json.dumps(r).encode() for r in records]

    again, result, messages = _damaged_replies(mosi, tmp_path, damage)
    assert again.asked == ["abc_1", "abc_2"] and result["num_cached"] == 2
    for line in (1, 2):
        assert f"{tmp_path / 'replies.jsonl'}:{line}: unreadable cache line skipped" in messages, messages
    assert result["metrics"]["accuracy"] == 1.0


def test_a_reply_line_that_is_not_utf8_is_named_skipped_and_regenerated(mosi, tmp_path):
    """Before: `UnicodeDecodeError: 'utf-8' codec can't decode byte 0xff` naming no file stopped the run."""
    def damage(records):
        lines = [json.dumps(r).encode() for r in records]
        lines[2] = lines[2].replace(b'"neutral"', b'"neu\xfftral"')
        return lines

    again, result, messages = _damaged_replies(mosi, tmp_path, damage)
    assert again.asked == ["def_3"] and result["num_cached"] == 3
    assert f"{tmp_path / 'replies.jsonl'}:3: unreadable cache line skipped" in messages, messages


def test_truncated_nano_emox_weights_are_named_by_mmaffect_evaluate(mosi, tmp_path, capsys):
    """Before: `SafetensorError: Error while deserializing header: ...` without the file."""
    model = save_tiny_nano_emox(tmp_path / "nano")
    weights = model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    capsys.readouterr()  # save_pretrained's progress bar
    argv = ["evaluate", "--model", str(model), "--dataset", "mosi", "--data-dir", str(mosi[0]),
            "--wheel-dir", str(mosi[1]), "--output-dir", str(tmp_path / "out"), "--quiet"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert f"{weights}: truncated" in err and len(err.strip().splitlines()) == 1


def test_truncated_lgsrr_weights_are_named_by_its_remote_code(tmp_path):
    """Before: `AutoModel.from_pretrained(dir, trust_remote_code=True)` raised SafetensorError without the file."""
    model = tiny_lgsrr(tmp_path / "lgsrr")
    weights = model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    result = run_without_mmaffect(f"""
        from transformers import AutoModel
        try:
            AutoModel.from_pretrained({str(model)!r}, trust_remote_code=True)
        except OSError as error:
            print("ERROR", error)
    """, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"ERROR {weights}: cannot read the weights, the file is truncated or corrupt" in result.stdout


# --------------------------------------------------------------------------- 8. a model folder without config.json
def test_evaluate_model_folder_without_config_says_so(tmp_path, capsys):
    """Before: the folder went to the LGSRR evaluator, which failed on the multimodal flags
    (`unrecognized arguments: --wheel-dir ... --max-new-tokens 4`)."""
    folder = tmp_path / "weights_only"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"")
    try:
        code = cli.main(["evaluate", "--model", str(folder), "--dataset", "mosi", "--data-dir", str(tmp_path),
                         "--wheel-dir", str(tmp_path), "--max-new-tokens", "4"])
    except SystemExit as exit:  # argparse's own exit (the old behaviour)
        code = exit.code
    assert code == 2
    err = capsys.readouterr().err
    assert f"--model {folder}: the folder has no config.json" in err and len(err.strip().splitlines()) == 1


# --------------------------------------------------------------------------- 10. one run per output folder
@pytest.fixture
def live_pid():
    """The pid of a live process that is not this one (the holder of a lock)."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield process.pid
    process.kill()
    process.wait()


def _hold(folder, pid):
    from mmaffect.run_lock import LOCK_NAME

    folder.mkdir(parents=True, exist_ok=True)
    (folder / LOCK_NAME).write_text(json.dumps({"pid": pid, "host": os.uname().nodename, "started": "earlier",
                                                "command": "mmaffect train other.yaml"}))
    return folder / LOCK_NAME


def test_run_lock_refuses_a_live_holder_takes_over_a_dead_one_and_releases(tmp_path, live_pid, monkeypatch):
    """Before: there was no lock at all (mmaffect.run_lock did not exist)."""
    from mmaffect.run_lock import RunLockedError, run_lock

    lock = _hold(tmp_path, live_pid)
    with pytest.raises(RunLockedError, match=rf"{tmp_path} is in use by another run \(pid {live_pid}"):
        with run_lock(tmp_path):
            pass
    with run_lock(tmp_path, is_main_process=False) as path:  # another rank of the main process's run
        assert path is None
    monkeypatch.setenv("RANK", "1")  # as `accelerate launch` sets it for the second process
    with run_lock(tmp_path) as path:
        assert path is None
    monkeypatch.setenv("RANK", "0")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _hold(tmp_path, dead.pid)
    with pytest.warns(UserWarning, match=rf"taking over the lock of a run that is gone \(pid {dead.pid}"):
        with pytest.raises(KeyError):
            with run_lock(tmp_path):
                assert json.loads(lock.read_text())["pid"] == os.getpid()
                raise KeyError("the run failed")
    assert not lock.exists()  # released on the exception
    lock.write_text("")  # created by a run that has not written its pid yet: busy; later, a stale leftover
    with pytest.raises(RunLockedError, match="is being taken by another run that is starting"):
        with run_lock(tmp_path):
            pass
    os.utime(lock, (0, 0))
    with pytest.warns(UserWarning, match="taking over"):
        with run_lock(tmp_path):
            pass
    assert not lock.exists()


def test_train_and_evaluate_refuse_a_locked_output_dir(tmp_path, live_pid, mosi, capsys):
    """Before: a second `mmaffect train` / `mmaffect evaluate` ran into the same folder."""
    from mmaffect.evaluation import evaluate_benchmark
    from mmaffect.run_lock import RunLockedError
    from mmaffect.train.lgsrr import LGSRRTrainingConfig, train
    from mmaffect.train.p2e import P2ETrainer, load_run_config

    lock = _hold(tmp_path / "lgsrr", live_pid)
    with pytest.raises(RunLockedError, match=f"pid {live_pid}"):
        train(LGSRRTrainingConfig(output_dir=str(tmp_path / "lgsrr")))
    assert sorted(p.name for p in lock.parent.iterdir()) == [lock.name]  # nothing written

    _hold(tmp_path / "p2e", live_pid)
    config = load_run_config(os.path.join(os.path.dirname(__file__), "..", "configs", "p2e_tiny.yaml"),
                             data_root=tmp_path / "no_data", output_dir=tmp_path / "p2e")
    with pytest.raises(RunLockedError, match=f"pid {live_pid}"):
        P2ETrainer(config).run()
    assert not (tmp_path / "p2e" / "p2e_config.json").exists()

    _hold(tmp_path / "eval", live_pid)
    predictor = _Scripted(MOSI_REPLIES)
    with pytest.raises(RunLockedError, match=f"pid {live_pid}"):
        evaluate_benchmark(predictor, "mosi", tmp_path / "eval", data_dir=mosi[0], wheel_dir=mosi[1], progress=False)
    assert predictor.asked == [] and not (tmp_path / "eval" / "replies.jsonl").exists()
    # a finished evaluation releases its lock: the next run into the folder goes ahead
    evaluate_benchmark(predictor, "mosi", tmp_path / "eval2", data_dir=mosi[0], wheel_dir=mosi[1], progress=False)
    evaluate_benchmark(predictor, "mosi", tmp_path / "eval2", data_dir=mosi[0], wheel_dir=mosi[1], progress=False)
    assert not (tmp_path / "eval2" / ".mmaffect.lock").exists()
