"""Does the chain learn, and does the P2E curriculum help? The tiny Nano-EmoX on the learnable synthetic MER corpus.

    python benchmarks/p2e_curriculum.py --work /tmp/p2e_curriculum --write-results

1. Learnability (the setup of tests/test_p2e_learnability.py, configs/p2e_learnable_tiny.yaml): held-out accuracy
   of the trained model with the real media, media shuffled across test samples (scored against the true and the
   media's labels), black frames and silence, and ``--modalities`` V / A / T.
2. Curriculum: at an equal budget of micro-batches, the four P2E phases (speech adapter -> visual + face adapters ->
   fusion + adapters -> everything + LoRA) vs phase 3 alone vs Jo-T (one joint phase), all on the learnable corpus
   with every modality (AVFM), starting from the same tiny LM pre-trained on the corpus's text. Per phase: its
   loss curve (``train_log.jsonl``), the relative loss change, and the held-out accuracy of the phase's model.

Writes ``{work}/p2e_curriculum.json`` (read back on a rerun: finished variants are not trained or evaluated again;
the trainer and the evaluator resume on their own), ``docs/images/p2e_curriculum_loss.png`` and, with
``--write-results``, the p2e_learnability section of benchmarks/RESULTS.md. Accuracy is the MER hit rate with one
wheel category per label (= accuracy); greedy decoding, the candidate-label MER prompt (what P2E trains).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "benchmarks" / "RESULTS.md"
CHART = REPO_ROOT / "docs" / "images" / "p2e_curriculum_loss.png"
START, END = "<!-- p2e_learnability:start -->", "<!-- p2e_learnability:end -->"
LEARNABLE_CONFIG = REPO_ROOT / "configs" / "p2e_learnable_tiny.yaml"

# (name, trainable groups, learning rate, share of the budget, uses LoRA): the paper's order and roles; the paper's
# ratio phase 1 lr >> phase 3 lr does not carry over to a 150K-parameter model, so every phase uses the rate that
# trains the tiny model in phase 3 (3e-3), and phase 2 a third of it (the paper's phase 2 is its lowest-rate phase)
ADAPTERS = ["speech_adapter", "visual_adapter", "face_adapter"]
CURRICULUM = [
    ("phase1_speech", ["speech_adapter"], 3e-3, 1, False),
    ("phase1_visual", ["visual_adapter", "face_adapter"], 3e-3, 1, False),
    ("phase2_fusion", ["fusion", *ADAPTERS], 1e-3, 1, False),
    ("phase3_multitask", ["fusion", *ADAPTERS, "lora"], 3e-3, 3, True),
]


def _phase(name, trainable, lr, steps, lora, stage):
    return {"name": name, "stage": stage, "description": f"{name} on the learnable corpus", "trainable": trainable,
            "lora": lora, "learning_rate": lr, "lr_scheduler": "constant", "warmup_steps": 0, "max_steps": steps,
            "mixture": {"MER": 1}, "data": {"MER": ["learnable_mer"]}}  # fmt: skip


def variants(total: int) -> dict[str, list[dict]]:
    """The three strategies at ``total`` micro-batches each (the curriculum splits it 1:1:1:3), plus phase 3 alone at
    the curriculum's phase-3 budget (``phase3_only_short``: not an equal-budget strategy, the control of phases 1-2)."""
    unit = total // sum(share for *_, share, _ in CURRICULUM)
    curriculum = [_phase(n, t, lr, unit * share, lora, stage) for (n, t, lr, share, lora), stage in zip(CURRICULUM, (1, 1, 2, 3))]
    curriculum[-1]["max_steps"] = total - unit * (sum(s for *_, s, _ in CURRICULUM) - CURRICULUM[-1][3])
    phase3 = _phase("phase3_multitask", ["fusion", *ADAPTERS, "lora"], 3e-3, total, True, 3)
    jo_t = _phase("joint", ["fusion", *ADAPTERS, "lora"], 3e-3, total, True, 0)
    # the curriculum's phase 3 alone, without phases 1-2: what phases 1-2 add at the same phase-3 budget
    short = dict(phase3, max_steps=curriculum[-1]["max_steps"])
    return {"p2e": curriculum, "phase3_only": [phase3], "jo_t": [jo_t], "phase3_only_short": [short]}


