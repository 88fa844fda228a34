"""The record every derivation returns: a statement, its closed form, and the steps that lead there.

A notebook shows ``steps`` one line at a time (``sympy.latex`` of each expression), and a test checks
``sympy.simplify(closed_form - expected) == 0`` against the published constant.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

import sympy as sp


class Derivation(NamedTuple):
    """One exact result.

    Attributes:
        statement: what is claimed, usually a ``sympy.Eq`` (left side: the quantity, right side: its value).
        closed_form: the value itself (a sympy expression, or a ``sympy.Matrix`` for vector results).
        steps: ``(description, expression)`` pairs in the order a reader would follow them.
        symbols: the free symbols by name (e.g. ``{"e": e}``), for ``subs`` and ``lambdify``.
    """

    statement: Any
    closed_form: Any
    steps: tuple[tuple[str, Any], ...] = ()
    symbols: Mapping[str, sp.Symbol] = MappingProxyType({})  # read-only: a shared default must not mutate

    def evaluate(self, **values: float) -> float:
        """The closed form as a float with its symbols substituted by name, e.g. ``d.evaluate(e=0.25)``."""
        subs = {self.symbols[name]: value for name, value in values.items()}
        return float(sp.N(self.closed_form.subs(subs)))

    def show(self) -> str:
        """Plain-text rendering of the steps, one per line (for terminals and doctests)."""
        lines = [f"{text}: {sp.sstr(expr)}" for text, expr in self.steps]
        lines.append(f"=> {sp.sstr(self.statement)}")
        return "\n".join(lines)


def fraction_symbol(name: str = "e") -> sp.Symbol:
    """A fractional part in [0, 1): real and nonnegative, which lets sympy simplify ``sqrt(e**2)`` etc."""
    return sp.Symbol(name, nonnegative=True)


def uniform_mean(expr: sp.Expr, var: sp.Symbol, lo: Any = 0, hi: Any = 1) -> sp.Expr:
    """Mean of ``expr`` over ``var`` uniform on ``[lo, hi]``: the one integral every result below uses."""
    return sp.simplify(sp.integrate(expr, (var, lo, hi)) / (hi - lo))


class Quantity(sp.Symbol):
    """The named left side of a claim: prints as its plain-text ``name``, typesets as its ``latex``.

    A plain ``sympy.Symbol`` named ``"E|q(u) - u|^2 (1-D)"`` is typeset by ``sympy.latex`` as if ``_`` and
    ``^`` in the name were sub- and superscripts, which garbles it; this symbol carries its own LaTeX.
    """

    def __new__(cls, name: str, latex: str | None = None):
        # Uncached: the LaTeX is part of the object, so two claims with one name must not share an instance.
        obj = sp.Symbol.__xnew__(cls, name)
        obj._latex_form = latex if latex is not None else text_latex(name)
        return obj

    def __getnewargs_ex__(self):
        return (self.name, self._latex_form), {}

    def _latex(self, printer) -> str:
        return self._latex_form


_TEXT_ESCAPES = {
    "\\": r"\textbackslash{}",
    "_": r"\_",
    "^": r"\^{}",
    "%": r"\%",
    "#": r"\#",
    "&": r"\&",
    "{": r"\{",
    "}": r"\}",
    "$": r"\$",
}


def text_latex(text: str) -> str:
    """``text`` as upright LaTeX text (``\\text{...}``), its special characters escaped."""
    return r"\text{" + "".join(_TEXT_ESCAPES.get(ch, ch) for ch in text) + "}"


def claim(name: str, value: Any, latex: str | None = None) -> sp.Eq:
    """``name = value`` as an unevaluated ``sympy.Eq`` (so that matrices and zeros print as equations).

    ``name`` is what ``sympy.sstr`` prints; ``latex`` what a notebook typesets (default: ``name`` as
    escaped upright text).
    """
    return sp.Eq(Quantity(name, latex), value, evaluate=False)
