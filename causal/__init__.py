"""ANM causal-direction test for heterogeneous populations (methods.md section 10).

Planned wing; no public API yet.
"""