def evaluate(model: Path, data: Path, output: Path, modalities: str) -> dict:
    """``mmaffect evaluate`` (greedy, MER prompt); accuracy and the replies."""
    from mmaffect.evaluation.cli_generate import main as evaluate_main

    argv = ["--model", str(model), "--dataset", "mer2023", "--data-dir", str(data), "--wheel-dir", str(data / "emotion_wheel"),
            "--prompt-task", "MER", "--decoding", "greedy", "--modalities", modalities, "--max-new-tokens", "10",
            "--batch-size", "8", "--device", "cpu", "--output-dir", str(output), "--quiet"]  # fmt: skip
    if evaluate_main(argv) != 0:
        raise RuntimeError(f"mmaffect evaluate {' '.join(argv)} failed")
    rows = [json.loads(line) for line in (output / "predictions.jsonl").read_text(encoding="utf-8").splitlines()]
    return {"rows": rows, "accuracy": sum(r["reference"] in r["prediction"] for r in rows) / len(rows)}


def run_learnability(work: Path, corpus: Path) -> dict:
    from mmaffect.train.p2e import load_run_config, run_from_config
    from mmaffect.train.p2e_synthetic import derive_corpus

    start = time.perf_counter()
    summary = run_from_config(load_run_config(LEARNABLE_CONFIG, data_root=corpus, output_dir=work / "learnable"))
    model = Path(summary["phases"][-1]["model"])
    train_seconds = time.perf_counter() - start
    media = derive_corpus(corpus, work / "shuffled", media="shuffle", seed=1)
    derive_corpus(corpus, work / "blank", media="blank")
    shuffled = evaluate(model, work / "shuffled", work / "eval" / "shuffled", "V")
    blank = evaluate(model, work / "blank", work / "eval" / "blank", "V")
    rows = {
        "real media (V)": evaluate(model, corpus, work / "eval" / "real", "V")["accuracy"],
        "shuffled media, true labels": shuffled["accuracy"],
        "shuffled media, the media's labels": sum(media[r["id"]] in r["prediction"] for r in shuffled["rows"]) / len(shuffled["rows"]),
        "black frames + silence": blank["accuracy"],
        "--modalities A (audio branch only)": evaluate(model, corpus, work / "eval" / "A", "A")["accuracy"],
        "--modalities T (subtitle only)": evaluate(model, corpus, work / "eval" / "T", "T")["accuracy"],
    }  # fmt: skip
    return {"accuracy": rows, "blank_distinct_replies": len({r["reply"] for r in blank["rows"]}),
            "train_seconds": train_seconds, "loss_movement": summary["phases"][-1].get("loss_movement")}  # fmt: skip


