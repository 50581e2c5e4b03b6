"""Where a batch runs: one process, a local process pool, or any executor a user brings.

:func:`run_tasks` runs one function over many tasks and yields each result as it
completes, the same way whether the work goes to a :class:`~concurrent.futures.ProcessPoolExecutor`
on this machine, to another :class:`concurrent.futures.Executor`, or to a Dask
``distributed.Client`` (a cluster on a workstation, on SLURM/PBS through dask-jobqueue, on
Kubernetes). Tasks carry file paths and options, never pixels, and results are tables, so
only small objects cross the network; the machines must share the image files and the
results folder at the same paths.

A worker that dies costs at most the tasks it was running: a local pool reports them (and
every task not yet finished, since a broken pool runs nothing more) as lost; a Dask
scheduler moves them to another worker, and reports a task as lost only when workers died
under it repeatedly (``distributed.scheduler.allowed-failures``).
"""

from __future__ import annotations

import os
from concurrent.futures import Executor
from concurrent.futures import as_completed as futures_as_completed

from .errors import BlotQuantError

#: Environment variable that names a Dask scheduler when ``--scheduler`` is not given.
SCHEDULER_VARIABLE = "BLOTQUANT_SCHEDULER"
#: Seconds to wait for a scheduler before saying it cannot be reached.
CONNECT_TIMEOUT_S = 10


class SchedulerError(BlotQuantError):
    """The Dask scheduler cannot be reached, or Dask distributed is not installed."""


def is_dask_client(executor):
    """True for a ``distributed.Client`` (checked without importing distributed)."""
    return type(executor).__module__.split(".")[0] == "distributed" and hasattr(executor, "scheduler_info")


def connect_scheduler(address, *, timeout=None):
    """A ``distributed.Client`` connected to the scheduler at ``address``.

    Parameters
    ----------
    address : str
        For example ``tcp://10.0.0.5:8786``.
    timeout : float, optional
        Seconds to wait (default :data:`CONNECT_TIMEOUT_S`).

    Raises
    ------
    SchedulerError
        Distributed is not installed, or nothing answers at ``address`` in time.
    """
    try:
        from distributed import Client
    except ImportError:
        raise SchedulerError("--scheduler needs Dask distributed: pip install 'blotquant[distributed]'") from None
    try:
        return Client(address, timeout=timeout or CONNECT_TIMEOUT_S, set_as_default=False)
    except (OSError, TimeoutError, ValueError, TypeError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise SchedulerError(f"cannot reach the Dask scheduler at {address!r} ({reason}); start one with "
                             f"`dask scheduler` and workers with `dask worker {address}`, or fix the address "
                             f"(--scheduler or {SCHEDULER_VARIABLE})") from None


def describe_executor(executor, *, jobs=None):
    """What ran a batch, for run.json: ``{"kind", "workers"[, "scheduler"]}``."""
    if executor is None:
        return {"kind": "process pool" if (jobs or 1) > 1 else "this process", "workers": int(jobs or 1)}
    if is_dask_client(executor):
        info = executor.scheduler_info()
        return {"kind": "dask distributed", "scheduler": str(info.get("address", "")),
                "workers": len(info.get("workers", {}))}
    return {"kind": type(executor).__name__, "workers": getattr(executor, "_max_workers", None)}


def default_jobs(jobs, n_tasks):
    """Worker processes of the local pool: ``jobs``, else one per core, never more than tasks."""
    return max(1, min(jobs or os.cpu_count() or 1, n_tasks))


def run_tasks(function, tasks, *, executor=None, jobs=1):
    """Run ``function(task)`` for every task; yield ``(index, result, error)`` as each completes.

    Parameters
    ----------
    function : callable
        A module-level function (it is pickled to the workers).
    tasks : sequence
        Its arguments, one per call; they should be small (paths, options).
    executor : concurrent.futures.Executor or distributed.Client, optional
        Where to run. Without one, ``jobs`` worker processes of a local pool (or this
        process when ``jobs`` is 1).
    jobs : int
        Size of the local pool when no executor is given.

    Yields
    ------
    index : int
        Position of the task in ``tasks``.
    result : object or None
        What ``function`` returned.
    error : BaseException or None
        Why the task has no result: its worker died (``BrokenProcessPool``,
        ``KilledWorker``), or ``function`` raised.
    """
    tasks = list(tasks)
    if executor is None and jobs <= 1:
        for index, task in enumerate(tasks):
            try:
                yield index, function(task), None
            except Exception as error:  # noqa: BLE001 - reported to the caller with its task
                yield index, None, error
        return
    if executor is not None and is_dask_client(executor):
        yield from _run_on_dask(function, tasks, executor)
        return
    own_pool = executor is None
    if own_pool:
        # multiprocessing only when a pool runs: a one-image run does not pay for importing it.
        from concurrent.futures import ProcessPoolExecutor

        pool = ProcessPoolExecutor(max_workers=jobs)
    else:
        pool = executor
    if not isinstance(pool, Executor) and not hasattr(pool, "submit"):
        raise TypeError("executor must be a concurrent.futures.Executor or a distributed.Client")
    try:
        futures = {pool.submit(function, task): index for index, task in enumerate(tasks)}
        for future in futures_as_completed(futures):
            try:
                yield futures[future], future.result(), None
            except Exception as error:  # noqa: BLE001 - BrokenProcessPool, or the function's own
                yield futures[future], None, error
    finally:
        if own_pool:
            pool.shutdown(wait=True, cancel_futures=True)


def _run_on_dask(function, tasks, client):
    from distributed import as_completed

    # pure=False: two identical tasks (the same file given twice) must both run.
    futures = client.map(function, tasks, pure=False)
    index_of = {future.key: index for index, future in enumerate(futures)}
    try:
        for future in as_completed(futures):
            index = index_of[future.key]
            try:
                yield index, future.result(), None
            except Exception as error:  # noqa: BLE001 - KilledWorker, or the function's own
                yield index, None, error
            future.release()
    finally:
        client.cancel([f for f in futures if not f.done()])
