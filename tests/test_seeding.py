"""The one seed mixer: pure, 63-bit, order-sensitive, and the synthetic set's item seeds come from it."""

from hypothesis import given
from hypothesis import strategies as st

from trainers import distributed
from trainers.data import dataset, synthetic
from trainers.seeding import mix_seed, splitmix64

seeds = st.integers(min_value=-(2**63), max_value=2**64 - 1)


def test_splitmix64_reference_values():
    # The first outputs of SplitMix64 started from state 0, as published with the algorithm
    # (state += golden gamma, then the two xor-shift-multiply rounds).
    assert splitmix64(0) == 0xE220A8397B1DCDAF
    assert splitmix64(0x9E3779B97F4A7C15) == 0x6E789E6AA1B965F4


@given(seeds, st.lists(seeds, max_size=3))
def test_mix_seed_is_pure_and_fits_a_torch_generator(seed, salts):
    value = mix_seed(seed, *salts)
    assert value == mix_seed(seed, *salts)
    assert 0 <= value < 2**63


def test_mix_seed_depends_on_the_order_of_its_salts():
    assert mix_seed(0, 1) != mix_seed(1, 0)
    assert mix_seed(0, 1, 2) != mix_seed(0, 2, 1)
    assert len({mix_seed(s, e) for s in range(50) for e in range(50)}) == 2500


def test_every_user_draws_from_the_one_mixer():
    assert synthetic.item_seed(3, "val", 7) == mix_seed(3, synthetic.SPLITS["val"], 7)
    assert distributed.step_seed(5, 11, rank=1) == mix_seed(5, 11, 1_001)
    assert dataset.sample_seed(9, 4) == mix_seed(9, 4)
    # the chain the augmentation seeds were drawn from before they used the shared mixer: unchanged values
    assert dataset.sample_seed(9, 4) == splitmix64(splitmix64(9) ^ 4) >> 1
