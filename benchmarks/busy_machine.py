"""Training beside a busy program: torch's thread count against the load.

The MLP example on MNIST-shaped samples (an .npz in a temporary folder),
batch 128, Adam, CPU, trained in the training process the window starts,
first on an otherwise idle machine, then beside one program that keeps a
core busy (a Python loop). In each case:

- every core, fixed (torch's own count), at niceness 0 and at the window's;
- one thread fewer, fixed;
- the window's way: its niceness, and threads that follow the load
  (``guidl.engine.threads.ThreadTuner``).

Linux only (the busy program is started by ``sh``).

A run is stopped after ``--limit`` seconds at most (a stalled one crawls);
samples/s are the training process's own figure over the batches it
trained. Figures only; it never fails on time.

    python benchmarks/busy_machine.py [--samples 60000] [--epochs 3] [--limit 20]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import mlp_project


def busy_program() -> int:
    """Start a program that keeps one core busy, as one the user runs: not a
    child of this process (which stands for the window, whose family's load
    the training process leaves aside). Returns its process id."""
    shell = subprocess.run(["sh", "-c", f"'{sys.executable}' -c 'while True: pass' >/dev/null 2>&1 & echo $!"],
                           capture_output=True, text=True, check=True)
    time.sleep(0.5)  # the interpreter starting
    return int(shell.stdout.strip())


def train(project, data, limit_s: float, **job) -> tuple[float, str]:
    """samples/s of one run in a training process, and what its threads did."""
    from guidl.engine.training_process import Job, TrainingProcess

    process = TrainingProcess(Job(project, data, None, None, **job))
    process.start()
    started, rate, outcome = time.monotonic(), 0.0, None
    stopping = False
    for event in process.events():
        if event[0] == "batches":
            rate = event[3]["samples_per_s"]
        elif event[0] == "finished":
            outcome = event[1]
        elif event[0] == "failed":
            sys.exit(f"training failed: {event[1]}")
        if not stopping and time.monotonic() - started > limit_s:
            process.stop()
            stopping = True
    process.close()
    threads = outcome["threads"] if outcome else None
    if threads is None:
        what = ""
    elif threads["decisions"]:
        what = "; ".join(f"{count} thread{'s' if count > 1 else ''} from {seconds:.1f} s"
                         for seconds, _, count in threads["decisions"])
    else:
        what = f"kept {threads['most']} threads"
    return rate, what + (" (stopped at the time limit)" if stopping else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=60_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--limit", type=float, default=20.0, help="seconds a run may take at most")
    args = parser.parse_args()
    import torch

    from guidl.qt.worker import TRAINING_NICE, prepare_shared, process_threads

    most = torch.get_num_threads()
    cases = [
        (f"{most} threads, niceness 0", {"threads": most}),
        (f"{most} threads, niceness {TRAINING_NICE}", {"threads": most, "nice": TRAINING_NICE}),
        (f"{max(1, most - 1)} thread(s), niceness {TRAINING_NICE}",
         {"threads": max(1, most - 1), "nice": TRAINING_NICE}),
        (f"following the load, niceness {TRAINING_NICE} (the window's way)", process_threads()),
    ]
    with tempfile.TemporaryDirectory() as name:
        project = mlp_project(Path(name), args.samples, args.epochs)
        data = prepare_shared(project)
        print(f"MLP, {args.samples:,} samples x {args.epochs} epochs, batch 128, Adam, CPU, "
              f"{os.cpu_count()} cores, in the window's training process")
        for busy in (False, True):
            hog = busy_program() if busy else None
            try:
                print("beside one busy program:" if busy else "otherwise idle:")
                for label, job in cases:
                    rate, what = train(project, data, args.limit, **job)
                    print(f"  {label:48s} {rate:9,.0f} samples/s   {what}", flush=True)
            finally:
                if hog is not None:
                    os.kill(hog, signal.SIGKILL)


if __name__ == "__main__":
    main()
