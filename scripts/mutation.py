"""Mutation testing of the modules that decide what users are told, with a kill-rate report.

Groups: the verdict rules (``verdict.py`` + ``rules.py``) and the metrics (``separation``,
``attention``, ``same_words``: which atoms of different elements read the same top words,
``similarity``), then ``words``, ``symmetry``, ``graph``, ``neighbors``,
``unpickler``, ``atomic`` and ``snapshot``.

Run from the repository root (the ``dev`` extra pins mutmut)::

    python scripts/mutation.py                  # every group below, then the table
    python scripts/mutation.py words atomic     # some groups
    python scripts/mutation.py --check          # exit 1 when a group misses its goal
    python scripts/mutation.py --report-only    # the table from the last runs
    python scripts/mutation.py --recheck words  # after adding tests: re-run the survivors only
    python scripts/mutation.py --sample 37 graph  # a fifth of the mutants: a quick estimate

Each group runs in its own copy of the repository (``.mutation/<group>/``, ignored by git), so
the working tree is never touched and a run interrupted half-way leaves nothing behind. mutmut
first runs the group's tests once to learn which test covers which function, then runs only
those tests against each mutant, in forked workers (``--jobs``, default one per core). Measured
with ``--jobs 1`` on a shared 2-core machine: words, symmetry and same_words (about 300 mutants
each) in 1-5 minutes, atomic and snapshot (about 130 each) in 1-2, similarity (1,518) and the
unpickler (766, checkpoint tests) in about 10 each, the graph (372) in about 11, the verdict rules
(1,103) in about 20; a whole run takes an hour or two on one core, so
``--sample`` gives an estimate in a fraction of the time. The test files per group are chosen to
be fast (no TUI; a subprocess only where the behaviour needs one, such as reading a stopword
list under another locale); the slower end-to-end tests still run in the default suite.

``--recheck`` trusts mutmut's map of which test reaches which function, and mutmut extends it
only for tests with new names: a test edited to reach a function it did not reach before is not
run against that function's mutants until the group runs in full.

The kill rate counts timeouts as killed (the mutant hangs: a test noticed) and mutants no test
reaches as survivors. Mutants listed in ``scripts/mutation_equivalents.toml`` (matched by
module, function and the mutated or original line, so the list survives renumbering) are
equivalent: they change no behaviour any caller can observe; they are left out of the
denominator and printed with their reason. Goals: 90 % for the verdict rules and the metrics,
80 % elsewhere.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".mutation"
EQUIVALENTS = ROOT / "scripts" / "mutation_equivalents.toml"


@dataclass(frozen=True)
class Group:
    """Source files mutated together, the tests that judge them and the goal kill rate."""

    sources: tuple[str, ...]
    tests: tuple[str, ...]
    goal: float = 0.80
    select: tuple[str, ...] = ()
    """Extra pytest arguments for the selection (``-k`` to leave out subprocess-only tests,
    which cannot see an in-process mutant and only cost time)."""
    preload: tuple[str, ...] = ()
    """Modules the tests import lazily (upstream's alignn): imported once in mutmut's fork
    server instead of once per mutant."""


#: The graph's fast tests: the neighbour search against a plain loop, the k-NN selection, and
#: the exact-upstream graphs of small cells (the supercell and spawned-worker tests are slow and
#: the subprocess ones cannot see an in-process mutant).
GRAPH_TESTS = (
    "tests/test_structure_neighbors.py",
    "tests/test_structure_knn.py",
    *(
        f"tests/test_structure_graph.py::test_{name}"
        for name in (
            "cu_fcc_self_image_bonds_are_doubled_24_edges_552_angles",
            "si_diamond_56_edges_1520_angles",
            "si_diamond_tie_shell_is_decided_by_float64_last_bits_like_upstream",
            "srtio3_perovskite_matches_upstream",
            "triclinic_four_element_cell_matches_upstream",
            "random_cells_match_upstream",
            "small_cutoff_grows_radius_like_upstream",
            "without_canonize_matches_upstream",
            "cartesian_input_matches_upstream_when_the_source_positions_are_passed",
            "nacl_fixture_matches_recorded_upstream_graph",
            "edge_vectors_and_cosines_are_bit_identical_to_upstream",
            "cell_list_search_finds_exactly_the_brute_force_neighbours",
            "edges_come_in_reverse_pairs_and_line_graph_is_sorted",
            "line_graph_of_a_self_loop_excludes_the_loop_itself",
        )
    ),
)

METRIC_GOAL = 0.90
GROUPS: dict[str, Group] = {
    "verdict": Group(
        ("fga_tui/diagnostics/verdict.py", "fga_tui/diagnostics/rules.py"),
        (
            "tests/test_verdict_rules.py",
            "tests/test_verdict_baseline.py",
            "tests/test_verdict_rule_edges.py",
            "tests/test_verdict_words.py",
        ),
        METRIC_GOAL,
    ),
    "separation": Group(
        ("fga_tui/diagnostics/separation.py",),
        (
            "tests/test_separation.py",
            "tests/test_separation_units.py",
            "tests/test_verdict_rules.py",
        ),
        METRIC_GOAL,
    ),
    "attention": Group(
        ("fga_tui/diagnostics/attention.py",),
        (
            "tests/test_diag_attention.py",
            "tests/test_diag_attention_units.py",
            "tests/test_diag_attention_exact.py",
            "tests/test_diag_scale.py",
        ),
        METRIC_GOAL,
    ),
    "same_words": Group(
        ("fga_tui/diagnostics/same_words.py",),
        (
            "tests/test_same_words.py",
            *(
                f"tests/test_report_intervention.py::test_{name}"
                for name in (
                    "same_words_count_only_between_atoms_of_different_elements",
                    "near_zero_words_do_not_make_two_atoms_read_differently",
                )
            ),
        ),
        METRIC_GOAL,
    ),
    "similarity": Group(
        ("fga_tui/diagnostics/similarity.py",),
        (
            "tests/test_diag_similarity.py",
            "tests/test_diag_similarity_units.py",
            "tests/test_diag_scale.py",
        ),
        METRIC_GOAL,
    ),
    "words": Group(
        ("fga_tui/diagnostics/words.py",),
        ("tests/test_diag_words.py", "tests/test_diag_attention.py"),
    ),
    "symmetry": Group(
        ("fga_tui/structure/symmetry.py",),
        ("tests/test_structure_symmetry.py",),
    ),
    "graph": Group(
        ("fga_tui/structure/graph.py",),
        GRAPH_TESTS,
        preload=("torch", "alignn.graphs", "jarvis.core.atoms"),
    ),
    "neighbors": Group(
        ("fga_tui/structure/neighbors.py",),
        GRAPH_TESTS,
        preload=("torch", "alignn.graphs", "jarvis.core.atoms"),
    ),
    "unpickler": Group(
        ("fga_tui/io/unpickler.py",),
        ("tests/test_io_unpickler.py", "tests/test_checkpoint_loading.py"),
    ),
    "atomic": Group(
        ("fga_tui/io/atomic.py",),
        ("tests/test_io_atomic.py",),
    ),
    "snapshot": Group(
        ("fga_tui/snapshot.py",),
        ("tests/test_snapshot.py",),
    ),
}

KILLED = {1, 3, 36, 37, -24, 24, 152, 255}
"""mutmut exit codes that mean a test noticed the mutant (failure, pytest error, timeout)."""
SKIPPED = {34}


@dataclass
class Tally:
    killed: int = 0
    unchecked: int = 0
    survived: list[str] = field(default_factory=list)
    equivalent: list[tuple[str, str]] = field(default_factory=list)

    @property
    def judged(self) -> int:
        return self.killed + len(self.survived)

    @property
    def rate(self) -> float:
        return self.killed / self.judged if self.judged else 1.0


def repo_files() -> list[str]:
    """Tracked files plus new, not-ignored ones: what a clean clone (plus your edits) holds."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.decode()
    return [f for f in out.split("\0") if f and (ROOT / f).is_file()]


def prepare(name: str, group: Group) -> Path:
    """A fresh copy of the repository with mutmut configured for ``group``."""
    work = WORK / name
    shutil.rmtree(work, ignore_errors=True)
    for rel in repo_files():
        dest = work / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, dest)
    configure(name, group, work)
    return work