def run_variant(work: Path, corpus: Path, name: str, phases: list[dict]) -> dict:
    """Train one strategy (every modality), then score each phase's model on the held-out split."""
    from mmaffect.train.p2e import load_run_config, run_from_config

    # the learnable config's '*' override (150 steps) is replaced phase by phase, its batches of 8 by the budget's
    # micro-batches of 4; Jo-T's strategy as in p2e_jo_t.yaml
    extra = {"phases": phases, "phase_overrides": {p["name"]: {"max_steps": p["max_steps"]} for p in phases},
             "training": {"per_device_batch_size": 4},
             "datasets": {"learnable_mer": {"modalities": "AVFM"}}, "strategy": "jo_t" if name == "jo_t" else "p2e"}
    start = time.perf_counter()
    summary = run_from_config(load_run_config(LEARNABLE_CONFIG, data_root=corpus, output_dir=work / name, extra=extra))
    seconds = time.perf_counter() - start
    out = {"seconds_under_load": seconds, "phases": []}
    for phase in summary["phases"]:
        folder = Path(phase["model"]).parent
        losses = [json.loads(line) for line in (folder / "train_log.jsonl").read_text(encoding="utf-8").splitlines()]
        accuracy = evaluate(Path(phase["model"]), corpus, work / "eval" / name / phase["name"], "AVFM")["accuracy"]
        out["phases"].append({"name": phase["name"], "steps": phase["steps"], "learning_rate": phase["phase"].get("learning_rate"),
                              "loss": [(m["step"], m["loss"]) for m in losses], "loss_movement": phase.get("loss_movement"),
                              "held_out_accuracy": accuracy})  # fmt: skip
    return out


def save_chart(results: dict, path: Path = CHART) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(results["curriculum"]), figsize=(4.3 * len(results["curriculum"]), 3.6), sharey=True)
    for axis, (name, variant) in zip(axes, results["curriculum"].items()):
        offset = 0
        for phase in variant["phases"]:
            steps, losses = zip(*phase["loss"])
            axis.plot([offset + s for s in steps], losses, label=f"{phase['name']} ({100 * phase['held_out_accuracy']:.0f}%)")
            offset += phase["steps"]
        axis.set_title(name)
        axis.set_xlabel("micro-batches (4 samples)")
        axis.legend(fontsize=7)
    axes[0].set_ylabel("training loss (answer tokens)")
    figure.suptitle("Tiny Nano-EmoX on the learnable MER corpus: loss per phase (held-out accuracy after the phase)", fontsize=9)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def format_section(results: dict, command: str) -> str:
    learn = results["learnability"]
    lines = [START, "## P2E learnability and curriculum (tiny Nano-EmoX, learnable synthetic MER corpus, CPU)", "",
             f"`{command}` (benchmarks/p2e_curriculum.py; {results['corpus']}). Accuracy on the 40 held-out clips "
             "(chance 25 %), `mmaffect evaluate generate --dataset mer2023 --prompt-task MER --decoding greedy`. Wall times "
             "were taken on 2 cores shared with other jobs (under load).", "",
             "### Does the chain learn? (configs/p2e_learnable_tiny.yaml, what tests/test_p2e_learnability.py checks)", "",
             f"Phase 3's recipe (visual adapter + LoRA, video frames only), 150 micro-batches of 8 from the pre-trained "
             f"tiny LM; trained in {learn['train_seconds']:.0f} s; loss {learn['loss_movement']['first']:.3f} -> "
             f"{learn['loss_movement']['last']:.3f}.", "", "| evaluated on | accuracy |", "|---|---|"]  # fmt: skip
    lines += [f"| {name} | {100 * value:.1f} % |" for name, value in learn["accuracy"].items()]
    lines += ["", f"Black frames + silence give {learn['blank_distinct_replies']} distinct replies (the subtitles still "
              "differ). Zeroing the media inside the model (pixels and waveforms, in training and evaluation) gave 0 % and "
              "failed the test: a one-off check by hand, with the earlier recipe of 200 micro-batches of 4, not rerun "
              "with this one.", "",
              "### Curriculum vs phase 3 alone vs Jo-T at equal budget (all modalities, AVFM)", "",
              "| strategy | phase | micro-batches | lr | loss first -> last (change) | held-out accuracy after the phase |",
              "|---|---|---|---|---|---|"]  # fmt: skip
    for name, variant in results["curriculum"].items():
        for phase in variant["phases"]:
            moved = phase["loss_movement"] or {}
            change = f"{moved['first']:.3f} -> {moved['last']:.3f} ({100 * moved['relative_change']:+.1f} %)" if moved else "-"
            lines.append(f"| {name} | {phase['name']} | {phase['steps']} | {phase['learning_rate']:g} | {change} | "
                         f"{100 * phase['held_out_accuracy']:.1f} % |")  # fmt: skip
    lines += ["", f"![loss per phase](../docs/images/{CHART.name})", "", results.get("verdict", ""), END]
    return "\n".join(lines)


