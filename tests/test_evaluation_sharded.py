"""``accelerate launch --num_processes 2 ... mmaffect evaluate``: two real CPU processes (gloo) share the batches,
their replies are merged into the one resumable ``replies.jsonl`` (each sample generated once), and the replies and
scores are those of a one-process run, sampled decoding included (the per-batch seed sees the same batches)."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from evaluation_support import save_tiny_nano_emox

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from mmaffect.train.p2e_synthetic import make_learnable_corpus

    root = tmp_path_factory.mktemp("sharded")
    corpus = make_learnable_corpus(root / "mer2023", train_per_label=1, test_per_label=3)  # 12 held-out clips
    return save_tiny_nano_emox(root / "tiny"), corpus


def _evaluate(model, corpus, output, processes: int):
    args = ["-m", "mmaffect.cli", "evaluate", "--model", str(model), "--dataset", "mer2023", "--data-dir", str(corpus),
            "--wheel-dir", str(corpus / "emotion_wheel"), "--batch-size", "2", "--decoding", "sample",
            "--max-new-tokens", "4", "--output-dir", str(output), "--quiet", "--device", "cpu"]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    launcher = []
    if processes > 1:  # --multi_gpu with ACCELERATE_USE_CPU: real processes on CPU (--cpu alone runs one process)
        env["ACCELERATE_USE_CPU"] = "1"
        launcher = ["-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
                    "--main_process_port", str(_free_port()), "--mixed_precision", "no"]  # fmt: skip
    result = subprocess.run([sys.executable, *launcher, *args], env=env, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = [json.loads(line) for line in (output / "replies.jsonl").read_text().splitlines()]
    return lines, json.loads((output / "results.json").read_text())


@pytest.fixture(scope="module")
def single(setup, tmp_path_factory):
    model, corpus = setup
    return _evaluate(model, corpus, tmp_path_factory.mktemp("one"), 1)


def test_two_processes_generate_each_sample_once_with_the_replies_and_scores_of_one_process(setup, single, tmp_path):
    model, corpus = setup
    sharded, result = _evaluate(model, corpus, tmp_path, 2)
    one, one_result = single
    assert len(one) == 12 and sorted(r["id"] for r in sharded) == sorted(r["id"] for r in one)  # each sample once
    assert {r["id"]: r["reply"] for r in sharded} == {r["id"]: r["reply"] for r in one}
    assert len({r["reply"] for r in one}) > 1  # sampled replies differ: equality is not a constant reply
    assert not list(tmp_path.glob("replies.part*"))
    assert (result["metrics"], result["num_generated"], result["num_cached"]) == (one_result["metrics"], 12, 0)
    assert (tmp_path / "predictions.jsonl").read_text() == (Path(one_result["predictions_file"])).read_text()


def test_a_killed_sharded_run_resumes_from_its_part_files(setup, single, tmp_path):
    model, corpus = setup
    one, _ = single
    # a killed 2-process run left process 1's part file with one reply: merged at the start, never generated again
    left = dict(one[-1], reply="angry (left by a killed run)")
    (tmp_path / "replies.part1.jsonl").write_text(json.dumps(left) + "\n")
    sharded, result = _evaluate(model, corpus, tmp_path, 2)
    assert sorted(r["id"] for r in sharded) == sorted(r["id"] for r in one) and not list(tmp_path.glob("replies.part*"))
    assert {r["id"]: r["reply"] for r in sharded}[left["id"]] == left["reply"]
    assert (result["num_samples"], result["num_cached"], result["num_generated"]) == (12, 1, 11)
