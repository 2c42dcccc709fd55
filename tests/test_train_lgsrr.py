"""mmaffect train (LGSRR): end-to-end run, determinism, resume equivalence, seeds, fast modes, config."""

from __future__ import annotations

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from test_train_lgsrr_fixtures import tiny_config

from mmaffect.train import cli

REPO = Path(__file__).resolve().parents[1]


def train(config: Path, *extra: str) -> int:
    return cli.main(["--config", str(config), *extra])


def results(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


def test_end_to_end_train_then_evaluate(tmp_path):
    config = tiny_config(tmp_path)
    assert train(config) == 0
    run = tmp_path / "run"
    res = results(run)
    assert res["finished"] and res["epochs_run"] == 3 and 1 <= res["best_epoch"] <= 3
    assert len(res["history"]) == 3 and all("dev_macro_f1" in h for h in res["history"])
    assert res["history"][-1]["train_loss"] < res["history"][0]["train_loss"]  # it learns
    assert set(res["test"]) >= {"accuracy", "macro_f1", "weighted_f1", "macro_precision", "weighted_precision"}

    best = run / "best_model"
    for name in ("config.json", "model.safetensors", "modeling_lgsrr.py", "configuration_lgsrr.py", "ranking_loss.py",
                 "tokenizer.json", "README.md", "training_config.json"):
        assert (best / name).exists(), name
    assert not list(best.glob("*.bin"))  # safetensors only
    config_json = json.loads((best / "config.json").read_text())
    assert config_json["auto_map"]["AutoModelForSequenceClassification"].endswith("LGSRRForSequenceClassification")
    assert config_json["id2label"]["0"] == "Acknowledge" and len(config_json["id2label"]) == 30

    card = (best / "README.md").read_text()
    meta = yaml.safe_load(card.split("---")[1])
    assert meta["license"] == "cc-by-nc-sa-4.0" and "datasets" not in meta  # no Hub dataset id we cannot vouch for
    assert "pipeline_tag" not in meta and "base_model" not in meta  # no widget for remote code; a local encoder
    assert str(tmp_path) not in card and str(tmp_path) not in (best / "config.json").read_text()
    scores = {m["type"]: m["value"] for m in meta["model-index"][0]["results"][0]["metrics"]}
    assert scores["accuracy"] == round(100 * res["test"]["accuracy"], 2)
    for section in ("## Intended use", "## Training data", "## Training procedure", "## Limitations"):
        assert section in card

    # the test split of the best epoch, written at the end of training ...
    written = json.loads((run / "test" / "results.json").read_text())
    assert written["metrics"] == pytest.approx(res["test"])
    assert (run / "test" / "confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # ... and `mmaffect evaluate` on the saved folder agree
    from mmaffect.evaluation import cli_classifier as evaluate

    out = tmp_path / "eval"
    assert evaluate.main(["--model", str(best), "--dataset", "mintrec2", "--data-dir", str(tmp_path / "release/data_text"),
                          "--descriptions-dir", str(tmp_path / "release/data_desc"), "--output-dir", str(out)]) == 0
    again = json.loads((out / "results.json").read_text())["metrics"]
    assert again == pytest.approx(res["test"], abs=1e-9)
    first = json.loads((out / "predictions.jsonl").read_text().splitlines()[0])
    assert set(first["importance"]) == {"text", "actions", "expressions", "interactions"}
    assert sum(first["importance"].values()) == pytest.approx(1.0, abs=1e-4)
    assert sorted(first["importance_ranking"]) == sorted(first["importance"])


def test_same_seed_same_run_other_seed_other_run(tmp_path):
    a, b, c = (tiny_config(tmp_path, output_dir=str(tmp_path / name), num_train_epochs=2, **extra)
               for name, extra in (("a", {}), ("b", {}), ("c", {"seed": 1})))
    for config in (a, b, c):
        assert train(config) == 0
    ra, rb, rc = (results(tmp_path / name) for name in "abc")
    assert ra["history"] == rb["history"] and ra["test"] == rb["test"]
    assert ra["history"][0]["train_loss"] != rc["history"][0]["train_loss"]


def test_resume_after_stop_equals_uninterrupted(tmp_path):
    full = tiny_config(tmp_path, output_dir=str(tmp_path / "full"))
    assert train(full) == 0
    split = tiny_config(tmp_path, output_dir=str(tmp_path / "split"), checkpoint_every_steps=2)
    assert train(split, "--stop_after_epochs", "1") == 3  # unfinished
    assert not (tmp_path / "split" / "results.json").exists()
    with pytest.raises(FileExistsError, match="resume_from_checkpoint"):
        train(split)
    assert train(split, "--resume_from_checkpoint", "latest") == 0
    a, b = results(tmp_path / "full"), results(tmp_path / "split")
    assert a["history"] == b["history"]
    assert a["dev"] == b["dev"] and a["test"] == b["test"]


def test_killed_run_resumes_to_the_same_result(tmp_path):
    """SIGKILL a real training process after its first mid-epoch checkpoint, resume, compare."""
    full = tiny_config(tmp_path, output_dir=str(tmp_path / "full"), num_train_epochs=4, checkpoint_every_steps=1)
    assert train(full) == 0
    killed = tiny_config(tmp_path, output_dir=str(tmp_path / "killed"), num_train_epochs=4, checkpoint_every_steps=1)
    # The child computes with this process's thread count: MKL splits a GEMM's sums by thread count, so a
    # child on 1 thread and in-process runs on 2+ differ in the last bits (an 8th-digit train_loss).
    env = dict(os.environ, OMP_NUM_THREADS=str(torch.get_num_threads()))
    proc = subprocess.Popen([sys.executable, str(REPO / "train.py"), "--config", str(killed)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoints = tmp_path / "killed" / "checkpoints"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if any((p / "progress_done").exists() and int(p.name.split("_")[1]) >= 2 for p in checkpoints.glob("step_*")):
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    if (tmp_path / "killed" / "results.json").exists():
        pytest.skip("the run finished before it could be killed")
    assert train(killed, "--resume_from_checkpoint", "latest") == 0
    a, b = results(tmp_path / "full"), results(tmp_path / "killed")
    assert a["history"] == b["history"] and a["test"] == b["test"]


def test_resume_with_other_cpu_threads_warns_that_it_is_not_bit_exact(tmp_path, caplog):
    config = tiny_config(tmp_path, num_train_epochs=2)
    assert train(config, "--stop_after_epochs", "1") == 3
    threads = torch.get_num_threads()
    torch.set_num_threads(threads + 1)
    try:
        assert train(config, "--resume_from_checkpoint", "latest") == 0
    finally:
        torch.set_num_threads(threads)
    assert f"OMP_NUM_THREADS={threads} resumes bit-exactly" in caplog.text


def test_seeds_are_aggregated_as_mean_and_std(tmp_path):
    config = tiny_config(tmp_path, num_train_epochs=1)
    assert train(config, "--seeds", "0", "1") == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    per_seed = [100 * results(tmp_path / "run" / f"seed_{s}")["test"]["macro_f1"] for s in (0, 1)]
    assert summary["seeds"] == [0, 1]
    assert summary["test_macro_f1"]["mean"] == pytest.approx(statistics.fmean(per_seed))
    assert summary["test_macro_f1"]["std"] == pytest.approx(statistics.stdev(per_seed))
    assert "±" in (tmp_path / "run" / "summary.md").read_text()


def test_freeze_encoder_trains_only_the_head_from_the_cache(tmp_path):
    config = tiny_config(tmp_path, freeze_encoder=True, num_train_epochs=4)
    assert train(config) == 0
    cache = list((tmp_path / "features_cache").glob("train-*"))
    assert len(cache) == 1 and (cache[0] / "dataset_info.json").exists()  # Arrow on disk
    from safetensors.torch import load_file

    trained = load_file(str(tmp_path / "run" / "best_model" / "model.safetensors"))
    pretrained = load_file(str(tmp_path / "encoder" / "model.safetensors"))
    key = "embeddings.word_embeddings.weight"
    assert torch.equal(trained[f"lgsrr.text_encoder.{key}"], pretrained[key])  # encoder untouched
    # a second run reads the cache instead of encoding again (same entry, no new one)
    assert train(tiny_config(tmp_path, freeze_encoder=True, num_train_epochs=1, output_dir=str(tmp_path / "r2"))) == 0
    assert list((tmp_path / "features_cache").glob("train-*")) == cache


def test_head_forward_on_features_equals_the_model_forward():
    from mmaffect import LGSRRConfig, LGSRRForSequenceClassification

    torch.manual_seed(0)
    model = LGSRRForSequenceClassification(LGSRRConfig.tiny(num_labels=4)).eval()
    ids, aspect_ids = torch.randint(5, 128, (3, 7)), torch.randint(5, 128, (3, 3, 9))
    labels, ranks = torch.tensor([0, 3, 1]), torch.tensor([[0, 1, 2], [2, 0, 1], [-1, -1, -1]])
    full = model(ids, torch.ones_like(ids), aspect_input_ids=aspect_ids, aspect_attention_mask=torch.ones_like(aspect_ids),
                 labels=labels, aspect_ranks=ranks)
    head = model.forward_head(full.text_embeds, full.aspect_embeds, labels, ranks)
    assert torch.allclose(head.logits, full.logits) and torch.allclose(head.loss, full.loss)
    assert torch.allclose(head.importance, full.importance)
    # the same through forward's precomputed-feature inputs
    embeds = model(text_embeds=full.text_embeds, aspect_embeds=full.aspect_embeds, labels=labels, aspect_ranks=ranks)
    assert torch.allclose(embeds.logits, full.logits) and torch.allclose(embeds.ranking_loss, full.ranking_loss)
    with pytest.raises(ValueError, match="both text_embeds and aspect_embeds"):
        model(text_embeds=full.text_embeds)
    with pytest.raises(ValueError, match=r"aspect_embeds \(batch, 3, d\)"):
        model.forward_head(full.text_embeds, full.aspect_embeds[:, :2])


def test_frozen_aspect_encoder_mode_fine_tunes_text_only(tmp_path):
    config = tiny_config(tmp_path, freeze_aspect_encoder=True, head_warmup_epochs=2, num_train_epochs=2,
                         model={"pooling": "mean", "weight_hidden_dim": 16, "share_encoder": False})
    assert train(config) == 0
    from safetensors.torch import load_file

    trained = load_file(str(tmp_path / "run" / "best_model" / "model.safetensors"))
    pretrained = load_file(str(tmp_path / "encoder" / "model.safetensors"))
    key = "embeddings.word_embeddings.weight"
    assert torch.equal(trained[f"lgsrr.aspect_encoder.{key}"], pretrained[key])
    assert not torch.equal(trained[f"lgsrr.text_encoder.{key}"], pretrained[key])
    # the saved model recomputes the description features with its frozen encoder: same test scores
    from mmaffect.evaluation import cli_classifier as evaluate

    out = tmp_path / "eval"
    evaluate.main(["--model", str(tmp_path / "run" / "best_model"), "--dataset", "mintrec2", "--data-dir",
                   str(tmp_path / "release/data_text"), "--descriptions-dir", str(tmp_path / "release/data_desc"),
                   "--output-dir", str(out)])
    assert json.loads((out / "results.json").read_text())["metrics"] == pytest.approx(results(tmp_path / "run")["test"])


def test_text_only_baseline(tmp_path):
    # CLS pooling: the encoder's own sequence classifier (mean pooling: tests/test_text_only_baseline.py)
    cls_pooling = {"pooling": "cls", "weight_hidden_dim": 16, "weight_dropout": 0.1}
    config = tiny_config(tmp_path, variant="text_only", num_train_epochs=2, model=cls_pooling)
    assert train(config) == 0
    best = tmp_path / "run" / "best_model"
    assert not list(best.glob("*.py"))  # a plain transformers checkpoint: no remote code
    assert "auto_map" not in json.loads((best / "config.json").read_text())
    from mmaffect.evaluation import cli_classifier as evaluate

    evaluate.main(["--model", str(best), "--dataset", "mintrec2", "--data-dir", str(tmp_path / "release/data_text"),
                   "--output-dir", str(tmp_path / "eval")])
    assert json.loads((tmp_path / "eval" / "results.json").read_text())["metrics"] == \
        pytest.approx(results(tmp_path / "run")["test"])
    evaluated = [json.loads(line) for line in (tmp_path / "eval" / "predictions.jsonl").read_text().splitlines()]
    assert "importance" not in evaluated[0]
    # a standard checkpoint: AutoModelForSequenceClassification and the text-classification pipeline give the
    # trained predictions, with the real label names
    from transformers import AutoModelForSequenceClassification, pipeline

    model = AutoModelForSequenceClassification.from_pretrained(best)
    assert type(model).__name__ == "BertForSequenceClassification" and model.config.id2label[0] == "Acknowledge"
    classify = pipeline("text-classification", model=str(best), device="cpu")
    for record in evaluated:
        top = classify(record["text"])[0]
        assert top["label"] == record["predicted"] and top["score"] == pytest.approx(record["score"], abs=1e-5)
    card = yaml.safe_load((best / "README.md").read_text().split("---")[1])
    assert card["pipeline_tag"] == "text-classification" and "custom_code" not in card["tags"]
    # fast mode for the baseline too: one cache entry per split, shared by every seed
    assert train(tiny_config(tmp_path, variant="text_only", freeze_encoder=True, num_train_epochs=2, model=cls_pooling,
                             output_dir=str(tmp_path / "frozen")), "--seeds", "0", "1") == 0
    assert len(list((tmp_path / "features_cache").glob("train-*"))) == 1


def test_parameter_groups_no_decay_on_bias_and_layernorm_and_head_lr(tmp_path):
    from mmaffect.train.lgsrr import build_model, config_from_dict, load_yaml, parameter_groups

    cfg = config_from_dict(load_yaml(tiny_config(tmp_path)))
    module = build_model(cfg, ["a", "b", "c"])
    groups = {g["name"]: g for g in parameter_groups(module, cfg)}
    assert set(groups) == {"encoder", "encoder_no_decay", "head", "head_no_decay"}
    names = {id(p): n for n, p in module.named_parameters()}
    for name in ("encoder_no_decay", "head_no_decay"):
        assert groups[name]["weight_decay"] == 0.0
        assert all(names[id(p)].endswith("bias") or "LayerNorm" in names[id(p)] for p in groups[name]["params"])
    assert groups["encoder"]["weight_decay"] == cfg.weight_decay
    assert groups["encoder"]["lr"] == cfg.learning_rate and groups["head"]["lr"] == cfg.head_learning_rate
    assert any(names[id(p)].startswith("model.classifier") for p in groups["head"]["params"])
    assert sum(len(g["params"]) for g in groups.values()) == len(list(module.parameters()))


def test_gradient_accumulation_and_value_clipping_run(tmp_path):
    config = tiny_config(tmp_path, gradient_accumulation_steps=2, max_grad_value=0.05, num_train_epochs=1,
                         report_to="tensorboard")
    assert train(config) == 0
    assert results(tmp_path / "run")["finished"]
    assert list((tmp_path / "run" / "tensorboard").rglob("events.out.tfevents.*"))


def test_bf16_mixed_precision_trains(tmp_path):
    config = tiny_config(tmp_path, mixed_precision="bf16", num_train_epochs=2)
    assert train(config) == 0
    res = results(tmp_path / "run")
    assert res["mixed_precision"] == "bf16"
    assert res["history"][1]["train_loss"] < res["history"][0]["train_loss"]


def test_batch_order_is_a_function_of_seed_and_epoch():
    from mmaffect.train.lgsrr import BatchOrder

    lengths = list(range(100))
    a, b = BatchOrder(lengths, 8, seed=3), BatchOrder(lengths, 8, seed=3)
    a.use_epoch(2), b.use_epoch(2)
    assert a.batches() == b.batches()
    b.use_epoch(3)
    assert a.batches() != b.batches()
    assert sorted(i for batch in a.batches() for i in batch) == lengths
    spread = [max(lengths[i] for i in batch) - min(lengths[i] for i in batch) for batch in a.batches()]
    assert max(spread) < 50  # grouped by length


def test_cli_overrides_and_config_errors(tmp_path):
    assert cli.parse_overrides(["--lr", "3.0e-5", "--seeds", "0", "1", "--freeze_encoder", "--model.pooling", "mean",
                                "--max_grad_value=null"]) == \
        {"lr": 3e-5, "seeds": [0, 1], "freeze_encoder": True, "model": {"pooling": "mean"}, "max_grad_value": None}
    config = tiny_config(tmp_path)
    from mmaffect.train.lgsrr import config_from_dict, load_yaml

    assert config_from_dict(load_yaml(config) | {"learning_rate": "3e-5"}).learning_rate == 3e-5
    with pytest.raises(ValueError, match="num_train_epochs='many'"):
        train(config, "--num_train_epochs", "many")
    with pytest.raises(ValueError, match="did you mean learning_rate"):
        train(config, "--learning_rat", "1e-4")
    with pytest.raises(ValueError, match="share_encoder: false"):
        train(config, "--freeze_aspect_encoder")
    with pytest.raises(FileNotFoundError, match="nowhere.yaml"):
        train(tmp_path / "nowhere.yaml")
    assert cli.main([]) == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("model_type: something_else\n")
    assert cli.main(["--config", str(bad)]) == 2


def test_push_to_hub_plumbing(tmp_path, monkeypatch):
    """--push_to_hub goes through huggingface_hub.HfApi (network calls recorded, not made)."""
    import huggingface_hub

    calls = []
    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", lambda self, repo_id, **kw: calls.append(("create", repo_id, kw)))
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder",
                        lambda self, **kw: calls.append(("upload", kw["repo_id"], sorted(os.listdir(kw["folder_path"])))))
    config = tiny_config(tmp_path, num_train_epochs=1)
    with pytest.raises(ValueError, match="hub_model_id"):
        train(config, "--push_to_hub")
    assert train(config, "--push_to_hub", "--hub_model_id", "me/lgsrr-tiny", "--hub_private") == 0
    assert calls[0] == ("create", "me/lgsrr-tiny", {"private": True, "exist_ok": True})
    assert calls[1][0] == "upload" and {"README.md", "model.safetensors", "modeling_lgsrr.py"} <= set(calls[1][2])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_cpu_launch(tmp_path):
    """A real 2-process DDP run on CPU through `accelerate launch` (ACCELERATE_USE_CPU + --multi_gpu:
    `--cpu --num_processes 2` would silently start one process)."""
    config = tiny_config(tmp_path, num_train_epochs=2, train_batch_size=4)
    env = dict(os.environ, OMP_NUM_THREADS="1", ACCELERATE_USE_CPU="1")
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", str(_free_port()), str(REPO / "train.py"), "--config", str(config)]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = results(tmp_path / "run")
    assert res["num_processes"] == 2
    assert "2 processes" in proc.stderr
    # both processes saw every dev/test row exactly once after gathering
    lines = (tmp_path / "run" / "test" / "predictions.jsonl").read_text().splitlines()
    assert len(lines) == 12 and len({json.loads(line)["id"] for line in lines}) == 12


def test_train_cli_dispatches_nano_emox_configs_to_p2e(monkeypatch):
    """model_type: nano_emox goes to mmaffect.train.p2e with the config as read and the overrides (issue 23: the
    dispatcher passes the parsed config, never argv - this test used to assert the argv hand-over)."""
    import mmaffect.train.p2e as p2e

    seen = []
    monkeypatch.setattr(p2e, "main_from_config", lambda path, values, overrides: seen.append((path, values, overrides)) or 0)
    argv = ["--config", str(REPO / "configs" / "p2e_tiny.yaml"), "--print-config"]
    assert cli.main(argv) == 0
    [(path, values, overrides)] = seen
    assert path == argv[1] and values["model_type"] == "nano_emox" and values["training"]["per_device_batch_size"] == 2
    assert [(o.key, o.value) for o in overrides] == [("print-config", True)]


def test_features_cache_key_follows_token_content_not_map_history():
    from datasets import Dataset

    from mmaffect.train.features_cache import rows_fingerprint

    rows = Dataset.from_dict({"input_ids": [[2, 5, 3], [2, 3]], "attention_mask": [[1, 1, 1], [1, 1]], "text": ["a", "b"]})
    same = rows.map(lambda row, i: {"row_index": i, "text": row["text"] + "!"}, with_indices=True)
    other = Dataset.from_dict({"input_ids": [[2, 6, 3], [2, 3]], "attention_mask": [[1, 1, 1], [1, 1]]})
    assert rows_fingerprint(rows) == rows_fingerprint(same) != rows_fingerprint(other)
