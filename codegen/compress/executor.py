"""Where candidate evaluations and layer-wise fine-tuning run: a local process pool, or a Ray cluster.

Every task is a pure function of its arguments (its own seed included), and results are gathered
by task index, so the same seed gives the same results on either executor and for any number of
workers.  A deadline stops the collection: tasks not finished by then are cancelled and reported
as ``None`` (the search keeps what it has).
"""
from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import EinhlsError


def _init_worker() -> None:
    import torch
    torch.set_num_threads(1)   # the pool is the parallelism; torch's own threads would oversubscribe


class LocalExecutor:
    """A process pool on this machine (``workers`` processes; 1 runs the tasks in this process)."""

    name = "local"

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or max(1, min(4, (os.cpu_count() or 1)))

    def map(self, fn: Callable, tasks: Sequence[tuple], deadline: float | None = None,
            progress: Callable[[int, int], None] | None = None) -> list[Any]:
        results: list[Any] = [None] * len(tasks)
        if self.workers == 1:
            for index, args in enumerate(tasks):
                if deadline is not None and time.monotonic() > deadline:
                    break
                results[index] = fn(*args)
                if progress:
                    progress(index + 1, len(tasks))
            return results
        context = multiprocessing.get_context("spawn")
        pool = cf.ProcessPoolExecutor(self.workers, mp_context=context, initializer=_init_worker)
        try:
            futures = {pool.submit(fn, *args): index for index, args in enumerate(tasks)}
            done = 0
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                for future in cf.as_completed(futures, timeout=timeout):
                    results[futures[future]] = future.result()
                    done += 1
                    if progress:
                        progress(done, len(tasks))
            except cf.TimeoutError:
                pass
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return results


class RayExecutor:
    """Tasks as Ray remote functions on the cluster at ``address`` ("local" starts one here)."""

    name = "ray"

    def __init__(self, address: str) -> None:
        try:
            import ray
        except ImportError:
            raise EinhlsError("--ray-address needs the ray package (pip install ray==2.60.0)") from None
        self.ray = ray
        if not ray.is_initialized():
            try:
                if address == "local":
                    ray.init(num_cpus=max(1, min(2, os.cpu_count() or 1)), include_dashboard=False,
                             log_to_driver=False, logging_level="ERROR")
                else:
                    ray.init(address=address, log_to_driver=False, logging_level="ERROR")
            except Exception as exc:   # noqa: BLE001 - any failure to connect is the user's address
                raise EinhlsError(f"--ray-address {address!r}: cannot connect to a Ray cluster "
                                  f"({' '.join(str(exc).split())[:200]})") from None

    def map(self, fn: Callable, tasks: Sequence[tuple], deadline: float | None = None,
            progress: Callable[[int, int], None] | None = None) -> list[Any]:
        ray = self.ray
        remote = ray.remote(num_cpus=1)(fn)
        refs = [remote.remote(*args) for args in tasks]
        index_of = {ref: i for i, ref in enumerate(refs)}
        results: list[Any] = [None] * len(tasks)
        pending, done = list(refs), 0
        while pending:
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, pending = ray.wait(pending, num_returns=1, timeout=timeout)
            if not ready:
                break
            results[index_of[ready[0]]] = ray.get(ready[0])
            done += 1
            if progress:
                progress(done, len(tasks))
        for ref in pending:
            ray.cancel(ref, force=True)
        return results

    def shutdown(self) -> None:
        self.ray.shutdown()


def make_executor(ray_address: str | None, workers: int | None = None):
    return RayExecutor(ray_address) if ray_address else LocalExecutor(workers)
