"""Checking a checkpoint's tensors against the model a config builds, before loading them.

Why not ``load_state_dict(strict=True)``: its error is a multi-line dump that stops at the first
size mismatch. The user needs one line that says what is missing, what is extra and what has the
wrong shape, so they can tell a wrong config (shapes) from a wrong model variant (missing modules).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from fga_tui.io.errors import InputError

# BatchNorm's counter: absent from files written before torch 0.4.1, and unused in eval mode.
TOLERATED_MISSING_SUFFIXES = ("num_batches_tracked",)
_SHOWN = 3


def verify_state_dict(
    expected: Mapping[str, tuple[int, ...]],
    got: Mapping[str, torch.Tensor],
    path: str | Path | None,
) -> None:
    """Raise one :class:`InputError` if ``got`` cannot be loaded into a model with ``expected``.

    ``expected`` maps parameter/buffer names to shapes (``{k: tuple(v.shape) for k, v in
    model.state_dict().items()}``). The message lists the first few missing keys, unexpected keys
    and shape mismatches, each with its count. Missing ``num_batches_tracked`` buffers are fine.
    """
    missing = [k for k in expected if k not in got and not k.endswith(TOLERATED_MISSING_SUFFIXES)]
    unexpected = [k for k in got if k not in expected]
    mismatched = [
        f"{k}: checkpoint {_shape(tuple(got[k].shape))} vs model {_shape(tuple(expected[k]))}"
        for k in expected
        if k in got and tuple(got[k].shape) != tuple(expected[k])
    ]
    parts = [
        _summary(missing, "missing", "missing"),
        _summary(unexpected, "unexpected", "unexpected"),
        _summary(mismatched, "shape mismatch", "shape mismatches"),
    ]
    parts = [p for p in parts if p]
    if parts:
        raise InputError(path, "state_dict does not match the model: " + ", ".join(parts))


def _summary(items: Sequence[str], singular: str, plural: str) -> str:
    if not items:
        return ""
    shown = ", ".join(items[:_SHOWN])
    if len(items) > _SHOWN:
        shown += ", …"
    label = singular if len(items) == 1 else plural
    return f"{len(items)} {label} ({shown})"


def _shape(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


__all__ = ["TOLERATED_MISSING_SUFFIXES", "verify_state_dict"]
