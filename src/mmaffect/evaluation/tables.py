"""The paper's result tables (Nano-EmoX, Tables 2-5) from harness results, as Markdown and a PNG chart.

* Table 2 - MER hit rate (MER2023, MER2024, MELD, IEMOCAP), MSA WAF (MOSI, MOSEI, SIMS, SIMSV2),
  OV-MER WAF (OV-MERD) and their average, x100;
* Table 3 - ERI clue / label overlap (1-10);
* Table 4 - MIR Acc / WF1 / WP on MIntRec and MIntRec 2.0, x100;
* Table 5 - ERG Acc / Hit Rate, Dist-1, Dist-2, x100.

A benchmark without data shows ``-``; one that failed shows ``error`` (the reason is listed under the
table); a value whose official definition is undefined (NaN) shows ``n/a``. The average of Table 2
is over the columns that have a value (the paper averages all nine).
"""

from __future__ import annotations

import os
from pathlib import Path

TABLE2 = (("mer2023", "MER2023"), ("mer2024", "MER2024"), ("meld", "MELD"), ("iemocap", "IEMOCAP"),
          ("mosi", "MOSI"), ("mosei", "MOSEI"), ("sims", "SIMS"), ("simsv2", "SIMSV2"), ("ovmerd", "OV-MERD"))
TABLE4 = (("mintrec", "MIntRec"), ("mintrec2", "MIntRec 2.0"))
_MIR_COLUMNS = ("Acc", "WF1", "WP")
_NO_DATA, _FAILED, _UNDEFINED = "-", "error", "n/a"


def _cell(value, digits: int = 2) -> str:
    if value is None:
        return _UNDEFINED
    if isinstance(value, str):
        return value
    return f"{value:.{digits}f}"


def _markdown(headers: list[str], rows: list[list[str]], sub_header: list[str] | None = None) -> list[str]:
    all_rows = ([sub_header] if sub_header else []) + rows
    widths = [max(len(h), *(len(r[i]) for r in all_rows)) for i, h in enumerate(headers)]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |" for row in all_rows]
    return lines


def _state(name: str, results: dict, errors: dict):
    """(result or None, marker for a missing value)."""
    if name in results:
        return results[name], _UNDEFINED
    return None, (_FAILED if name in errors else _NO_DATA)


