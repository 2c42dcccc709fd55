"""The one config reader of mmaffect: YAML files, ``inherit:``, path variables and command-line overrides.

Both trainers (``mmaffect train``: LGSRR and Nano-EmoX P2E) and ``mmaffect extract`` read their settings here:

* :func:`read_config` reads a YAML file once (a syntax error names ``file:line:col``) and resolves its
  ``inherit:`` chain (path relative to the file). The child wins over the parent everywhere: mappings merge key
  by key, anything else (lists included) is replaced, and a parent's ``phase_overrides`` belong to the parent's
  phases - a child that lists its own ``phases`` keeps its own values (the parent's overrides fill in only the
  fields the child's phase leaves out).
* Path variables have one syntax, ``${name}`` (``${shared_data}``, ``${demo_data}``, ``${config_dir}``,
  ``${data_root}``, ``${output_dir}``, as the tool offers them). The P2E form ``{data_root}`` and relative paths
  in extraction configs still work, with a deprecation line (:func:`expand_variables`).
* Overrides have one syntax (:func:`parse_args`): ``--key value``, ``--key=value``, dotted keys into mappings and
  list indices (``--training.per_device_batch_size 2``, ``--phases.0.learning_rate 1e-4``), ``_`` or ``-``
  between words (``--max_steps`` = ``--max-steps``), several values make a list, a bare flag is true. Values are
  read as YAML, then typed by the field they set. P2E's ``--set a.b=v`` is the same override, deprecated.
* Unknown keys are refused at every depth, in the file and on the command line, with the nearest known key
  (:func:`check_keys`, :func:`apply_overrides`).

A *schema* says which keys a config accepts: :class:`Fields` (a closed mapping: ``{name: schema}``),
:class:`Open` (any key, each value of one schema), :class:`ListOf`, or a leaf type name (``"int"``, ``"float"``,
``"bool"``, ``"str"``, ``"any"``). ``mmaffect.train.cli.schema_for`` returns the schema of a model type.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mmaffect.errors import UsageError


class ConfigError(UsageError):
    """A config file or override is wrong; the message names the file or flag, the key and the value."""


@dataclass(frozen=True)
class Fields:
    """A mapping with a fixed set of keys, each with its own schema (``defaults``: shown by ``--help``)."""

    fields: dict[str, Any]
    defaults: dict[str, Any] = dataclasses.field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Open:
    """A mapping with any keys (names chosen by the user), every value following ``value``."""

    value: Any = "any"


@dataclass(frozen=True)
class ListOf:
    """A list whose items follow ``item`` (overrides reach an item by its index: ``--phases.0.max_steps``)."""

    item: Any = "any"


# ----------------------------------------------------------------------------------------------- reading
def deep_merge(base: Mapping, override: Mapping) -> dict:
    """Mappings merge key by key (recursively); anything else in ``override`` replaces ``base``."""
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def read_mapping(path: str | os.PathLike, what: str = "config file") -> dict:
    """One YAML file's own keys (``inherit`` not resolved); invalid YAML names the file, line and column."""
    from mmaffect.errors import read_yaml_file

    data = read_yaml_file(path, what)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{what} {path} must hold a mapping of keys to values, got {type(data).__name__}")
    return data


def read_config(path: str | os.PathLike, what: str = "config file", _seen: tuple[str, ...] = ()) -> dict:
    """A YAML config with its ``inherit:`` chain resolved (child wins; see the module docstring)."""
    path = Path(path).resolve()
    if str(path) in _seen:
        raise ConfigError(f"{path}: circular 'inherit' chain {list(_seen) + [str(path)]}")
    data = read_mapping(path, what)
    parent = data.pop("inherit", None)
    if not parent:
        return data
    if not isinstance(parent, str):
        raise ConfigError(f"{path}: inherit must be a file name, got {parent!r}")
    parent_path = path.parent / os.path.expanduser(parent)
    if not parent_path.is_file():
        raise ConfigError(f"{path}: inherit: {parent!r} not found (looked for {parent_path})")
    return merge_inherited(read_config(parent_path, what, _seen + (str(path),)), data)


def merge_inherited(parent: Mapping, child: Mapping) -> dict:
    """``child`` on top of ``parent``. The parent's ``phase_overrides`` are folded into the parent's phases first
    (they are part of how the parent defines them), so a child's ``phase_overrides`` and a child's own
    ``phases`` both win over them; a child that lists ``phases`` without ``phase_order`` drops the parent's
    order (it names the parent's phases)."""
    parent = fold_phase_overrides(parent)
    if "phases" in child:
        folded = parent.get("_folded_overrides") or {}
        child = dict(child)
        if isinstance(child["phases"], list):
            child["phases"] = [_under_overrides(p, folded) for p in child["phases"]]
        if "phase_order" not in child:
            parent.pop("phase_order", None)
    parent.pop("_folded_overrides", None)
    return deep_merge(parent, child)


