"""A binary layer reading packed signs, its clip and the float head after it, as one step.

A binary MLP ends ``binary_linear`` (binary inputs, read packed) -> folded BatchNorm ->
``hardtanh`` -> float ``linear`` (the head). Run node by node, the binary layer's float output
``float32(acc) * scale + bias`` is written by NumPy in two passes (each a fresh 512 KB array
at batch 256), clipped in a third, and multiplied by the head's ten rows through torch's GEMM,
which is poorly shaped for ten outputs: 0.19 ms of the MLP's 1.1 ms at batch 256 on one thread,
against 0.09 ms for the binary GEMM itself. Here (:func:`.cpu_mlp.head_tail`) each row's
clipped activations are computed in float32 in NumPy's order (bit-equal to the unfused steps)
into a buffer of 4 rows and the head's dot products accumulate in float64, 4 rows by 2 outputs
at a time (each load of an activation and of a weight feeds 2 and 4 sums: one dot product at a
time was bound by loads, 0.16 -> 0.09 ms), reassociated into vector lanes (rounded once to
float32: closer to the exact value than torch's float32 sums; not bit-equal to them).

Registered as a load-time fusion (:data:`~.model.FUSIONS`) of the numba backend: the binary layer
must be the packed plan's consumer only (not a producer), every node of the group used once, at
most one ``hardtanh`` and identities between, the head a 2-d ``linear``. A batch that reaches the
group as floats (a producer's output exactly 0) runs the unfused steps.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import model as _model


def _groups(nodes: list[Any], uses: dict[str, int], output: str) -> list[_model.Fused]:
    plan = _model._packed_plan(nodes, output)
    by_name = {n.name: n for n in nodes}
    groups = []
    for head in nodes:
        if head.op != "linear":
            continue
        found = _model._clipped_consumer(head.inputs[0], "binary_linear", by_name, uses, output,
                                         plan)
        if found is None:
            continue
        src, chain, bounds = found
        absorbed = (src.name, *[n.name for n in reversed(chain)])
        groups.append(_model.Fused(head.name, (src.inputs[0],), absorbed,
                                   _builder(src, chain[::-1], head, bounds)))
    return groups


def _builder(binary: Any, chain: list[Any], head: Any, bounds: tuple[float, float]) -> Any:
    def build() -> Any:
        from . import cpu, cpu_mlp

        put = _model._device_put("numba")
        steps = [_model._binary_packed(binary, {"consume"})]
        steps += [_model._build(n, "numba", put) for n in chain]
        steps.append(_model._build(head, "numba", put))

        def unfused(x: Any) -> Any:
            for fn in steps:
                x = fn(x)
            return x

        k = binary.attr("k", int)
        words = binary.tensor("words", np.uint64, ndim=2)
        n_out = words.shape[0]
        c = binary.input_scale()
        assert c is not None  # the packed plan's consumer has binary inputs
        scale = (binary.tensor("scale", np.float32, (n_out,)) * np.float32(c)).astype(np.float32)
        bias = binary.optional_tensor("bias", np.float32, (n_out,))
        zero_bias = bias if bias is not None else np.zeros(n_out, np.float32)
        lo, hi = np.float32(bounds[0]), np.float32(bounds[1])
        wh = head.tensor("weight", np.float32, ndim=2)
        bh = head.optional_tensor("bias", np.float32, (wh.shape[0],))
        wh64 = np.ascontiguousarray(wh, dtype=np.float64)
        bh64 = (bh if bh is not None else np.zeros(wh.shape[0], np.float32)).astype(np.float64)
        panels = cpu.panels_for(words)
        if wh.shape[1] != n_out:
            return unfused  # the head's validation (its own step) reports the mismatch

        def run(x: Any) -> Any:
            if not isinstance(x, _model._Packed):
                return unfused(x)
            n = x.words.shape[0]
            acc = np.empty((n, n_out), np.int32)
            cpu.binary_matmul(x.words, words, k, acc, panels)
            out = np.empty((n, wh.shape[0]), np.float32)
            cpu.launch(cpu_mlp.head_tail, n * n_out * wh.shape[0], -(-n // 4), acc, scale,
                       zero_bias, lo, hi, wh64, bh64, out)
            return out

        return run

    return build


_model.register_fusion(_groups)