def configure(name: str, group: Group, work: Path) -> None:
    """The project's pyproject.toml plus a [tool.mutmut] table for ``group``; the preloads."""
    tests = [t for t in group.tests if (work / t.split("::")[0]).exists()]
    if not tests:  # an empty selection would make pytest run the whole suite per mutant
        raise SystemExit(f"{name}: none of its test files exist: {', '.join(group.tests)}")
    config = {
        "source_paths": ["fga_tui"],
        "only_mutate": list(group.sources),
        "pytest_add_cli_args_test_selection": [*tests, *group.select],
        "pytest_add_cli_args": ["-p", "no:cacheprovider", "-q", "-x"],
        # torch is not fork-safe once its thread pools started: fork from a clean server.
        "process_isolation": "forkserver",
    }
    lines = ["", "[tool.mutmut]"]
    lines += [f"{key} = {json.dumps(value)}" for key, value in config.items()]
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    (work / "pyproject.toml").write_text(text + "\n".join(lines) + "\n", encoding="utf-8")
    prepare_preload(work, group)


def prepare_preload(work: Path, group: Group) -> None:
    if group.preload:  # the fork server collects the tests first, loading conftest.py
        with (work / "tests" / "conftest.py").open("a", encoding="utf-8") as fh:
            fh.write(f"\n\nfor _name in {list(group.preload)!r}:\n")
            fh.write("    try:\n        __import__(_name)\n")
            fh.write("    except ImportError:  # an extra not installed: its tests skip\n")
            fh.write("        pass\n")