def _under_overrides(phase: Any, overrides: Mapping) -> Any:
    if not isinstance(phase, Mapping):
        return phase
    base = deep_merge(overrides.get("*") or {}, overrides.get(phase.get("name")) or {})
    return deep_merge(base, phase)


def fold_phase_overrides(config: Mapping) -> dict:
    """``phase_overrides`` applied to ``phases`` (``"*"`` first, then by name); entries naming no phase stay (the
    P2E trainer reports them). The folded entries are kept under ``_folded_overrides`` for a child's phases."""
    config = copy.deepcopy(dict(config))
    overrides = config.get("phase_overrides")
    phases = config.get("phases")
    if not isinstance(overrides, Mapping) or not overrides or not isinstance(phases, list):
        return config
    names = {p.get("name") for p in phases if isinstance(p, Mapping)}
    folded = {k: v for k, v in overrides.items() if k == "*" or k in names}
    config["phases"] = [_on_top(p, folded) for p in phases]
    rest = {k: v for k, v in overrides.items() if k not in folded}
    if rest:
        config["phase_overrides"] = rest
    else:
        config.pop("phase_overrides")
    config["_folded_overrides"] = folded
    return config


def _on_top(phase: Any, overrides: Mapping) -> Any:
    if not isinstance(phase, Mapping):
        return phase
    merged = deep_merge(phase, overrides.get("*") or {})
    return deep_merge(merged, overrides.get(phase.get("name")) or {})


# ------------------------------------------------------------------------------------------ path variables
_VARIABLE = re.compile(r"\$\{(\w+)\}")


def expand_variables(value: Any, variables: Mapping[str, str], where: str = "config") -> Any:
    """``${name}`` replaced by ``variables[name]`` in every string of ``value`` (lists and mappings too), then
    ``~``. The retired form ``{name}`` (P2E's ``{data_root}``) is an alias, with a deprecation line; an unknown
    ``${name}`` is left as written (and a ``{D}`` pattern that names no variable is not touched)."""
    if isinstance(value, str):
        out = _VARIABLE.sub(lambda m: str(variables.get(m.group(1), m.group(0))), value)
        for name, replacement in variables.items():
            legacy = "{" + name + "}"
            if legacy in out:
                deprecated(f"{where}: '{legacy}' is the old spelling of '${{{name}}}'")
                out = re.sub(r"(?<!\$)\{" + name + r"\}", lambda _m: str(replacement), out)
        return os.path.expanduser(out)
    if isinstance(value, list):
        return [expand_variables(v, variables, where) for v in value]
    if isinstance(value, dict):
        return {k: expand_variables(v, variables, where) for k, v in value.items()}
    return value


_DEPRECATIONS_SHOWN: set[str] = set()


def deprecated(message: str) -> None:
    """One line on stderr, once per message and process (the old spelling still works)."""
    if message not in _DEPRECATIONS_SHOWN:
        _DEPRECATIONS_SHOWN.add(message)
        print(f"mmaffect: deprecated: {message} (see docs/conventions.md, 'Config files and overrides')", file=sys.stderr)


def shared_data_root() -> str:
    """``${shared_data}``: $MMAFFECT_SHARED_DATA, else ``../shared/data``."""
    return os.environ.get("MMAFFECT_SHARED_DATA", "../shared/data")


# ----------------------------------------------------------------------------------------------- overrides
@dataclass(frozen=True)
class Override:
    """One ``--key value`` of the command line: ``key`` as written (dotted), its YAML-read value, the flag."""

    key: str
    value: Any
    flag: str


def parse_args(argv: Sequence[str]) -> list[Override]:
    """``["--a.b", "1", "--c=x", "--flag", "--l", "1", "2", "--set", "d.e=3"]`` -> overrides, in order.

    Values are read as YAML (numbers, true/false, null, lists); several values make a list; a bare flag is true.
    ``--set KEY=VALUE`` (the old P2E form) is the same as ``--KEY VALUE``, with a deprecation line."""
    out: list[Override] = []
    i = 0
    while i < len(argv):
        token = argv[i]
        if not token.startswith("--") or token == "--":
            raise ConfigError(f"unexpected argument {token!r}: options look like --key value")
        key, eq, inline = token[2:].partition("=")
        items = [inline] if eq else []
        i += 1
        while not eq and i < len(argv) and not argv[i].startswith("--"):
            items.append(argv[i])
            i += 1
        if key == "set":
            out.extend(_set_items(items))
            continue
        parsed = [read_value(item) for item in items]
        value = True if not parsed else parsed[0] if len(parsed) == 1 else parsed
        out.append(Override(key, value, "--" + key))
    return out


