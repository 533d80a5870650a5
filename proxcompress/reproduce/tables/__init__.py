"""Regenerate docs/results.md: Fashion-MNIST accuracy of binary, SPR-pruned and
multiplication-free networks, and the spoken-command shift ResNet.

Every row is a config in ``configs/results/`` trained for each seed by ``proxcompress train``, in
one of ``--jobs`` long-lived worker processes (one torch thread, one Numba thread each; the same
code path as the command line, which a test checks run for run).

**No choice on the test set.** Every run holds out 10% of its training set as a validation split
(``data.val_fraction``; by speaker for the spoken commands). A row's *sweep* lists candidate
values of some config keys (learning rate, ``beta``, ``mu_0``, the ``mu`` scale, the homotopy
ramp, ...); each candidate trains at seed :data:`SWEEP_SEED`, the one with the best validation
accuracy (the deployed model's) is chosen, and only that one trains at the row's other seeds. A
row may *inherit* keys chosen by another row's sweep (e.g. the binary rows take the learning rate
chosen for BinaryConnect). The test accuracy of each run is computed once, when it finishes, and
never read by a choice. ``configs/results/NAME.yaml`` is the chosen config and
``configs/results/sweeps.json`` records every candidate's validation accuracy and the choice.

Finished runs are skipped (a run folder of another config stops the script), interrupted ones
resumed, so the script can be stopped and restarted. The tables report mean +- sample standard
deviation over the seeds found (validation and test), say how many there were, and give each
row's verdict under ``proxcompress verify --run`` (its own quantizer pairs, parameters
included). The Compute table sums the measured wall time of the runs per table.

    python benchmarks/results.py [--jobs 2] [--seeds 0,1,2] [--tables binary,spr]
                                 [--only mlp-,cnn-bnnp] [--render-only] [--no-selection]

``--tables`` picks whole tables (:data:`TABLES`; the MIP selection study goes with ``binary``,
whose full-precision CNN it reads); a run without ``--only`` records its wall time per table
set in ``RUNS/wall.json``, and the page quotes every record.

The implementation (formerly ``benchmarks/results.py``, now a thin wrapper around :func:`main`):

* :mod:`.core` -- the rows, configs, sweeps and choices, the worker pool, reading run folders;
* :mod:`.render` -- the page and its sections;
* :mod:`.tt` -- the tensor-train table's rows, timing, plot and section;
* :mod:`.cli` -- :func:`main`, the command line.

Everything is relative to the repository checkout
(:func:`proxcompress.reproduce.machine.checkout`); with an installed wheel the module imports but
:func:`main` refuses (exit 2).
"""

from __future__ import annotations

from proxcompress.reproduce.tables.cli import main

__all__ = ["main"]
