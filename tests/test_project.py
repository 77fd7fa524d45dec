"""Checks on the project's own files: the two install paths agree, the README stays true."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ \[;]", requirement.strip(), maxsplit=1)[0].lower()


def _pyproject_names() -> set[str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project = data["project"]
    names = {_name(r) for r in project["dependencies"]}
    for extra in project["optional-dependencies"].values():
        names |= {_name(r) for r in extra}
    return names


def _environment_names() -> set[str]:
    names: set[str] = set()
    in_deps = False
    for line in (ROOT / "environment.yml").read_text().splitlines():
        stripped = line.split("#", 1)[0].rstrip()
        if stripped and not stripped.startswith(" "):
            in_deps = stripped.startswith("dependencies:")
            continue
        if not in_deps or not stripped.strip().startswith("- "):
            continue
        item = stripped.strip()[2:].strip()
        if item == "pip:":
            continue
        if item.startswith("-e") or item == "pip":
            continue
        names.add(_name(item))
    names.discard("python")
    return names


def test_environment_yml_and_pyproject_name_the_same_dependencies() -> None:
    assert _environment_names() == _pyproject_names()


def test_environment_yml_installs_labkit_itself() -> None:
    assert "- -e ." in (ROOT / "environment.yml").read_text()


def test_readme_shows_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "make lab" in readme
    assert "make test" in readme


def test_ci_calls_make_test() -> None:
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_lab_keys_are_never_committed() -> None:
    assert "data/keys/" in (ROOT / ".gitignore").read_text()
