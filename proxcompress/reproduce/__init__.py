"""``proxcompress reproduce``: the main job, every wing in one run and one report.

* :mod:`.stage` -- the vocabulary: :class:`Stage`, :class:`Param` (a budget knob),
  :class:`Rule` (a check or a target), what a stage returns (:class:`Outcome`).
* :mod:`.registry` -- :data:`STAGES`, one entry per stage (the one place to add a stage).
* :mod:`.stages` -- the stage functions, one module per wing or theme.
* :mod:`.runner` -- validation, execution, state and resume, exit codes.
* :mod:`.report` -- ``report.html`` / ``report.md`` / ``report.json``.
* :mod:`.machine` -- the machine and versions; :mod:`.plots` -- the plots.

Names are resolved lazily: building the command line imports none of the wings.
"""

from __future__ import annotations

from proxcompress.lazy import lazy_getattr

_PUBLIC = {
    "Stage": "stage",
    "Param": "stage",
    "Rule": "stage",
    "Outcome": "stage",
    "Table": "stage",
    "Plot": "stage",
    "Context": "stage",
    "STAGES": "registry",
    "stages_for": "registry",
    "plan": "runner",
    "execute": "runner",
    "reproduce": "runner",
    "describe": "machine",
}

__all__ = sorted(_PUBLIC)

__getattr__ = lazy_getattr("proxcompress.reproduce", _PUBLIC)