def write_results(section: str, path: Path = RESULTS) -> None:
    """Replace this benchmark's section of RESULTS.md (between its markers), or append it; other sections stay."""
    text = path.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), flags=re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text, encoding="utf-8")


def main(argv=None) -> int:
    from mmaffect.train.p2e_synthetic import make_learnable_corpus
    from mmaffect.train.p2e_tiny_lm import pretrain_tiny_language_model

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/p2e_curriculum"))
    parser.add_argument("--total-steps", type=int, default=240, help="micro-batches of every strategy")
    parser.add_argument("--write-results", action="store_true")
    args = parser.parse_args(argv)
    corpus = make_learnable_corpus(args.work / "mer2023", train_per_label=40, test_per_label=10, num_labels=4)
    pretrain_tiny_language_model(corpus / "tiny_language_model", corpus)
    results_path = args.work / "p2e_curriculum.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {"curriculum": {}}
    results["corpus"] = "160 training / 40 held-out clips, 4 labels; tiny LM pre-trained 150 steps on the corpus's text"
    if "learnability" not in results:
        results["learnability"] = run_learnability(args.work, corpus)
        results_path.write_text(json.dumps(results, indent=1))
    for name, phases in variants(args.total_steps).items():
        if name not in results["curriculum"]:
            results["curriculum"][name] = run_variant(args.work, corpus, name, phases)
            results_path.write_text(json.dumps(results, indent=1))
    final = {name: v["phases"][-1]["held_out_accuracy"] for name, v in results["curriculum"].items()}
    best = max(a for n, a in final.items() if n != "phase3_only_short")
    results["verdict"] = (f"Final held-out accuracy at {args.total_steps} micro-batches: "
                          + ", ".join(f"{n} {100 * a:.1f} %" for n, a in final.items())
                          + f"; best at equal budget: {', '.join(n for n, a in final.items() if a == best and n != 'phase3_only_short')}.")  # fmt: skip
    if {"p2e", "phase3_only_short", "jo_t", "phase3_only"} <= set(final):
        flat = [p["name"] for p in results["curriculum"]["p2e"]["phases"]
                if p["loss_movement"] and p["loss_movement"]["relative_change"] > -0.02]  # FlatLossWarning
        same = results["curriculum"]["jo_t"]["phases"][-1]["loss"] == results["curriculum"]["phase3_only"]["phases"][-1]["loss"]
        results["verdict"] += (
            f" Phases 1-2 add {100 * (final['p2e'] - final['phase3_only_short']):+.1f} points over phase 3 alone at the "
            f"curriculum's phase-3 budget ({100 * final['phase3_only_short']:.1f} %; 40 held-out clips: one clip is 2.5 "
            f"points). Phases that warned FlatLossWarning (loss fell < 2 %): {', '.join(flat) or 'none'}; phase 1's "
            "visual branch lowers its loss but not the accuracy (adapters alone, frozen LM). Jo-T "
            + ("has the same loss curve as phase 3 alone: on this single-task corpus one joint phase trains the same "
               "groups on the same data with the same seed; the paper's difference is the task mixture." if same else
               "differs from phase 3 alone only through its seed and mixture on this single-task corpus.")
        )  # fmt: skip
    results_path.write_text(json.dumps(results, indent=1))
    save_chart(results)
    print(json.dumps({"learnability": results["learnability"]["accuracy"], "final": final}, indent=1))
    if args.write_results:
        command = "python benchmarks/p2e_curriculum.py " + " ".join(argv if argv is not None else sys.argv[1:])
        write_results(format_section(results, command.strip()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
