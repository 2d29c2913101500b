"""Named hook points: capture or change any intermediate without touching ``forward``.

The pattern is TransformerLens's (``transformer_lens/hook_points.py``): a ``HookPoint`` is an
identity module that owns no parameters, placed in the model wherever an intermediate matters.
Adding one never changes ``state_dict`` keys, so every checkpoint loads strictly as before and
a plain forward computes bit-identical numbers (an identity call changes nothing). Each hook
point carries its public name (the stage names ``embed``, ``alignn.0``, ``fusion.2``, ``gcn.0``,
``fga`` and internals such as ``fga.queries``), so callers never see module paths.

``run_with_cache`` captures, ``run_with_hooks``/``hooks`` intervene; hooks are always removed
again (also when the forward raises), so a failed run never leaves a patched model behind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

#: ``fn(tensor, hook_point) -> replacement or None`` (None keeps the tensor).
HookFn = Callable[[torch.Tensor, "HookPoint"], "torch.Tensor | None"]
#: which hook points a hook applies to: one public name, or a predicate on names.
NameFilter = str | Callable[[str], bool]


class HookPoint(nn.Module):
    """Identity on one tensor; ``name`` is its public name (set by the owning model)."""

    def __init__(self) -> None:
        super().__init__()
        self.name = ""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def extra_repr(self) -> str:
        return repr(self.name)


def hook_points(model: nn.Module) -> dict[str, HookPoint]:
    """Every named hook point of ``model``, by public name, in definition order."""
    return {m.name: m for m in model.modules() if isinstance(m, HookPoint) and m.name}


def _matches(name_filter: NameFilter, name: str) -> bool:
    return name_filter(name) if callable(name_filter) else name == name_filter


@contextmanager
def hooks(model: nn.Module, fwd_hooks: Iterable[tuple[NameFilter, HookFn]]) -> Iterator[None]:
    """Attach ``(name filter, fn)`` hooks for the duration of the block; removed on exit.

    Hooks on one point run in the order given, each seeing the previous one's result. A name
    that matches no hook point is a bug in the caller (``KeyError``), never silently ignored.
    """
    points = hook_points(model)
    handles = []
    try:
        for name_filter, fn in fwd_hooks:
            targets = [p for n, p in points.items() if _matches(name_filter, n)]
            if not targets and isinstance(name_filter, str):
                raise KeyError(f"no hook point named {name_filter!r}")
            for point in targets:
                handles.append(point.register_forward_hook(_adapter(fn)))
        yield
    finally:
        for handle in handles:
            handle.remove()


def _adapter(fn: HookFn) -> Callable[[nn.Module, tuple, torch.Tensor], Any]:
    def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> Any:
        return fn(output, module)  # type: ignore[arg-type]

    return hook


def run_with_hooks(
    model: nn.Module,
    *args: Any,
    fwd_hooks: Sequence[tuple[NameFilter, HookFn]] = (),
    **kwargs: Any,
) -> Any:
    """``model(*args, **kwargs)`` with temporary hooks."""
    with hooks(model, fwd_hooks):
        return model(*args, **kwargs)


class Cache(dict):
    """Captured tensors by public name, in the order the forward produced them."""


def caching_hooks(
    cache: Cache, names: Iterable[str] | Callable[[str], bool] | None = None, *, detach: bool = True
) -> list[tuple[NameFilter, HookFn]]:
    """Hooks that store each matching hook point's tensor in ``cache`` (a reference, no copy).

    ``detach=False`` keeps the autograd graph (training losses on captured attention).
    """
    if names is None:
        wanted: Callable[[str], bool] = lambda _name: True  # noqa: E731
    elif callable(names):
        wanted = names
    else:
        chosen = set(names)
        wanted = chosen.__contains__

    def store(x: torch.Tensor, point: HookPoint) -> None:
        cache[point.name] = x.detach() if detach else x

    return [(wanted, store)]


def run_with_cache(
    model: nn.Module,
    *args: Any,
    names: Iterable[str] | Callable[[str], bool] | None = None,
    detach: bool = True,
    **kwargs: Any,
) -> tuple[Any, Cache]:
    """One forward that also returns the tensors of the named hook points (all by default).

    Capture hooks are attached after any hooks already on the model, so they record what
    flows downstream (the value after an intervention).
    """
    cache = Cache()
    with hooks(model, caching_hooks(cache, names, detach=detach)):
        out = model(*args, **kwargs)
    return out, cache
