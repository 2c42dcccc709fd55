"""The package's structure: one home for each shared constant and warning, and no import cycles."""

from __future__ import annotations

import ast
import warnings
from pathlib import Path


def _meld_release(root: Path) -> Path:
    header = "Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,Episode,StartTime,EndTime\n"
    rows = '1,"Oh, hi!",Joey,joy,positive,0,0,1,1,00:00:01,00:00:02\n2,No.,Ross,anger,negative,0,1,1,1,00:00:03,00:00:04\n'
    root.mkdir(parents=True)
    for split in ("train", "dev", "test"):
        (root / f"{split}_sent_emo.csv").write_text(header + rows, encoding="utf-8")
    (root / "media" / "train").mkdir(parents=True)
    (root / "media" / "train" / "dia0_utt0.mp4").write_bytes(b"")  # dia0_utt1 has no clip
    return root


def test_filtering_the_one_missing_media_warning_silences_every_reader(tmp_path):
    from mmaffect.datasets_scripts import MissingMediaWarning, load_benchmark
    from mmaffect.datasets_scripts.instruction_data import read_dataset

    root = _meld_release(tmp_path / "meld")
    media = root / "media"

    def read_both():
        dataset = load_benchmark("meld", root, media_dir=media, keep_in_memory=True)
        records = read_dataset("meld", root, media_dir=media, on_missing_media="keep")
        return dataset, records

    with warnings.catch_warnings(record=True) as caught:  # unfiltered, both readers warn
        warnings.simplefilter("always")
        read_both()
    missing = [w for w in caught if type(w.message).__name__ == "MissingMediaWarning"]
    assert {type(w.message) for w in missing} == {MissingMediaWarning}
    assert any("have no media file" in str(w.message) for w in missing)  # load_benchmark's media join
    assert any("kept without media" in str(w.message) for w in missing)  # the P2E reader's media policy

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.simplefilter("ignore", MissingMediaWarning)
        dataset, records = read_both()
    assert [str(w.message) for w in caught if "media" in type(w.message).__name__.lower()] == []
    assert dataset["train"]["video"][1] is None and [r.video is None for r in records] == [False, True]


def test_one_subtitle_reader_for_training_and_evaluation(tmp_path):
    import pytest

    from mmaffect.datasets_scripts.reading import BenchmarkFormatError, read_subtitles
    from mmaffect.evaluation.benchmarks import EvalDataError, _subtitles

    path = tmp_path / "subtitle_chieng.csv"
    path.write_text("name,chinese,english\na,x, Hi there \nb,y,nan\nc,z,NA\nd,w,\n", encoding="utf-8")
    assert read_subtitles(path) == {"a": "Hi there", "b": "", "c": "", "d": ""}  # the P2E readers
    assert _subtitles(path) == {"a": " Hi there ", "b": "", "c": "", "d": ""}  # evaluation: as pandas reads it
    path.write_text("name,chinese\na,x\n", encoding="utf-8")
    assert read_subtitles(path) == {"a": "x"}  # training falls back to another transcript column ...
    with pytest.raises(EvalDataError, match=r"subtitle_chieng.csv:1: missing column\(s\) \['english'\]"):
        _subtitles(path)  # ... evaluation prompts in English only
    path.write_text("id,english\na,x\n", encoding="utf-8")
    with pytest.raises(BenchmarkFormatError, match=r"missing column\(s\) \['name'\]"):
        read_subtitles(path)


