"""Operation counts and an energy estimate per model: float, binary, shift, Euclid and AdderNet
versions of the same CNN, one image of 1 x 28 x 28.

    python benchmarks/energy.py [--out FILE]        # JSON to stdout, a markdown table to stderr

Counts come from forward hooks on the torch models (the architecture of the result tables'
CNN, ``configs/results/cnn-*``), each layer costed as the kernels run it at inference:

=========  ==============================================================================
float      a multiply and an add (FP32) per multiply-accumulate (MAC)
binary     weights and activations +-1 (first / last layers float): per output, one XNOR
           word, one popcount and one INT32 add per 64 MACs, then the per-channel threshold
           (one FP32 multiply-add); binary weights on float inputs: one FP32 add per MAC
shift      the exact integer path (``kernels.intmul``): int8 activations, one shift and one
           INT32 add per MAC
euclid     integer squared differences: an INT8 subtraction, an 8-bit multiply (the square)
           and an INT32 add per MAC
adder      AdderNet L1: an INT8 subtraction, an absolute value (counted as an INT8 add) and
           an INT32 add per MAC
=========  ==============================================================================

Elementwise work is one FP32 add (a comparison or a clamp) per output element of each
activation and pooling module, in every version alike (BatchNorm is folded at load: none; a
binary version's clamp before a sign is absorbed by the threshold end to end, so its count is an
upper bound). Bytes moved: every weight read once in its stored format
(FP32 4 bytes, sign bits 1/8, 4-bit shift codes 1/2, int8 1) plus every activation read once
and written once in the format the next layer reads (FP32 4 bytes, packed signs 1/8 between
binary layers, int8 1).

Energy (45 nm, 0.9 V; M. Horowitz, "Computing's energy problem (and what we can do about it)",
ISSCC 2014, figure 1.1.9), per operation: FP32 multiply 3.7 pJ, FP32 add 0.9 pJ, INT32 add
0.1 pJ, INT8 add 0.03 pJ, INT8 multiply 0.2 pJ; memory: 64-bit read of an 8 KB SRAM 10 pJ, 32 KB
20 pJ, 1 MB 100 pJ, DRAM 1.3-2.6 nJ. Horowitz gives no figure for shifts, XNOR or popcount; this
script's assumptions, stated in the output: a shift of an INT32 costs an INT32 add (a barrel
shifter is a few adder-sized stages), a 64-bit popcount two INT32 adds (a 64-input adder tree of
63 full adders, about two 32-bit adders' worth), a 64-bit XNOR one INT8 add. Bytes are costed at
the 32 KB SRAM figure (2.5 pJ per byte): every model here fits on chip.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from typing import Any

#: pJ per operation (Horowitz, ISSCC 2014, 45 nm) and the assumptions marked "assumed"
ENERGY_PJ: dict[str, float] = {
    "fp32_mult": 3.7,
    "fp32_add": 0.9,
    "int32_add": 0.1,
    "int8_add": 0.03,
    "int8_mult": 0.2,
    "shift": 0.1,  # assumed: an INT32 add
    "popcount64": 0.2,  # assumed: two INT32 adds
    "xnor64": 0.03,  # assumed: an INT8 add
}
SRAM_PJ_PER_BYTE = 20.0 / 8  # 32 KB SRAM, 64-bit read
SOURCES = {
    "figures": "M. Horowitz, Computing's energy problem (and what we can do about it), "
               "ISSCC 2014, Fig. 1.1.9 (45 nm, 0.9 V)",
    "assumed": ["shift = INT32 add", "popcount64 = 2 INT32 adds", "xnor64 = INT8 add",
                "bytes at the 32 KB SRAM read energy (2.5 pJ/byte)"],
}
VERSIONS = ("float", "binary", "shift", "euclid", "adder")


def build_versions() -> dict[str, Any]:
    """The result tables' CNN (VGG width 16, one conv per stage) in each version, eval mode."""
    from proxcompress.training.euclid import HomotopySchedule
    from proxcompress.training.models import build_model
    from proxcompress.training.mulfree import MulFreeRecipe, mulfree_model
    from proxcompress.training.quantize import QuantRecipe, quantize_model

    def cnn(activation: str) -> Any:
        return build_model("vgg", width=16, stages=(1, 1, 1), activation=activation, seed=0)

    models = {
        "float": cnn("relu"),
        "binary": quantize_model(cnn("hardtanh"), QuantRecipe("bnn", "bnn")),
        "shift": mulfree_model(cnn("relu"), MulFreeRecipe("denseshift"), seed=0),
        "euclid": mulfree_model(cnn("relu"), MulFreeRecipe("euclid",
                                                           homotopy=HomotopySchedule("step")),
                                seed=0),
        "adder": mulfree_model(cnn("relu"), MulFreeRecipe("adder",
                                                          homotopy=HomotopySchedule("step")),
                               seed=0),
    }
    return {name: m.eval() for name, m in models.items()}


