"""Shared fixtures of the proofs tests: catalogue reports computed once per session."""

from __future__ import annotations

import pytest

from proxcompress.proofs.certificate import Report
from proxcompress.proofs.checks import certify
from proxcompress.proofs.pairs import catalogue


@pytest.fixture(scope="session")
def catalogue_reports() -> dict[str, Report]:
    return {name: certify(pair) for name, pair in catalogue().items()}
