"""Exact (sympy) derivations of the quantization claims, and their seeded Monte Carlo counterparts."""
