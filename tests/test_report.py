"""h3r-report's arguments (issue 24, point 21): a bad --n, --strides or --seed is one line and status 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from h3r_theory.report import main


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--n", "0"], "argument --n: must be an integer >= 1 and < 100001, got 0"),
        (["--n", "-5"], "argument --n: must be an integer >= 1 and < 100001, got -5"),
        (["--n", "10**9"], "argument --n: must be an integer, got '10**9'"),
        (["--strides", "4", "0"], "argument --strides: must be an integer >= 1 and < 1025, got 0"),
        (["--seed", str(2**70)], f"argument --seed: must be an integer >= 0 and < {2**64}, got {2**70}"),
        (["--seed", "-1"], "argument --seed: must be an integer >= 0"),
    ],
)
def test_bad_arguments_are_one_line_and_status_2(argv, message):
    # In a fresh process: in the test process, a thread another test left behind may write to stderr too.
    done = subprocess.run([sys.executable, "-m", "h3r_theory.report", *argv], capture_output=True, text=True)
    assert done.returncode == 2
    err = done.stderr
    assert len(err.strip().splitlines()) == 1 and err.startswith(f"h3r-report: error: {message}"), err


def test_the_largest_seed_is_accepted(capsys):
    main(["--strides", "4", "--n", "10", "--seed", str(2**64 - 1)])
    assert "argmax" in capsys.readouterr().out
