"""The SPR closed form derived and checked in SymPy.

For a group ``W_g`` with ``r = ||W_g||_2 > 0``, ``t = ||W_g||_inf`` (``0 < t <= r``, ``t <= M``),
``alpha in (0, 1)`` and ``M > 0``, the Structured Perspective Regularizer is

.. math::

    z = \\min_{y \\in [t/M, 1]} f(y), \\qquad f(y) = \\frac{\\alpha r^2}{y} + (1 - \\alpha) y .

:func:`derive_spr` proves, with ``bar_alpha = 1 - alpha`` a second positive symbol (so that
``sqrt`` simplifies soundly) and ``c = sqrt(alpha / bar_alpha)``:

1. ``f''(y) = 2 alpha r^2 / y^3 > 0``: ``f`` is strictly convex on ``y > 0``;
2. ``f'(y) = bar_alpha (1 - (c r / y)^2)``, whose only positive root is ``y0 = c r``;
3. case by case (the table of :mod:`proxcompress.formulations.spr`), the first-order optimality
   condition on ``[t/M, 1]`` and the value: case 1 (``c r >= 1``: ``f'(1) <= 0``, so ``f``
   decreases up to ``y = 1``; or ``t = M``: the interval is ``{1}``), case 2 (``t/M <= c r < 1``:
   ``f'(c r) = 0`` inside the interval), case 3 (``c r < t/M < 1``: ``f'(t/M) > 0``, so ``f``
   increases from ``y = t/M``); each ``f(y*)`` simplifies to that case's ``z``;
4. continuity of ``z`` and ``y*`` at the three case boundaries (``t = M c r``, ``c r = 1``,
   ``t = M``) and at ``W -> 0``;
5. numerically, that :func:`proxcompress.formulations.spr.spr_value` equals the symbolic
   piecewise closed form and :func:`~proxcompress.formulations.spr.spr_numeric` at random
   instances.

Reference: Cacciola, Frangioni, Li, Lodi, arXiv:2206.14056 (code ``MCacciola94/Pruning_prj``).
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from proxcompress.proofs.certificate import Certificate, Counterexample, Report

#: symbols of the derivation: ``r = ||w||_2``, ``t = ||w||_inf``, ``alpha``, ``M``, ``y``
r, t, M, alpha, y = sp.symbols("r t M alpha y", positive=True)
#: ``1 - alpha``, a separate positive symbol in the proofs
alpha_bar = sp.Symbol("alphabar", positive=True)

_PAPER = "Cacciola, Frangioni, Li, Lodi, arXiv:2206.14056"


def spr_closed_form() -> tuple[sp.Expr, sp.Expr]:
    """The three-case closed form ``(z, y*)`` as SymPy ``Piecewise`` in ``r, t, alpha, M``.

    The same cases, in the same order, as :mod:`proxcompress.formulations.spr`.
    """
    c = sp.sqrt(alpha / (1 - alpha))
    lo = t / M
    case1 = sp.Max(lo, c * r) >= 1
    case2 = lo <= c * r
    z = sp.Piecewise(
        (alpha * r**2 + (1 - alpha), case1),
        (2 * sp.sqrt(alpha * (1 - alpha)) * r, case2),
        (alpha * M * r**2 / t + (1 - alpha) * t / M, True),
    )
    y_star = sp.Piecewise((1, case1), (c * r, case2), (lo, True))
    return z, y_star


def _zero(expr: sp.Expr) -> bool:
    return sp.simplify(expr) == 0


def _derivation() -> Certificate:
    a, ab = alpha, alpha_bar
    c = sp.sqrt(a / ab)
    f = a * r**2 / y + ab * y
    fp, fpp = sp.diff(f, y), sp.diff(f, y, 2)
    d_nonneg = sp.Symbol("d", nonnegative=True)
    d_pos = sp.Symbol("d", positive=True)
    fp_form = ab * (1 - (c * r / y) ** 2)
    z1, z2 = a * r**2 + ab, 2 * sp.sqrt(a * ab) * r
    z3 = a * M * r**2 / t + ab * t / M
    steps: list[tuple[str, bool]] = [
        ("f''(y) = 2 alpha r^2 / y^3 > 0 for y > 0: f is strictly convex",
         bool(fpp.is_positive)),
        ("f'(y) = (1 - alpha)(1 - (c r / y)^2) with c = sqrt(alpha / (1 - alpha))",
         _zero(fp - fp_form)),
        ("the only positive root of f' is y0 = c r",
         sp.solveset(fp, y, sp.Interval.open(0, sp.oo)) == sp.FiniteSet(c * r)),
        ("case 1, c r >= 1: f'(1) = (1 - alpha)(1 - (c r)^2) <= 0 (write c r = 1 + d, d >= 0), and "
         "f' is increasing, so f' <= 0 on [t/M, 1] and y* = 1; if instead t/M = 1 the interval "
         "is {1}; z = f(1) = alpha r^2 + (1 - alpha)",
         bool(sp.expand(fp_form.subs(y, 1).subs(r, (1 + d_nonneg) / c)).is_nonpositive)
         and _zero(f.subs(y, 1) - z1)),
        ("case 2, t/M <= c r < 1: f'(c r) = 0 with c r in [t/M, 1], so y* = c r by convexity; "
         "z = f(c r) = 2 sqrt(alpha (1 - alpha)) r",
         _zero(fp.subs(y, c * r)) and _zero(f.subs(y, c * r) - z2)),
        ("case 3, c r < t/M < 1: f'(t/M) > 0 (write t/M = c r + d, d > 0) and f' is increasing, "
         "so f increases on [t/M, 1] and y* = t/M; z = f(t/M) = alpha M r^2 / t + "
         "(1 - alpha) t / M",
         bool(sp.factor(sp.together(fp_form.subs(y, c * r + d_pos))).is_positive)
         and _zero(f.subs(y, t / M) - z3)),
        ("W = 0 (r = t = 0): f(y) = (1 - alpha) y on [0, 1] (0/0 := 0) is minimal at y* = 0 with "
         "z = 0, which is case 2's formula at r = 0",
         _zero(f.subs(r, 0) - ab * y) and z2.subs(r, 0) == 0),
    ]
    failed = [s for s, ok in steps if not ok]
    statements = tuple(f"{s}: {'proved' if ok else 'NOT proved'}." for s, ok in steps)
    statements += (
        "The case conditions are those of formulations.spr: c r >= 1 or t/M >= 1 "
        "(i.e. max(t/M, c r) >= 1) gives case 1, then t/M <= c r case 2, else case 3. "
        "Hence z(W) = min over y in [t/M, 1] of f(y) is the three-case closed form.",
    )
    return Certificate(
        check="derivation", subject="spr", status="fail" if failed else "pass",
        assumptions=(
            "r = ||w||_2 > 0, t = ||w||_inf > 0, M > 0, t <= M (feasible), alpha in (0, 1)",
            "1 - alpha is the positive symbol alphabar; c = sqrt(alpha / alphabar)",
            f"objective of the projected perspective relaxation ({_PAPER})",
        ),
        statements=statements,
        expressions={"f": f, "f'": fp, "f''": fpp, "z1": z1, "z2": z2, "z3": z3},
        method="symbolic (SymPy simplify / solveset / sign under positivity assumptions)",
        detail=("min_y f = three-case closed form, case by case" if not failed
                else f"not proved: {failed[0]}"),
    )


def _continuity() -> Certificate:
    a, ab = alpha, alpha_bar
    c = sp.sqrt(a / ab)
    z1, z2 = a * r**2 + ab, 2 * sp.sqrt(a * ab) * r
    z3 = a * M * r**2 / t + ab * t / M
    y1, y2, y3 = sp.Integer(1), c * r, t / M
    steps = [
        ("case 2 | case 3 at t/M = c r: z3 = z2 and y3 = y2",
         _zero((z3 - z2).subs(t, M * c * r)) and _zero((y3 - y2).subs(t, M * c * r))),
        ("case 1 | case 2 at c r = 1: z2 = z1 = 2 (1 - alpha) and y2 = y1 = 1",
         _zero((z2 - z1).subs(r, 1 / c)) and _zero((y2 - y1).subs(r, 1 / c))),
        ("case 1 | case 3 at t/M = 1: z3 = z1 and y3 = y1",
         _zero((z3 - z1).subs(t, M)) and _zero((y3 - y1).subs(t, M))),
        ("W -> 0: z2 -> 0 and y2 -> 0 as r -> 0 (case 2 holds near W = 0)",
         sp.limit(z2, r, 0) == 0 and sp.limit(y2, r, 0) == 0),
    ]
    failed = [s for s, ok in steps if not ok]
    return Certificate(
        check="continuity", subject="spr", status="fail" if failed else "pass",
        assumptions=("as in the derivation",),
        statements=tuple(f"{s}: {'proved' if ok else 'NOT proved'}." for s, ok in steps),
        expressions={"z1": z1, "z2": z2, "z3": z3, "y1": y1, "y2": y2, "y3": y3},
        method="symbolic (SymPy simplify / limit)",
        detail="z and y* continuous at the case boundaries" if not failed
        else f"not proved: {failed[0]}",
    )


def _random_instances(samples: int, seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    vectors = [rng.normal(size=n) * rng.uniform(0.0, 3.0) for n in rng.integers(1, 9, samples)]
    l2 = np.array([float(np.linalg.norm(v)) for v in vectors])
    linf = np.array([float(np.max(np.abs(v))) for v in vectors])
    alphas = rng.uniform(0.001, 0.999, samples)
    Ms = linf * rng.uniform(1.0, 4.0, samples) + 1e-3
    return l2, linf, alphas, Ms


def _numeric(samples: int, seed: int) -> Certificate:
    from proxcompress.formulations.spr import spr_numeric, spr_value

    z_sym, y_sym = spr_closed_form()
    z_fn = sp.lambdify((r, t, alpha, M), z_sym, "numpy")
    y_fn = sp.lambdify((r, t, alpha, M), y_sym, "numpy")
    l2, linf, alphas, Ms = _random_instances(samples, seed)
    worst_closed, worst_numeric = 0.0, 0.0
    counter = None
    for i in range(samples):
        args = (l2[i], linf[i], alphas[i], Ms[i])
        closed = spr_value(l2[i], linf[i], alphas[i], Ms[i])
        numeric = spr_numeric(l2[i], linf[i], alphas[i], Ms[i])
        zs, ys = float(z_fn(*args)), float(y_fn(*args))
        err_closed = max(abs(zs - float(closed.z)), abs(ys - float(closed.y)))
        err_numeric = abs(zs - float(numeric.z)) / max(1.0, abs(zs))
        worst_closed = max(worst_closed, err_closed)
        worst_numeric = max(worst_numeric, err_numeric)
        if (err_closed > 1e-10 or err_numeric > 1e-9) and counter is None:
            counter = Counterexample(
                {"r": args[0], "t": args[1], "alpha": args[2], "M": args[3]},
                {"z symbolic": zs, "z spr_value": float(closed.z),
                 "z spr_numeric": float(numeric.z)},
                "the closed forms or the numeric minimum disagree",
            )
    return Certificate(
        check="numeric", subject="spr", status="fail" if counter else "pass",
        assumptions=(f"{samples} random groups (seed {seed}): 1-8 entries, alpha in "
                     "(0.001, 0.999), M in [t, 4t]",),
        statements=(
            f"symbolic Piecewise vs formulations.spr.spr_value: max |error| = "
            f"{worst_closed:.1e} (z and y*)",
            f"symbolic vs formulations.spr.spr_numeric (bounded Brent on [t/M, 1]): max relative "
            f"|error| in z = {worst_numeric:.1e}",
        ),
        expressions=dict(zip(("z", "y*"), spr_closed_form(), strict=True)),
        method=f"numeric, {samples} points, max error {max(worst_closed, worst_numeric):.1e}",
        detail=f"spr_value = symbolic ({worst_closed:.0e}), = numeric min ({worst_numeric:.0e})",
        counterexample=counter,
    )


def derive_spr(samples: int = 200, seed: int = 0) -> Report:
    """Certificates ``derivation``, ``continuity`` and ``numeric`` of the SPR closed form."""
    return Report(
        name="spr",
        certificates=(_derivation(), _continuity(), _numeric(samples, seed)),
        kind="derivation",
        summary="min_y alpha||w||^2/y + (1-alpha) y over [||w||_inf/M, 1] = 3-case closed form",
    )


__all__ = [
    "M",
    "alpha",
    "alpha_bar",
    "derive_spr",
    "r",
    "spr_closed_form",
    "t",
    "y",
]
