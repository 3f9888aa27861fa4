"""The serving process's thread plan: two cores, one process, the encoder owns the cores.

One process (`uvicorn workers=1`): a second process would hold a second copy of the model and
split the same two cores, so it can only add memory and contention. Inside the process:

- the encoder gets ``embedder.threads`` (2) threads for its arithmetic: ONNX Runtime's intra-op
  pool (the calling thread plus ``threads - 1`` pool threads; inter-op 1, sequential execution,
  spin-waiting between ops, see `decision.encoders.onnx_backend`), or
  ``torch.set_num_threads(threads)``
  for the PyTorch backend;
- one event-loop thread parses requests and writes answers, one batcher thread
  (`router.serving.batcher`) calls the encoder, and the trace store has its writer thread;
- BLAS and OpenMP pools (numpy's and scipy's OpenBLAS, scikit-learn's libgomp) get one thread
  (`limit_native_threads`): the service's own numpy work is a (batch x 384) by (384 x 9)
  product, far too small to share, and idle pool threads of two more libraries would compete
  with the encoder for the same two cores.

Only `tier-router serve` calls `limit_native_threads`; training keeps every core for fitting.
"""

from __future__ import annotations

from typing import Any


def limit_native_threads() -> Any:
    """Cap BLAS/OpenMP pools at one thread for this process; returns the threadpoolctl limiter
    (``restore_original_limits()`` undoes it)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1)
