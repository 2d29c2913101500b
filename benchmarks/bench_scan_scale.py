"""A scan at scale, through the real command: memory flat in rows, kill -9 + --resume, ranks.

Three checks on the example dataset (``examples/make_dataset.py --tokens``) with the demo
checkpoint, each a ratio or an equality from one run on one machine:

- ``memory``: peak RSS of ``fga-tui scan`` for 317 and 1,588 rows (target: ratio <= 1.3);
- ``kill``: ``kill -9`` at ten seeded random moments spread over the scan (all mid-scan), each
  followed by ``--resume``; the final rows file must equal an uninterrupted scan's, byte for
  byte, and no row may be journalled twice (a table per kill; exit 1 when a check fails);
- ``ranks``: rows/s of one process and of ``torchrun --nproc-per-node 2`` (gloo on CPU).

Run: ``python benchmarks/bench_scan_scale.py memory|kill|ranks [--rows N] [--seed S]``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples"))
CKPT = ROOT / "fga_tui" / "data" / "demo" / "demo_problem.pt"
ENTRY = [sys.executable, "-c", "from fga_tui.cli import main; main()"]
ARGS = ["--device", "cpu", "--no-progress", "--format", "json"]


def dataset(folder: Path, n: int, seed: int = 0) -> Path:
    import make_dataset

    path = folder / f"data{n}.jsonl"
    rows = make_dataset.write_tokens(make_dataset.generate(n, seed), path, folder / f"tok{n}")
    return make_dataset.write_jsonl(rows, path)


def peak_rss_mb(argv: list[str]) -> tuple[float, dict]:
    """Run ``argv`` in a fresh wrapper so RUSAGE_CHILDREN sees this one scan only."""
    code = (
        "import resource, subprocess, sys, json;"
        "p = subprocess.run(json.loads(sys.argv[1]), capture_output=True, text=True);"
        "print(json.dumps([resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,"
        " p.returncode, p.stdout, p.stderr[-2000:]]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, json.dumps(argv)], capture_output=True, text=True, check=True
    )
    kb, rc, stdout, stderr = json.loads(out.stdout)
    if rc != 0:
        raise SystemExit(f"scan failed ({rc}): {stderr}")
    return kb / 1024.0, json.loads(stdout)


def memory(folder: Path) -> None:
    results = {}
    for n in (317, 1588):
        data = dataset(folder, n)
        out = folder / f"rows{n}.jsonl"
        t0 = time.perf_counter()
        mb, summary = peak_rss_mb([*ENTRY, "scan", str(CKPT), str(data), "--out", str(out), *ARGS])
        results[n] = mb
        print(f"{n:>5} rows: peak RSS {mb:7.1f} MB, {summary['ok']} ok, "
              f"{time.perf_counter() - t0:.0f} s")  # fmt: skip
    ratio = results[1588] / results[317]
    print(
        f"peak RSS 1588 / 317 rows: {ratio:.2f} (target <= 1.3) {'ok' if ratio <= 1.3 else 'MISS'}"
    )


def _journal_lines(journal) -> int:
    """Complete row lines in all segments, duplicates included (a row run twice counts twice)."""
    from fga_tui.scan.journal import _row_lines

    return sum(1 for seg in journal.segments() for _ in _row_lines(seg))


def kill(folder: Path, n: int, kills: int, seed: int) -> None:
    """``kill -9`` at ``kills`` seeded random moments spread over one scan, each followed by a
    ``--resume`` (the next run), then a last ``--resume`` to the end; the rows file must equal
    the uninterrupted scan's byte for byte and no row may be journalled twice."""
    from fga_tui.scan.journal import Journal

    rng = random.Random(seed)
    data = dataset(folder, n)
    ref = folder / "ref.jsonl"
    t0 = time.perf_counter()
    args = [*ARGS, "--batch-size", "8"]
    subprocess.run([*ENTRY, "scan", str(CKPT), str(data), "--out", str(ref), *args],
                   check=True, capture_output=True)  # fmt: skip
    print(f"uninterrupted scan of {n} rows: {time.perf_counter() - t0:.1f} s")
    out = folder / "rows.jsonl"
    journal = Journal(out)
    # The moments: one random row count in each of ``kills`` equal slices of the first 5/6 of
    # the rows (spread over the scan, the end left free so that every kill lands mid-scan); a
    # run is killed once the journal holds that many rows, plus a random 0-0.3 s (mid-batch,
    # mid-diagnosis, mid-write). Batches of 8 rows journal finely enough for ten distinct moments.
    span = n - n // 6
    targets = [
        rng.randrange(1 + k * span // kills, 1 + (k + 1) * span // kills) for k in range(kills)
    ]
    print(" kill  target  waited s  journalled before -> after  mid-scan")
    mid = 0
    for k, target in enumerate(targets, start=1):
        argv = [*ENTRY, "scan", str(CKPT), str(data), "--out", str(out), *args]
        if journal.exists():
            argv.append("--resume")
        before = len(journal.done_rows())
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        t0 = time.perf_counter()
        while proc.poll() is None and len(journal.done_rows()) < target:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.3))
        running = proc.poll() is None
        proc.kill()
        proc.wait()
        after = len(journal.done_rows())
        inside = running and not out.exists() and after < n
        mid += inside
        print(f"{k:>5}  {target:>6}  {time.perf_counter() - t0:8.1f}  "
              f"{before:>17} -> {after:<5}  {'yes' if inside else 'NO'}")  # fmt: skip
    lines, unique = _journal_lines(journal), len(journal.done_rows())
    proc = subprocess.run(
        [*ENTRY, "scan", str(CKPT), str(data), "--out", str(out), *args, "--resume"],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise SystemExit(f"final --resume failed ({proc.returncode}): {proc.stderr[-2000:]}")
    ran = json.loads(proc.stdout)["distributed"]["rows_per_rank"][0]
    same = out.read_bytes() == ref.read_bytes()
    print(f"{mid} of {kills} kills mid-scan; journal before the last resume: {unique} rows, "
          f"{lines - unique} journalled twice; the last --resume ran {ran} rows "
          f"({unique} + {ran} = {unique + ran} of {n})")  # fmt: skip
    print(f"rows file identical to the uninterrupted scan's: {same}")
    if not same or lines != unique or unique + ran != n or mid != kills:
        raise SystemExit("kill check FAILED")


def ranks(folder: Path, n: int) -> None:
    data = dataset(folder, n)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    script = Path(sys.executable).parent / "fga-tui"
    timings = {}
    for world in (1, 2):
        out = folder / f"rows-w{world}.jsonl"
        args = ["scan", str(CKPT), str(data), "--out", str(out), *ARGS]
        if world == 1:
            argv = [*ENTRY, *args]
        else:
            argv = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1",
                    "--nproc-per-node", str(world), "--master-addr", "127.0.0.1",
                    "--master-port", "29517", "--no-python", str(script), *args]  # fmt: skip
        t0 = time.perf_counter()
        proc = subprocess.run(argv, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(proc.stderr[-2000:])
        summary = json.loads(proc.stdout)
        timings[world] = wall
        print(f"{world} process(es): {n} rows in {wall:.1f} s wall = {n / wall:.2f} rows/s "
              f"(scan itself {summary['samples_per_second']} rows/s; "
              f"rows per rank {summary['distributed']['rows_per_rank']})")  # fmt: skip
    same = (folder / "rows-w1.jsonl").read_bytes() == (folder / "rows-w2.jsonl").read_bytes()
    print(f"speed-up 2 vs 1: {timings[1] / timings[2]:.2f}x; rows identical: {same}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("check", choices=("memory", "kill", "ranks"))
    parser.add_argument("--rows", type=int, default=160)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; "
          f"{resource.getpagesize()} B pages")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if args.check == "memory":
            memory(folder)
        elif args.check == "kill":
            kill(folder, args.rows, args.kills, args.seed)
        else:
            ranks(folder, args.rows)


if __name__ == "__main__":
    main()
