"""Hand-written bugs at seeded random places: do the tests catch mutants nobody has looked at?

mutmut (``scripts/mutation.py``) applies its own operators everywhere and its survivors get
reviewed one by one, so a high kill rate there can be a list tuned to those mutants. This
script draws a *fresh* set instead, of the kinds of bug a person makes in these modules:

==============  ==============================================================================
kind            mutation (one per mutant)
==============  ==============================================================================
constant        a numeric constant (a threshold) x0.5, x1.5, x10 or x0.1
boolop          ``and`` <-> ``or``
compare         ``<`` <-> ``<=``, ``>`` <-> ``>=``, ``==`` <-> ``!=``, ``is`` / ``in`` negated
index           a constant index moved: ``[0]`` <-> ``[-1]``, ``[k]`` -> ``[k ± 1]``
neighbour       a computed index off by one (``[i]`` -> ``[i + 1]``): the neighbouring stage
minmax          ``min`` <-> ``max``, ``any`` <-> ``all``, ``argmin`` <-> ``argmax``
branch          an ``if`` body deleted (-> ``pass``; its ``else`` stays)
negation        a ``not`` dropped
severity        a ``Severity`` level raised or lowered
chmod           a ``chmod`` / ``fchmod`` call deleted
direct_write    an atomic write (temporary + rename) replaced by a direct write of the target
drop_call       a statement that only calls something (``x.append(...)``, ``validate(...)``)
                deleted
==============  ==============================================================================

The places are drawn from every candidate in the modules of ``scripts/mutation.py``'s groups,
round-robin over the kinds (so rare kinds are not drowned by constants), with ``--seed``. Each
mutant is written into a scratch copy of the repository (``.mutation/fresh/``; the working tree
is never touched) and judged by its group's test selection, like mutmut does; a mutant that a
test fails on, errors on or times out on is caught. Survivors are printed with their diff:
each is either a test gap (write the test) or harmless (say why in the report).

    python scripts/fresh_mutants.py --seed 2027 --count 50        # draw, run, report
    python scripts/fresh_mutants.py --seed 2027 --count 50 --list # only show the draw
    python scripts/fresh_mutants.py --seed 7 --count 20 verdict   # some groups only
"""

from __future__ import annotations

import argparse
import ast
import difflib
import os
import random
import shutil
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mutation import GROUPS, ROOT, WORK, repo_files


@dataclass(frozen=True)
class Edit:
    """Replace bytes [start, end) of a module's UTF-8 source with ``text``."""

    start: int
    end: int
    text: str


@dataclass(frozen=True)
class Site:
    """One place a kind can mutate; ``make`` turns the run's random draw into the edit."""

    group: str
    module: str
    line: int
    kind: str
    make: Callable[[random.Random], Edit]


@dataclass
class Mutant:
    site: Site
    source: bytes
    mutated: bytes

    def diff(self) -> str:
        old = self.source.decode().splitlines(keepends=True)
        new = self.mutated.decode().splitlines(keepends=True)
        return "".join(difflib.unified_diff(old, new, self.site.module, self.site.module, n=0))

    def changed_line(self) -> str:
        lines = [x[1:].strip() for x in self.diff().splitlines() if x[:1] == "+" and x[:2] != "++"]
        return " / ".join(lines)[:110]


class Source:
    """A module's text with byte offsets for ``ast`` positions (which count UTF-8 bytes)."""

    def __init__(self, path: Path) -> None:
        self.raw = path.read_bytes()
        self.tree = ast.parse(self.raw)
        self.starts = [0]
        for line in self.raw.splitlines(keepends=True):
            self.starts.append(self.starts[-1] + len(line))

    def span(self, node: ast.AST) -> tuple[int, int]:
        start = self.starts[node.lineno - 1] + node.col_offset  # type: ignore[attr-defined]
        end = self.starts[node.end_lineno - 1] + node.end_col_offset  # type: ignore[attr-defined]
        return start, end

    def text(self, node: ast.AST) -> str:
        start, end = self.span(node)
        return self.raw[start:end].decode()

    def edit(self, node: ast.AST, text: str) -> Edit:
        return Edit(*self.span(node), text)


