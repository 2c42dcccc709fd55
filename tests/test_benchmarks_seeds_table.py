"""benchmarks/lgsrr_seeds_table.py reads the seeds study's results.json files into the RESULTS.md table."""

from __future__ import annotations

import importlib.util
import json
import statistics
from pathlib import Path

from test_train_lgsrr_fixtures import tiny_config

from mmaffect.train import cli

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "lgsrr_seeds_table.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("lgsrr_seeds_table", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_seeds_table_reports_mean_and_std_of_the_finished_seeds(tmp_path):
    out = tmp_path / "seeds"
    config = tiny_config(tmp_path, variant="text_only", num_train_epochs=1, output_dir=str(out / "text_only"))
    assert cli.main(["--config", str(config), "--seeds", "0", "1"]) == 0
    (out / "lgsrr" / "seed_0").mkdir(parents=True)
    (out / "lgsrr" / "seed_0" / "results.json").write_text(json.dumps({"finished": False, "epoch": 1}))
    rows = {line.split(" | ")[0].strip("| "): line for line in _load_script().table(out).splitlines()[2:]}
    macro = [json.loads((out / "text_only" / f"seed_{s}" / "results.json").read_text())["test"]["macro_f1"]
             for s in (0, 1)]
    cells = rows["text_only"].split(" | ")
    assert cells[1] == "0 1"
    assert cells[4] == f"{100 * statistics.fmean(macro):.2f} ± {100 * statistics.stdev(macro):.2f}"
    assert rows["lgsrr"].split(" | ")[1] == "none"  # an unfinished seed is not counted
