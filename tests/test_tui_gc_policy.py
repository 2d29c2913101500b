"""The UI process's collection policy: freeze after full collections, thaw when idle or grown."""

from __future__ import annotations

import gc

import pytest

from fga_tui.tui import gc_policy
from fga_tui.tui.gc_policy import GcPolicy


@pytest.fixture
def policy():
    p = GcPolicy()
    p.install()
    yield p
    p.uninstall()
    gc.unfreeze()


class Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the collector frees it


def test_survivors_of_a_full_collection_are_frozen_and_garbage_is_not(policy):
    live = [Node() for _ in range(100)]
    before = gc.get_freeze_count()
    garbage = [Node() for _ in range(100)]
    del garbage
    gc.collect()  # a full collection: the policy freezes what survived it
    frozen = gc.get_freeze_count() - before
    assert 100 <= frozen < 1000  # the live nodes (and their dicts), not the dead ones
    young = {id(o) for o in gc.get_objects(generation=2)}
    assert not any(id(n) in young for n in live)


def test_idle_thaw_frees_cycles_that_died_while_frozen(policy, monkeypatch):
    import weakref

    nodes = [Node() for _ in range(50)]
    gc.collect()  # frozen now
    refs = [weakref.ref(n) for n in nodes]
    del nodes
    gc.collect()  # frozen cycles are never collected...
    assert all(r() is not None for r in refs)
    clock = [1000.0]
    monkeypatch.setattr(gc_policy.time, "monotonic", lambda: clock[0])
    policy.last_input = policy.last_thaw = 1000.0
    clock[0] += gc_policy.IDLE_S - 0.01
    assert policy.tick() is False  # not idle long enough (and no thaw for 10 s)
    clock[0] = 1000.0 + gc_policy.MIN_THAW_INTERVAL_S
    policy.touched()  # a key just now
    assert policy.tick() is False
    clock[0] += gc_policy.IDLE_S
    assert policy.tick() is True  # ...until the user is idle: then they go
    assert all(r() is None for r in refs)
    assert policy.thaws == 1
    assert 0 <= policy.baseline - gc.get_freeze_count() < 10  # re-based at the thaw


def test_growth_forces_a_thaw_while_keys_are_pressed(policy, monkeypatch):
    monkeypatch.setattr(gc_policy, "THAW_GROWTH", 50)
    keep = [Node() for _ in range(60)]
    policy.touched()
    gc.collect()
    assert policy.pending is True  # set in the collector's callback...
    assert policy.tick() is True  # ...and done on the next tick, keys or not
    assert policy.pending is False and policy.thaws == 1
    del keep


def test_no_thaw_when_nothing_was_frozen_since_the_last(policy, monkeypatch):
    clock = [5000.0]
    monkeypatch.setattr(gc_policy.time, "monotonic", lambda: clock[0])
    policy.thaw()
    clock[0] += 3600
    assert policy.tick() is False


def test_uninstall_removes_the_callback_and_unfreezes():
    import weakref

    p = GcPolicy()
    p.install()
    assert p._after_collection in gc.callbacks
    nodes = [Node() for _ in range(50)]
    gc.collect()  # frozen now
    refs = [weakref.ref(n) for n in nodes]
    del nodes
    assert gc.get_freeze_count() > 0
    p.uninstall()
    assert p._after_collection not in gc.callbacks
    assert gc.get_freeze_count() == 0  # nothing left frozen for the next app in the process
    gc.collect()
    assert all(r() is None for r in refs)  # what died while frozen is freed after the app
    p.uninstall()  # twice is harmless
    assert not p.installed