def test_each_shared_constant_has_one_home():
    from mmaffect.datasets_scripts import benchmarks, instruction_data, labels, media, reading
    from mmaffect.evaluation import benchmarks as eval_benchmarks
    from mmaffect.evaluation import cli_score as metrics_cli
    from mmaffect.metrics import classification, protocol
    from mmaffect.models.lgsrr import configuration_lgsrr, processing_lgsrr
    from mmaffect.models.nano_emox import configuration_nano_emox, modeling_nano_emox, processing_nano_emox
    from mmaffect.semantic_extraction import aspects, rank, samples
    from mmaffect.train import lgsrr, p2e

    assert benchmarks.MissingMediaWarning is instruction_data.MissingMediaWarning is media.MissingMediaWarning
    assert instruction_data.VIDEO_SUFFIXES is eval_benchmarks.VIDEO_SUFFIXES is media.VIDEO_SUFFIXES
    assert eval_benchmarks.AUDIO_SUFFIXES is benchmarks.AUDIO_SUFFIXES is media.AUDIO_SUFFIXES
    assert eval_benchmarks.TASKS is metrics_cli.TASKS is protocol.TASKS
    assert instruction_data.TASKS is p2e.TASKS is processing_nano_emox.TASKS == ("MER", "OV-MER", "ERI", "MIR", "ERG")
    assert p2e.IGNORE_INDEX is modeling_nano_emox.IGNORE_INDEX is processing_nano_emox.IGNORE_INDEX
    assert processing_nano_emox.IGNORE_INDEX is configuration_nano_emox.IGNORE_INDEX == -100
    assert labels.ASPECTS is processing_lgsrr.DEFAULT_ASPECTS is configuration_lgsrr.DEFAULT_ASPECTS
    assert tuple(a.key for a in aspects.DEFAULT_ASPECTS) == configuration_lgsrr.DEFAULT_ASPECTS  # the specs of those keys
    assert samples.IEMOCAP_DA_CODES is labels.IEMOCAP_DA_CODES
    assert lgsrr.METRICS is classification.METRIC_NAMES
    assert rank.unquote is reading.unquote


# ----------------------------------------------------------------------------------------------- import graph
SRC = Path(__file__).resolve().parents[1] / "src"


def _module_names() -> dict[str, Path]:
    """``mmaffect.a.b`` -> its file, for every module of the package (a package by its ``__init__.py``)."""
    names = {}
    for path in sorted((SRC / "mmaffect").rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def _lazy_exports(path: Path) -> dict[str, str]:
    """A package ``__init__``'s ``_EXPORTS = {"Name": "submodule", ...}`` (names it imports on first use)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "_EXPORTS" for t in node.targets):
            return ast.literal_eval(node.value)
    return {}


def _targets(module: str, is_package: bool, node: ast.AST, modules: dict[str, Path]) -> list[str]:
    """The package modules one import statement loads (a lazily exported name counts as its submodule)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if alias.name in modules]
    base = module if is_package else module.rpartition(".")[0]
    for _ in range(max(node.level - 1, 0)):
        base = base.rpartition(".")[0]
    source = (f"{base}.{node.module}" if node.module else base) if node.level else (node.module or "")
    if source not in modules:
        return []
    targets = []
    for alias in node.names:
        exports = _lazy_exports(modules[source]) if modules[source].name == "__init__.py" else {}
        if f"{source}.{alias.name}" in modules:
            targets.append(f"{source}.{alias.name}")
        elif alias.name in exports:
            targets.append(f"{source}.{exports[alias.name]}")
        else:
            targets.append(source)
    return targets


def _dynamic_target(module: str, is_package: bool, node: ast.AST, modules: dict[str, Path]) -> str | None:
    """A module named by a string: ``import_module("mmaffect.x")`` / ``import_module(".x", __name__)``, or a
    dispatch-table entry ``"mmaffect.x"`` / ``"mmaffect.x:main"`` (imports by name are imports too)."""
    if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "import_module":
        if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
            name = node.args[0].value
            if name.startswith("."):
                name = (module if is_package else module.rpartition(".")[0]) + name
            return name if name in modules else None
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and ":" in node.value:
        name = node.value.split(":", 1)[0]
        return name if name in modules else None
    return None