def _kind(module: Any) -> str | None:
    """The kernel a layer runs on, from its class; None for elementwise modules."""
    from torch import nn

    from proxcompress.training.euclid import AdderConv2d, AdderLinear, EuclidConv2d, EuclidLinear
    from proxcompress.training.layers import BinaryConv2d, BinaryLinear
    from proxcompress.training.shift import ShiftLayer

    if isinstance(module, BinaryConv2d | BinaryLinear):
        return "binary_act" if module.input_quantizer is not None else "binary_weight"
    if isinstance(module, ShiftLayer):
        return "shift"
    if isinstance(module, EuclidConv2d | EuclidLinear):
        return "euclid"
    if isinstance(module, AdderConv2d | AdderLinear):
        return "adder"
    if isinstance(module, nn.Conv2d | nn.Linear):
        return "float"
    return None


#: bytes per stored weight, and per activation element a layer of this kind reads
WEIGHT_BYTES = {"float": 4.0, "binary_act": 1 / 8, "binary_weight": 1 / 8, "shift": 0.5,
                "euclid": 1.0, "adder": 1.0}
INPUT_BYTES = {"float": 4.0, "binary_act": 1 / 8, "binary_weight": 4.0, "shift": 1.0,
               "euclid": 1.0, "adder": 1.0}


