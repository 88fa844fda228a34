"""The codec kit (``h3r-check-codec``) on another toolbox's codecs: mmpose 1.3's heatmap codecs and its SimCC.

    python benchmarks/foreign_codecs.py            # every run below, each one h3r-check-codec call (~10 s)
    python benchmarks/foreign_codecs.py --list     # the runs, without running them

It installs nothing. Run it with a Python in which both ``h3r_theory`` (with hypothesis) and mmpose import;
where mmpose does not, it prints one line saying so and exits 0. One way to get such a Python, outside this
repository's virtual environment (what ``docs/foreign_codecs.md`` was made with)::

    python3 -m venv /work/mmpose_venv
    /work/mmpose_venv/bin/pip install --no-deps mmpose==1.3.2 mmengine==0.10.7 mmcv-lite==2.1.0 \\
        opencv-python-headless
    /work/mmpose_venv/bin/pip install munkres addict pyyaml rich termcolor yapf
    # torch, numpy, hypothesis and h3r_theory: either install them there, or borrow this repository's
    # environment with a .pth line (as was done here):
    echo "import site; site.addsitedir('/work/main/.venv/lib/python3.11/site-packages')" \\
        > /work/mmpose_venv/lib/python3.11/site-packages/zz_borrow_repo_venv.pth
    /work/mmpose_venv/bin/python benchmarks/foreign_codecs.py

``--no-deps`` because the codecs need none of mmpose's heavier requirements (xtcocotools, chumpy,
torchvision); ``mmcv-lite`` (no compiled operators) because ``import mmpose`` checks mmcv's version.

Each run is one ``h3r-check-codec`` command on a factory of this module (``foreign_codecs:udp_heatmap``...,
imported from this folder as the command imports any ``module:factory``), with the toolbox's own settings of
its COCO configs (sigma 2 on 48 x 64 maps, blur kernel 11, SimCC's sigma 6 and split ratio 2) and the pixel
convention the codec uses, stated with ``--convention``. The command's report and exit status are printed as
they come; the script then says whether each exit status is the one issue 25 asks for (and exits 1 if one is
not), so that a change in the kit that loses a finding shows.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
COCO = ("--input-size", "192", "256", "--heatmap-size", "48", "64")  # the toolbox's 256 x 192 top-down models


def udp_heatmap(input_size, heatmap_size):
    """mmpose's UDPHeatmap (Gaussian targets, UDP convention ``u = x (w - 1) / (W - 1)``)."""
    from mmpose.codecs import UDPHeatmap

    return UDPHeatmap(input_size=input_size, heatmap_size=heatmap_size, sigma=2.0)


def msra_heatmap(input_size, heatmap_size):
    """mmpose's MSRAHeatmap with its default decode (argmax plus the quarter-cell shift toward the neighbour)."""
    from mmpose.codecs import MSRAHeatmap

    return MSRAHeatmap(input_size=input_size, heatmap_size=heatmap_size, sigma=2.0)


def dark_heatmap(input_size, heatmap_size):
    """mmpose's MSRAHeatmap with ``unbiased=True``: the DARK decode (blur, then a Taylor step on the log)."""
    from mmpose.codecs import MSRAHeatmap

    return MSRAHeatmap(input_size=input_size, heatmap_size=heatmap_size, sigma=2.0, unbiased=True)


def megvii_heatmap(input_size, heatmap_size):
    """mmpose's MegviiHeatmap (the keypoint's cell by floor, blurred; decoded half a cell on)."""
    from mmpose.codecs import MegviiHeatmap

    return MegviiHeatmap(input_size=input_size, heatmap_size=heatmap_size, kernel_size=11)


def simcc_label(input_size, heatmap_size):
    """mmpose's SimCCLabel: a coordinate codec (1-D labels per axis), not a heatmap codec."""
    from mmpose.codecs import SimCCLabel

    return SimCCLabel(input_size=input_size, sigma=6.0, simcc_split_ratio=2.0)


@dataclass(frozen=True)
class Run:
    title: str
    factory: str  # a function of this module
    args: tuple[str, ...]
    expected_status: int  # what issue 25's "done when" asks of the kit here
    why: str