def import_graph() -> dict[str, set[str]]:
    """Edges module -> package modules it imports, at module level or inside functions, by statement or by name
    (``ast``: nothing is imported)."""
    modules = _module_names()
    graph = {}
    for module, path in modules.items():
        is_package = path.name == "__init__.py"
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                edges.update(_targets(module, is_package, node, modules))
            elif (target := _dynamic_target(module, is_package, node, modules)) is not None:
                edges.add(target)
        edges.discard(module)
        graph[module] = edges
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component with more than one module (Tarjan), as a module path."""
    index, low, stack, on_stack, components = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, ())):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def test_the_cycle_finder_sees_function_level_imports():
    graph = {"mmaffect.a": {"mmaffect.b"}, "mmaffect.b": {"mmaffect.c"}, "mmaffect.c": {"mmaffect.a"}, "mmaffect.d": {"mmaffect.a"}}
    assert find_cycles(graph) == [["mmaffect.a", "mmaffect.b", "mmaffect.c"]]
    source = "def f():\n    from .lgsrr import train\n"
    node = next(n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.ImportFrom))
    modules = _module_names()
    assert _targets("mmaffect.train.model_card", False, node, modules) == ["mmaffect.train.lgsrr"]
    lazy = next(n for n in ast.walk(ast.parse("from mmaffect.datasets_scripts import load_benchmark")) if isinstance(n, ast.ImportFrom))
    assert _targets("mmaffect.x", False, lazy, modules) == ["mmaffect.datasets_scripts.benchmarks"]
    calls = [n for n in ast.walk(ast.parse('import_module("mmaffect.train.p2e")\nx = {"env": "mmaffect.env:main", "p": "mmaffect"}'))]
    assert {_dynamic_target("mmaffect.cli", False, n, modules) for n in calls} - {None} == {"mmaffect.train.p2e", "mmaffect.env"}


def test_no_import_cycle_inside_the_package():
    cycles = find_cycles(import_graph())
    assert cycles == [], "import cycles (function-level imports included): " + "; ".join(" <-> ".join(c) for c in cycles)


# --------------------------------------------------------------------------------------------- function length
MAX_FUNCTION_LINES = 80  # docs/conventions.md: functions fit on a screen (issue 23, item 5)


def long_functions(source: str, max_lines: int = MAX_FUNCTION_LINES) -> list[tuple[int, str, int]]:
    """``(line, name, length)`` of every def / async def (methods and nested functions included) longer than
    ``max_lines``, counted from the ``def`` line to the last line of the body (decorators not counted)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            if length > max_lines:
                found.append((node.lineno, node.name, length))
    return sorted(found)


def test_the_length_check_sees_methods_nested_and_async_functions():
    source = (
        "@decorator\n"             # 1: decorators are not counted
        "def top():\n"             # 2: 3 lines
        "    a = 1\n"
        "    return a\n"
        "class A:\n"               # 5
        "    def method(self):\n"  # 6: 3 lines
        "        a = 1\n"
        "        return a\n"
        "async def outer():\n"     # 9: 6 lines
        "    def inner():\n"       # 10: 3 lines
        "        a = 1\n"
        "        return a\n"
        "    b = 2\n"
        "    return inner, b\n"
    )
    assert long_functions(source, max_lines=2) == [(2, "top", 3), (6, "method", 3), (9, "outer", 6), (10, "inner", 3)]
    assert long_functions(source, max_lines=3) == [(9, "outer", 6)]
    assert long_functions("def f():\n" + "    pass\n" * 80) == [(1, "f", 81)]
    assert long_functions("def f():\n" + "    pass\n" * 79) == []


def test_no_function_over_80_lines_in_src():
    offenders = []
    for path in sorted((SRC / "mmaffect").rglob("*.py")):
        for line, name, length in long_functions(path.read_text(encoding="utf-8")):
            offenders.append(f"{path.relative_to(SRC.parent)}:{line} {name} ({length} lines)")
    assert offenders == [], f"functions over {MAX_FUNCTION_LINES} lines (split them into named helpers): " + "; ".join(offenders)
