"""benchmarks/p2e_memory.py: the phase-3 parameter count, the analytic estimate, the measuring code path
(tiny model on CPU) and the RESULTS.md section update that leaves other sections alone."""

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "p2e_memory.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("p2e_memory", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_phase3_counts_and_estimate_rows(bench):
    from mmaffect.models.nano_emox import NanoEmoXConfig

    model, cfg, _, phase = bench.build_phase3_model("tiny", "meta")
    counts = bench.count_parameters(model)
    assert phase.name == "phase3_multitask"
    assert counts["trainable_lora"] > 0 and counts["trainable_modules"] > 0
    assert counts["peft_original_copies"] == counts["trainable_modules"]  # PEFT keeps a frozen copy of each
    # the estimate scales with the full config's sizes; every row is positive and labelled
    full = NanoEmoXConfig()
    rows = bench.estimate_memory({**counts, "frozen_base": 2_250_000_000, "trainable": 98_000_000}, full)
    assert all(value > 0 and how for _, value, how in rows)
    names = [name for name, _, _ in rows]
    assert "frozen weights (bf16)" in names and "autocast bf16 copies of trainable matrices" in names
    logits = dict((n, v) for n, v, _ in rows)[f"{bench.LOSS_BACKWARD}: logits + cross-entropy at answer positions"]
    assert abs(logits - 3 * 256 * full.text_config.vocab_size * bench.CE_BYTES_PER_LOGIT / 1024**3) < 1e-9
    shorter = bench.estimate_memory({**counts, "frozen_base": 2_250_000_000, "trainable": 98_000_000}, full, bench.Shapes(answer_tokens=128))
    assert dict((n, v) for n, v, _ in shorter)[f"{bench.LOSS_BACKWARD}: logits + cross-entropy at answer positions"] == pytest.approx(logits / 2)
    # the total counts the larger of the two peak moments, not both
    peaks = [v for n, v, _ in rows if n.startswith(("peak A", "peak B"))]
    assert len(peaks) == 2 and bench.estimate_total(rows) == pytest.approx(sum(v for _, v, _ in rows) - min(peaks))
    assert "CUDA context + allocator slack" not in [n for n, _, _ in bench.estimate_memory(counts, full, device="cpu")]


def test_calibration_sizes_are_valid_models_and_reduced(bench):
    full = bench.estimate("full")
    for size in bench.CALIBRATION_SIZES:
        result = bench.estimate(size, device="cpu")
        assert 0 < result["total_gib"] < full["total_gib"] and result["counts"]["trainable_lora"] > 0


def test_measure_path_runs_on_cpu_with_the_tiny_model(bench):
    result = bench.measure("cpu", "tiny", batch=2, seq_len=160, answer_tokens=16, num_frames=4, audio_seconds=0.5, steps=1)
    assert result["kind"] == "MEASURED" and result["step_seconds_median"] > 0 and result["peak_rss_gib"] > 0
    assert result["loss"] > 0 and result["counts"]["trainable"] > 0


def test_results_section_is_replaced_in_place(bench, tmp_path):
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\n## LGSRR section\nkeep me\n", encoding="utf-8")
    section = bench.markdown([{"kind": "MEASURED", "device": "cpu", "preset": "tiny", "batch": 3, "mixed_precision": "bf16",
                               "seq_len": 8, "peak_rss_gib": 1.0, "step_seconds_median": 0.5}])  # fmt: skip
    bench.write_results(section, results)
    bench.write_results(section.replace("0.500", "0.250"), results)
    text = results.read_text(encoding="utf-8")
    assert text.count(bench.START) == 1 and "keep me" in text and "0.250 s" in text and "0.500 s" not in text


def test_calibration_table_reports_error_and_unmeasured_allocator(bench):
    estimate = bench.estimate("S", device="cpu")
    measured = {"device": "cpu", "counts": estimate["counts"], "step_peak_gib": estimate["total_gib"] / 1.1, "step_seconds_median": 2.0}
    row = {"size": "S", "measured": measured, "measured_default": None, "estimate": estimate, "error": 0.1}
    text = bench.markdown([], [row])
    assert "| +10.0 % |" in text and "not measured" in text and "within the 15 % target" in text
    assert "OUTSIDE the 15 % target" in bench.markdown([], [{**row, "error": -0.2}])
