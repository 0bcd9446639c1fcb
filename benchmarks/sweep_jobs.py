"""A sweep's wall time with ``--jobs 2`` against ``--jobs 1``.

The moons example (``examples/moons_mlp.guidl.json``) on ``--samples``
points for ``--epochs`` epochs on the CPU, swept with the random strategy over
the learning rate (a log range) and the first layer's width: ``--trials``
trials (12 by default), with the pruner off so that every trial trains every
epoch and both cases do the same work. Each case is the real command,
``python -m guidl sweep ... --jobs J``, in a fresh temporary folder (its own
runs folder and study file), timed from start to exit; ``--jobs 2`` starts two
worker processes, each with its share of the cores.

Prints the machine's cores and load before each case, each case's wall time,
the trials it finished, how many processes trained them and their training
time all told (``elapsed_s`` of each run.json: the rest of the wall time is
starting Python and PyTorch, preparing the data, and the study's storage),
and the ratio. Figures only; it never fails on time.

    python benchmarks/sweep_jobs.py [--trials 12] [--samples 2000] [--epochs 20] [--rounds 1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from common import ROOT

PARAMS = ("training.optimizer.params.lr=log:0.0001..0.1",
          "model.layers[0].params.out_features=4..64")


def moons_project(folder: Path, samples: int, epochs: int) -> Path:
    """The moons example with fewer samples and epochs, on the CPU, saved in ``folder``
    (so its runs folder is ``folder/runs``)."""
    doc = json.loads((ROOT / "examples" / "moons_mlp.guidl.json").read_text())
    doc["data"]["params"]["n_samples"] = samples
    doc["training"]["epochs"] = epochs
    doc["training"]["device"] = "cpu"
    path = folder / "moons.guidl.json"
    path.write_text(json.dumps(doc, indent=2))
    return path


def cores() -> str:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{os.cpu_count()} cores ({usable} usable by this process)"


def load() -> str:
    try:
        one, five, _ = os.getloadavg()
    except OSError:
        return "load unknown"
    return f"load {one:.2f} (1 min), {five:.2f} (5 min)"


def sweep(jobs: int, trials: int, samples: int, epochs: int) -> tuple[float, str]:
    """Wall seconds of one ``guidl sweep --jobs J`` and what its run folders say."""
    with tempfile.TemporaryDirectory(prefix=f"sweep-jobs{jobs}-") as name:
        folder = Path(name)
        project = moons_project(folder, samples, epochs)
        command = [sys.executable, "-m", "guidl", "sweep", str(project)]
        for param in PARAMS:
            command += ["--param", param]
        command += ["--strategy", "random", "--trials", str(trials), "--no-pruner",
                    "--jobs", str(jobs), "--study", "bench"]
        env = {key: value for key, value in os.environ.items() if key != "OMP_NUM_THREADS"}
        started = time.perf_counter()
        done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            sys.exit(f"guidl sweep --jobs {jobs} exited with {done.returncode}:\n"
                     f"{done.stderr.strip()[-2000:]}")
        statuses, pids, training = Counter(), set(), 0.0
        for path in (folder / "runs").glob("*/run.json"):
            record = json.loads(path.read_text())
            statuses[record.get("status")] += 1
            pids.add(record.get("pid"))
            training += record.get("elapsed_s") or 0.0
        what = ", ".join(f"{count} {status}" for status, count in sorted(statuses.items()))
        return seconds, (f"{sum(statuses.values())} run folders: {what or 'none'}, trained by "
                         f"{len(pids)} process{'es' if len(pids) != 1 else ''} in {training:.1f} s "
                         "of training all told")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=1,
                        help="rounds, each --jobs 1 then --jobs 2 (alternating which goes first)")
    args = parser.parse_args()
    print(f"moons MLP, {args.samples} samples x {args.epochs} epochs, CPU, {args.trials} trials "
          f"(random: {'; '.join(PARAMS)}), pruner off; {cores()}")
    times: dict[int, list[float]] = {1: [], 2: []}
    for round_ in range(args.rounds):
        # Shared machines drift: alternate the order so neither case always goes first.
        for jobs in ((1, 2) if round_ % 2 == 0 else (2, 1)):
            before = load()
            seconds, what = sweep(jobs, args.trials, args.samples, args.epochs)
            times[jobs].append(seconds)
            print(f"  --jobs {jobs}: {seconds:7.1f} s   ({what}; before it: {before})", flush=True)
    one, two = min(times[1]), min(times[2])
    print(f"best of {args.rounds}: --jobs 1 {one:.1f} s, --jobs 2 {two:.1f} s, "
          f"ratio (jobs 1 / jobs 2) {one / two:.2f}x; after: {load()}")


if __name__ == "__main__":
    main()
