"""The causal test's named options and its sample minimum, importable without NumPy: the
``proxcompress causal`` parser is built from them at every ``proxcompress --help``."""

from __future__ import annotations

from typing import Final

#: how cluster labels adjust the independence test (:func:`.direction.pooled_test`)
POOLINGS: tuple[str, ...] = ("centred", "standardized", "fisher")
#: the noise model whose residuals are tested (:func:`.direction.causal_direction`)
NOISES: tuple[str, ...] = ("additive", "location-scale", "loglinear-scale", "loglinear-bic")
#: how the two directions are compared (:data:`.direction.DECISION_RULES`)
DECISIONS: tuple[str, ...] = ("hsic", "likelihood", "entropy", "heldout-likelihood",
                              "hsic-else-likelihood", "hsic-unless-close")
#: the defaults (issue 19, round 6: "LL-FB"): residuals divided by a fitted log-linear scale,
#: compared by HSIC where an additive model fits and by the likelihood where neither does
DEFAULT_NOISE: Final = "loglinear-scale"
DEFAULT_DECISION: Final = "hsic-else-likelihood"
#: the noise models of the mechanism clustering (:func:`.mechanisms.cluster_mechanisms`)
CLUSTER_NOISES: tuple[str, ...] = ("additive", "loglinear-scale")
#: the BICs of :func:`.mechanisms.bic`
BICS: tuple[str, ...] = ("classification", "mixture")
#: what chooses k (:func:`.mechanisms.cluster_mechanisms`): a BIC, or the held-out likelihood
CRITERIA: tuple[str, ...] = (*BICS, "heldout", "heldout-or-one")
#: fewest paired samples :func:`.direction.causal_direction` accepts
MIN_SAMPLES = 30