def read_value(text: str) -> Any:
    """A command-line value read as YAML (``3e-5``, ``true``, ``null``, ``[1, 2]``); text YAML cannot read
    (``{data_root}/x``) stays the text it is."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _set_items(items: Sequence[str]) -> list[Override]:
    deprecated("--set KEY=VALUE is the old spelling of --KEY VALUE")
    out = []
    for item in items:
        key, eq, text = item.partition("=")
        if not eq or not key.strip():
            raise ConfigError(f"--set {item!r} must look like key.path=value (or write --key.path value)")
        out.append(Override(key.strip(), read_value(text), f"--set {item}"))
    return out


def overrides_to_dict(overrides: Sequence[Override]) -> dict:
    """Overrides as a nested mapping (``-`` -> ``_`` in keys), for callers that merge mappings."""
    values: dict = {}
    for item in overrides:
        target = values
        *parents, leaf = item.key.replace("-", "_").split(".")
        for parent in parents:
            target = target.setdefault(parent, {})
            if not isinstance(target, dict):
                raise ConfigError(f"{item.flag}: {parent!r} is not a mapping")
        target[leaf] = item.value
    return values


def unknown_key(key: str, known, prefix: str = "") -> str:
    """``model.poolng (did you mean model.pooling?)``: an unknown key with the nearest known one."""
    hint = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
    return f"{prefix}{key}" + (f" (did you mean {prefix}{hint[0]}?)" if hint else "")


def _field_name(segment: str, schema: Any, node: Any, where: str, prefix: str) -> str:
    """The key ``segment`` names: as written if known, else with ``-`` read as ``_``; unknown: refused."""
    if isinstance(schema, Fields):
        for name in (segment, segment.replace("-", "_")):
            if name in schema.fields:
                return name
        raise ConfigError(f"{where}: unknown config key(s): {unknown_key(segment.replace('-', '_'), schema.fields, prefix)}; "
                          f"known{' under ' + prefix[:-1] if prefix else ''}: {', '.join(sorted(schema.fields))}")
    if isinstance(node, Mapping) and segment not in node and segment.replace("-", "_") in node:
        return segment.replace("-", "_")
    return segment


def _child(schema: Any, name: str) -> Any:
    if isinstance(schema, Fields):
        return schema.fields[name]
    if isinstance(schema, Open):
        return schema.value
    return "any"


def _list_index(segment: str, node: list, where: str) -> int:
    if not re.fullmatch(r"-?\d+", segment):
        raise ConfigError(f"{where}: {segment!r} is not an index of a list of {len(node)} item(s) (use 0..{len(node) - 1})")
    index = int(segment)
    if not -len(node) <= index < len(node):
        raise ConfigError(f"{where}: index {index} is out of range: the list has {len(node)} item(s)")
    return index


def apply_overrides(config: Mapping, overrides: Sequence[Override], schema: Any = None) -> dict:
    """``config`` with every override set (a copy). With a ``schema``, keys are checked at every depth and
    values typed by their field (``"1e-4"`` for a float field is 0.0001)."""
    config = copy.deepcopy(dict(config))
    for item in overrides:
        _apply_one(config, item, Open() if schema is None else schema)
    return config


def _apply_one(config: dict, item: Override, schema: Any) -> None:
    node: Any = config
    segments = item.key.split(".")
    path: list[str] = []
    for depth, segment in enumerate(segments):
        where = item.flag
        last = depth == len(segments) - 1
        if isinstance(node, list):
            key: Any = _list_index(segment, node, where)
            schema = schema.item if isinstance(schema, ListOf) else "any"
        else:
            key = _field_name(segment, schema, node, where, "".join(p + "." for p in path))
            schema = _child(schema, key)
        path.append(str(key))
        if last:
            node[key] = typed(item.value, schema, ".".join(path))
            return
        nxt = node[key] if isinstance(node, list) else node.get(key)
        if not isinstance(nxt, (dict, list)):
            if isinstance(schema, ListOf):
                raise ConfigError(f"{item.flag}: {'.'.join(path)} is not a list here (nothing to index)")
            nxt = {}
            node[key] = nxt
        node = nxt


def typed(value: Any, schema: Any, key: str) -> Any:
    """YAML reads ``1e-4`` (no dot) as a string and ``5`` as an int: give a float field a float and an int field
    an int; a flag without a value (true) for a number is refused."""
    if schema not in ("int", "float"):
        return value
    if isinstance(value, bool):
        raise ConfigError(f"config {key}={value!r}: expected a{'n' * (schema == 'int')} {schema} (a flag without a value?)")
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return value  # the trainer's own check names the field and the value
        return number if schema == "float" or not number.is_integer() else int(number)
    if schema == "float" and isinstance(value, int):
        return float(value)
    return value


def check_keys(config: Any, schema: Any, where: str, path: str = "") -> None:
    """Refuse keys ``schema`` does not know, at every depth, naming the nearest known key."""
    if isinstance(schema, Fields) and isinstance(config, Mapping):
        unknown = [unknown_key(str(k), schema.fields, path) for k in config if k not in schema.fields]
        if unknown:
            raise ConfigError(f"{where}: unknown config key(s): {', '.join(unknown)}; known"
                              f"{' under ' + path[:-1] if path else ''}: {', '.join(sorted(schema.fields))}")
        for key, value in config.items():
            check_keys(value, schema.fields[key], where, f"{path}{key}.")
    elif isinstance(schema, Open) and isinstance(config, Mapping):
        for key, value in config.items():
            check_keys(value, schema.value, where, f"{path}{key}.")
    elif isinstance(schema, ListOf) and isinstance(config, list):
        for index, value in enumerate(config):
            check_keys(value, schema.item, where, f"{path}{index}.")


# -------------------------------------------------------------------------------------------------- schemas
def leaf_type(annotation: Any) -> str:
    """``"float | None"`` -> ``"float"``; anything but int / float / bool / str -> ``"any"``."""
    first = str(annotation).split("|")[0].strip()
    return first if first in ("int", "float", "bool", "str") else "any"


def dataclass_schema(cls, **nested: Any) -> Fields:
    """The keys of dataclass ``cls`` (typed by their annotations); ``nested`` gives a field its own schema."""
    fields, defaults = {}, {}
    for f in dataclasses.fields(cls):
        fields[f.name] = nested.get(f.name, leaf_type(f.type))
        if f.default is not dataclasses.MISSING:
            defaults[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            defaults[f.name] = f.default_factory()
    return Fields({**fields, **{k: v for k, v in nested.items() if k not in fields}}, defaults)


def describe_keys(schema: Any, prefix: str = "") -> list[str]:
    """``--help`` lines: every key a user can set (dotted), with its default where it has one."""
    lines = []
    if isinstance(schema, Fields):
        for name, sub in schema.fields.items():
            if isinstance(sub, Fields):
                lines += describe_keys(sub, f"{prefix}{name}.")
            elif isinstance(sub, ListOf) and isinstance(sub.item, Fields):
                lines += describe_keys(sub.item, f"{prefix}{name}.N.")
            elif isinstance(sub, Open) and isinstance(sub.value, Fields):
                lines += describe_keys(sub.value, f"{prefix}{name}.NAME.")
            else:
                default = f": {schema.defaults[name]!r}" if name in schema.defaults else ""
                lines.append(f"  {prefix}{name}{default}")
    return lines


def split_options(overrides: Sequence[Override], names: Sequence[str]) -> tuple[dict[str, Any], list[Override]]:
    """Run options (``--config``, ``--phases a b``...: not config keys) apart from the config overrides; an option
    is matched by its whole key (``-`` read as ``_``), so ``--phases.0.max_steps`` stays an override."""
    options, rest = {}, []
    for item in overrides:
        name = item.key.replace("-", "_")
        if name in names and not item.flag.startswith("--set "):
            options[name] = item.value
        else:
            rest.append(item)
    return options, rest


def read_command_line(argv: Sequence[str], command: str = "mmaffect train") -> tuple[str, dict, list[Override]]:
    """``--config FILE [--key value ...]`` -> the file, its keys (read once, ``inherit`` resolved) and the
    remaining overrides (run options included: the tool that reads them splits them off)."""
    options, overrides = split_options(parse_args(argv), ("config",))
    path = options.get("config")
    if not isinstance(path, str):
        raise ConfigError(f"{command}: --config CONFIG.yaml is required")
    return path, read_config(path), overrides


__all__ = ["ConfigError", "Fields", "ListOf", "Open", "Override", "apply_overrides", "check_keys", "dataclass_schema",
           "deep_merge", "deprecated", "describe_keys", "expand_variables", "fold_phase_overrides", "merge_inherited",
           "overrides_to_dict", "parse_args", "read_command_line", "read_value", "read_config", "read_mapping", "shared_data_root",
           "split_options", "typed", "unknown_key"]
