"""P2E as the paper trained it: the step budget counts micro-batches (a tiny run does exactly N iterations), the
public code's warm-up + cosine schedule, the silent-phase check (a phase whose data lack its modality stops naming
the group), special <think> tokens that train, and the release-layout data check."""

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mmaffect.train.p2e import SilentPhaseError, load_run_config, main, run_from_config
from mmaffect.train.p2e_phases import P2EConfigError, PhaseSpec, TrainingSettings, load_config, lr_schedule

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
TINY = CONFIGS / "p2e_tiny.yaml"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from mmaffect.train.p2e_synthetic import make_synthetic_corpus

    return make_synthetic_corpus(tmp_path_factory.mktemp("p2e_budget_data"))


def _metrics(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "train_log.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("unit, max_steps, micro, optimizer_steps", [("micro_batch", 3, 3, 2), ("optimizer_step", 2, 4, 2)])
def test_a_tiny_run_does_exactly_the_budgeted_micro_batches(corpus, tmp_path, unit, max_steps, micro, optimizer_steps):
    """batch 2, accumulation 2: 3 micro-batch steps are 2 optimizer steps (2 + 1 micro-batches); 2 optimizer steps
    are 4 micro-batches. The samples the loss saw (summed over the logged windows) are micro x batch."""
    sets = [f"training.step_unit={unit}", f"phase_overrides.phase1_speech.max_steps={max_steps}", "training.save_steps=0"]
    run_from_config(load_run_config(TINY, data_root=corpus, output_dir=tmp_path, sets=sets), phases=["phase1_speech"])
    done = json.loads((tmp_path / "phase1_speech" / "DONE.json").read_text())
    assert (done["step_unit"], done["micro_batches"], done["optimizer_steps"], done["samples"]) == (unit, micro, optimizer_steps, 2 * micro)
    metrics = _metrics(tmp_path / "phase1_speech")
    assert sum(m["samples/MER"] for m in metrics) == 2 * micro
    assert metrics[-1]["micro_batches"] == micro and metrics[-1]["optimizer_steps"] == optimizer_steps


def test_public_code_warmup_cosine_schedule_and_paper_phase3():
    training = TrainingSettings()
    phase = PhaseSpec(name="p", trainable=["fusion"], learning_rate=3e-4, max_steps=15000, mixture={}, data={}, min_lr=1e-4)
    rate = lr_schedule(phase, training, 15000)
    # LAVIS linear_warmup_cosine_lr: warm-up 1e-6 -> 3e-4 over 5000 iterations, then cosine over the whole budget
    assert rate(0) == pytest.approx(1e-6) and rate(2500) == pytest.approx(1e-6 + (3e-4 - 1e-6) / 2)
    assert rate(5000) == pytest.approx((3e-4 - 1e-4) * 0.5 * (1 + math.cos(math.pi / 3)) + 1e-4)
    assert rate(14999) == pytest.approx(1e-4, rel=1e-3)
    constant = lr_schedule(PhaseSpec(name="q", trainable=["fusion"], learning_rate=8e-6, max_steps=300000, mixture={}, data={},
                                     lr_scheduler="constant", warmup_steps=0), training, 300000)  # fmt: skip
    assert constant(0) == constant(299999) == pytest.approx(8e-6)
    config = load_config(CONFIGS / "p2e_nano_emox.yaml")
    phases = {p.name: p for p in config.phases}
    assert config.training.step_unit == "micro_batch" and config.training.lr_scheduler == "warmup_cosine" and config.training.warmup_steps == 5000
    speech = lr_schedule(phases["phase1_speech"], config.training, 15000)
    assert speech(0) == pytest.approx(1e-6) and speech(14999) == pytest.approx(1e-4, rel=1e-3)
    fusion = lr_schedule(phases["phase2_fusion"], config.training, 5000)  # the whole phase is the warm-up
    assert fusion(0) == pytest.approx(5e-7) and fusion(4999) == pytest.approx(5e-7 + (1e-5 - 5e-7) * 4999 / 5000)
    paper3 = lr_schedule(phases["phase3_multitask"], config.training, 300000)
    assert paper3(0) == paper3(150000) == pytest.approx(8e-6)
    public = load_run_config(CONFIGS / "p2e_nano_emox.yaml", [CONFIGS / "p2e_public_code_schedule.yaml"])
    public3 = lr_schedule(public.phase("phase3_multitask"), public.training, 300000)
    assert public3(0) == pytest.approx(5e-7) and public3(5000) == public3(299999) == pytest.approx(8e-6)
    with pytest.raises(P2EConfigError, match="lr_scheduler 'sawtooth' is unknown"):
        load_config(CONFIGS / "p2e_nano_emox.yaml", ["training.lr_scheduler=sawtooth"])
    with pytest.raises(P2EConfigError, match="step_unit"):
        load_config(CONFIGS / "p2e_nano_emox.yaml", ["training.step_unit=epoch"])


def test_the_logged_learning_rate_is_the_schedule_at_each_optimizer_step(corpus, tmp_path):
    sets = ["phase_overrides.phase1_speech.warmup_steps=2", "phase_overrides.phase1_speech.min_lr=1e-5", "training.save_steps=0"]
    config = load_run_config(TINY, data_root=corpus, output_dir=tmp_path, sets=sets)
    run_from_config(config, phases=["phase1_speech"])
    phase = config.phase("phase1_speech")
    rate = lr_schedule(phase, config.training, phase.max_steps)
    # optimizer steps close micro-batches 1 and 3 (0-based): the public code's learning rate of those iterations
    assert [m["lr"] for m in _metrics(tmp_path / "phase1_speech")] == pytest.approx([rate(1), rate(3)])
    assert rate(1) < phase.learning_rate and rate(3) < rate(2)  # warming up, then decaying


def test_a_phase_whose_data_lack_its_modality_fails_naming_the_group(corpus, tmp_path):
    """The release annotations without their wavs, kept as text-only (on_missing_media: keep, modalities T): the
    speech adapter would get no gradient at all."""
    sets = ["datasets.crema_d.modalities=T", "datasets.crema_d.on_missing_media=keep", "datasets.m3ed.modalities=T"]
    config = load_run_config(TINY, data_root=corpus, output_dir=tmp_path, sets=sets)
    with pytest.raises(SilentPhaseError, match=r"group 'speech_adapter' received no finite non-zero gradient \(0 of \d+ tensors\): "
                                               r"no record in this phase's data has audio"):  # fmt: skip
        run_from_config(config, phases=["phase1_speech"])
    assert not (tmp_path / "phase1_speech" / "DONE.json").exists()


def test_special_think_tokens_train_in_the_lora_phase(corpus, tmp_path):
    sets = ["model.processor.kwargs.think_tokens=special", "phase_overrides.phase3_multitask.mixture={ERG: 1}",
            "phase_overrides.phase3_multitask.learning_rate=0.05", "training.save_steps=0"]  # fmt: skip
    config = load_run_config(TINY, data_root=corpus, output_dir=tmp_path, sets=sets)
    with pytest.raises(P2EConfigError, match="embedding rows only train in a LoRA phase"):  # ERG answers in a non-LoRA phase
        run_from_config(load_run_config(TINY, data_root=corpus, output_dir=tmp_path / "x", sets=sets + [
            "phase_overrides.phase1_speech.mixture={ERG: 1}", "phase_overrides.phase1_speech.data={ERG: [avamerg]}"]), phases=["phase1_speech"])  # fmt: skip
    summary = run_from_config(config)
    from mmaffect.models.nano_emox import NanoEmoXProcessor

    processor = NanoEmoXProcessor.from_pretrained(summary["final_model"])
    ids = processor.think_token_ids
    assert len(ids) == 2
    before = load_file(str(tmp_path / "phase2_fusion" / "model" / "model.safetensors"))
    after = load_file(str(tmp_path / "phase3_multitask" / "model" / "model.safetensors"))
    embed = "language_model.model.embed_tokens.weight"
    assert not torch.equal(before[embed][ids], after[embed][ids])  # the <think> rows trained...
    others = [i for i in range(before[embed].shape[0]) if i not in ids]
    assert torch.equal(before[embed][others], after[embed][others])  # ...and only they


@pytest.mark.shared_data
def test_release_layout_gets_past_every_path_and_reports_missing_media(shared_data, capsys):
    release = shared_data / "nano_emox_release" / "data"
    code = main(["--config", str(CONFIGS / "p2e_nano_emox.yaml"), "--data-root", str(release), "--check-data"])
    out = capsys.readouterr().out
    assert code == 1
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    # the release's own files are found (crema_d_annotations.json at the top level, MIntRec2/ not MIntRec2.0/) ...
    assert "7442 records" in lines["crema_d"] and "CREMA-D/AudioWAV does NOT exist" in lines["crema_d"]
    assert "1779 records" in lines["mintrec"] and "5644 records" in lines["mintrec2"] and "4487 records" in lines["merr_fine"]
    assert "lack media their prompt needs" in lines["mintrec2"] and "(no audio, video)" in lines["mintrec2"]
    # ... and what the release does not ship is named
    assert "M3ED/annotation.json does not exist" in lines["m3ed"] and "AvaMERG/train.json does not exist" in lines["avamerg"]
    assert "0 of 9 datasets ready" in out


@pytest.mark.shared_data
def test_training_on_the_release_stops_before_any_model_with_the_data_report(shared_data, tmp_path, capsys):
    release = shared_data / "nano_emox_release" / "data"
    # the real config's components are Hub ids that do not resolve offline: reaching them would be a different error
    with pytest.raises(P2EConfigError, match=r"data not ready for phase\(s\) \['phase1_speech'.*'crema_d'.*'merr_fine'"):
        main(["--config", str(CONFIGS / "p2e_nano_emox.yaml"), "--data-root", str(release), "--output-dir", str(tmp_path / "run"),
              "--set", "training.mixed_precision=no"])  # the precision of this process's other P2E tests (one AcceleratorState)
    out = capsys.readouterr().out
    assert "[data] mintrec2" in out and "MIntRec2/video does NOT exist" in out and "[data] 0 of 9 datasets ready" in out
    assert not (tmp_path / "run" / "phase1_speech").exists()  # nothing was built or written for a phase


def test_the_data_check_runs_before_the_first_phase(corpus, tmp_path):
    missing = tmp_path / "no_such_avamerg.json"  # a dataset of the last phase only
    config = load_run_config(TINY, data_root=corpus, output_dir=tmp_path, sets=[f"datasets.avamerg.path={missing}"])
    with pytest.raises(P2EConfigError, match=r"data not ready.*\['avamerg'\]"):
        run_from_config(config)
    assert not (tmp_path / "phase1_speech").exists()  # found before the first phase, not after three
