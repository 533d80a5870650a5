"""Regenerate docs/results.md: the results tables (binary, SPR-pruned and multiplication-free
networks, the spoken-command models, the vision transformers, the tensor-train LSTMs, ...).

A thin wrapper: the implementation is the package module :mod:`proxcompress.reproduce.tables`
(its docstring and ``--help`` describe the options), which ``proxcompress reproduce --full`` also
runs as its ``results`` stage.

    python benchmarks/results.py [--jobs 2] [--seeds 0,1,2] [--tables binary,spr]
                                 [--only mlp-,cnn-bnnp] [--render-only] [--no-selection]
"""

from __future__ import annotations

from proxcompress.reproduce.tables import main

if __name__ == "__main__":
    from proxcompress.cli import quiet_on_closed_pipe

    raise SystemExit(quiet_on_closed_pipe(main))