def layer_ops(kind: str, macs: int, outputs: int, fan_in: int) -> Counter[str]:
    """Operations of one layer: ``macs`` multiply-accumulates, ``outputs`` outputs of
    ``fan_in`` inputs each."""
    words = outputs * -(-fan_in // 64)
    table: dict[str, dict[str, int]] = {
        "float": {"fp32_mult": macs, "fp32_add": macs},
        "binary_act": {"xnor64": words, "popcount64": words, "int32_add": words,
                       "fp32_mult": outputs, "fp32_add": outputs},
        "binary_weight": {"fp32_add": macs, "fp32_mult": outputs},
        "shift": {"shift": macs, "int32_add": macs, "fp32_mult": outputs},
        "euclid": {"int8_add": macs, "int8_mult": macs, "int32_add": macs,
                   "fp32_mult": outputs},
        "adder": {"int8_add": 2 * macs, "int32_add": macs, "fp32_mult": outputs},
    }
    return Counter(table[kind])


def count(model: Any, shape: tuple[int, ...] = (1, 1, 28, 28)) -> dict[str, Any]:
    """Per-layer and total operation counts, bytes and energy of ``model`` on one input."""
    import torch
    from torch import nn

    from proxcompress.training.layers import hard_quantization

    FREE = (nn.BatchNorm1d, nn.BatchNorm2d, nn.Flatten, nn.Dropout, nn.Identity)  # noqa: N806
    rows: list[dict[str, Any]] = []
    elementwise = 0
    hooks = []

    def on_layer(module: Any, args: Any, out: Any) -> None:
        nonlocal elementwise
        kind = _kind(module)
        x = args[0]
        if kind is None:
            if not list(module.children()) and not isinstance(module, FREE):
                elementwise += out.numel()
            return
        if isinstance(module, nn.Conv2d):
            fan_in = module.in_channels // module.groups * module.kernel_size[0] \
                * module.kernel_size[1]
        else:
            fan_in = module.in_features
        outputs = out.numel()
        macs = outputs * fan_in
        ops = layer_ops(kind, macs, outputs, fan_in)
        weight_bytes = module.weight.numel() * WEIGHT_BYTES[kind]
        act_bytes = x.numel() * INPUT_BYTES[kind]
        rows.append({"layer": type(module).__name__, "kind": kind, "macs": macs,
                     "outputs": outputs, "ops": dict(ops), "weight_bytes": weight_bytes,
                     "input_bytes": act_bytes})

    for module in model.modules():
        if module is not model:
            hooks.append(module.register_forward_hook(on_layer))
    try:
        with torch.no_grad(), hard_quantization(model):
            model(torch.zeros(shape))
    finally:
        for h in hooks:
            h.remove()
    # outputs are written once in the format the next layer reads (its input bytes)
    out_bytes = sum(r["input_bytes"] for r in rows[1:]) + rows[-1]["outputs"] * 4.0
    totals: Counter[str] = Counter()
    for r in rows:
        totals.update(r["ops"])
    totals["fp32_add"] += elementwise
    moved = sum(r["weight_bytes"] + r["input_bytes"] for r in rows) + out_bytes
    compute = sum(ENERGY_PJ[op] * n for op, n in totals.items())
    return {
        "layers": rows,
        "macs": sum(r["macs"] for r in rows),
        "ops": dict(sorted(totals.items())),
        "multiplies": totals["fp32_mult"] + totals["int8_mult"],
        "adds": totals["fp32_add"] + totals["int32_add"] + totals["int8_add"],
        "shifts": totals["shift"],
        "popcounts": totals["popcount64"],
        "bytes_moved": moved,
        "energy_pj": {"compute": round(compute, 1),
                      "memory": round(moved * SRAM_PJ_PER_BYTE, 1),
                      "total": round(compute + moved * SRAM_PJ_PER_BYTE, 1)},
    }


def table(result: dict[str, Any]) -> str:
    lines = ["| version | MACs | multiplies | adds | shifts | popcounts (64-bit) | bytes moved |"
             " compute energy (nJ) | memory energy (nJ) | total (nJ) | vs float |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    base = result["models"]["float"]["energy_pj"]["total"]
    for name, r in result["models"].items():
        e = r["energy_pj"]
        lines.append(
            f"| {name} | {r['macs']:,} | {r['multiplies']:,} | {r['adds']:,} | {r['shifts']:,}"
            f" | {r['popcounts']:,} | {r['bytes_moved']:,.0f} | {e['compute'] / 1e3:.1f}"
            f" | {e['memory'] / 1e3:.1f} | {e['total'] / 1e3:.1f} | {base / e['total']:.1f}x |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=None, help="also write the JSON here (atomically)")
    args = parser.parse_args(argv)
    result = {"benchmark": "energy", "input": [1, 1, 28, 28], "energy_pj": ENERGY_PJ,
              "sram_pj_per_byte": SRAM_PJ_PER_BYTE, "sources": SOURCES,
              "models": {name: count(m) for name, m in build_versions().items()}}
    print(json.dumps(result, indent=2))
    if args.out:
        from proxcompress.atomic import write_json_atomic

        write_json_atomic(args.out, result)
    print(table(result), file=sys.stderr)
    return 0


if __name__ == "__main__":
    from proxcompress.cli import quiet_on_closed_pipe

    raise SystemExit(quiet_on_closed_pipe(main))
