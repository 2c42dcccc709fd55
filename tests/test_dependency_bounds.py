"""pyproject.toml's lower bounds and constraints/minimum.txt (what CI's second venv installs) agree."""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

REPO = Path(__file__).resolve().parents[1]


def direct_requirements() -> list[Requirement]:
    """Runtime, dev and demo requirements; the dev extra's ``mmaffect[demo]`` (itself) is not a dependency."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    requirements = [Requirement(r) for r in project["dependencies"] + extras["dev"] + extras["demo"]]
    return [r for r in requirements if canonicalize_name(r.name) != "mmaffect"]


def pins(path: Path) -> dict[str, Version]:
    out = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#")[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep, f"{path.name}:{number}: {line!r} is not an exact 'name==version' pin"
            out[canonicalize_name(name)] = Version(version)
    return out


def lower_bound(requirement: Requirement) -> Version:
    bounds = [Version(s.version) for s in requirement.specifier if s.operator in (">=", "==", "~=")]
    assert bounds, f"pyproject.toml: {requirement} has no lower bound"
    return max(bounds)


def test_every_direct_dependency_is_pinned_to_its_lower_bound():
    minimum = pins(REPO / "constraints" / "minimum.txt")
    declared = {canonicalize_name(r.name): r for r in direct_requirements()}
    assert set(minimum) == set(declared), "constraints/minimum.txt must list exactly the direct dependencies"
    for name, requirement in declared.items():
        assert minimum[name] == lower_bound(requirement), f"{name}: minimum.txt {minimum[name]} vs pyproject {requirement}"
        assert requirement.specifier.contains(minimum[name]), requirement


def test_tested_lock_file_satisfies_the_declared_ranges():
    tested = REPO / "constraints" / "tested.txt"
    locked = pins(tested)
    for requirement in direct_requirements():
        name = canonicalize_name(requirement.name)
        assert name in locked, f"constraints/tested.txt has no {name}: rerun python constraints/write_tested.py"
        assert requirement.specifier.contains(locked[name], prereleases=True), f"tested.txt {name}=={locked[name]} vs {requirement}"