RUNS = (
    Run("UDPHeatmap", "udp_heatmap", ("--convention", "udp"), 1, "its decode scale, named with its factor"),
    Run(
        "UDPHeatmap, shift and flip with 5 cells allowed",
        "udp_heatmap",
        (
            "--convention",
            "udp",
            "--equivariance-cells",
            "5",
            "--only",
            "shift_equivariance,flip_equivariance",
        ),
        0,
        "no float32 false alarm: its float32 targets compared at float32 precision",
    ),
    Run("MSRAHeatmap", "msra_heatmap", ("--convention", "msra"), 1, "its mean error and centre pull"),
    Run(
        "MSRAHeatmap, every profile",
        "msra_heatmap",
        ("--convention", "msra", "--profile", "all"),
        1,
        "this package's protocol checks, reported apart from the mathematics",
    ),
    Run("MSRAHeatmap(unbiased=True), DARK", "dark_heatmap", ("--convention", "msra"), 1, "its border"),
    Run(
        "MSRAHeatmap(unbiased=True), DARK, in the interior",
        "dark_heatmap",
        ("--convention", "msra", *COCO, "--margin-cells", "5"),
        0,
        "holds 5 cells inside the border under the foreign codecs' default claim of a millicell",
    ),
    Run(
        "MSRAHeatmap(unbiased=True), DARK, in the interior, claimed exact",
        "dark_heatmap",
        ("--convention", "msra", *COCO, "--margin-cells", "5", "--round-trip-cells", "0")
        + ("--equivariance-cells", "0"),
        1,
        "its own error, a few 1e-4 cells (see the float64 check and the blur check at the end)",
    ),
    Run(
        "MegviiHeatmap",
        "megvii_heatmap",
        ("--convention", "corner"),
        1,
        "floor on encode, half a cell on decode",
    ),
    Run("SimCCLabel", "simcc_label", ("--convention", "msra"), 2, "refused in one line: not a heatmap codec"),
)


def toolbox_versions() -> str | None:
    """The versions of mmpose and what its codecs import, or None when mmpose's codecs do not import."""
    try:
        mmpose = importlib.import_module("mmpose")
        importlib.import_module("mmpose.codecs")
    except ImportError:
        return None
    import cv2
    import mmcv
    import mmengine
    import numpy
    import torch

    return (
        f"mmpose {mmpose.__version__}, mmengine {mmengine.__version__}, mmcv {mmcv.__version__}, numpy "
        f"{numpy.__version__}, opencv {cv2.__version__}, torch {torch.__version__}; python "
        f"{sys.version.split()[0]} at {sys.executable}"
    )


def dark_on_float64_gaussians(samples: int = 200, seed: int = 0) -> tuple[float, float]:
    """DARK's worst interior round-trip error in cells, (float32 targets, exact float64 Gaussians).

    The experiment that separates DARK's own approximation from float32 round-off: the same keypoints (at
    least 5 cells inside the 48 x 64 map of a 192 x 256 input), decoded from the codec's float32 targets and
    from the exact Gaussian of the same sigma computed in float64. Equal worst errors: the error is the
    method's (the Taylor step is exact for a Gaussian, the blur before it makes the map not quite one).
    """
    import numpy as np

    codec = dark_heatmap((192, 256), (48, 64))
    stride, sigma = 4.0, 2.0
    rng = np.random.default_rng(seed)
    worst32 = worst64 = 0.0
    x, y = np.arange(48.0), np.arange(64.0)
    for _ in range(samples):
        u = rng.uniform(5.0, [42.0, 58.0])  # cells; the toolbox's MSRA convention: x = u s
        keypoints = (u * stride)[None, None]
        exact = np.exp(-((x[None, :] - u[0]) ** 2 + (y[:, None] - u[1]) ** 2) / (2 * sigma**2))[None]
        for maps, is32 in ((codec.encode(keypoints)["heatmaps"], True), (exact, False)):
            error = np.abs(codec.decode(maps)[0][0, 0] - keypoints[0, 0]).max() / stride
            worst32, worst64 = (max(worst32, error), worst64) if is32 else (worst32, max(worst64, error))
    return worst32, worst64


#: Cells from the left cell centre of the probe keypoints of :func:`dark_by_depth`.
DEPTHS = (2, 3, 4, 5, 6, 8)


def dark_by_depth(sub_cell: float = 0.052) -> list[tuple]:
    """DARK's error along x by the keypoint's depth from the map's left side, with and without its blur.

    The experiment that isolates the cause of DARK's large errors a few cells inside the border: exact
    float64 Gaussians (sigma 2 cells) at ``depth + sub_cell`` cells from the left cell centre (and 0.3
    cells below the middle row), on the 10 x 24 map of a 60 x 144 input (the kit's third sampled
    geometry) and on the 48 x 64 map of the COCO configs, decoded by the codec as it is and with its
    ``gaussian_blur`` replaced by the identity (mmpose's blur pads the map with zeros before smoothing).
    Returns ``(map, depth, error with the blur, error without)`` in cells, signed (+: toward the middle).
    """
    import numpy as np
    from mmpose.codecs import MSRAHeatmap
    from mmpose.codecs.utils import refinement

    blur = refinement.gaussian_blur
    rows = []
    try:
        for (W, H), (w, h) in (((60, 144), (10, 24)), ((192, 256), (48, 64))):
            stride = W / w
            codec = MSRAHeatmap(input_size=(W, H), heatmap_size=(w, h), sigma=2.0, unbiased=True)
            x, y = np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64)
            for depth in DEPTHS:
                if depth + 1 > (w - 1) / 2:  # past the middle: no longer "near the left side"
                    continue
                u, v = depth + sub_cell, h / 2 + 0.3
                exact = np.exp(-((x[None, :] - u) ** 2 + (y[:, None] - v) ** 2) / 8.0)[None]
                errors = []
                for smooth in (blur, lambda maps, kernel: maps):
                    refinement.gaussian_blur = smooth
                    errors.append(float(codec.decode(exact.copy())[0][0, 0, 0] / stride - u))
                rows.append((f"{w}x{h} of {W}x{H}", depth + sub_cell, *errors))
    finally:
        refinement.gaussian_blur = blur
    return rows


