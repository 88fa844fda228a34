"""h3r_theory.testing on codecs written here: broken ones are caught with shrunk counterexamples, the
adapters (plain functions, the per-instance numpy protocol) work, and the CLI reports and exits right."""

from __future__ import annotations

import functools
import json
import re

import numpy as np
import pytest
import torch

from h3r_theory import codecs
from h3r_theory.testing import (
    Claims,
    SearchSpace,
    check_codec,
    check_invariant,
    codec_test_suite,
    function_codec,
    numpy_codec,
)
from h3r_theory.testing.cli import main

FEW = 10  # examples per invariant: broken codecs fail at once, and shrinking adds its own examples


def keypoints_in(counterexample) -> list[str]:
    """The ``(u, v)`` pairs listed in a counterexample's ``keypoints [...] cells``."""
    listed = re.search(r"keypoints \[(.*?)\] cells", counterexample.inputs)
    return re.findall(r"\([^()]*\)", listed.group(1)) if listed else []


# -- broken codecs, each with one deliberate bug -------------------------------------------------------


class HalfCellOffDecoder(codecs.RandomizedRounding):
    """Decodes half a cell too far right: a convention mix-up (``x = u s`` instead of ``(u + 0.5) s - 0.5``)
    costs exactly this at stride 1."""

    def decode(self, heatmaps, activation=None, **options):
        coords, scores = super().decode(heatmaps, activation, **options)
        return coords + torch.tensor([0.5 * self.stride[0], 0.0], dtype=coords.dtype), scores


class SquaredProbabilityRounding(codecs.RandomizedRounding):
    """Rounds up with probability ``frac(u)**2`` instead of ``frac(u)``: biased toward the lower cell."""

    def encode(self, keypoints, visible=None, generator=None):
        uv = self.to_heatmap(keypoints).clamp(min=0)
        w, h = self.heatmap_size
        uv = torch.stack((uv[..., 0].clamp(max=w - 1), uv[..., 1].clamp(max=h - 1)), dim=-1)
        floor = torch.floor(uv)
        draw = torch.rand(uv.shape, generator=generator, dtype=uv.dtype)
        cell = (floor + (draw < (uv - floor) ** 2).to(uv.dtype)).long()
        flat = (cell[..., 1] * w + cell[..., 0])[..., None]
        weights = torch.ones(keypoints.shape[:2], dtype=keypoints.dtype)
        return codecs.Encoded(weights, uv, self.heatmap_size, cells=flat, values=weights[..., None].clone())


class KeepsEveryKeypoint(codecs.Argmax):
    """Forgets that keypoints off the heatmap get weight 0 (its targets still clamp onto the border)."""

    def encode(self, keypoints, visible=None, generator=None):
        enc = super().encode(keypoints.nan_to_num(0.0), None)
        return codecs.Encoded(
            torch.ones_like(enc.weights), enc.centers, self.heatmap_size, heatmaps=enc.heatmaps
        )


class Float32Decoder(codecs.Gaussian):
    """Always returns float32 keypoints."""

    def decode(self, heatmaps, activation=None, **options):
        coords, scores = super().decode(heatmaps, activation, **options)
        return coords.float(), scores


def exploding_factory(input_size, heatmap_size):
    raise RuntimeError("boom")


NOT_A_FACTORY = 42


def test_a_decoder_off_by_half_a_cell_fails_the_round_trip_with_a_minimal_example():
    result = check_invariant("round_trip", HalfCellOffDecoder, max_examples=FEW)
    assert result.status == "fails"
    assert result.worst == pytest.approx(0.5, abs=1e-6)  # cells, whatever the stride
    ce = result.counterexample
    assert "heatmap 2x2" in ce.inputs  # shrunk to the smallest map ...
    assert len(keypoints_in(ce)) == 1  # ... and one keypoint
    assert "off by 0.5 cells" in ce.finding
    assert "round_trip" in result.line() and "FAILS" in result.line() and "counterexample" in result.line()