def _excluded(tree: ast.AST) -> set[int]:
    """Ids of nodes no bug lives in: annotations and docstrings."""
    skip: list[ast.AST] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.arg | ast.AnnAssign) and node.annotation is not None:
            skip.append(node.annotation)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.returns:
            skip.append(node.returns)
        body = getattr(node, "body", None)
        first = body[0] if isinstance(body, list) and body else None
        value = first.value if isinstance(first, ast.Expr) else None
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            skip.append(first)
    return {id(n) for s in skip for n in ast.walk(s)}


_COMPARE_SWAP = {
    ast.Lt: "<=",
    ast.LtE: "<",
    ast.Gt: ">=",
    ast.GtE: ">",
    ast.Eq: "!=",
    ast.NotEq: "==",
    ast.Is: "is not",
    ast.IsNot: "is",
    ast.In: "not in",
    ast.NotIn: "in",
}
_COMPARE_TEXT = {
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Is: "is",
    ast.IsNot: "is not",
    ast.In: "in",
    ast.NotIn: "not in",
}
_MINMAX = {
    "min": "max",
    "max": "min",
    "any": "all",
    "all": "any",
    "argmin": "argmax",
    "argmax": "argmin",
    "minimum": "maximum",
    "maximum": "minimum",
    "amin": "amax",
    "amax": "amin",
}
_SEVERITIES = ("INFO", "WARNING", "ERROR")
_INDEX_NAMES = {"i", "j", "k", "idx", "index", "pos", "g", "h", "start", "stop", "end"}


def _scaled(value: float | int, rng: random.Random) -> str:
    factor = rng.choice((0.5, 1.5, 10.0, 0.1))
    if isinstance(value, int):
        scaled = round(value * factor)
        return repr(scaled if scaled != value else value + 1)
    return repr(value * factor)