def megvii_on_a_symmetric_peak(cell: tuple[int, int] = (23, 31)) -> tuple[float, float, float, float]:
    """Where MegviiHeatmap reads one exactly symmetric peak, and why: ``(du, dv, dx, dy)``.

    A float64 Gaussian (sigma 1 cell) centred exactly on ``cell`` of the 48 x 64 map of a 192 x 256 input:
    ``du, dv`` are where its decode puts it, in cells from the cell (the ``corner`` convention reads a cell's
    centre at +0.5), and ``dx, dy`` the neighbour differences of the blurred map at the peak, which the decode
    steps a quarter cell along by their sign. On an exactly symmetric map both are 0 but for round-off.
    """
    import numpy as np
    from mmpose.codecs.utils.post_processing import gaussian_blur

    codec = megvii_heatmap((192, 256), (48, 64))
    u, v = cell
    x, y = np.arange(48.0), np.arange(64.0)
    peak = np.exp(-((x[None] - u) ** 2 + (y[:, None] - v) ** 2) / 2)[None]
    du, dv = codec.decode(peak.copy())[0][0, 0] / 4 - np.array([u, v])
    blurred = gaussian_blur(peak.copy(), codec.kernel_size)[0]
    dx = float(blurred[v, u + 1] - blurred[v, u - 1])
    dy = float(blurred[v + 1, u] - blurred[v - 1, u])
    return float(du), float(dv), dx, dy


def command(run: Run) -> list[str]:
    return [sys.executable, "-m", "h3r_theory.testing.cli", f"foreign_codecs:{run.factory}", *run.args]


def shown(run: Run) -> str:
    return " ".join(["h3r-check-codec", f"foreign_codecs:{run.factory}", *map(shlex.quote, run.args)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="print the runs and exit")
    args = parser.parse_args(argv)
    if args.list:
        for run in RUNS:
            print(f"{shown(run)}    # expected exit {run.expected_status}: {run.why}")
        return 0
    versions = toolbox_versions()
    if versions is None:
        print(
            "skipped: mmpose's codecs do not import in this Python "
            f"({sys.executable}); see benchmarks/foreign_codecs.py's docstring for an environment where they do"
        )
        return 0
    print(f"toolbox: {versions}")
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    unexpected = []
    for run in RUNS:
        print(f"\n## {run.title}\n$ {shown(run)}")
        start = time.perf_counter()
        done = subprocess.run(command(run), cwd=HERE, env=env, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - start
        print((done.stdout + done.stderr).rstrip())
        verdict = "as expected" if done.returncode == run.expected_status else "NOT AS EXPECTED"
        print(
            f"exit status {done.returncode} ({verdict}: {run.expected_status} for {run.why}), {seconds:.1f} s"
        )
        if done.returncode != run.expected_status:
            unexpected.append(run.title)
    worst32, worst64 = dark_on_float64_gaussians()
    print(
        "\n## DARK's interior error: float32 or the method?\n"
        f"worst round-trip error of 200 keypoints at least 5 cells inside the 48 x 64 map: {worst32:.6f} cells "
        f"from the codec's float32 targets, {worst64:.6f} cells from exact float64 Gaussians"
    )
    print(
        "\n## DARK near the border: its blur or the Taylor step?\n"
        "error along x (cells, + toward the middle) of an exact float64 Gaussian at d cells from the left cell "
        "centre, decoded with mmpose's zero-padded blur and with the blur replaced by the identity"
    )
    for where, depth, with_blur, without in dark_by_depth():
        print(f"  {where:>16s}  d = {depth:.3f}: with the blur {with_blur:+.6f}, without {without:+.6f}")
    du, dv, dx, dy = megvii_on_a_symmetric_peak()
    print(
        "\n## MegviiHeatmap on one exactly symmetric peak\n"
        "a float64 Gaussian centred on cell (23, 31) of the 48 x 64 map: decoded at "
        f"({du:+.2f}, {dv:+.2f}) cells from the cell (corner reads its centre at +0.5); the blurred map's "
        f"neighbour differences at the peak, whose sign steps the decode a quarter cell: dx = {dx:.3g}, dy = {dy:.3g}"
    )
    print(
        f"\n{len(RUNS) - len(unexpected)} of {len(RUNS)} exit statuses as expected"
        + (f"; not: {', '.join(unexpected)}" if unexpected else "")
    )
    return 1 if unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
