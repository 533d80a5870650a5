"""benchmarks/energy.py: operation counts in closed form for the result tables' CNN, and the
energy total is the sum of its priced parts."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def energy() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_energy", ROOT / "benchmarks" / "energy.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def counts(energy: ModuleType) -> dict:
    return {name: energy.count(m) for name, m in energy.build_versions().items()}


# VGG width 16, one 3x3 conv per stage, 28 -> 14 -> 7 -> 3 (pools), then a 10-way linear
CONVS = [(28 * 28 * 16, 1 * 9), (14 * 14 * 32, 16 * 9), (7 * 7 * 64, 32 * 9)]


def test_macs_in_closed_form(counts: dict) -> None:
    layers = counts["float"]["layers"]
    assert [(r["outputs"], r["macs"] // r["outputs"]) for r in layers[:3]] == CONVS
    assert layers[3]["macs"] == layers[3]["outputs"] * (64 * 3 * 3) == 5760
    for name in ("binary", "shift", "euclid", "adder"):  # same CNN: same MACs, per layer too
        assert [r["macs"] for r in counts[name]["layers"]] == [r["macs"] for r in layers]


def test_binary_middle_layers_popcount_words(counts: dict) -> None:
    mid = counts["binary"]["layers"][1:3]
    assert [r["kind"] for r in mid] == ["binary_act", "binary_act"]
    words = sum(out * -(-fan_in // 64) for out, fan_in in CONVS[1:])
    assert counts["binary"]["popcounts"] == words
    float_macs = CONVS[0][0] * CONVS[0][1] + 5760
    # float first/last layers multiply per MAC; every other layer once per output (scale)
    assert counts["binary"]["multiplies"] == float_macs + sum(o for o, _ in CONVS[1:])
    assert counts["shift"]["shifts"] == sum(o * f for o, f in CONVS[1:])
    assert counts["euclid"]["multiplies"] > counts["float"]["multiplies"] > counts["adder"][
        "multiplies"]


def test_energy_is_the_priced_sum(energy: ModuleType, counts: dict) -> None:
    for r in counts.values():
        compute = sum(energy.ENERGY_PJ[op] * n for op, n in r["ops"].items())
        assert r["energy_pj"]["compute"] == pytest.approx(compute, abs=0.1)
        assert r["energy_pj"]["memory"] == pytest.approx(
            r["bytes_moved"] * energy.SRAM_PJ_PER_BYTE, abs=0.1)
    # float costs most; Horowitz: an FP32 MAC is 4.6 pJ
    assert counts["float"]["energy_pj"]["compute"] >= 4.6 * counts["float"]["macs"]
    assert min(counts, key=lambda n: counts[n]["energy_pj"]["total"]) == "binary"
