"""Packaging: environment.yml lists the same dependencies as pyproject.toml; the report runs."""

from __future__ import annotations

import re

import tomllib
import yaml
from conftest import REPO_ROOT

# conda-forge names for the PyPI packages whose names differ
CONDA_NAMES = {"torch": "pytorch"}


def _name_and_spec(requirement: str) -> tuple[str, str]:
    match = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", requirement)
    return match.group(1).lower().replace("_", "-"), match.group(2).replace(" ", "")


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    wanted = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        wanted += extra
    pip_side = {CONDA_NAMES.get(n, n): s for n, s in map(_name_and_spec, wanted)}
    env = yaml.safe_load((REPO_ROOT / "environment.yml").read_text())
    conda_side = dict(
        _name_and_spec(d)
        for d in env["dependencies"]
        if isinstance(d, str) and not d.startswith(("python", "pip"))
    )
    assert conda_side == pip_side


def test_report_runs_and_shows_the_vanilla_floor(capsys):
    from h3r_theory.report import main

    main(["--strides", "4", "--n", "2000"])
    out = capsys.readouterr().out
    rows = {}
    for line in out.splitlines():  # the first row of each codec is its expected-target row
        if line.startswith(("argmax ", "randomized_rounding ")):
            rows.setdefault(line.split()[0], line.split())
    assert abs(float(rows["argmax"][2]) / (0.38259785823 * 4) - 1) < 0.05
    assert float(rows["randomized_rounding"][2]) < 1e-4
