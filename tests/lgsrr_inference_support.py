"""Builders shared by the LGSRR inference tests (no tests here).

* ``trained_demo_model(base)`` - ``python train.py`` on the embedded demo (MiniLM, one epoch), once per
  pytest session: returns its ``best_model`` folder (weights, remote code, processor, model card);
* ``tiny_lgsrr(folder)`` - an untrained tiny LGSRR over the tiny word-level encoder of
  ``test_train_lgsrr_fixtures``, saved with its processor (milliseconds to run);
* ``run_without_mmaffect(script, cwd)`` - run Python in a fresh process where ``import mmaffect`` fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = {
    "text": "thanks so kind of you",
    "descriptions": {"actions": "he smiles and hugs her", "expressions": "grateful and kind",
                     "interactions": "hello to the woman"},
}


def trained_demo_model(base: Path) -> Path:
    best = base / "run" / "best_model"
    if not (best / "README.md").exists():
        env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
        result = subprocess.run(
            [sys.executable, str(REPO / "train.py"), "--config", str(REPO / "configs" / "lgsrr_demo.yaml"),
             "--num_train_epochs", "1", "--output_dir", str(base / "run"), "--overwrite_output_dir", "true"],
            env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
    return best


def tiny_lgsrr(folder: Path, labels=("Thank", "Complain", "Greet"), **config) -> Path:
    from test_train_lgsrr_fixtures import write_tiny_encoder
    from transformers import AutoTokenizer

    from mmaffect import LGSRRForSequenceClassification, LGSRRProcessor

    encoder = write_tiny_encoder(folder / "encoder")
    import torch

    torch.manual_seed(0)
    model = LGSRRForSequenceClassification.from_pretrained_encoder(str(encoder), labels=list(labels),
                                                                   weight_hidden_dim=8, **config).eval()
    processor = LGSRRProcessor.from_model_config(AutoTokenizer.from_pretrained(encoder), model.config, 16, 20)
    model.save_pretrained(folder / "model")
    processor.save_pretrained(folder / "model")
    return folder / "model"


def run_without_mmaffect(script: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    prelude = textwrap.dedent("""
        import sys
        sys.modules["mmaffect"] = None  # `import mmaffect` raises ImportError from here on
        try:
            import mmaffect
        except ImportError:
            pass
        else:
            raise SystemExit("mmaffect is importable")
    """)
    env = {"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "HOME": str(cwd), "OMP_NUM_THREADS": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(script)], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL)
