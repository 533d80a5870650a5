"""Deploy check: export a trained model and run it on the kernels over a whole test set.

:func:`deploy` is what ``proxcompress export --run DIR --out DIR`` does: the model (eval mode,
hard quantization) is exported with :func:`~proxcompress.training.export` (which already refuses
when a node of the kernels differs from torch on an example batch) into a scratch folder beside
``out``, loaded back with :func:`proxcompress.kernels.load`, and both run every test sample;
only then are the files moved into ``out`` (tensors first, the manifest last, as ``export``
commits), so a failure anywhere, a missing GPU or Ctrl-C included, leaves ``out`` as it was.
The report says whether the deployed model classifies as the torch model does (accuracy of
each, the fraction of equal predictions, the largest logit difference relative to the batch's
largest logit, and the fraction of samples whose logits all lie within
:data:`LOGIT_TOLERANCE` of that: with binary activations a pre-activation within float rounding
of a threshold may flip, changing that sample's logits by a step while the others agree), how
large the export is against float32 weights, and how long one batch takes on each side (median
of a few calls after a warm-up: an indication on a shared machine, not a benchmark; that is
``benchmarks/kernels.py models``).
"""

from __future__ import annotations

import os
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from proxcompress.atomic import nearest_folder, scratch_folder
from proxcompress.errors import InvalidInputError
from proxcompress.training.data import Dataset, input_grid
from proxcompress.training.exporter import MANIFEST, TENSORS, export
from proxcompress.training.layers import hard_quantization

#: a sample's logits are "close" when each lies within this share of the batch's largest logit
#: of torch's (the report's ``close_logits``)
LOGIT_TOLERANCE = 1e-4

#: test samples the export's own check runs on (export's ``example``)
EXAMPLE_SAMPLES = 64


def logit_error(ref: np.ndarray, got: np.ndarray) -> np.ndarray:
    """Per sample: the largest difference of its logits ``got`` from torch's ``ref``, relative
    to the batch's largest torch logit (a sample is close when this is <= LOGIT_TOLERANCE)."""
    return np.abs(got - ref).max(axis=1) / max(float(np.abs(ref).max()), 1e-30)


def _median_ms(fn: Any, repeats: int) -> float:
    fn()  # warm-up: compilation / cache load, threads
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return round(statistics.median(times) * 1e3, 3)


def deploy(model: nn.Module, out: str | os.PathLike[str], test: Dataset, *,
           backend: str = "auto", batch: int = 256, repeats: int = 5) -> dict[str, Any]:
    """Export ``model`` into ``out`` and compare the kernels with torch on ``test``.

    Args:
        model: a trained model of the layers ``export`` supports (left in eval mode).
        out: the export folder (as for ``export``).
        test: the samples to classify (all of them).
        backend: the kernels' backend for :func:`proxcompress.kernels.load`.
        batch: samples per call, for the classification and the timing.
        repeats: timed calls per side.

    Returns:
        The report (see the module docstring); ``manifest`` is the manifest's path.

    Raises:
        InvalidInputError: ``batch`` or ``repeats`` below 1, an empty ``test``, an ``out`` that
            is not a folder, or whatever ``export`` / ``load`` refuse (``out`` is untouched).
    """
    if batch < 1:
        raise InvalidInputError("batch", f"= {batch} must be >= 1")
    if repeats < 1:
        raise InvalidInputError("repeats", f"= {repeats} must be >= 1")
    if len(test) == 0:
        raise InvalidInputError("test", "has no samples")
    root = Path(out)
    if root.exists() and not root.is_dir():
        raise InvalidInputError("out", f"{str(root)!r} exists and is not a folder")
    # the scratch folder lives in the nearest existing folder above ``out`` (same file system),
    # so that a failure leaves no new folder behind, and is named for remove_stale after a
    # SIGKILL; ``out`` and its missing parents are created only once everything passed
    scratch = scratch_folder(nearest_folder(root.parent) / root.name)
    try:
        report = _check_on_test(model, scratch, test, backend, batch, repeats)
        root.mkdir(parents=True, exist_ok=True)
        for name in (TENSORS, MANIFEST):  # the manifest last: export's commit point
            os.replace(scratch / name, root / name)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {"manifest": str(root / MANIFEST), **report}


