"""Input transformations of the robustness study: identities, closed forms, and the clean
accuracy equal to the run's own test accuracy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from training_helpers import tiny_config

from proxcompress.cli import main
from proxcompress.errors import InvalidInputError
from proxcompress.training.robustness import TRANSFORMS, transform
from proxcompress.training.trainer import train


def _images() -> torch.Tensor:
    return torch.rand((3, 1, 28, 28), generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize(("kind", "identity"), [("rotation", 0.0), ("translation", 0.0),
                                                ("scaling", 1.0), ("noise", 0.0),
                                                ("contrast", 1.0)])
def test_identity_strengths(kind: str, identity: float) -> None:
    x = _images()
    torch.testing.assert_close(transform(x, kind, identity), x, atol=1e-6, rtol=0)


def test_closed_forms() -> None:
    x = _images()
    # a quarter turn resamples exactly on the pixel grid: torch.rot90 (counter-clockwise
    # rotation of the content in image coordinates with y pointing down)
    turned = transform(x, "rotation", 90.0)
    assert any(torch.allclose(turned, torch.rot90(x, k, dims=(2, 3)), atol=1e-5)
               for k in (1, 3))
    shifted = transform(x, "translation", 2.0)  # content moves by 2 pixels, zeros enter
    torch.testing.assert_close(shifted[..., 2:, 2:], x[..., :-2, :-2], atol=1e-5, rtol=0)
    assert float(shifted[..., :2, :].abs().max()) <= 1e-7
    c = transform(x, "contrast", 0.5)
    torch.testing.assert_close(c.mean(dim=(1, 2, 3)), x.mean(dim=(1, 2, 3)))
    torch.testing.assert_close(c - c.mean(dim=(1, 2, 3), keepdim=True),
                               0.5 * (x - x.mean(dim=(1, 2, 3), keepdim=True)))
    n1, n2 = transform(x, "noise", 0.2, seed=4), transform(x, "noise", 0.2, seed=4)
    assert torch.equal(n1, n2) and 0.0 <= float(n1.min()) and float(n1.max()) <= 1.0
    with pytest.raises(InvalidInputError, match="kind"):
        transform(x, "blur", 1.0)


def test_clean_accuracy_is_the_runs_test_accuracy(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    summary = train(tiny_config(data={"name": "embedded", "train_subset": 400,
                                      "test_subset": 200}, epochs=1), run)
    out = tmp_path / "robust.json"
    assert main(["robustness", "--run", str(run), "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["clean"] == pytest.approx(summary["test_accuracy"], abs=1e-9)
    assert set(report) >= set(TRANSFORMS) and report["samples"] == 200
    assert all(0 <= v <= 100 for kind in TRANSFORMS for v in report[kind].values())
    capsys.readouterr()
    assert main(["robustness", "--run", str(run), "--json", str(tmp_path / "no" / "x")]) == 2
    synthetic = tmp_path / "synthetic"
    train(tiny_config(epochs=1), synthetic)
    assert main(["robustness", "--run", str(synthetic)]) == 2