def sites(group: str, module: str) -> Iterator[Site]:
    """Every place in ``module`` each kind can mutate."""
    src = Source(ROOT / module)
    skip = _excluded(src.tree)
    parents = {id(c): p for p in ast.walk(src.tree) for c in ast.iter_child_nodes(p)}

    def site(node: ast.AST, kind: str, make: Callable[[random.Random], Edit]) -> Site:
        return Site(group, module, node.lineno, kind, make)  # type: ignore[attr-defined]

    def path_arg(node: ast.AST) -> bool:
        """Whether the function enclosing ``node`` has a ``path`` parameter."""
        while id(node) in parents:
            node = parents[id(node)]
            if isinstance(node, ast.FunctionDef):
                return "path" in {a.arg for a in node.args.args + node.args.kwonlyargs}
        return False

    for node in ast.walk(src.tree):
        if id(node) in skip:
            continue
        parent = parents.get(id(node))
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, int | float)
            and not isinstance(node.value, bool)
            and node.value not in (0, 1)
            and not (isinstance(parent, ast.Subscript) and parent.slice is node)
        ):
            yield site(node, "constant", lambda r, n=node: src.edit(n, _scaled(n.value, r)))
        elif isinstance(node, ast.BoolOp):
            op = " or " if isinstance(node.op, ast.And) else " and "
            text = "(" + op.join(f"({src.text(v)})" for v in node.values) + ")"
            yield site(node, "boolop", lambda r, n=node, t=text: src.edit(n, t))
        elif isinstance(node, ast.Compare) and type(node.ops[0]) in _COMPARE_SWAP:
            parts = [f"({src.text(node.left)})", _COMPARE_SWAP[type(node.ops[0])]]
            parts.append(f"({src.text(node.comparators[0])})")
            for op, right in zip(node.ops[1:], node.comparators[1:], strict=True):
                parts += [_COMPARE_TEXT[type(op)], f"({src.text(right)})"]
            text = "(" + " ".join(parts) + ")"
            yield site(node, "compare", lambda r, n=node, t=text: src.edit(n, t))
        elif isinstance(node, ast.Subscript):
            index = node.slice
            value = None
            if isinstance(index, ast.Constant) and type(index.value) is int:
                value = index.value
            elif (
                isinstance(index, ast.UnaryOp)
                and isinstance(index.op, ast.USub)
                and isinstance(index.operand, ast.Constant)
                and type(index.operand.value) is int
            ):
                value = -index.operand.value
            if value is not None:

                def moved(r: random.Random, n: ast.AST = index, v: int = value) -> Edit:
                    if v in (0, -1):
                        return src.edit(n, str(-1 - v))
                    return src.edit(n, str(v + r.choice((-1, 1))))

                yield site(node, "index", moved)
            elif (isinstance(index, ast.Name) and index.id in _INDEX_NAMES) or (
                isinstance(index, ast.BinOp)
                and isinstance(index.op, ast.Add | ast.Sub)
                and isinstance(index.right, ast.Constant)
                and type(index.right.value) is int
            ):
                yield site(
                    node,
                    "neighbour",
                    lambda r, n=index: src.edit(n, f"{src.text(n)} {r.choice('+-')} 1"),
                )
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            if name in _MINMAX:
                end = src.span(func)[1]
                edit = Edit(end - len(name), end, _MINMAX[name])
                yield site(node, "minmax", lambda r, e=edit: e)
            if name in ("atomic_write_bytes", "atomic_write_text") and len(node.args) == 2:
                method = "write_bytes" if name.endswith("bytes") else "write_text"
                target, data = (src.text(a) for a in node.args)
                text = f"(Path({target}).{method}({data}) and Path({target}))"
                yield site(node, "direct_write", lambda r, n=node, t=text: src.edit(n, t))
            if name == "mkstemp" and path_arg(node):
                text = "(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666), str(path))"
                yield site(node, "direct_write", lambda r, n=node, t=text: src.edit(n, t))
        elif isinstance(node, ast.If):
            edit = Edit(src.span(node.body[0])[0], src.span(node.body[-1])[1], "pass")
            if "__name__" not in src.text(node.test):
                yield site(node, "branch", lambda r, e=edit: e)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            yield site(node, "negation", lambda r, n=node: src.edit(n, f"({src.text(n.operand)})"))
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "Severity"
            and node.attr in _SEVERITIES
        ):

            def level(r: random.Random, n: ast.Attribute = node) -> Edit:
                others = [s for s in _SEVERITIES if s != n.attr]
                return src.edit(n, f"Severity.{r.choice(others)}")

            yield site(node, "severity", level)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            func = node.value.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            kind = "chmod" if name in ("chmod", "fchmod", "lchmod") else "drop_call"
            yield site(node, kind, lambda r, n=node: src.edit(n, "pass"))


def all_sites(groups: list[str]) -> list[Site]:
    found = []
    for name in groups:
        for module in GROUPS[name].sources:
            found += sites(name, module)
    return found


def draw(candidates: list[Site], count: int, seed: int) -> list[Mutant]:
    """``count`` mutants, round-robin over the kinds in a seeded order; each a valid module
    that differs from the original (no-op edits are redrawn)."""
    rng = random.Random(seed)
    by_kind: dict[str, list[Site]] = defaultdict(list)
    for s in candidates:
        by_kind[s.kind].append(s)
    for pool in by_kind.values():
        rng.shuffle(pool)
    kinds = sorted(by_kind)
    rng.shuffle(kinds)
    originals: dict[str, bytes] = {}
    out: list[Mutant] = []
    while len(out) < count and any(by_kind.values()):
        for kind in kinds:
            if len(out) >= count or not by_kind[kind]:
                continue
            s = by_kind[kind].pop()
            raw = originals.setdefault(s.module, (ROOT / s.module).read_bytes())
            e = s.make(rng)
            new = raw[: e.start] + e.text.encode() + raw[e.end :]
            try:
                same = ast.dump(ast.parse(new)) == ast.dump(ast.parse(raw))
            except SyntaxError:
                continue
            if not same:
                out.append(Mutant(s, raw, new))
    return out


