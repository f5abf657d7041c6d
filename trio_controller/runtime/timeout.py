"""The per-reconcile timeout (controller-runtime's ReconciliationTimeout).

An async reconcile that runs longer than `ControllerOptions.reconcile_timeout` is cancelled
(a Trio cancel scope around it) and fails with `ReconcileTimeout`: counted as an error
and retried with the rate limiter, like any other failure. A plain function cannot be
cancelled: it runs to the end, its result is used, and one WARNING line says it ran
over the timeout.
"""

from __future__ import annotations

from trio_controller.errors import TrioControllerError

__all__ = ["ReconcileTimeout"]


class ReconcileTimeout(TrioControllerError):
    """A reconcile ran longer than the controller's `reconcile_timeout` and was cancelled."""