def survivors(name: str, group: Group) -> list[str] | None:
    """The last run's mutants that no test killed, or None when that run cannot be reused (never
    run, or a mutated source changed since: then everything must run again)."""
    work = WORK / name
    names: list[str] = []
    for source in group.sources:
        meta = work / "mutants" / f"{source}.meta"
        copy = work / source
        if not meta.exists() or not copy.exists():
            return None
        if copy.read_bytes() != (ROOT / source).read_bytes():
            return None
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        names += [
            m for m, c in codes.items() if c is not None and c not in KILLED and c not in SKIPPED
        ]
    return names


def refresh_tests(name: str) -> Path:
    """Copy the current tests (and equivalence list) into the group's copy, sources untouched."""
    work = WORK / name
    for rel in repo_files():
        if rel.startswith(("tests/", "scripts/")):
            dest = work / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dest)
    return work


def same_selection(name: str, group: Group) -> bool:
    """Whether the group's test selection is the one its last run used (mutmut forgets every
    result when the selection changes)."""
    try:
        text = (WORK / name / "pyproject.toml").read_text(encoding="utf-8")
        used = tomllib.loads(text)["tool"]["mutmut"]["pytest_add_cli_args_test_selection"]
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return False
    wanted = [t for t in group.tests if (ROOT / t.split("::")[0]).exists()]
    return used == [*wanted, *group.select]


