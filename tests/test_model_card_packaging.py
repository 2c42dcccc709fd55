"""Model cards come from templates inside the package: an installed (non-editable) wheel writes the same full
card as the source tree, and a missing template is an error, never a shorter card."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Writes both models' cards into sys.argv[1] with the mmaffect that is first on sys.path; prints where it came from.
WRITE_CARDS = textwrap.dedent(f"""
    import json, sys
    from pathlib import Path
    import mmaffect
    from mmaffect.train.lgsrr import config_from_dict, load_yaml
    from mmaffect.train.model_card import write_model_card, write_nano_emox_card
    from mmaffect.train.p2e_phases import load_config

    out = Path(sys.argv[1])
    metrics = {{"accuracy": 0.5, "macro_f1": 0.4, "macro_precision": 0.45, "macro_recall": 0.4, "weighted_f1": 0.5,
                "weighted_precision": 0.5, "weighted_recall": 0.5}}
    cfg = config_from_dict(load_yaml({str(ROOT / "configs" / "lgsrr_demo.yaml")!r}))
    (out / "lgsrr").mkdir(parents=True)
    write_model_card(out / "lgsrr", cfg, ["Inform", "Thank", "Praise"], {{"dev": metrics, "test": metrics, "best_epoch": 2,
                     "epochs_run": 4}}, {{"train": 30, "validation": 9, "test": 9}}, labels_in_train=3,
                     example={{"text": "thanks!", "descriptions": {{"actions": "waves", "expressions": "smiles",
                                                                  "interactions": "nods"}}}})
    p2e = load_config({str(ROOT / "configs" / "p2e_tiny.yaml")!r}, data_root="/data")
    (out / "nano_emox").mkdir()
    write_nano_emox_card(out / "nano_emox", p2e, {{"datasets": {{}}, "phases": [{{"world_size": 2}}]}})
    print(json.dumps({{"mmaffect": mmaffect.__file__}}))
""")


def _write_cards(out: Path, pythonpath: str, cwd: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": pythonpath, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", WRITE_CARDS, str(out)], capture_output=True, text=True, env=env,
                            cwd=cwd, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_an_installed_wheel_writes_the_full_cards(tmp_path):
    project = tmp_path / "project"  # a clean copy: the build writes build/ and *.egg-info next to the sources
    project.mkdir()
    shutil.copy(ROOT / "pyproject.toml", project)
    shutil.copy(ROOT / "README.md", project)
    shutil.copytree(ROOT / "src", project / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", str(project),
                            "-w", str(tmp_path / "dist")], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-3000:]
    wheel = next((tmp_path / "dist").glob("mmaffect-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert {"mmaffect/train/model_cards/lgsrr.md", "mmaffect/train/model_cards/nano_emox.md"} <= set(names)
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:  # what `pip install --no-deps` puts in site-packages
        archive.extractall(site)

    elsewhere = tmp_path / "elsewhere"  # neither the repository nor its model_cards/ folder is around
    elsewhere.mkdir()
    installed = _write_cards(tmp_path / "installed", str(site), elsewhere)
    assert Path(installed["mmaffect"]).is_relative_to(site)
    source = _write_cards(tmp_path / "source", str(ROOT / "src"), elsewhere)
    assert Path(source["mmaffect"]).is_relative_to(ROOT / "src")
    for model, headings in (("lgsrr", ("## Results", "## How to use", "## Training procedure", "## Citation")),
                            ("nano_emox", ("## Use", "## Training", "## Limitations and intended use"))):
        card = (tmp_path / "installed" / model / "README.md").read_text(encoding="utf-8")
        assert card == (tmp_path / "source" / model / "README.md").read_text(encoding="utf-8")
        assert all(heading in card for heading in headings), model
        assert "$" not in card.split("```")[0], "an unfilled placeholder"


def test_a_missing_template_is_an_error_naming_it(tmp_path, monkeypatch):
    from mmaffect.train import model_card

    monkeypatch.setattr(model_card, "TEMPLATES", tmp_path)
    with pytest.raises(FileNotFoundError, match=r"model-card template .*nano_emox\.md is missing"):
        model_card.write_nano_emox_card(tmp_path, object(), {})
    with pytest.raises(FileNotFoundError, match=r"model-card template .*lgsrr\.md is missing"):
        model_card.read_template("lgsrr.md")
