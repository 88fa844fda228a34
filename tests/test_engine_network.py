"""The engine refuses an input size the backbone cannot tile, before reading any data."""

import pytest

from trainers.config import load_config
from trainers.engine import build_network


def test_input_size_not_a_multiple_of_the_backbone_stride_fails_early():
    config = load_config("synthetic", ["data.input_size=[72,72]"])
    with pytest.raises(ValueError, match=r"data.input_size \(72, 72\) must be a multiple of 16 .*'tiny'"):
        build_network(config, num_keypoints=12)
    assert (
        build_network(load_config("synthetic", ["data.input_size=[64,80]"]), num_keypoints=12).num_keypoints
        == 12
    )