def run_group(
    name: str, group: Group, jobs: int | None, recheck: bool = False, sample: str = ""
) -> int:
    again = survivors(name, group) if recheck else None
    if recheck and again is None:
        print(f"== {name}: sources changed since the last run (or none ran): a full run")
    # A changed selection makes mutmut forget every result; a mutant some test killed stays
    # killed when tests are added, so those verdicts are put back after the run.
    killed = {} if again is None or same_selection(name, group) else killed_codes(name, group)
    if again == []:
        print(f"== {name}: nothing survived the last run", flush=True)
        return 0
    if again:
        work = refresh_tests(name)
        configure(name, group, work)
    else:
        work = prepare(name, group)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.setdefault("OMP_NUM_THREADS", "1")
    cmd = [sys.executable, "-m", "mutmut", "run"]
    if jobs:
        cmd += ["--max-children", str(jobs)]
    if again:
        cmd += again
        print(f"== {name}: re-running {len(again)} surviving mutants", flush=True)
    elif sample:
        cmd.append(f"*__mutmut_*[{sample}]")
        print(f"== {name}: mutants numbered ...{'/'.join(sample)} of {', '.join(group.sources)}")
    else:
        print(f"== {name}: mutating {', '.join(group.sources)}", flush=True)
    with (work / "mutmut.log").open("w") as log:
        done = subprocess.run(cmd, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
    restore_codes(name, group, killed)
    return done.returncode


def killed_codes(name: str, group: Group) -> dict[str, dict[str, int]]:
    """Per source file, the exit codes of the mutants the last run killed."""
    out = {}
    for source in group.sources:
        meta = WORK / name / "mutants" / f"{source}.meta"
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        out[source] = {m: c for m, c in codes.items() if c in KILLED}
    return out


def restore_codes(name: str, group: Group, killed: dict[str, dict[str, int]]) -> None:
    for source, codes in killed.items():
        meta = WORK / name / "mutants" / f"{source}.meta"
        data = json.loads(meta.read_text())
        for mutant, code in codes.items():
            if data["exit_code_by_key"].get(mutant) not in KILLED:
                data["exit_code_by_key"][mutant] = code
        meta.write_text(json.dumps(data, indent=4))


def load_equivalents() -> list[dict[str, str]]:
    if not EQUIVALENTS.exists():
        return []
    return tomllib.loads(EQUIVALENTS.read_text(encoding="utf-8")).get("equivalent", [])


def changed_lines(diff: str, sign: str) -> str:
    """The diff's removed (``-``) or added (``+``) line(s), whitespace-normalised."""
    lines = [x[1:] for x in diff.splitlines() if x.startswith(sign) and x[1:2] != sign]
    return " ".join(" ".join(line.split()) for line in lines)


def function_of(mutant: str) -> str:
    """``pkg.mod.x_func__mutmut_3`` -> ``func`` (``xǁClassǁmethod`` -> ``Class.method``)."""
    tail = mutant.rpartition(".")[2]
    tail = re.sub(r"__mutmut_\d+$", "", tail)
    return tail.removeprefix("x_").removeprefix("xǁ").replace("ǁ", ".")


def tally(name: str, group: Group) -> dict[str, Tally]:
    """Per source file: killed, surviving and equivalent mutants of the last run."""
    work = WORK / name
    sys.path.insert(0, str(work))
    cwd = Path.cwd()
    os.chdir(work)
    try:
        from mutmut.mutation.diff_apply import get_diff_for_mutant

        equivalents = load_equivalents()
        result: dict[str, Tally] = {}
        for source in group.sources:
            meta = work / "mutants" / f"{source}.meta"
            t = result.setdefault(source, Tally())
            if not meta.exists():
                continue
            codes = json.loads(meta.read_text())["exit_code_by_key"]
            for mutant, code in sorted(codes.items(), key=lambda kv: natural_key(kv[0])):
                if code in SKIPPED:
                    continue
                if code is None:  # the run was interrupted (or is still going)
                    t.unchecked += 1
                    continue
                if code in KILLED:
                    t.killed += 1
                    continue
                diff = get_diff_for_mutant(mutant, path=source)
                reason = match_equivalent(equivalents, source, mutant, diff)
                if reason:
                    t.equivalent.append((mutant, reason))
                else:
                    t.survived.append(mutant)
        return result
    finally:
        os.chdir(cwd)
        sys.path.remove(str(work))


def natural_key(mutant: str) -> tuple[str, int]:
    head, _, num = mutant.rpartition("__mutmut_")
    return head, int(num) if num.isdigit() else 0


def match_equivalent(entries: list[dict[str, str]], source: str, mutant: str, diff: str) -> str:
    """The reason of the entry that covers this mutant: same module and function, and either
    the same mutated line (``mutant``) or, for a line no mutant of which can be observed (dead
    code, a hint), the same original line (``line``)."""
    func, new, old = function_of(mutant), changed_lines(diff, "+"), changed_lines(diff, "-")
    for entry in entries:
        if entry["module"] != source or entry["function"] != func:
            continue
        if "mutant" in entry and " ".join(entry["mutant"].split()) == new:
            return entry["reason"]
        if "line" in entry and " ".join(entry["line"].split()) == old:
            return entry["reason"]
    return ""


def report(names: list[str], verbose: bool) -> bool:
    """Print the kill-rate table (and the survivors' diffs); True when every goal is met."""
    ok = True
    rows = []
    for name in names:
        group = GROUPS[name]
        if not (WORK / name / "mutants").exists():
            rows.append((name, "-", "not run", "", "", "", ""))
            ok = False
            continue
        for source, t in tally(name, group).items():
            met = t.rate >= group.goal and not t.unchecked
            ok &= met
            rows.append(
                (
                    name,
                    source,
                    f"{t.rate:6.1%}",
                    f"{t.killed}/{t.judged}",
                    str(len(t.equivalent)),
                    f"{group.goal:.0%}",
                    ("ok" if t.rate >= group.goal else "MISS")
                    + (f" ({t.unchecked} not run: sampled or interrupted)" if t.unchecked else ""),
                )
            )
            if verbose:
                print_survivors(name, source, t)
    header = ("group", "module", "killed", "killed/judged", "equivalent", "goal", "")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return ok


def print_survivors(name: str, source: str, t: Tally) -> None:
    work = WORK / name
    os.chdir(work)
    try:
        from mutmut.mutation.diff_apply import get_diff_for_mutant

        for mutant in t.survived:
            print(f"--- survived: {mutant}")
            print(get_diff_for_mutant(mutant, path=source))
        for mutant, reason in t.equivalent:
            print(f"--- equivalent: {mutant}: {reason}")
    finally:
        os.chdir(ROOT)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("groups", nargs="*", metavar="GROUP", help=", ".join(GROUPS))
    parser.add_argument("--jobs", type=int, default=None, help="workers (default: all cores)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a goal is missed")
    parser.add_argument("--report-only", action="store_true", help="report the last runs")
    parser.add_argument(
        "--sample",
        default="",
        metavar="DIGITS",
        help="only mutants whose number ends in one of DIGITS (e.g. 37: a fifth of them); "
        "the others stay unchecked and the kill rate is an estimate",
    )
    parser.add_argument(
        "--recheck",
        action="store_true",
        help="re-run only the last run's survivors against the current tests (sources unchanged)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="print surviving diffs")
    args = parser.parse_args()
    names = args.groups or list(GROUPS)
    unknown = sorted(set(names) - set(GROUPS))
    if unknown:
        parser.error(f"unknown group(s) {', '.join(unknown)}; choose from {', '.join(GROUPS)}")
    for name in names if not args.report_only else []:
        code = run_group(name, GROUPS[name], args.jobs, args.recheck, args.sample)
        if code:
            print(f"mutmut failed in {name} (exit {code}): see {WORK / name / 'mutmut.log'}")
            return 2
    ok = report(names, args.verbose)
    return 0 if ok or not args.check else 1


if __name__ == "__main__":
    sys.exit(main())
