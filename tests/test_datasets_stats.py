"""``mmaffect data-stats``: rows per split and label, length percentiles, Rank@k per aspect, PNG/JSON."""

from __future__ import annotations

import json

import pytest
from transformers import BertTokenizer

from mmaffect.cli import main as mmaffect_main
from mmaffect.datasets_scripts import BadRowsWarning, BenchmarkFormatError, load_benchmark
from mmaffect.datasets_scripts.stats import compute_stats

TEXT_HEADER = "Dialogue_id\tUtterance_id\tText\tLabel\tStart_timestamp\tEnd_timestamp\tSource\tspeaker_name"
A, E, I = "Speakers' Actions", "Emotions and Facial Expressions", "Interaction with Others"


def release(root):
    rows = {
        "train": [(0, 0, "one two three", "Greet"), (0, 1, "one", "Greet"), (0, 2, "a b c d e f g h i j", "Warn"), (0, 3, "x y", "Inform")],
        "dev": [(1, 0, "one two", "Warn")],
        "test": [(2, 0, "one two three four", "Inform"), (2, 1, "hi", "Inform")],
    }
    for stem, lines in rows.items():
        (root / "text").mkdir(parents=True, exist_ok=True)
        (root / "desc").mkdir(parents=True, exist_ok=True)
        (root / "text" / f"{stem}.tsv").write_text(
            "\n".join([TEXT_HEADER] + [f"{d}\t{u}\t{t}\t{lab}\t0\t1\ts\tA" for d, u, t, lab in lines]) + "\n")  # fmt: skip
        (root / "desc" / f"{stem}.tsv").write_text(
            "\r\n".join(["Dialogue_id\tUtterance_id\tSpeakers Actions\tEmotions and Facial Expressions\tInteraction with Others"]
                        + [f"{d}\t{u}\tsits down\tsmiles\ttalks to her friend" for d, u, _, _ in lines]) + "\r\n")  # fmt: skip
    ranks = [f"0\t0\t{I}\t{A}\t{E}", f"0\t1\t{I}\t{E}\t{A}", f"0\t2\t{A}\t{I}\t{E}"]  # dia0_utt3 unranked
    (root / "rank.tsv").write_text("\r\n".join(["Dia\tUtt\tRank_First\tRank_Second\tRank_Third", *ranks]) + "\r\n")
    return root


def test_compute_stats_counts_everything(tmp_path):
    root = release(tmp_path)
    ds = load_benchmark("mintrec2", root / "text", descriptions_dir=root / "desc", ranks_file=root / "rank.tsv", keep_in_memory=True)
    stats = compute_stats(ds)
    assert stats["rows"] == {"train": 4, "validation": 1, "test": 2}
    labels = stats["classes"]["label"]
    assert (labels["train"]["Greet"], labels["train"]["Warn"], labels["train"]["Inform"], labels["train"]["Joke"]) == (2, 1, 1, 0)
    assert labels["test"]["Inform"] == 2 and sum(labels["validation"].values()) == 1
    words = stats["lengths"]["text"]["words"]["train"]
    assert words["max"] == 10 and words["p50"] == 2.5  # lengths 3, 1, 10, 2
    assert stats["lengths"]["aspects"]["words"]["train"]["max"] == 4
    assert stats["ranks"]["train"] == {"ranked": 3, "counts": {"actions": [1, 1, 1], "expressions": [0, 1, 2], "interactions": [2, 1, 0]}}
    assert stats["ranks"]["validation"]["ranked"] == 0

    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "one", "two", "three", "four"])}
    tokens = compute_stats(ds, BertTokenizer(vocab=vocab))["lengths"]["text"]["tokens"]
    assert tokens["test"]["max"] == 6 and tokens["validation"]["p50"] == 4  # [CLS] + words + [SEP]


def test_cli_prints_tables_and_writes_png_and_json(tmp_path, capsys):
    root = release(tmp_path)
    png, out_json = tmp_path / "stats.png", tmp_path / "stats.json"
    code = mmaffect_main([
        "data-stats", "mintrec2", "--data-dir", str(root / "text"), "--descriptions-dir", str(root / "desc"),
        "--ranks-file", str(root / "rank.tsv"), "--plot", str(png), "--json", str(out_json),
    ])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "rows: train 4 | validation 1 | test 2 | total 7" in printed
    assert "aspect ranking, train: 3 of 4 rows ranked" in printed
    table = printed.split("aspect ranking, train")[1].splitlines()
    assert table[2].split() == ["actions", "1", "1", "1"] and table[4].split() == ["interactions", "2", "1", "0"]
    greet = next(line for line in printed.splitlines() if line.startswith("Greet "))
    assert greet.split() == ["Greet", "2", "0", "0", "2"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert json.loads(out_json.read_text())["ranks"]["train"]["counts"]["interactions"] == [2, 1, 0]


def test_cli_bad_rows_option(tmp_path, capsys):
    root = release(tmp_path)
    with open(root / "text" / "dev.tsv", "a") as f:
        f.write("1\t1\tbad\tNoSuchIntent\t0\t1\ts\tA\n")
    # the command line prints the loader's error as one line and exits 2 (--debug raises it)
    assert mmaffect_main(["data-stats", "mintrec2", "--data-dir", str(root / "text")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mmaffect data-stats: error: ") and "dev.tsv:3: unknown label 'NoSuchIntent'" in err
    with pytest.raises(BenchmarkFormatError, match=r"dev.tsv:3: unknown label 'NoSuchIntent'"):
        mmaffect_main(["--debug", "data-stats", "mintrec2", "--data-dir", str(root / "text")])
    with pytest.warns(BadRowsWarning, match="skipped 1 bad row"):
        assert mmaffect_main(["data-stats", "mintrec2", "--data-dir", str(root / "text"), "--on-bad-rows", "skip"]) == 0
    assert "validation 1" in capsys.readouterr().out
