"""Where many independent jobs run: in this process, in local processes, or on Dask.

One function, :func:`map_jobs`, serves every place that fans work out (pairwise
distances, audits, sweeps), so that they all scale the same way: ``workers=N``
starts N local processes, ``scheduler="tcp://host:port"`` sends the same jobs to a
running Dask distributed cluster.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Sequence, TypeVar

from topo.errors import TopoError
from topo.progress import ProgressCallback

__all__ = ["map_jobs", "ProgressCallback"]

T = TypeVar("T")
R = TypeVar("R")

#: seconds to wait for a Dask scheduler to answer before giving up
SCHEDULER_TIMEOUT = 10.0


def map_jobs(
    func: Callable[[T], R],
    items: Iterable[T],
    *,
    workers: int = 1,
    scheduler: str | None = None,
    progress: ProgressCallback | None = None,
) -> list[R]:
    """Apply ``func`` to every item and return the results in the items' order.

    Parameters
    ----------
    func : callable
        A module-level function (it is pickled when jobs leave this process).
    items : iterable
        Job arguments, one per call; keep them small (paths rather than arrays).
    workers : int
        1 runs in this process; more starts that many local processes.
    scheduler : str, optional
        Address of a running Dask distributed scheduler (``tcp://127.0.0.1:8786``);
        when given, ``workers`` is ignored. Needs the ``dask`` extra.
    progress : callable, optional
        Called as ``progress(done, total)`` after each finished job (and once with
        ``done=0`` at the start).

    Returns
    -------
    list
        ``[func(item) for item in items]``.

    Raises
    ------
    TopoError
        If ``workers`` is below 1, or the scheduler cannot be reached. An exception
        raised by a job propagates unchanged.

    Examples
    --------
    >>> seen = []
    >>> map_jobs(abs, [-1, 2, -3], progress=lambda done, total: seen.append((done, total)))
    [1, 2, 3]
    >>> seen
    [(0, 3), (1, 3), (2, 3), (3, 3)]
    >>> map_jobs(abs, [-1], workers=0)
    Traceback (most recent call last):
    ...
    topo.errors.TopoError: workers must be at least 1, got 0
    """
    jobs: Sequence[T] = list(items)
    total = len(jobs)
    report = progress or (lambda done, total: None)
    if workers < 1:
        raise TopoError(f"workers must be at least 1, got {workers}")
    report(0, total)
    if scheduler is not None:
        return _map_dask(func, jobs, scheduler, report)
    if workers == 1 or total <= 1:
        results = []
        for done, item in enumerate(jobs, start=1):
            results.append(func(item))
            report(done, total)
        return results
    return _map_processes(func, jobs, workers, report)


def _map_processes(func: Callable, jobs: Sequence[Any], workers: int, report: ProgressCallback) -> list:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # spawn, not fork: forking a process that has started torch or BLAS threads can hang
    context = multiprocessing.get_context("spawn")
    results: list[Any] = [None] * len(jobs)
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=context) as pool:
        futures = {pool.submit(func, item): index for index, item in enumerate(jobs)}
        try:
            for done, future in enumerate(as_completed(futures), start=1):
                results[futures[future]] = future.result()
                report(done, len(jobs))
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    return results


def _map_dask(func: Callable, jobs: Sequence[Any], scheduler: str, report: ProgressCallback) -> list:
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise TopoError(
            "running on a Dask cluster needs the dask extra: pip install 'topo-toolkit[dask]'"
        ) from None
    try:
        client = Client(scheduler, timeout=SCHEDULER_TIMEOUT, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise TopoError(f"cannot reach the Dask scheduler at {scheduler} ({exc})") from None
    try:
        futures = client.map(func, jobs, pure=False)
        for done, future in enumerate(as_completed(futures, loop=client.loop), start=1):
            if future.status == "error":
                future.result()  # re-raises the job's exception
            report(done, len(jobs))
        return list(client.gather(futures))
    finally:
        client.close()
