"""benchmarks/foreign_codecs.py: the kit on mmpose's codecs (issue 25, item 6).

mmpose is not a dependency of this package: the script's skip path is tested everywhere, by hiding mmpose
from the interpreter; the full run is tested only where mmpose's codecs import (see the script's docstring).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest
from conftest import REPO_ROOT

SCRIPT = REPO_ROOT / "benchmarks" / "foreign_codecs.py"


def _run(*args: str, hide_mmpose: bool) -> subprocess.CompletedProcess:
    # sys.modules["mmpose"] = None makes "import mmpose" raise ImportError, as where it is not installed
    hide = "import sys; sys.modules['mmpose'] = None; " if hide_mmpose else "import sys; "
    code = (
        hide
        + f"sys.argv = ['foreign_codecs.py', *{list(args)!r}]; import runpy; runpy.run_path({str(SCRIPT)!r}, run_name='__main__')"
    )
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=600, check=False, cwd=REPO_ROOT
    )


def test_without_mmpose_the_script_says_so_in_one_line_and_exits_0():
    done = _run(hide_mmpose=True)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("skipped: mmpose's codecs do not import"), done.stdout
    assert done.stderr == ""


def test_the_runs_state_the_exit_status_issue_25_asks_for():
    done = _run("--list", hide_mmpose=True)  # listing needs no toolbox
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 9
    simcc = next(line for line in lines if "simcc_label" in line)
    assert "expected exit 2" in simcc
    dark_interior = next(
        line
        for line in lines
        if "dark_heatmap" in line and "--margin-cells 5" in line and "--round-trip" not in line
    )
    assert "--margin-cells 5" in dark_interior and "expected exit 0" in dark_interior


@pytest.mark.skipif(
    importlib.util.find_spec("mmpose") is None,
    reason="mmpose is not installed in this Python (an optional toolbox; see benchmarks/foreign_codecs.py)",
)
def test_with_mmpose_every_exit_status_is_the_one_expected():
    done = _run(hide_mmpose=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "9 of 9 exit statuses as expected" in done.stdout
