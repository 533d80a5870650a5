"""Time limits shared by every formulation.

**The promise** (``docs/formulations.md``, "Time limits"): ``solve(problem, name, time_limit=T)``
returns within ``T`` seconds plus :data:`ALLOWANCE`, measured from the call of the formulation to
its return, with the best solution found and a valid lower bound; its status is ``time_limit``
unless optimality was proved. Formulations enforce it in one of two ways:

- **cooperatively** (``bnb``, ``brute``): the work is cut into short steps and the clock is read
  between them (:class:`Clock`);
- **by a guard process** (``bigm``, ``perspective``, ``cuts``): model building and the external
  solver (Pyomo, CVXPY, SCIP, ECOS_BB, HiGHS), which cannot be interrupted from Python, run in a
  forked child (:func:`run_guarded`). The child is given the limit too and normally returns on
  its own (SCIP and HiGHS take a time limit); if it has not answered by the deadline plus
  :data:`GUARD_GRACE` it is killed and the formulation reports the best it knows without it (the
  empty support, which is always feasible, and the trivial bound 0: every term of the objective
  is non-negative). ECOS_BB has no time limit of its own, so under a limit ``perspective`` with
  ECOS_BB always ends this way when it does not finish in time.

Where ``fork`` is unavailable (Windows), the guard runs the work in-process and only the
solvers' own limits apply.
"""

from __future__ import annotations

import json
import multiprocessing
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from proxcompress.errors import InvalidInputError, SolverError

#: Seconds a guarded solve may run past its deadline before the child is killed.
GUARD_GRACE = 0.15
#: The documented bound on the overshoot: every formulation returns within
#: ``time_limit + ALLOWANCE`` seconds (the tests of ``tests/formulations/test_time_limits.py``
#: check it on generated cases). It covers the grace above, process teardown, the final exact
#: solve of the reported support and one step of the cooperative formulations.
ALLOWANCE = 0.5


class Clock:
    """Wall clock of one solve: ``left()`` seconds remain of ``time_limit`` (``None``: no limit)."""

    def __init__(self, time_limit: float | None) -> None:
        self.start = time.perf_counter()
        self.time_limit = time_limit
        self.deadline = float("inf") if time_limit is None else self.start + time_limit

    def elapsed(self) -> float:
        """Seconds since the solve started."""
        return time.perf_counter() - self.start

    def left(self) -> float | None:
        """Seconds left (never below 1 ms), ``None`` without a limit."""
        if self.time_limit is None:
            return None
        return max(1e-3, self.deadline - time.perf_counter())

    def expired(self) -> bool:
        """Whether the deadline has passed."""
        return time.perf_counter() >= self.deadline


def _after_fork() -> None:
    """In the child, undo what ``fork`` breaks in the solver libraries:

    - Pyomo upgrades ``capture_output_lock`` to a *process-shared* ``multiprocessing.Lock`` once
      multiprocessing is imported, so a child killed while holding it would leave it held for
      the parent and every later child ("Deadlock starting capture_output" after 200 s): the
      child gets a process-local lock;
    - HiGHS keeps a global thread scheduler; its worker threads do not survive ``fork``, so a
      child of a process that already ran HiGHS would wait for them forever: the child resets
      the scheduler (non-blocking).
    """
    dependencies = sys.modules.get("pyomo.common.dependencies")
    if dependencies is not None:
        setattr(dependencies, "capture_output_lock", threading.Lock())  # noqa: B010
    highspy = sys.modules.get("highspy")
    if highspy is not None:
        highspy.Highs.resetGlobalScheduler(False)


def _child(work: Callable[[], dict[str, Any]], conn: Any) -> None:
    _after_fork()
    payload: dict[str, Any]
    try:
        payload = {"ok": work()}
    except InvalidInputError as exc:
        payload = {"invalid": [exc.field, str(exc).removeprefix(f"{exc.field}: ")]}
    except SolverError as exc:
        payload = {"solver_error": str(exc)}
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises
        payload = {"solver_error": f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"}
    try:
        conn.send_bytes(json.dumps(payload).encode("utf-8"))
    finally:
        conn.close()


def run_guarded(
    work: Callable[[], dict[str, Any]], clock: Clock
) -> dict[str, Any] | None:
    """Run ``work`` (returning a JSON-serialisable dict) so that it cannot outlast ``clock``.

    Without a limit, or where ``fork`` is unavailable, ``work`` runs here. Otherwise it runs in a
    forked child; the result comes back as JSON over a pipe. Returns ``None`` when the child was
    killed at ``deadline + GUARD_GRACE``. Errors raised by ``work`` are raised again here
    (``InvalidInputError``, ``SolverError``; anything else as ``SolverError``).
    """
    if clock.time_limit is None or "fork" not in multiprocessing.get_all_start_methods():
        return work()
    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_child, args=(work, send), daemon=True)
    child.start()
    send.close()
    payload: dict[str, Any] | None = None
    try:
        wait = max(0.0, clock.deadline - time.perf_counter()) + GUARD_GRACE
        if receive.poll(wait):
            try:
                payload = json.loads(receive.recv_bytes().decode("utf-8"))
            except (EOFError, OSError):  # the child died without answering
                payload = {"solver_error": "the solver process ended without an answer"}
    finally:
        receive.close()
        if child.is_alive():
            child.kill()
        child.join()
    if payload is None:
        return None
    if "invalid" in payload:
        raise InvalidInputError(*payload["invalid"])
    if "solver_error" in payload:
        raise SolverError(payload["solver_error"])
    result: dict[str, Any] = payload["ok"]
    return result

