"""h3r-check-codec runs the codec in a worker process (issue 24, points 9 and 20): a codec that calls
sys.exit, hangs or crashes the interpreter costs the invariant it happened in, reported as that invariant's
failure, and the run goes on; bad arguments are refused in one line before anything runs."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from h3r_theory import codecs
from h3r_theory.testing import Claims, check_invariant
from h3r_theory.testing.cli import main

ONLY = ["--only", "round_trip,reproducible", "--examples", "3", "--round-trip-cells", "0.5"]


class ExitingDecoder(codecs.Argmax):
    def decode(self, heatmaps, activation=None, **options):
        sys.exit(0)


class HangingDecoder(codecs.Argmax):
    def decode(self, heatmaps, activation=None, **options):
        while True:  # a busy loop, which no exception-based guard could interrupt in C code either
            time.sleep(0.01)


class CrashingDecoder(codecs.Argmax):
    def decode(self, heatmaps, activation=None, **options):
        os.kill(os.getpid(), signal.SIGSEGV)


class VanishingDecoder(codecs.Argmax):
    def decode(self, heatmaps, activation=None, **options):
        os._exit(0)  # ends the process at once, past every exception handler


def _report(capsys) -> dict:
    return json.loads(capsys.readouterr().out)


def test_sys_exit_in_a_codec_is_that_invariants_failure(capsys):
    assert main([f"{__name__}:ExitingDecoder", *ONLY, "--json"]) == 1
    report = _report(capsys)
    round_trip, reproducible = report["results"]
    assert round_trip["status"] == "fails" and round_trip["counterexample"]["finding"] == "called sys.exit(0)"
    assert "heatmap" in round_trip["counterexample"]["inputs"]  # the example, shrunk
    assert reproducible["status"] == "holds"  # encode alone is fine: the run went on
    # the same through the Python API, in this process: no exit, a finding
    result = check_invariant("round_trip", ExitingDecoder, Claims(round_trip_cells=0.5), max_examples=3)
    assert result.status == "fails" and result.counterexample.finding == "called sys.exit(0)"


def test_a_hanging_codec_fails_its_invariant_at_the_deadline(capsys):
    started = time.monotonic()
    assert main([f"{__name__}:HangingDecoder", *ONLY, "--deadline", "1", "--json"]) == 1
    assert time.monotonic() - started < 60
    round_trip, reproducible = _report(capsys)["results"]
    assert round_trip["status"] == "fails"
    assert "no result within the deadline of 1 s" in round_trip["counterexample"]["finding"]
    assert round_trip["counterexample"]["inputs"].startswith("heatmap")  # the example that hung
    assert reproducible["status"] == "holds"


@pytest.mark.parametrize(
    "codec,finding",
    [
        ("CrashingDecoder", "crashed the process (SIGSEGV)"),
        ("VanishingDecoder", "ended the process (exit status 0)"),
    ],
)
def test_a_codec_that_kills_the_interpreter_fails_its_invariant(capsys, codec, finding):
    assert main([f"{__name__}:{codec}", *ONLY]) == 1
    out = capsys.readouterr().out
    assert re.search(r"round_trip\s+FAILS", out) and re.search(r"reproducible\s+holds", out)
    assert finding in out
    assert "1 FAIL" in out


def test_a_module_that_exits_at_import_is_refused_in_one_line(tmp_path, monkeypatch, capsys):
    (tmp_path / "exits_at_import.py").write_text("raise SystemExit(3)\n")
    monkeypatch.chdir(tmp_path)
    for extra in ([], ["--in-process"]):
        assert main(["exits_at_import:Codec", *extra]) == 2
        captured = capsys.readouterr()
        assert captured.out == "" and captured.err.count("\n") == 1
        assert "cannot import module 'exits_at_import': it called sys.exit(3)" in captured.err
    assert not (tmp_path / ".hypothesis").exists()


def test_a_module_that_ends_the_process_at_import_is_refused_in_one_line(tmp_path, monkeypatch, capsys):
    (tmp_path / "vanishes_at_import.py").write_text("import os\nos._exit(3)\n")
    monkeypatch.chdir(tmp_path)
    assert (
        main(["vanishes_at_import:Codec"]) == 2
    )  # through the worker only: in this process it would end pytest
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert (
        "vanishes_at_import:Codec: the codec ended the process (exit status 3) while importing the module"
        in captured.err
    )


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--only", ","], "--only names no invariant"),
        (["--round-trip-cells", "inf"], "Claims.round_trip_cells must be a finite number >= 0"),
        (["--equivariance-cells", "nan"], "Claims.equivariance_cells must be a finite number >= 0"),
        (["--heatmap-size", "100000", "100000"], "--heatmap-size 100000 100000: at most 256 cells per side"),
        (["--input-size", "100000", "64"], "--input-size 100000 64: at most 8192 pixels per side"),
        (["--deadline", "0"], "--deadline must be a finite number > 0 of seconds"),
        (["--deadline", "inf"], "--deadline must be a finite number > 0 of seconds"),
        (["--seed", str(2**70)], "--seed must be in [0, 2**63)"),
        (["--only", "round_trip", "--profile", "math"], "--only and --profile exclude each other"),
    ],
)
def test_cli_refuses_what_cannot_be_checked(capsys, argv, message):
    assert main(["h3r_theory.codecs:Argmax", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert message in captured.err


def test_the_cli_writes_no_hypothesis_folder_into_the_current_one(tmp_path):
    # a fresh process in a fresh folder: hypothesis picks its folder from the working directory at import
    command = [sys.executable, "-m", "h3r_theory.testing.cli", "h3r_theory.codecs:Argmax", *ONLY]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "all hold" in done.stdout, done.stderr
    assert list(tmp_path.iterdir()) == []