def paper_tables(results: dict, model_name: str, scale: str | None = None, errors: dict | None = None) -> tuple[str, dict]:
    """Markdown of the tables that have at least one benchmark given, and their numbers as data."""
    errors = errors or {}
    given = set(results) | set(errors)
    scale = scale or "-"
    out, data = [], {}

    if given & {name for name, _ in TABLE2}:
        values, cells = {}, []
        for name, title in TABLE2:
            result, marker = _state(name, results, errors)
            key = {"mer": "Hit Rate", "msa": "WAF", "ovmer": "WAF"}
            value = None if result is None else result["table"].get(key[result["task"]])
            values[title] = value
            cells.append(_cell(value) if value is not None else marker)
        present = [v for v in values.values() if v is not None]
        average = sum(present) / len(present) if present else None
        data["table2"] = {"values": values, "average": average, "num_averaged": len(present)}
        headers = ["Models", "Scale"] + [title for _, title in TABLE2] + ["Avg."]
        sub = ["", ""] + ["Hit Rate \u2191 (MER)"] + [""] * 3 + ["WAF \u2191 (MSA)"] + [""] * 3 + ["WAF \u2191 (OV-MER)", "-"]
        out += ["Table 2. MSA, MER and fine-grained OV-MER (x100).", ""]
        out += _markdown(headers, [[model_name, scale] + cells + [_cell(average) if average is not None else _NO_DATA]], sub)
        if len(present) < len(TABLE2):
            out.append(f"(Avg. over the {len(present)} datasets with a value; the paper averages all {len(TABLE2)}.)")
        out.append("")

    if "emer" in given:
        result, marker = _state("emer", results, errors)
        table = (result or {}).get("table") or {}
        clue, label = table.get("Clue Overlap"), table.get("Label Overlap")
        data["table3"] = {"Clue Overlap": clue, "Label Overlap": label}
        if result is not None and not table:
            marker = "not scored"
        out += ["Table 3. ERI (EMER): judge-rated overlap (1-10).", ""]
        out += _markdown(["Models", "Scale", "Clue Overlap \u2191", "Label Overlap \u2191"],
                         [[model_name, scale, _cell(clue) if clue is not None else marker,
                           _cell(label) if label is not None else marker]])
        out.append("")

    if given & {name for name, _ in TABLE4}:
        row, data["table4"] = [model_name], {}
        for name, title in TABLE4:
            result, marker = _state(name, results, errors)
            values = {column: None if result is None else result["table"].get(column) for column in _MIR_COLUMNS}
            data["table4"][title] = values
            row += [_cell(v) if v is not None else marker for v in values.values()]
        headers = ["Methods"] + [f"{title} {column} \u2191" for _, title in TABLE4 for column in _MIR_COLUMNS]
        out += ["Table 4. MIR (x100).", ""] + _markdown(headers, [row]) + [""]

    if "avamerg" in given:
        result, marker = _state("avamerg", results, errors)
        table = (result or {}).get("table") or {}
        metrics = (result or {}).get("metrics") or {}
        data["table5"] = {"Acc": None if not metrics else 100 * metrics["accuracy"],
                          "Hit Rate": None if metrics.get("hit_rate") is None else 100 * metrics["hit_rate"],
                          "Dist-1": table.get("Dist-1"), "Dist-2": table.get("Dist-2")}
        row = [model_name, table.get("Acc / Hit Rate", marker)] + [
            _cell(table.get(k)) if table.get(k) is not None else marker for k in ("Dist-1", "Dist-2")]
        out += ["Table 5. ERG (AvaMERG) (x100).", ""]
        out += _markdown(["Models", "Acc / Hit Rate \u2191", "Dist-1 \u2191", "Dist-2 \u2191"], [row]) + [""]

    notes = []
    for name, result in results.items():
        for metric, message in result.get("errors", {}).items():
            notes.append(f"- {result['title']} {metric}: {message}")
        protocols = ", ".join(f"{k}={v}" for k, v in result.get("protocols", {}).items())
        notes.append(f"- {result['title']}: {result['num_samples']} samples; protocols {protocols or '-'}; "
                     f"extractor {result['extractor']}")
    for name, message in errors.items():
        notes.append(f"- {name}: failed - {message}")
    if notes:
        out += ["Notes:"] + notes
    return "\n".join(out).rstrip(), data


def save_paper_chart(table_data: dict, path: str | os.PathLike, model_name: str = "") -> str:
    """Bar charts of the tables in ``table_data`` (one panel per table), written as a PNG."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    panels = [key for key in ("table2", "table3", "table4", "table5") if key in table_data]
    if not panels:
        raise ValueError("no table has data to chart")
    figure, axes = plt.subplots(len(panels), 1, figsize=(10, 3.2 * len(panels)), squeeze=False)
    for axis, key in zip(axes[:, 0], panels):
        if key == "table2":
            values = dict(table_data[key]["values"])
            if table_data[key]["average"] is not None:
                values["Avg."] = table_data[key]["average"]
            title, ylabel = "Table 2: MER hit rate / MSA WAF / OV-MER WAF", "x100"
        elif key == "table3":
            values, title, ylabel = table_data[key], "Table 3: ERI overlap", "1-10"
        elif key == "table4":
            values = {f"{ds} {m}": v for ds, cols in table_data[key].items() for m, v in cols.items()}
            title, ylabel = "Table 4: MIR", "x100"
        else:
            values, title, ylabel = table_data[key], "Table 5: ERG", "x100"
        labels = list(values)
        heights = [0.0 if values[k] is None else float(values[k]) for k in labels]
        bars = axis.bar(range(len(labels)), heights, color="#4c72b0")
        for bar, label in zip(bars, labels):
            text = "n/a" if values[label] is None else f"{values[label]:.1f}"
            axis.annotate(text, (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom", fontsize=8)
        axis.set_xticks(range(len(labels)), labels, rotation=20, fontsize=8)
        axis.set_title(f"{title} - {model_name}" if model_name else title, fontsize=10)
        axis.set_ylabel(ylabel)
        axis.set_ylim(0, (10.5 if key == "table3" else max(100.0, max(heights) * 1.1)))
    figure.tight_layout()
    figure.savefig(path, format="png", dpi=110)
    plt.close(figure)
    return str(Path(path))


__all__ = ["TABLE2", "TABLE4", "paper_tables", "save_paper_chart"]
