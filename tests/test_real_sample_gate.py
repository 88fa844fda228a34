"""A user's clone has no ``../shared`` beside it: the real-sample tests must skip there, not fail.

CI runs with the samples and ``H3R_REQUIRE_REAL_SAMPLES=1``, so a test that opens a sample file without going
through ``conftest.real_samples_dir`` passes in CI and fails only on a user's machine. These tests run the
real-sample tests again with the folder moved to an empty place (``H3R_REAL_SAMPLES``), as a fresh clone sees
it, and check that every test reading the samples carries the ``real_samples`` marker that selects them.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO_ROOT

TESTS = REPO_ROOT / "tests"
GATE_NAMES = {"REAL_SAMPLES", "real_samples_dir", "real_samples"}


def _sample_test_files() -> list[Path]:
    """The test modules that read the real samples (by name), this one and conftest excluded."""
    skip = {"conftest.py", Path(__file__).name}
    return sorted(
        p for p in TESTS.glob("test_*.py") if p.name not in skip and "real_samples" in p.read_text()
    )


def _run_marked(env_extra: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "H3R_REQUIRE_REAL_SAMPLES"}
    env.update(H3R_REAL_SAMPLES=str(tmp_path / "absent"), OMP_NUM_THREADS="1", **env_extra)
    files = [str(p) for p in _sample_test_files()]
    command = [sys.executable, "-m", "pytest", "-q", "-m", "real_samples", "-p", "no:cacheprovider", *files]
    return subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)


def _marked(node: ast.FunctionDef) -> bool:
    return any("real_samples" in ast.unparse(d) for d in node.decorator_list)


@pytest.mark.slow
def test_real_sample_tests_skip_without_shared_and_fail_when_required(tmp_path):
    absent = _run_marked({}, tmp_path)
    assert absent.returncode == 0, absent.stdout[-4000:] + absent.stderr[-2000:]
    assert " skipped" in absent.stdout and " failed" not in absent.stdout and " error" not in absent.stdout
    assert "real samples not found at" in absent.stdout  # -ra lists each skip with its reason
    required = _run_marked({"H3R_REQUIRE_REAL_SAMPLES": "1"}, tmp_path)
    assert required.returncode == 1 and "H3R_REQUIRE_REAL_SAMPLES=1 requires them" in required.stdout


def test_every_test_reading_the_samples_is_marked():
    """``-m real_samples`` above must select every test that reads them, or the check proves nothing."""
    unmarked = []
    for path in _sample_test_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test"):
                names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
                names |= {a.arg for a in node.args.args}
                if names & GATE_NAMES and not _marked(node):
                    unmarked.append(f"{path.name}::{node.name}")
    assert not unmarked, f"tests reading the real samples without @pytest.mark.real_samples: {unmarked}"
