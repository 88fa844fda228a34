"""Shared fixtures: devices/dtypes to test on, the real-sample gate, hypothesis profiles."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, settings

REPO_ROOT = Path(__file__).resolve().parents[1]
# H3R_REAL_SAMPLES moves the folder; tests/test_real_sample_gate.py points it at an empty one to run the
# real-sample tests as on a user's clone with nothing beside it.
REAL_SAMPLES = Path(os.environ.get("H3R_REAL_SAMPLES", REPO_ROOT.parent / "shared" / "data" / "real_samples"))

# "ci" is derandomized so that a CI run is reproducible; "dev" explores new examples on every run.
settings.register_profile(
    "ci", max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

# pytest-xdist runs one worker per core; each worker taking every core for torch's intra-op pool
# oversubscribes the machine, and small tensor ops then run up to ~100x slower (measured on 2 cores).
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
DTYPES = [torch.float32, torch.float64]


@pytest.fixture
def one_thread():
    """One intra-op thread for the test, restored after it: small convolutions on a shared 2-core box run
    much faster single-threaded (no oversubscription between the test workers). Use it with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(params=DEVICES)
def device(request) -> torch.device:
    return torch.device(request.param)


@pytest.fixture(params=DTYPES, ids=["float32", "float64"])
def dtype(request) -> torch.dtype:
    return request.param


def real_samples_dir(subdir: str = "") -> Path:
    """Path to ``../shared/data/real_samples/<subdir>``; skips the test when it is absent.

    Under ``H3R_REQUIRE_REAL_SAMPLES=1`` (CI) a missing folder FAILS the test instead of skipping it, so
    that the real-data tests can never silently stop running.
    """
    path = REAL_SAMPLES / subdir
    if not path.exists():
        message = f"real samples not found at {path}"
        if os.environ.get("H3R_REQUIRE_REAL_SAMPLES") == "1":
            pytest.fail(message + " and H3R_REQUIRE_REAL_SAMPLES=1 requires them")
        pytest.skip(message + " (set up ../shared/data/real_samples to run this test)")
    return path


@pytest.fixture
def real_samples() -> Path:
    """The real-sample root; see :func:`real_samples_dir`."""
    return real_samples_dir()
