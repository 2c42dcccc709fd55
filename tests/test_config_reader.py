"""The one config reader (mmaffect.config): one override syntax for both trainers and extraction, ``inherit:``
where the child wins, one path-variable syntax, unknown keys refused at every depth (issue 23, item 1).

Each "Consequences a user hits today" case of the issue has its own test below."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mmaffect import config as mc
from mmaffect.train import cli

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
TINY = CONFIGS / "p2e_tiny.yaml"
LGSRR = CONFIGS / "lgsrr_demo.yaml"


def resolved(config: Path, *extra: str):
    """What ``mmaffect train --config CONFIG EXTRA`` trains, without training."""
    return cli.training_config(["--config", str(config), *extra])[1]


def write(path: Path, values: dict) -> Path:
    path.write_text(yaml.safe_dump(values, sort_keys=False), encoding="utf-8")
    return path


# ----------------------------------------------------------------------------- the same spellings, both trainers
@pytest.mark.parametrize("spelling", [
    ["--learning_rate", "1e-4"], ["--learning-rate", "1e-4"], ["--learning_rate=1e-4"], ["--learning-rate=0.0001"],
    ["--set", "learning_rate=1e-4"],
])
def test_lgsrr_override_spellings_give_one_config(spelling):
    assert resolved(LGSRR, *spelling) == resolved(LGSRR, "--learning_rate", "0.0001")
    assert resolved(LGSRR, *spelling).learning_rate == 1e-4


@pytest.mark.parametrize("spelling", [
    ["--training.per_device_batch_size", "1"], ["--training.per-device-batch-size", "1"],
    ["--training.per_device_batch_size=1"], ["--set", "training.per_device_batch_size=1"],
])
def test_p2e_override_spellings_give_one_config(spelling):
    assert resolved(TINY, *spelling).training == resolved(TINY, "--training.per_device_batch_size", "1").training
    assert resolved(TINY, *spelling).training.per_device_batch_size == 1


def test_old_set_form_works_with_a_deprecation_line(capsys, monkeypatch):
    monkeypatch.setattr(mc, "_DEPRECATIONS_SHOWN", set())
    assert resolved(TINY, "--set", "training.logging_steps=3").training.logging_steps == 3
    assert "deprecated: --set KEY=VALUE is the old spelling of --KEY VALUE" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"--set 'training' must look like key\.path=value"):
        resolved(TINY, "--set", "training")


def test_both_trainers_read_flags_nested_keys_and_list_indices_alike():
    lgsrr = resolved(LGSRR, "--model.pooling", "mean", "--freeze-encoder", "--seeds", "3", "4", "--max_grad_value=null")
    assert (lgsrr.model["pooling"], lgsrr.freeze_encoder, lgsrr.seeds, lgsrr.max_grad_value) == ("mean", True, [3, 4], None)
    p2e = resolved(TINY, "--training.gradient-checkpointing", "false", "--phases.1.learning_rate", "1e-4",
                   "--training.adam_betas", "0.8", "0.9")
    assert p2e.training.gradient_checkpointing is False and p2e.training.adam_betas == (0.8, 0.9)
    assert [p.learning_rate for p in p2e.phases][:2] == [3e-4, 1e-4]  # "1e-4" (YAML: a string) typed as a float
    with pytest.raises(ValueError, match=r"index 9 is out of range: the list has 4 item"):
        resolved(TINY, "--phases.9.max_steps", "1")
    with pytest.raises(ValueError, match=r"'name' is not an index"):
        resolved(TINY, "--phases.name", "x")


# ------------------------------------------------------------------------------------- the consequences
@pytest.mark.parametrize("spelling", [["--max_steps", "5"], ["--max-steps", "5"], ["--max_steps=5"],
                                      ["--phase_overrides.*.max_steps", "5"]])
def test_max_steps_underscore_sets_every_phase_budget(spelling):
    """Was: ``--max_steps 5`` on p2e_tiny trained 4 steps (only ``--max-steps`` was known)."""
    assert [p.max_steps for p in resolved(TINY, *spelling).phases] == [5, 5, 5, 5]


def test_misspelled_section_is_refused_with_a_suggestion():
    """Was: ``--trainig.x 3`` was accepted (and ignored)."""
    with pytest.raises(ValueError, match=r"--trainig\.x: unknown config key\(s\): trainig \(did you mean training\?\)"):
        resolved(TINY, "--trainig.x", "3")
    with pytest.raises(ValueError, match=r"unknown config key\(s\): training\.per_device_batch \(did you mean "
                                         r"training\.per_device_batch_size\?\)"):
        resolved(TINY, "--training.per_device_batch", "3")
    with pytest.raises(ValueError, match=r"did you mean learning_rate"):
        resolved(LGSRR, "--learning_rat", "3")


def test_misspelled_top_level_key_in_a_p2e_file_is_refused(tmp_path):
    child = write(tmp_path / "child.yaml", {"inherit": str(TINY), "trainig": {"per_device_batch_size": 1}})
    with pytest.raises(ValueError, match=r"unknown config key\(s\): trainig \(did you mean training\?\)"):
        resolved(child)


def test_child_phases_win_over_the_parents_phase_overrides(tmp_path):
    """Was: a child of p2e_tiny setting ``max_steps: 120`` in its own phases trained 4 per phase."""
    phases = mc.read_config(CONFIGS / "p2e_nano_emox.yaml")["phases"]
    for phase in phases:
        phase["max_steps"] = 120
    child = write(tmp_path / "child.yaml", {"inherit": str(TINY), "phases": phases})
    config = resolved(child)
    assert [p.max_steps for p in config.phases] == [120] * 4
    # what the child's phase leaves out comes from the parent's override; what it sets stays (phase 3: 0)
    assert [p.warmup_steps for p in config.phases] == [phase.get("warmup_steps", 1) for phase in phases] == [1, 1, 1, 0]
    assert [p.max_steps for p in resolved(TINY).phases] == [4] * 4  # the parent itself is unchanged


def test_child_phase_overrides_win_over_the_parents_named_ones(tmp_path):
    parent = write(tmp_path / "parent.yaml", {"inherit": str(TINY),
                                              "phase_overrides": {"phase1_speech": {"max_steps": 7}}})
    child = write(tmp_path / "child.yaml", {"inherit": "parent.yaml", "phase_overrides": {"*": {"max_steps": 9}}})
    assert [p.max_steps for p in resolved(parent).phases] == [7, 4, 4, 4]
    assert [p.max_steps for p in resolved(child).phases] == [9, 9, 9, 9]


def test_set_with_a_misspelled_phase_field_names_the_key():
    """Was: ``--set phases.0.learnin_rate=1`` reported "'phases' must be a non-empty list"."""
    with pytest.raises(ValueError, match=r"unknown config key\(s\): phases\.0\.learnin_rate \(did you mean "
                                         r"phases\.0\.learning_rate\?\)"):
        resolved(TINY, "--set", "phases.0.learnin_rate=1")
    from mmaffect.train.p2e import load_run_config  # the Python entry point says the same

    with pytest.raises(ValueError, match=r"phases\.0\.learnin_rate \(did you mean phases\.0\.learning_rate\?\)"):
        load_run_config(TINY, sets=["phases.0.learnin_rate=1"])


def test_child_without_model_type_inherits_it(tmp_path):
    """Was: a child config without its own ``model_type`` was refused although ``inherit:`` gave it one."""
    p2e_child = write(tmp_path / "p2e_child.yaml", {"inherit": str(TINY), "output_dir": str(tmp_path / "out")})
    model_type, config = cli.training_config(["--config", str(p2e_child)])
    assert model_type == "nano_emox" and config.output_dir == str(tmp_path / "out")
    lgsrr_child = write(tmp_path / "lgsrr_child.yaml", {"inherit": str(LGSRR), "learning_rate": 2e-5})
    model_type, config = cli.training_config(["--config", str(lgsrr_child)])
    assert model_type == "lgsrr" and config.learning_rate == 2e-5 and config.dataset == resolved(LGSRR).dataset


def test_help_lists_the_keys_of_the_configs_model_type(capsys):
    """Was: ``mmaffect train --help`` showed only LGSRR keys, whatever the config."""
    from mmaffect import cli as mmaffect_cli

    assert mmaffect_cli.main(["train", "--config", str(TINY), "--help"]) == 0
    out = capsys.readouterr().out
    assert "nano_emox config keys" in out and "training.per_device_batch_size: 3" in out
    assert "phases.N.max_steps" in out and "--max_steps N" in out
    assert "head_learning_rate" not in out  # LGSRR's
    assert cli.main(["--config", str(LGSRR), "--help"]) == 0
    out = capsys.readouterr().out
    assert "lgsrr config keys" in out and "head_learning_rate: None" in out and "model.pooling" in out
    assert "per_device_batch_size" not in out
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "lgsrr config keys" in out and "nano_emox config keys" in out


def test_the_dispatcher_reads_each_file_once(monkeypatch, capsys):
    """Was: ``mmaffect train`` read the YAML, threw it away and handed argv to P2E (2 reads, 3 parses)."""
    reads = []
    original = mc.read_mapping
    monkeypatch.setattr(mc, "read_mapping", lambda path, what="config file": reads.append(Path(path).name) or original(path, what))
    assert cli.main(["--config", str(TINY), "--max_steps", "5", "--print_config"]) == 0
    assert sorted(reads) == ["p2e_nano_emox.yaml", "p2e_tiny.yaml"]
    assert "5 steps" in capsys.readouterr().out


# --------------------------------------------------------------------------------------------- the reader itself
def test_yaml_errors_name_file_line_and_column(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model_type: lgsrr\nmodel: {pooling: mean\nseed: 0\n")
    with pytest.raises(ValueError, match=rf"{bad}: invalid YAML at line 3, column 5"):
        mc.read_config(bad)
    loop = write(tmp_path / "loop.yaml", {"inherit": "loop.yaml"})
    with pytest.raises(ValueError, match="circular 'inherit' chain"):
        mc.read_config(loop)


def test_one_path_variable_syntax_with_the_old_one_as_an_alias(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(mc, "_DEPRECATIONS_SHOWN", set())  # each deprecation line is printed once per process
    new = resolved(TINY, "--data_root", str(tmp_path))
    assert new.datasets["crema_d"].path == f"{tmp_path}/crema_d_annotations.json"
    assert "deprecated" not in capsys.readouterr().err  # the shipped configs use ${data_root}
    old = resolved(TINY, "--data_root", str(tmp_path), "--datasets.crema_d.path", "{data_root}/crema_d_annotations.json")
    assert old.datasets["crema_d"].path == new.datasets["crema_d"].path
    assert "'{data_root}' is the old spelling of '${data_root}'" in capsys.readouterr().err
    assert mc.expand_variables("dia{D}_utt{U}.mp4", {"data_root": "x"}) == "dia{D}_utt{U}.mp4"  # no variable named
    lgsrr = resolved(LGSRR, "--data_dir", "${demo_data}/data_text")
    from mmaffect.train.paths import DEMO_DATA, expand_path

    assert expand_path(lgsrr.data_dir) == f"{DEMO_DATA}/data_text"


def test_extraction_uses_the_same_reader(tmp_path, capsys):
    from mmaffect.semantic_extraction.config import load_config

    base = write(tmp_path / "base.yaml", {"data_dir": "${config_dir}/data", "rank": {"style": "reference"}})
    child = write(tmp_path / "child.yaml", {"inherit": "base.yaml", "output_dir": "out"})
    config = load_config(child, None, mc.parse_args(["--rank.max-corrections", "0", "--limit=3"]))
    assert config.data_dir == str(tmp_path / "data") and config.rank_config().style == "reference"
    assert (config.rank_config().max_corrections, config.limit) == (0, 3)
    assert config.output_dir == str(tmp_path / "out")  # relative to the file: still read, with a note
    assert "write '${config_dir}/out'" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"rank\.max_corection \(did you mean rank\.max_corrections\?\)"):
        load_config(child, None, mc.parse_args(["--rank.max_corection", "0"]))
    write(tmp_path / "typo.yaml", {"rank": {"styl": "paper"}})
    with pytest.raises(ValueError, match=r"rank\.styl \(did you mean rank\.style\?\)"):
        load_config(tmp_path / "typo.yaml")


def test_extract_command_line_takes_config_keys(tmp_path, capsys):
    from mmaffect.semantic_extraction.cli import main as extract_main

    assert extract_main(["rank", "--data-dir", str(tmp_path), "--rank.ordr", "1"]) == 1
    assert "rank.ordr" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # not an option: a bad flag, exit 2
        extract_main(["rank", "--data-dir", str(tmp_path), "stray"])