def test_an_encoder_that_rounds_up_with_the_wrong_probability_is_biased():
    freq = check_invariant("rounding_frequency", SquaredProbabilityRounding, max_examples=FEW)
    assert freq.status == "fails"
    assert freq.unit == "probability" and freq.worst > 0.1  # max of e - e^2 is 1/4, at e = 1/2
    assert (
        "rounded up along" in freq.counterexample.finding and "fractional part" in freq.counterexample.finding
    )
    assert len(keypoints_in(freq.counterexample)) == 1
    bias = check_invariant("unbiased", SquaredProbabilityRounding, max_examples=FEW)
    assert bias.status == "fails" and "6 standard errors allow" in bias.counterexample.finding
    # the decoder and the expected map are the correct ones: only sampling is wrong
    assert check_invariant("round_trip", SquaredProbabilityRounding, max_examples=FEW).status == "holds"


def test_the_correct_encoder_passes_the_same_statistical_checks():
    for name in ("unbiased", "rounding_frequency"):
        result = check_invariant(name, codecs.RandomizedRounding, max_examples=FEW)
        assert result.status == "holds", result.line()


def test_off_map_keypoints_with_weight_are_caught():
    result = check_invariant(
        "edge_semantics", KeepsEveryKeypoint, Claims(round_trip_cells=0.5), max_examples=FEW
    )
    assert result.status == "fails"
    assert re.search(
        r"the (inside, invisible|NaN, invisible|off the \w+) keypoint \d+ got weight 1",
        result.counterexample.finding,
    )


def test_a_decoder_that_changes_dtype_is_caught():
    result = check_invariant(
        "dtype_device_shape", Float32Decoder, Claims(round_trip_cells=0.5), max_examples=FEW
    )
    assert result.status == "fails"
    assert "decoded keypoints are torch.float32, not torch.float64" in result.counterexample.finding


def test_floor_rounding_is_within_a_cell_but_not_mirror_symmetric():
    floor = functools.partial(codecs.Argmax, rounding="floor")
    assert (
        check_invariant("round_trip", floor, Claims(round_trip_cells=1.0), max_examples=FEW).status == "holds"
    )
    flip = check_invariant("flip_equivariance", floor, Claims(round_trip_cells=1.0), max_examples=FEW)
    assert flip.status == "fails" and flip.worst == pytest.approx(
        1.0, abs=1e-9
    )  # floor(w-1-u) = w-2-floor(u)
    assert "mirrored" in flip.counterexample.finding


def test_a_crash_is_reported_as_a_counterexample():
    def encode_fn(keypoints, visible, *, input_size, heatmap_size):
        raise IndexError("cell 99 out of range")

    crashing = function_codec(encode_fn, lambda maps, **_: maps[..., 0, :2])
    result = check_invariant("round_trip", crashing, max_examples=FEW)
    assert result.status == "fails"
    assert result.counterexample.finding == "raised IndexError: cell 99 out of range"
    assert "heatmap 2x2" in result.counterexample.inputs


def test_a_claim_the_codec_does_not_keep_fails_and_the_true_one_holds():
    # Gaussian decodes by argmax: lossless is a false claim, half a cell is the true one
    assert check_invariant("round_trip", codecs.Gaussian, Claims(), max_examples=FEW).status == "fails"
    assert check_invariant(
        "round_trip", codecs.Gaussian, Claims(round_trip_cells=0.5), max_examples=FEW
    ).holds


def test_results_are_reproducible_for_a_seed():
    a = check_invariant("round_trip", HalfCellOffDecoder, max_examples=FEW, seed=3)
    b = check_invariant("round_trip", HalfCellOffDecoder, max_examples=FEW, seed=3)
    assert a == b


def test_a_fixed_geometry_is_respected_and_a_too_small_one_is_not_applicable():
    space = SearchSpace(input_size=(48, 36), heatmap_size=(12, 9))
    result = check_invariant("round_trip", HalfCellOffDecoder, space=space, max_examples=FEW)
    assert "heatmap 12x9, input 48x36" in result.counterexample.inputs
    small = SearchSpace(input_size=(8, 8), heatmap_size=(4, 4))
    assert check_invariant("round_trip", codecs.DARK, Claims(margin_cells=5), space=small).status == "n/a"


