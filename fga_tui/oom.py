"""CUDA out-of-memory: recognise it, give the memory back, fall back to the CPU.

GPU nodes are shared: another job can take the memory between two of our forwards. A trace or a
diagnosis that runs out of GPU memory frees what it held and runs again on the CPU (slower, but
an answer); a scan batch is split in halves instead (``fga_tui.scan``). Callers say so to the
user. Torch is imported only when it is already loaded, so this module is cheap to import.
"""

from __future__ import annotations

import dataclasses
import gc
import sys
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def is_oom(exc: BaseException) -> bool:
    """Whether ``exc`` is CUDA running out of memory (``torch.cuda.OutOfMemoryError``, or the
    ``RuntimeError`` older builds and some kernels raise with the same message)."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def free_cuda() -> None:
    """Drop unreachable tensors and return cached blocks to the driver (for other jobs too)."""
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def on_cpu(loaded: Any) -> Any:
    """``loaded`` (an ``engine.LoadedModel``) with its model moved to the CPU."""
    import torch

    cpu = torch.device("cpu")
    if loaded.device == cpu:
        return loaded
    model = loaded.model.to(cpu)
    free_cuda()
    return dataclasses.replace(loaded, model=model, device=cpu)


def retry_on_cpu(
    fn: Callable[[Any], T], loaded: Any, notify: Callable[[str], Any] | None = None
) -> tuple[T, Any]:
    """``fn(loaded)``; when it runs out of GPU memory, ``fn(loaded on the CPU)``.

    Returns the result and the model it ran with (the CPU one after a fallback, so later work
    stays there). ``notify`` receives one line saying what happened.
    """
    try:
        return fn(loaded), loaded
    except Exception as exc:
        if not is_oom(exc) or str(loaded.device) == "cpu":
            raise
        where = str(loaded.device)
    # Outside the except block: the traceback (and the tensors its frames hold) is released.
    free_cuda()
    if notify is not None:
        notify(f"{where} out of memory: retrying on the CPU")
    cpu = on_cpu(loaded)
    return fn(cpu), cpu


def _stderr(line: str) -> None:
    sys.stderr.write(f"fga-tui: {line}\n")
    sys.stderr.flush()


def run_traces_split(
    loaded: Any,
    prepared: list[Any],
    ablation: Any = None,
    *,
    counterfactuals: bool = True,
    notify: Callable[[str], Any] | None = None,
) -> list[Any]:
    """``engine.run_traces`` for a scan batch; on CUDA out-of-memory the batch is freed and run
    again in two halves (recursively), and a single sample that still does not fit runs on the
    CPU (the model stays there). One trace per sample, in order; ``notify`` (default: stderr)
    hears each fallback."""
    from fga_tui import engine

    say = notify or _stderr
    try:
        return engine.run_traces(loaded, prepared, ablation, counterfactuals=counterfactuals)
    except Exception as exc:
        if not is_oom(exc) or str(loaded.device) == "cpu":
            raise
    free_cuda()
    if len(prepared) > 1:
        half = (len(prepared) + 1) // 2
        say(
            f"{loaded.device} out of memory on a batch of {len(prepared)}: "
            f"retrying in batches of {half}"
        )
        kw = {"counterfactuals": counterfactuals, "notify": say}
        return run_traces_split(loaded, prepared[:half], ablation, **kw) + run_traces_split(
            loaded, prepared[half:], ablation, **kw
        )
    say(f"{loaded.device} out of memory on a single sample: running on the CPU from here on")
    return engine.run_traces(on_cpu(loaded), prepared, ablation, counterfactuals=counterfactuals)
