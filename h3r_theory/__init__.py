"""h3r-theory: heatmap regression for landmark localization, taught, proved and measured.

Subpackages: :mod:`h3r_theory.codecs` (encode/decode heatmaps behind one protocol),
:mod:`h3r_theory.theory` (sympy derivations and their Monte Carlo checks), :mod:`h3r_theory.metrics`,
:mod:`h3r_theory.losses`, and :mod:`h3r_theory.conventions` (the one place for the pixel convention).
"""

__version__ = "0.1.0"