# -- adapters: the per-instance numpy protocol -------------------------------------------------------


class NumpyMSRAHeatmap:
    """A codec in the per-instance numpy protocol of the most widely used pose toolbox, MSRA convention
    (``u = x / s``): a Gaussian at the rounded cell, decoded by argmax. Written here from the protocol."""

    def __init__(self, input_size, heatmap_size, sigma=2.0, decode_shift_cells=0.0, check=True):
        self.input_size, self.heatmap_size, self.sigma = input_size, heatmap_size, sigma
        self.scale = np.array(input_size, dtype=np.float64) / np.array(heatmap_size, dtype=np.float64)
        self.decode_shift_cells, self.check = decode_shift_cells, check

    def encode(self, keypoints, keypoints_visible=None):
        N, K, _ = keypoints.shape
        assert N == 1, "one instance per call"
        visible = np.ones((N, K)) if keypoints_visible is None else keypoints_visible
        if self.check and not np.isfinite(keypoints[visible > 0]).all():
            k = int(np.argwhere(~np.isfinite(keypoints[0]).all(-1) & (visible[0] > 0))[0, 0])
            raise ValueError(f"keypoint {k} is not finite")
        (W, H), (w, h) = self.input_size, self.heatmap_size
        x, y = keypoints[0, :, 0], keypoints[0, :, 1]
        inside = (visible[0] > 0) & (x >= -0.5) & (x < W - 0.5) & (y >= -0.5) & (y < H - 0.5)
        centre = np.where(inside[:, None], np.floor(np.nan_to_num(keypoints[0]) / self.scale + 0.5), 0.0)
        gx = np.exp(-((np.arange(w)[None] - centre[:, :1]) ** 2) / (2 * self.sigma**2))
        gy = np.exp(-((np.arange(h)[None] - centre[:, 1:]) ** 2) / (2 * self.sigma**2))
        heatmaps = (gy[:, :, None] * gx[:, None, :] * inside[:, None, None]).astype(np.float32)
        return {"heatmaps": heatmaps, "keypoint_weights": inside[None].astype(np.float32)}

    def decode(self, encoded):
        K, h, w = encoded.shape
        if (w, h) != tuple(self.heatmap_size):
            raise ValueError(
                f"heatmaps must be (K, {self.heatmap_size[1]}, {self.heatmap_size[0]}), got {encoded.shape}"
            )
        if self.check and not np.isfinite(encoded).all():
            raise ValueError("heatmaps hold a non-finite value")
        flat = encoded.reshape(K, -1)
        idx = flat.argmax(-1)
        uv = np.stack((idx % w, idx // w), axis=-1).astype(np.float64)
        scores = flat.max(-1)
        constant = flat.max(-1) == flat.min(-1)
        uv[constant] = [(w - 1) / 2, (h - 1) / 2]
        scores = np.where(constant, 0.0, scores)
        uv[:, 0] += self.decode_shift_cells
        return (uv * self.scale)[None], scores[None]


def test_a_numpy_protocol_codec_passes_what_applies():
    report = check_codec(
        numpy_codec(NumpyMSRAHeatmap, convention="msra"),
        Claims(round_trip_cells=0.5),
        max_examples=FEW,
        profile="all",
    )
    assert report.holds, report.card()
    status = {r.name: r.status for r in report.results}
    assert status["dtype_device_shape"] == "n/a" and status["float32_matches_float64"] == "n/a"
    assert status["unbiased"] == "n/a"  # deterministic
    for name in ("round_trip", "shift_equivariance", "flip_equivariance", "edge_semantics", "bad_input"):
        assert status[name] == "holds"


def test_the_numpy_adapter_is_picked_automatically_and_the_convention_matters():
    auto = check_invariant(
        "round_trip", NumpyMSRAHeatmap, Claims(convention="msra", round_trip_cells=0.5), max_examples=FEW
    )
    assert auto.status == "holds", auto.line()
    # under the wrong convention the kit's keypoints sit elsewhere in the cell: flip is off by (s - 1) / s
    wrong = check_invariant(
        "flip_equivariance", NumpyMSRAHeatmap, Claims(convention="pixel_center"), max_examples=FEW
    )
    assert wrong.status == "fails"


def test_a_broken_numpy_codec_is_caught():
    shifted = numpy_codec(functools.partial(NumpyMSRAHeatmap, decode_shift_cells=0.5), convention="msra")
    result = check_invariant("round_trip", shifted, Claims(round_trip_cells=0.5), max_examples=FEW)
    assert result.status == "fails" and result.worst > 0.5
    unchecked = numpy_codec(functools.partial(NumpyMSRAHeatmap, check=False), convention="msra")
    bad = check_invariant("bad_input", unchecked, Claims(round_trip_cells=0.5), max_examples=FEW)
    assert bad.status == "fails" and "returned without an error" in bad.counterexample.finding


# -- adapters: plain functions --------------------------------------------------------------------------


def argmax_encode(keypoints, visible, *, input_size, heatmap_size):
    return codecs.Argmax(input_size, heatmap_size).encode(keypoints, visible).heatmaps  # bare maps


def argmax_decode(heatmaps, *, input_size, heatmap_size):
    return codecs.Argmax(input_size, heatmap_size).decode(heatmaps, activation="probabilities")[
        0
    ]  # bare keypoints


def test_plain_functions_are_checked():
    pair = function_codec(argmax_encode, argmax_decode)
    report = check_codec(
        pair,
        Claims(round_trip_cells=0.5),
        max_examples=FEW,
        only=["round_trip", "shift_equivariance", "edge_semantics"],
    )
    assert report.holds, report.card()
    off = function_codec(argmax_encode, lambda maps, **sizes: argmax_decode(maps, **sizes) + 1.0)
    assert (
        check_invariant("round_trip", off, Claims(round_trip_cells=0.5), max_examples=FEW).status == "fails"
    )


def test_stochastic_plain_functions_get_a_generator():
    def encode(keypoints, visible, *, input_size, heatmap_size, generator):
        return (
            codecs.RandomizedRounding(input_size, heatmap_size)
            .encode(keypoints, visible, generator=generator)
            .heatmaps
        )

    def expected(keypoints, visible, *, input_size, heatmap_size):
        return codecs.RandomizedRounding(input_size, heatmap_size).expected(keypoints, visible).heatmaps

    def decode(heatmaps, *, input_size, heatmap_size):
        return codecs.RandomizedRounding(input_size, heatmap_size).decode(
            heatmaps, activation="probabilities"
        )

    rr = function_codec(encode, decode, expected_fn=expected, stochastic=True)
    report = check_codec(
        rr, max_examples=FEW, only=["round_trip", "unbiased", "rounding_frequency", "reproducible"]
    )
    assert report.holds, report.card()
    no_expected = function_codec(encode, decode, stochastic=True)
    assert check_invariant("round_trip", no_expected).status == "n/a"


# -- the pytest helper ----------------------------------------------------------------------------------

# the three lines a user writes (here with fewer examples)
test_argmax_through_the_helper = codec_test_suite(codecs.Argmax, round_trip_cells=0.5, max_examples=FEW)


def test_the_helper_fails_with_the_counterexample_and_skips_what_does_not_apply():
    broken = codec_test_suite(HalfCellOffDecoder, max_examples=FEW)
    with pytest.raises(AssertionError, match=r"(?s)round_trip.*FAILS.*counterexample \(.*\): heatmap 2x2"):
        broken("round_trip")
    deterministic = codec_test_suite(codecs.Gaussian, round_trip_cells=0.5, max_examples=FEW)
    with pytest.raises(pytest.skip.Exception, match="unbiased: deterministic encoder"):
        deterministic("unbiased")
    deterministic("round_trip")  # holds: returns without raising


# -- the CLI --------------------------------------------------------------------------------------------


def test_cli_reports_a_good_codec_and_exits_0(capsys):
    assert main(["h3r_theory.codecs:Argmax", "--round-trip-cells", "0.5", "--examples", "5"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("codec h3r_theory.codecs.argmax:Argmax (convention pixel_center)")
    assert out.count(" holds ") == 9 and "all hold" in out and "FAILS" not in out


def test_cli_reports_a_broken_codec_and_exits_1(capsys):
    code = main(
        [
            f"{__name__}:HalfCellOffDecoder",
            "--examples",
            "5",
            "--only",
            "round_trip,reproducible",
            "--in-process",
        ]
    )
    out = capsys.readouterr().out
    assert code == 1
    assert re.search(r"round_trip\s+FAILS\s+worst of the examples searched 0\.5 cells", out)
    assert "shrunk counterexample (the smallest failing example, 0.5 cells): heatmap 2x2" in out
    assert "1 FAIL" in out


def test_cli_json(capsys):
    argv = [
        f"{__name__}:HalfCellOffDecoder",
        "--examples",
        "5",
        "--only",
        "round_trip",
        "--json",
        "--in-process",
    ]
    assert main(argv) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["holds"] is False and report["convention"] == "pixel_center"
    (result,) = report["results"]
    assert result["name"] == "round_trip" and result["status"] == "fails"
    assert (
        result["worst"] == pytest.approx(0.5, abs=1e-6)
        and "heatmap 2x2" in result["counterexample"]["inputs"]
    )


def test_cli_convention_and_sizes_reach_the_codec(capsys):
    args = ["h3r_theory.codecs:RandomizedRounding", "--convention", "msra", "--input-size", "64", "48"]
    assert (
        main(
            args
            + [
                "--heatmap-size",
                "16",
                "12",
                "--examples",
                "5",
                "--only",
                "round_trip,reproducible",
                "--in-process",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "(convention msra)" in out and "all hold" in out


@pytest.mark.parametrize(
    "argv,message",
    [
        (["no_such_module_h3r:Codec"], "cannot import module 'no_such_module_h3r': ModuleNotFoundError"),
        (["h3r_theory.codecs:NoSuchCodec"], "'h3r_theory.codecs' has no attribute 'NoSuchCodec'"),
        ([f"{__name__}:NOT_A_FACTORY"], "is not callable (it is a int)"),
        (["h3r_theory.codecs.Argmax"], "target must be module:factory"),
        ([f"{__name__}:exploding_factory"], "could not build a codec: RuntimeError: boom"),
        (["h3r_theory.codecs:Argmax", "--convention", "opencv"], "argument --convention: invalid choice"),
        (["h3r_theory.codecs:Argmax", "--input-size", "0", "8"], "input_size must be a (width, height) pair"),
        (
            ["h3r_theory.codecs:Argmax", "--round-trip-cells", "-1"],
            "Claims.round_trip_cells must be a finite number >= 0",
        ),
        (["h3r_theory.codecs:Argmax", "--only", "round_trip,speed"], "unknown invariant(s) ['speed']"),
        (["h3r_theory.codecs:Argmax", "--examples", "0"], "--examples must be >= 1"),
        (["h3r_theory.codecs:Argmax", "--border-band-cells", "wide"], "--border-band-cells must be a number"),
        (["h3r_theory.codecs:Argmax", "--frobnicate"], "unrecognized arguments: --frobnicate"),
        ([], "the following arguments are required: target"),
    ],
)
def test_cli_bad_arguments_exit_2_with_one_line(capsys, argv, message):
    # in this process, to keep it fast: tests/test_codec_kit_isolation.py refuses through the worker too
    assert main(argv + ["--in-process"] if argv else argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and captured.err.startswith("h3r-check-codec: error: ")
    assert message in captured.err
