"""VGGSmall stores its activations channels-last after the first convolution (a speed choice,
docs/decisions.md): the same function as the NCHW model up to float rounding, parameters and
their gradients in the default layout (safetensors checkpoints, pruning by slicing)."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from proxcompress.training.models.cnn import VGGSmall
from proxcompress.training.quantize import QuantRecipe


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("activation", ["relu", "hardtanh"])
@pytest.mark.parametrize("binary", [None, "bnn+"])
def test_channels_last_is_the_nchw_model_up_to_rounding(activation: str, binary: str | None,
                                                       dtype: torch.dtype) -> None:
    """The outputs agree to rounding (1e-9 in float64, 1e-4 in float32), and so do the
    gradients, except below the last pooling of a model with binary weights *and* binary
    activations: its convolutions output integer multiples of the channel scale, so a max-pool
    window often holds exact ties, which the two layouts' rounding (1e-15 in float64) breaks
    differently: the gradient then goes to another, equally valid, argmax. The classifier's
    gradient (above every pooling) agrees there too."""
    torch.manual_seed(0)
    nhwc = VGGSmall(1, 28, 10, 8, (1, 1, 1), activation)
    if binary is not None:
        QuantRecipe(weights=binary, activations="bnn" if activation == "hardtanh" else None
                    ).apply(nhwc)
    nhwc = nhwc.to(dtype)
    nchw = copy.deepcopy(nhwc)
    nchw.channels_last = False
    x = torch.randn(16, 1, 28, 28, generator=torch.Generator().manual_seed(1), dtype=dtype)
    y = torch.randint(0, 10, (16,), generator=torch.Generator().manual_seed(2))
    outs, grads = [], []
    for model in (nchw, nhwc):
        out = model(x)
        F.cross_entropy(out, y).backward()
        outs.append(out.detach())
        grads.append({n: p.grad for n, p in model.named_parameters() if p.grad is not None})
    tol = {"rtol": 1e-9, "atol": 1e-10} if dtype == torch.float64 else {"rtol": 1e-4,
                                                                          "atol": 1e-5}
    torch.testing.assert_close(outs[1], outs[0], **tol)
    assert grads[0].keys() == grads[1].keys() and grads[0]
    ties = binary is not None and activation == "hardtanh"
    for name, g in grads[1].items():
        if not ties or name.startswith("head."):
            torch.testing.assert_close(g, grads[0][name], rtol=100 * tol["rtol"],
                                       atol=10 * tol["atol"])
        assert g.is_contiguous(), name
    for name, p in nhwc.named_parameters():
        assert p.is_contiguous(), name


def test_the_layout_is_channels_last_after_the_first_conv() -> None:
    model = VGGSmall(1, 28, 10, 8, (1, 1), "relu")
    seen = []
    model.pool0.register_forward_hook(lambda m, i, o: seen.append(i[0]))
    model(torch.randn(4, 1, 28, 28))
    assert seen[0].is_contiguous(memory_format=torch.channels_last)
    assert not seen[0].is_contiguous()