def deploy_run(run_dir: str | os.PathLike[str], out: str | os.PathLike[str], *,
               backend: str = "auto", batch: int = 256) -> dict[str, Any]:
    """:func:`deploy` of a run folder's latest checkpoint on the run's own test set (its
    ``data`` section, as :func:`~proxcompress.training.trainer.run_data` reads it): what
    ``proxcompress export --run DIR --out DIR`` does. The report gains ``run``."""
    from proxcompress.training.trainer import load_run, run_data  # the whole wing

    cfg, model = load_run(run_dir, kinds=("classification",))
    _, _, test = run_data(cfg)
    return {"run": str(run_dir), **deploy(model, out, test, backend=backend, batch=batch)}


def _check_on_test(model: nn.Module, folder: Path, test: Dataset, backend: str, batch: int,
                   repeats: int) -> dict[str, Any]:
    from proxcompress.kernels import load

    model.eval()
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    export(model, folder, example=test.x[:EXAMPLE_SAMPLES].to(device),
           input_grid=input_grid(test))
    loaded = load(folder, backend=backend)  # type: ignore[arg-type]
    on_device, to_host = _transfer(loaded.backend)

    def torch_logits(x: torch.Tensor) -> np.ndarray:
        with torch.no_grad(), hard_quantization(model):
            return model(x.to(device)).cpu().numpy()

    def kernel_logits(x: torch.Tensor) -> np.ndarray:
        return to_host(loaded(on_device(x.numpy())))

    agree = correct_torch = correct_kernels = close = 0
    max_rel = 0.0
    for i in range(0, len(test), batch):
        x, y = test.x[i:i + batch], test.y[i:i + batch].numpy()
        ref, got = torch_logits(x), kernel_logits(x)
        per_sample = logit_error(ref, got)
        max_rel = max(max_rel, float(per_sample.max()))
        close += int((per_sample <= LOGIT_TOLERANCE).sum())
        p_ref, p_got = ref.argmax(1), got.argmax(1)
        agree += int((p_ref == p_got).sum())
        correct_torch += int((p_ref == y).sum())
        correct_kernels += int((p_got == y).sum())
    n = len(test)
    first = test.x[:batch]
    xb = on_device(first.numpy())
    torch_ms = _median_ms(lambda: torch_logits(first), repeats)
    kernels_ms = _median_ms(lambda: to_host(loaded(xb)), repeats)
    export_bytes = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
    float_bytes = 4 * sum(t.numel() for t in model.state_dict().values() if t.is_floating_point())
    return {
        "backend": loaded.backend,
        "samples": n,
        "torch_accuracy": 100.0 * correct_torch / n,  # as trainer.evaluate computes it
        "kernels_accuracy": 100.0 * correct_kernels / n,
        "agreement": round(agree / n, 6),
        "max_relative_logit_error": max_rel,
        "close_logits": round(close / n, 6),
        "logit_tolerance": LOGIT_TOLERANCE,
        "export_bytes": export_bytes,
        "float32_state_bytes": float_bytes,
        "batch": min(batch, n),
        "torch_ms_per_batch": torch_ms,
        "kernels_ms_per_batch": kernels_ms,
        "timing_note": f"median of {repeats} calls after a warm-up, this process, one batch",
    }


def _transfer(backend: str) -> tuple[Any, Any]:
    """``(to the backend's device, back to NumPy)``."""
    if backend != "cupy":
        return (lambda a: a), (lambda a: a)
    import cupy

    def back(a: Any) -> np.ndarray:
        host = cupy.asnumpy(a)  # synchronizes, so the timing includes the kernels
        return np.asarray(host)

    return cupy.asarray, back


__all__ = ["EXAMPLE_SAMPLES", "LOGIT_TOLERANCE", "deploy", "deploy_run", "logit_error"]
