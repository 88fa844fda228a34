"""One seed mixer for the whole package: the synthetic items, the data order of each epoch and the per-step
random targets all draw their ``torch.Generator`` seeds from :func:`mix_seed`.

A seed derived as ``seed + salt`` makes ``(0, 1)`` and ``(1, 0)`` the same stream; chaining SplitMix64 (Steele,
Lea & Flood, "Fast splittable pseudorandom number generators", OOPSLA 2014) over the seed and each salt gives
streams that are, for every practical purpose, independent.
"""

from __future__ import annotations

_MASK64 = (1 << 64) - 1


def splitmix64(x: int) -> int:
    """One step of SplitMix64 on a 64-bit unsigned integer."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def mix_seed(seed: int, *salts: int) -> int:
    """A 63-bit seed (it fits ``torch.Generator.manual_seed``) that is a pure function of ``(seed, *salts)``.

    Negative salts are allowed (they are taken modulo 2**64), so ``-1`` can name a special stream.
    """
    x = splitmix64(int(seed) & _MASK64)
    for salt in salts:
        x = splitmix64(x ^ (int(salt) & _MASK64))
    return x >> 1
