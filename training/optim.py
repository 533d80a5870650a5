"""ProxConnect / PC++ training: an optimizer wrapper that drives the annealing parameter ``mu``.

ProxConnect (Dockhorn et al., NeurIPS 2021, arXiv:2110.13220; restated as AProx in PARQ,
Jin et al., ICML 2025, eq. (11)) sharpens its proximal quantizer with the *aggregated* step size:

.. math::

    \\theta_{t+1} = \\theta_t - \\eta_t g_t, \\qquad
    \\mu_t = \\mu_0 + \\lambda \\sum_{s \\le t} \\eta_s, \\qquad
    w_{t+1} = P^{\\mu_t}(\\theta_{t+1}),

so that ``sum eta_t = oo`` makes ``mu_t -> oo`` and ``P^mu`` hardens (soft to hard). The wrapper
keeps model code unchanged: after every ``step()`` of the wrapped optimizer it adds the current
learning rate ``eta_t`` (of ``param_groups[0]``) to the running sum and writes ``mu_t`` into
every quantized layer (:func:`~proxcompress.training.layers.set_mu`). The constant ``lambda``
and the offset ``mu_0`` are [U] (methods.md section 1: "the paper's final step and exact offset
or constant in mu_t: [U]"); other schedules are pluggable (:class:`MuSchedule`).

With an adaptive optimizer (Adam) ``eta_t`` is the nominal learning rate, not the per-coordinate
step; the sum still grows like ``sum eta_t``.

It can also clip the latent weights of binary layers to ``[-c, c]`` after each step
(BinaryConnect's clipping, Courbariaux et al. 2015), off with ``latent_clip=None``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from proxcompress.errors import InvalidInputError
from proxcompress.training.layers import quantized_modules, set_mu

ScheduleKind = Literal["aggregate", "linear", "exponential", "constant"]


@dataclass(frozen=True)
class MuSchedule:
    """How ``mu`` evolves with the step ``t`` (``t = 0`` before the first step).

    Kinds:
        ``aggregate`` (default): ``mu_t = start + scale * sum_{s <= t} eta_s`` (ProxConnect).
        ``linear``: ``mu_t = start + (end - start) min(t / total_steps, 1)``.
        ``exponential``: ``mu_t = start (end / start)^{min(t / total_steps, 1)}`` (``start > 0``).
        ``constant``: ``mu_t = start``.

    Attributes:
        kind: one of the kinds above.
        scale: ``lambda`` of ``aggregate``.
        start: ``mu_0``.
        end: final ``mu`` of ``linear`` / ``exponential``.
        total_steps: steps over which ``linear`` / ``exponential`` reach ``end``.
    """

    kind: ScheduleKind = "aggregate"
    scale: float = 100.0
    start: float = 0.0
    end: float = 100.0
    total_steps: int = 1

    def __post_init__(self) -> None:
        if self.kind not in ("aggregate", "linear", "exponential", "constant"):
            raise InvalidInputError(
                "mu.schedule",
                f"= {self.kind!r}; accepted: aggregate, linear, exponential, constant",
            )
        for name in ("scale", "start", "end"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise InvalidInputError(f"mu.{name}", f"= {value} must be finite and >= 0")
        if self.kind == "exponential" and self.start <= 0:
            raise InvalidInputError("mu.start", "must be > 0 for the exponential schedule")
        if self.total_steps < 1:
            raise InvalidInputError("mu.total_steps", f"= {self.total_steps} must be >= 1")

    def value(self, step: int, lr_sum: float) -> float:
        """``mu`` after ``step`` steps whose learning rates sum to ``lr_sum``."""
        if self.kind == "aggregate":
            return self.start + self.scale * lr_sum
        if self.kind == "constant":
            return self.start
        frac = min(step / self.total_steps, 1.0)
        if self.kind == "linear":
            return self.start + (self.end - self.start) * frac
        return self.start * (self.end / self.start) ** frac


class ProxConnectOptimizer:
    """Wrap ``optimizer`` so that each ``step()`` also advances ``mu`` in ``model``'s binary
    layers (and clips their latents); otherwise behaves like the wrapped optimizer.

    Args:
        optimizer: any ``torch.optim.Optimizer`` over the model's parameters.
        model: the model whose :class:`~proxcompress.training.layers.QuantizedMixin` layers
            receive ``mu``.
        schedule: the ``mu`` schedule (default: aggregated step, ``lambda = 100``).
        latent_clip: clip binary layers' latent weights to ``[-c, c]`` after each step
            (``None``: no clipping). Default 1.0 (BinaryConnect / BNN).
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        model: nn.Module,
        schedule: MuSchedule | None = None,
        latent_clip: float | None = 1.0,
    ) -> None:
        if latent_clip is not None and not latent_clip > 0:
            raise InvalidInputError("latent_clip", f"= {latent_clip} must be > 0 or None")
        self.optimizer = optimizer
        self.model = model
        self.schedule = schedule or MuSchedule()
        self.latent_clip = latent_clip
        self.steps = 0
        self.lr_sum = 0.0
        self._apply()

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return self.optimizer.param_groups

    @property
    def mu(self) -> float:
        """The current ``mu_t``."""
        return self.schedule.value(self.steps, self.lr_sum)

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def step(self, closure: Any = None) -> Any:
        """One step of the wrapped optimizer, then ``sum eta += lr``, ``mu`` and clipping."""
        loss = self.optimizer.step(closure)
        self.lr_sum += float(self.optimizer.param_groups[0]["lr"])
        self.steps += 1
        self._apply()
        return loss

    def _apply(self) -> None:
        set_mu(self.model, self.mu)
        if self.latent_clip is not None:
            with torch.no_grad():
                for m in quantized_modules(self.model):
                    m.weight.clamp_(-self.latent_clip, self.latent_clip)

    def state_dict(self) -> dict[str, Any]:
        return {
            "optimizer": self.optimizer.state_dict(),
            "steps": self.steps,
            "lr_sum": self.lr_sum,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.steps = int(state["steps"])
        self.lr_sum = float(state["lr_sum"])
        set_mu(self.model, self.mu)


__all__ = ["MuSchedule", "ProxConnectOptimizer", "ScheduleKind"]
