"""Compiling runs single-threaded: torch and the BLAS under numpy work on small arrays here (a
requantization of 64 x 12,288 codes, a 768 x 3072 matrix-vector product), where a second thread
saves little even on an idle machine, and on a busy one costs far more than it saves: the idle
worker threads spin while they wait.  Measured on the BERT-base-sized encoder with tensor-train
projections on this project's 2-core machine with 4 other jobs: lowering took 12-17 s of CPU
with torch's default 2 threads, 2.1 s with one (bench/results/lowering_time.md)."""
from __future__ import annotations

import functools
from contextlib import contextmanager
from typing import Callable, Iterator, TypeVar

import torch

F = TypeVar("F", bound=Callable)


@contextmanager
def single_threaded() -> Iterator[None]:
    """torch's intra-op threads and the BLAS threads set to one for the block, then restored."""
    from threadpoolctl import threadpool_limits
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1, user_api="blas"):
            yield
    finally:
        torch.set_num_threads(previous)


def run_single_threaded(function: F) -> F:
    """Decorator: ``function`` runs inside :func:`single_threaded`."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with single_threaded():
            return function(*args, **kwargs)
    return wrapper  # type: ignore[return-value]
