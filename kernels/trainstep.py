"""Elementwise passes of a training step in one numba loop each (issue 17, part 4).

:func:`channel_scale_pass`: the per-channel scale ``mean |w|`` and, in the same sweep,
``alpha sign(w)`` (BinaryConnect, BNN). :func:`signswish_pass`: the SignSwish pairs (below).
:func:`shift_round_pass`: DeepShift-Q's
rounding of a latent weight to ``sign 2^e`` (``training.shift.power_of_two_codes`` and the
decode, fifteen torch passes with int8 and bool temporaries) in one exact pass.

SignSwish
---------

BNN+, BNN++ and ``bnn++-prox`` need, per latent weight, ``alpha F(x)`` and the slope
``alpha SS_beta'(x)`` from ``u = beta x`` (or ``beta P(x)``) and ``s = sigma(u)``. torch runs
that as eight whole-tensor passes (``training.fused``'s eager body); here, after torch has
computed ``u`` and ``s`` (torch's vectorised sigmoid: the same ``s`` the reference uses), one
parallel pass over the rows writes both outputs:

.. math::

    q = \\mathrm{fma}(-s, s, s), \\quad t = \\mathrm{fma}(-2u, s, u + 2), \\quad
    \\text{slope} = (q t)\\,(2 \\beta \\alpha), \\quad
    \\text{out} = \\alpha \\operatorname{sign}(x) \\;\\text{or}\\;
    \\alpha\\, \\mathrm{fma}(2u, q, 2s - 1),

the operations of the reference (``torch.addcmul``'s vector kernels contract
``self + value * t1 * t2`` into one fused multiply-add, ``(value t1) t2 + self``), so the
results are bitwise those of the eager torch body on CPUs where torch's kernels use FMA (every
x86 CPU with AVX2 or AVX-512; tests/kernels/test_trainstep.py checks it on the machine it runs
on). The loop is plain arithmetic on the CPU numba compiles for: no tuning to one CPU.

Importing this module imports numba (``training.fused`` imports it on first use); the
loops compile on first call and are cached (``cache=True``).
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
from numba import njit, types
from numba.extending import intrinsic

from .numba_cache import key_on_package


@intrinsic
def _fma(typingctx, a, b, c):  # type: ignore[no-untyped-def]
    """``llvm.fma``: one rounding of ``a b + c`` (vfmadd after vectorisation)."""
    if not (a == b == c and isinstance(a, types.Float)):
        return None

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        return builder.fma(*args)

    return a(a, a, a), codegen


@njit(cache=True, nogil=True, inline="always")
def _q_slope(uv, sv, c, two):  # type: ignore[no-untyped-def]
    """``q = fma(-s, s, s)`` and the slope ``(q fma(-2u, s, u + 2)) c``."""
    q = _fma(-sv, sv, sv)
    return q, (q * _fma(-(uv + uv), sv, uv + two)) * c


@njit(cache=True, nogil=True, boundscheck=False)
def _signswish(x, u, s, alpha, two_beta, sign_forward, out, slope):  # type: ignore[no-untyped-def]
    """``slope = (q t)(2 beta alpha)``; ``out = alpha sign(x)`` (BNN+) or
    ``alpha fma(2u, q, 2s - 1)`` (BNN++; the branch is loop-invariant: as fast as two loops)."""
    rows, cols = x.shape
    zero = x.dtype.type(0.0)
    one = x.dtype.type(1.0)
    two = one + one
    for j in range(rows):
        a = alpha[j, 0]
        c = a * two_beta
        for i in range(cols):
            uv = u[j, i]
            sv = s[j, i]
            q, slope[j, i] = _q_slope(uv, sv, c, two)
            if sign_forward:
                xv = x[j, i]
                out[j, i] = (one if xv > zero else (-one if xv < zero else zero)) * a
            else:
                out[j, i] = _fma(uv + uv, q, (sv + sv) - one) * a


def signswish_pass(x: np.ndarray, u: np.ndarray, s: np.ndarray, alpha: np.ndarray,
                   beta: float, sign_forward: bool, out: np.ndarray, slope: np.ndarray) -> None:
    """Write ``out`` and ``slope`` (see the module doc) from C-contiguous 2-D ``x``, ``u``,
    ``s`` of one float dtype and ``alpha`` of shape ``(rows, 1)``.

    One thread: numba's parallel loops run on a second OpenMP runtime beside torch's, whose
    idle threads spin on a 2-core machine; the pass is one memory-bound sweep (about 0.1 ns
    an element), cheaper serial than the contention."""
    _signswish(x, u, s, alpha, x.dtype.type(2.0 * beta), sign_forward, out, slope)


def _bitcast(source: Any, target: Any) -> Any:
    """An intrinsic reinterpreting a ``source`` scalar's bits as ``target`` (one register
    move, or none, once vectorised)."""

    @intrinsic
    def cast(typingctx, a):  # type: ignore[no-untyped-def]
        if a != source:
            return None

        def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
            return builder.bitcast(args[0], context.get_value_type(target))

        return target(a), codegen

    return cast


#: the IEEE bits of a float32 as an int32, and back
_float_bits = _bitcast(types.float32, types.int32)
_bits_float = _bitcast(types.int32, types.float32)


#: 1.5 * 2^23: ``(v + M) - M`` is ``v`` rounded to the nearest integer (ties to even) for
#: ``|v| < 2^22``, and the low bits of ``v + M`` hold that integer
_ROUND_MAGIC = np.float32(12582912.0)
_ROUND_MAGIC_BITS = np.int32(0x4B400000)


@njit(inline="always")
def _pow2(e):  # type: ignore[no-untyped-def]
    """``2^e`` for an int32 ``-126 <= e <= 127``, built from its exponent bits."""
    return _bits_float(np.int32((e + np.int32(127)) << np.int32(23)))


@njit(inline="always")
def _expf(d):  # type: ignore[no-untyped-def]
    """``exp(d)`` for float32 ``d`` by SLEEF's ``expf_u10`` (1 ulp): the algorithm, constants
    and operation order of the vector exponential torch's CPU kernels call (``Sleef_expf8_u10``
    / ``Sleef_expf16_u10`` on AVX2 / AVX-512 builds), multiply-adds fused as there, so
    ``1 / (1 + exp(-u))`` is bitwise ``torch.sigmoid`` on torch's vectorised path. Plain
    float and integer operations without branches: the loop around it vectorises."""
    t = d * np.float32(1.442695040888963407359924681001892137426645954152985934135449406931) \
        + _ROUND_MAGIC
    q = t - _ROUND_MAGIC  # rint(d / ln 2)
    qi = _float_bits(t) - _ROUND_MAGIC_BITS
    s = _fma(q, np.float32(-0.693145751953125), d)
    s = _fma(q, np.float32(-1.428606765330187045e-06), s)
    u = np.float32(0.000198527617612853646278381)
    u = _fma(u, s, np.float32(0.00139304355252534151077271))
    u = _fma(u, s, np.float32(0.00833336077630519866943359))
    u = _fma(u, s, np.float32(0.0416664853692054748535156))
    u = _fma(u, s, np.float32(0.166666671633720397949219))
    u = _fma(u, s, np.float32(0.5))
    u = np.float32(1.0) + _fma(s * s, u, s)
    half = qi >> np.int32(1)  # 2^q as two factors: q reaches 151 before the cut-offs
    u = u * _pow2(half) * _pow2(np.int32(qi - half))
    u = np.float32(0.0) if d < np.float32(-104.0) else u
    return np.float32(np.inf) if d > np.float32(100.0) else u


@njit(inline="always")
def _sigmoidf(u):  # type: ignore[no-untyped-def]
    """``1 / (1 + exp(-u))`` in float32, torch's vector sigmoid (``reciprocal`` is a
    division)."""
    return np.float32(1.0) / (np.float32(1.0) + _expf(-u))


@njit(cache=True, nogil=True, boundscheck=False, error_model="numpy")
def sigmoid32(x, out):  # type: ignore[no-untyped-def]
    """``out = sigmoid(x)`` elementwise on float32 arrays of one shape (contiguous): the
    in-pass sigmoid of :func:`signswish_pass32`, exposed for its tests."""
    xf, of = x.ravel(), out.ravel()
    for i in range(xf.size):
        of[i] = _sigmoidf(xf[i])


#: ``u`` of :func:`signswish_pass32`: ``beta x`` (BNN+, BNN++) or ``beta P(x)``, ``P(x) = (x +
#: mu sign x) / (1 + mu)`` (``bnn++-prox``)
SIGNSWISH_INPUTS = {"scaled": 0, "prox": 1}


@njit(cache=True, nogil=True, boundscheck=False, error_model="numpy")
def _signswish32(x, extra, fan_in, alpha, channel, prox, beta, mu, two_beta, sign_forward,
                 out, slope, lo, hi):  # type: ignore[no-untyped-def]
    """Rows ``lo:hi`` of :func:`signswish_pass32` (nogil: a thread per row range)."""
    cols = x.shape[1]
    zero = np.float32(0.0)
    one = np.float32(1.0)
    two = one + one
    for j in range(lo, hi):
        if channel:
            alpha[j, 0] = (_row_abs_sum(x, j) + extra[j]) / fan_in
        a = alpha[j, 0]
        c = a * two_beta
        for i in range(cols):
            xv = x[j, i]
            sg = one if xv > zero else (-one if xv < zero else zero)
            uv = _fma(mu, sg, xv) * beta if prox else xv * beta
            sv = _sigmoidf(uv)
            q, slope[j, i] = _q_slope(uv, sv, c, two)
            if sign_forward:
                out[j, i] = sg * a
            else:
                out[j, i] = _fma(uv + uv, q, (sv + sv) - one) * a


class _RowThreads:
    """Persistent helper threads that run row ranges of a ``nogil`` numba pass beside the
    calling thread (which runs the first range): a pass split over ``threads`` cores without
    numba's parallel runtime, whose pool would be a second OpenMP-style pool spinning beside
    torch's. A helper waits on an event between passes (no spinning)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._helpers: list[tuple[threading.Event, threading.Event, list[Any]]] = []
        if hasattr(os, "register_at_fork"):  # a forked child has none of the threads
            os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self._lock = threading.Lock()
        self._helpers = []

    def _helper(self) -> tuple[threading.Event, threading.Event, list[Any]]:
        go, done = threading.Event(), threading.Event()
        slot: list[Any] = [None, None]

        def loop() -> None:
            while True:
                go.wait()
                go.clear()
                job = slot[0]
                try:
                    job()
                except BaseException as exc:  # noqa: BLE001 - re-raised on the caller
                    slot[1] = exc
                done.set()

        threading.Thread(target=loop, name="proxcompress-rows", daemon=True).start()
        return go, done, slot

    def run(self, job: Callable[[int, int], None], rows: int, threads: int) -> None:
        """``job(lo, hi)`` over ``[0, rows)`` in ``threads`` contiguous ranges."""
        threads = max(1, min(threads, rows))
        bounds = [rows * t // threads for t in range(threads + 1)]
        if threads == 1 or not self._lock.acquire(blocking=False):  # busy (another caller)
            job(0, rows)
            return
        try:
            while len(self._helpers) < threads - 1:
                self._helpers.append(self._helper())
            used = self._helpers[:threads - 1]
            for t, (go, done, slot) in enumerate(used, start=1):
                lo, hi = bounds[t], bounds[t + 1]
                slot[0], slot[1] = (lambda lo=lo, hi=hi: job(lo, hi)), None
                done.clear()
                go.set()
            job(bounds[0], bounds[1])
            errors = []
            for _go, done, slot in used:
                done.wait()
                if slot[1] is not None:
                    errors.append(slot[1])
            if errors:
                raise errors[0]
        finally:
            self._lock.release()


_ROWS = _RowThreads()
#: below this many elements a pass runs on the calling thread (the hand-over costs tens of
#: microseconds; torch's own parallel grain is 32768 elements)
SPLIT_MIN_ELEMENTS = 1 << 16
#: whether the training step (``training.fused``) splits the pass over torch's threads. Off:
#: measured quiet on the 2-vCPU Zen 4 (three interleaved runs, two threads), the split step's
#: worst BNN+ / BNN++ MLP cell was 1.31-1.33x full precision, the serial one's 1.27-1.29x: the
#: helper thread waits for a core torch's OpenMP workers hold (docs/decisions.md).
#: ``benchmarks/training_step.py --split-passes`` turns it on for an A/B.
SPLIT_PASSES = False


def signswish_pass32(x: np.ndarray, alpha: np.ndarray, beta: float, sign_forward: bool,
                     out: np.ndarray, slope: np.ndarray, inputs: str = "scaled",
                     mu: float = 0.0, channel: tuple[np.ndarray, float] | None = None,
                     threads: int = 1) -> None:
    """The SignSwish pass of float32 latents from ``x`` alone: ``u`` (``inputs``: ``"scaled"``
    ``u = beta x``; ``"prox"`` ``u = (x + mu sign x) (beta / (1 + mu))``, the body's
    ``sign(x) mu + x`` as one exact fused multiply-add), ``s = sigmoid(u)`` (:func:`_expf`:
    torch's vector sigmoid, bitwise), then ``out`` and ``slope`` as :func:`signswish_pass`;
    with ``channel = (extra, fan_in)`` the row's scale ``alpha = (sum |x| + extra) / fan_in``
    first, written into ``alpha`` (``(rows, 1)``; else read from it), as
    :func:`channel_scale_pass` sums. One read of ``x``, two writes: no ``u``, ``s`` or
    scale pass. Rows split over ``threads`` threads (:class:`_RowThreads`) when the latent
    has at least :data:`SPLIT_MIN_ELEMENTS` elements."""
    f32 = np.float32
    prox = SIGNSWISH_INPUTS[inputs] == 1
    scale_u = f32(beta / (1.0 + mu)) if prox else f32(beta)
    extra, fan_in = channel if channel is not None else (np.zeros(0, np.float32), 1.0)
    args = (x, extra, f32(fan_in), alpha, channel is not None, prox, scale_u, f32(mu),
            f32(2.0 * beta), bool(sign_forward), out, slope)

    def job(lo: int, hi: int) -> None:
        _signswish32(*args, lo, hi)

    rows = x.shape[0]
    _ROWS.run(job, rows, threads if x.size >= SPLIT_MIN_ELEMENTS else 1)


@njit(cache=True, nogil=True, boundscheck=False)
def _shift_round_exact(x, one, emin, emax, zero, log, threshold):  # type: ignore[no-untyped-def]
    """One element through ``frexp`` / ``ldexp`` (zero, subnormal, non-finite inputs;
    subnormal results); ``one`` is 1 in ``x``'s dtype."""
    mantissa, k = math.frexp(abs(x))
    floor_e = k - 1
    e = floor_e + (1 if (mantissa + mantissa) >= threshold else 0)
    if zero and (x == 0 or ((e < emin) if log else (floor_e < emin - 1))):
        return one - one  # +0, as the decode of the code (0, 0)
    if x == 0:
        e = emin
    e = min(max(e, emin), emax)
    return (-one if x < 0 else one) * math.ldexp(one, e)


@njit(cache=True, nogil=True, boundscheck=False)
def _shift_round(w, bits, out, out_bits, mant, bias, emin, emax, zero, log, threshold,
                 thr_frac):  # type: ignore[no-untyped-def]
    """From the IEEE bits of normal inputs: ``|w| = 1.f 2^k`` (``k`` the biased exponent less
    ``bias``), ``m >= threshold`` as ``f >= thr_frac``, ``2^e`` written as bits (a loop of
    integer operations); zero, subnormal and non-finite inputs, and every element when a level
    is subnormal, again through :func:`_shift_round_exact`."""
    flat = w.ravel()
    raw = bits.ravel()
    res = out.ravel()
    res_bits = out_bits.ravel()
    wide = raw.dtype.type(1)
    frac_mask = (wide << mant) - wide
    sign_mask = wide << (mant + 8 if mant == 23 else mant + 11)
    top = 2 * bias + 1  # the all-ones biased exponent (inf, nan)
    special = 0
    for i in range(flat.size):
        b = raw[i]
        biased = (b >> mant) & top
        special += (biased == 0) | (biased == top)
        floor_e = biased - bias
        e = floor_e + ((b & frac_mask) >= thr_frac)
        below = (e < emin) if log else (floor_e < emin - 1)
        e = min(max(e, emin), emax)
        value = (sign_mask if b < 0 else 0) | ((e + bias) << mant)
        res_bits[i] = 0 if (zero and below) else value
    if special or emin <= -bias:
        for i in range(flat.size):
            biased = (raw[i] >> mant) & top
            if biased == 0 or biased == top or emin <= -bias:
                res[i] = _shift_round_exact(flat[i], flat.dtype.type(1.0), emin, emax,
                                            zero, log, threshold)


def shift_round_pass(w: np.ndarray, emin: int, emax: int, zero: bool, rounding: str,
                     out: np.ndarray) -> None:
    """``out = sign(w) 2^e(w)``: DeepShift-Q's rounding of ``w`` to the format
    ``[emin, emax]`` (``zero``: with the value 0), ``rounding`` ``"log"`` (``e = k +
    1{m >= sqrt 2}``, ``|w| = m 2^k``, ``m`` in ``[1, 2)``) or ``"linear"`` (``m >= 1.5``);
    exactly ``training.shift.power_of_two_codes`` followed by ``codes_to_weight`` (the threshold
    compared in ``w``'s dtype, as torch compares). ``w`` and ``out`` C-contiguous, float32 or
    float64."""
    dtype = w.dtype.type
    threshold = dtype(math.sqrt(2.0) if rounding == "log" else 1.5)
    ints: Any = np.int32 if w.dtype == np.float32 else np.int64
    mant, bias = (23, 127) if w.dtype == np.float32 else (52, 1023)
    thr_frac = ints(int(np.array(threshold).view(ints)) & ((1 << mant) - 1))
    _shift_round(w, w.view(ints), out, out.view(ints), mant, bias, int(emin), int(emax),
                 bool(zero), rounding == "log", threshold, thr_frac)


@njit(cache=True, nogil=True, boundscheck=False, fastmath={"reassoc"})
def _row_abs_sum(x, j):  # type: ignore[no-untyped-def]
    """``sum_i |x[j, i]|``, reassociated (partial sums: it vectorises). Only here: elsewhere
    reassociation would let LLVM reorder the outputs' roundings."""
    acc = x.dtype.type(0.0)
    for i in range(x.shape[1]):
        acc += abs(x[j, i])
    return acc


@njit(cache=True, nogil=True, boundscheck=False)
def _channel(x, extra, fan_in, alpha, out, forward, mu, denominator):  # type: ignore[no-untyped-def]
    rows, cols = x.shape
    zero = x.dtype.type(0.0)
    one = x.dtype.type(1.0)
    for j in range(rows):
        a = (_row_abs_sum(x, j) + extra[j]) / fan_in
        alpha[j, 0] = a
        if forward == 1:  # alpha sign(x)
            for i in range(cols):
                xv = x[j, i]
                out[j, i] = (one if xv > zero else (-one if xv < zero else zero)) * a
        elif forward == 2:  # alpha (x + mu sign x) / (1 + mu): mu sign x is exact
            for i in range(cols):
                xv = x[j, i]
                sg = one if xv > zero else (-one if xv < zero else zero)
                out[j, i] = (_fma(mu, sg, xv) / denominator) * a


#: ``forward`` of :func:`channel_scale_pass`: the value of ``F`` the sweep also writes
CHANNEL_FORWARDS = {"none": 0, "sign": 1, "dist2-prox": 2}


def channel_scale_pass(x: np.ndarray, extra: np.ndarray, fan_in: float, alpha: np.ndarray,
                       out: np.ndarray | None = None, forward: str = "none",
                       mu: float = 0.0) -> None:
    """``alpha_j = (sum_i |x_ji| + extra_j) / fan_in`` into ``alpha`` (``(rows, 1)``) and, in the
    same sweep (each row read twice from L1), ``out = alpha F(x)`` for ``forward`` ``"sign"``
    (BinaryConnect, BNN) or ``"dist2-prox"`` (ProxConnect: ``(x + mu sign x) / (1 + mu)``, one
    fused multiply-add as torch's ``add(alpha=mu)``): the layer's per-channel scale and the
    forward quantizer. The sum is reassociated (the reference's ``vector_norm`` sums in its own
    order too)."""
    dtype = x.dtype.type
    _channel(x, extra, dtype(fan_in), alpha, x if out is None else out,
             CHANNEL_FORWARDS[forward] if out is not None else 0, dtype(mu), dtype(1.0 + mu))


__all__ = ["CHANNEL_FORWARDS", "SIGNSWISH_INPUTS", "channel_scale_pass", "shift_round_pass",
           "sigmoid32", "signswish_pass", "signswish_pass32"]


key_on_package(globals())  # cached kernels recompile when any kernels source changes
