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


#: Dependencies that conda-forge does not carry: environment.yml must take them from PyPI (under
#: ``pip:``), or ``conda env create`` fails before the lab exists. ``imgtool`` is MCUboot's
#: signing tool; ``playwright`` is published for conda only on Microsoft's own channel.
PYPI_ONLY = frozenset({"imgtool", "playwright"})


def _environment_lists(path: Path = ROOT / "environment.yml") -> tuple[set[str], set[str]]:
    """The package names of environment.yml: (conda packages, pip packages)."""
    conda: set[str] = set()
    pip: set[str] = set()
    in_deps = False
    pip_indent: int | None = None
    for line in path.read_text().splitlines():
        stripped = line.split("#", 1)[0].rstrip()
        if not stripped.strip():
            continue
        if not stripped.startswith(" "):
            in_deps = stripped.startswith("dependencies:")
            pip_indent = None
            continue
        if not in_deps or not stripped.strip().startswith("- "):
            continue
        indent = len(stripped) - len(stripped.lstrip())
        item = stripped.strip()[2:].strip()
        if pip_indent is not None and indent <= pip_indent:
            pip_indent = None  # back at the level of the conda list
        if item == "pip:":
            pip_indent = indent
            continue
        if item.startswith("-e") or item in ("pip", "."):
            continue
        (pip if pip_indent is not None else conda).add(_name(item))
    conda.discard("python")
    return conda, pip


def _environment_names() -> set[str]:
    conda, pip = _environment_lists()
    return conda | pip


def test_environment_yml_and_pyproject_name_the_same_dependencies() -> None:
    assert _environment_names() == _pyproject_names()


def test_packages_missing_from_conda_forge_come_from_pypi() -> None:
    conda, pip = _environment_lists()
    on_conda = sorted(conda & PYPI_ONLY)
    assert not on_conda, f"conda-forge has no {on_conda}: list them under `pip:`"
    missing = sorted((_pyproject_names() & PYPI_ONLY) - pip)
    assert not missing, f"environment.yml must install {missing} under `pip:`"
    assert "imgtool" in pip


def test_environment_parser_tells_conda_from_pip(tmp_path: Path) -> None:
    env = tmp_path / "environment.yml"
    env.write_text(
        "name: x\ndependencies:\n  - python>=3.11\n  - pip\n  - pandas>=2\n"
        "  - pip:\n      - imgtool>=2.1  # PyPI\n      - -e .\n  - ruff\n"
    )
    assert _environment_lists(env) == ({"pandas", "ruff"}, {"imgtool"})


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