def scratch() -> Path:
    work = WORK / "fresh"
    shutil.rmtree(work, ignore_errors=True)
    for rel in repo_files():
        dest = work / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, dest)
    return work


def pytest_cmd(group: str, work: Path) -> list[str]:
    g = GROUPS[group]
    tests = [t for t in g.tests if (work / t.split("::")[0]).exists()]
    return [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests, *g.select]


def judge(m: Mutant, work: Path, timeout: float) -> str:
    """``caught`` (a test failed or errored), ``timeout`` (caught: it hangs) or ``SURVIVED``."""
    target = work / m.site.module
    env = {**os.environ, "PYTHONPATH": str(work), "OMP_NUM_THREADS": "1"}
    target.write_bytes(m.mutated)
    try:
        done = subprocess.run(
            pytest_cmd(m.site.group, work),
            cwd=work,
            env=env,
            capture_output=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return "timeout"
    finally:
        target.write_bytes(m.source)
    return "SURVIVED" if done.returncode == 0 else "caught"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("groups", nargs="*", metavar="GROUP", help=", ".join(GROUPS))
    parser.add_argument("--seed", type=int, required=True, help="which places are drawn")
    parser.add_argument("--count", type=int, default=50, help="mutants to draw (default 50)")
    parser.add_argument("--list", action="store_true", help="show the draw, run nothing")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per mutant")
    args = parser.parse_args()
    names = args.groups or list(GROUPS)
    unknown = sorted(set(names) - set(GROUPS))
    if unknown:
        parser.error(f"unknown group(s) {', '.join(unknown)}; choose from {', '.join(GROUPS)}")
    candidates = all_sites(names)
    mutants = draw(candidates, args.count, args.seed)
    kinds = Counter(s.kind for s in candidates)
    print(f"{len(candidates)} places ({', '.join(f'{k} {n}' for k, n in sorted(kinds.items()))})")
    print(f"seed {args.seed}: {len(mutants)} mutants")
    if args.list:
        for m in mutants:
            print(f"  {m.site.module}:{m.site.line} {m.site.kind}: {m.changed_line()}")
        return 0
    work = scratch()
    clean = subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "fga_tui"], cwd=work, capture_output=True
    )
    if clean.returncode:
        print("the scratch copy does not compile")
        return 2
    results: list[tuple[Mutant, str]] = []
    for k, m in enumerate(mutants, 1):
        began = time.monotonic()
        verdict = judge(m, work, args.timeout)
        results.append((m, verdict))
        where = f"{m.site.module}:{m.site.line}"
        took = time.monotonic() - began
        print(
            f"[{k}/{len(mutants)}] {verdict:8} {where} {m.site.kind}: {m.changed_line()} "
            f"({took:.0f} s)",
            flush=True,
        )
    print_table(results)
    survivors = [m for m, v in results if v == "SURVIVED"]
    for m in survivors:
        print(f"--- survived ({m.site.kind}):\n{m.diff()}")
    return 0


def print_table(results: list[tuple[Mutant, str]]) -> None:
    for title, key in (("module", lambda m: m.site.module), ("kind", lambda m: m.site.kind)):
        total: Counter[str] = Counter()
        caught: Counter[str] = Counter()
        for m, verdict in results:
            total[key(m)] += 1
            caught[key(m)] += verdict != "SURVIVED"
        print(f"\n{title:40} caught/total")
        for name in sorted(total):
            print(f"{name:40} {caught[name]}/{total[name]}")
    n = len(results)
    c = sum(v != "SURVIVED" for _, v in results)
    print(f"{'all':40} {c}/{n} ({c / n:.0%})" if n else "no mutants")


if __name__ == "__main__":
    sys.exit(main())
