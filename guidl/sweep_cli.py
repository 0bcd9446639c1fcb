"""``guidl sweep``: a sweep from the command line (``engine.sweep`` does the work).

One process runs the trials itself (``--jobs 1``), or starts ``--jobs J``
worker processes (``guidl sweep --worker``) that share the study's storage,
each with ``OMP_NUM_THREADS`` set to its share of the cores, and prints the
study's progress as they go. Exit status: 0 done, 2 bad input, 1 a failure
(no trial finished, a storage that fails), 130 stopped by Ctrl+C.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

#: As cli.EXIT_BAD_INPUT (not imported: cli imports this module).
EXIT_BAD_INPUT = 2
EXIT_STOPPED = 130
#: Environment of a worker process: the storage (a database URL may hold a
#: password: never on a command line others can read) and the parent's pid.
STORAGE_ENV, PARENT_ENV = "GUIDL_SWEEP_STORAGE", "GUIDL_SWEEP_PARENT"
#: A worker's sampler seed: its parent's (the project's when the parent made
#: the study, else one of its own) plus 1009 times the worker's index.
SEED_ENV = "GUIDL_SWEEP_SEED"


def _problems(lines: list[str], as_json: bool) -> int:
    for line in lines:
        print(line, file=sys.stderr)
    if as_json:
        print(json.dumps({"ok": False, "problems": lines}))
    return EXIT_BAD_INPUT


def run(args: argparse.Namespace) -> int:
    from . import spec

    if args.worker:
        return _worker(args)
    bad = lambda *lines: _problems([f"guidl sweep: {line}" for line in lines], args.json)  # noqa: E731
    if args.project is None and (args.param or args.compare):
        return bad("--param and --compare need the PROJECT file to vary")
    if args.project is None and not args.study:
        return bad("give a PROJECT file and --param PATH=SPEC to start a sweep, or --study NAME "
                   "(and --storage URL) to join one")
    if args.compare and (args.param or args.strategy or args.trials):
        return bad("--compare trains each variant once: leave out --param, --strategy and --trials")
    project = None
    if args.project is not None:
        try:
            project = spec.load(args.project)
        except spec.ProjectError as error:
            return _problems(error.lines(), args.json)
    starting = bool(args.param or args.compare)
    config = None
    if starting:
        config, problems = _config(args, project)
        if problems:
            return bad(*problems)
        from .cli import _pretrained_weights

        problem = _pretrained_weights(project, None, False)  # fetched once, before any trial
        if problem:
            return bad(problem)
        shared = _shared_problems(project, config)
        if shared:
            return bad(*shared)
    from .engine.sweep import (SweepError, create_or_load_study, default_storage_path, load_study, open_storage,
                               study_config, study_project)

    runs_root = Path(args.runs_dir)
    name = args.study or f"sweep-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    try:
        if not starting and args.storage is None and not default_storage_path(runs_root, name).is_file():
            return bad(f"there is no study {name!r} in {runs_root / 'sweeps'} (no {name}.journal): give "
                       "--storage URL, or a PROJECT and --param to start it")
        journal = _journal_path(args.storage)
        if not starting and journal is not None and not journal.is_file():
            return bad(f"--storage {args.storage}: no such journal file (to join a study, give the file "
                       "its sweep keeps; to start one, give a PROJECT and --param)")
        storage, shown = open_storage(args.storage, runs_root, name)
        if starting:
            study = create_or_load_study(storage, name, project, config, source=args.project)
        else:
            study = load_study(storage, name)
            # This machine may lack the study's data (a folder not shared, a file elsewhere).
            shared = _shared_problems(study_project(study), study_config(study)[0])
            if shared:
                return bad(*shared)
    except SweepError as error:
        return bad(str(error))
    return _run_study(args, study, storage, shown, project, runs_root)


def _shared_problems(project, config) -> list[str]:
    """What every trial would fail on (the data cannot be prepared, the loss
    does not fit it...), said once before the sweep starts instead of by
    each trial."""
    from .engine.sweep import shared_problems

    found = shared_problems(project, config)
    return [f"every trial would fail: {found[0]}", *found[1:]] if found else []


def _journal_path(storage: str | None) -> Path | None:
    """The file of a journal storage given as --storage, else None."""
    if storage is None or "://" in storage:
        return None
    if storage.startswith("journal:"):
        return Path(storage[len("journal:"):]).expanduser()
    return Path(storage).expanduser() if Path(storage).suffix.lower() in (".journal", ".log") else None


def _config(args: argparse.Namespace, project) -> tuple[Any, list[str]]:
    """The sweep's settings from the options, and what is wrong with them."""
    from .spec.sweep import SweepConfig, default_metric, parse_param

    if args.compare:
        from .spec.comparisons import comparison_config

        try:
            config = comparison_config(project, args.compare)
        except ValueError as error:
            return None, [f"--compare {args.compare}: {error}"]
        config.metric = args.metric or config.metric
    else:
        params = []
        for text in args.param:
            try:
                params.append(parse_param(text, project))
            except ValueError as error:
                return None, [f"--param {error}"]
        strategy = args.strategy or ("grid" if all(p.kind == "values" for p in params) else "tpe")
        config = SweepConfig(params, strategy=strategy, metric=args.metric or default_metric(project),
                             pruner=not args.no_pruner)
        config.trials = args.trials or (config.grid_size() if strategy == "grid" else 20)
    config.direction = args.direction
    config.epochs = args.epochs
    paths = {p.path for p in config.params}
    problems = [f"--param {p.path}: {p.message}" if p.path in paths
                else f"--{p.path}: {p.message}" if p.path in ("metric", "trials", "strategy", "epochs")
                else f"{p.path}: {p.message}" for p in config.problems(project)]
    return config, problems


def _run_study(args, study, storage, shown: str, project, runs_root: Path) -> int:
    from .engine.sweep import study_config

    config, stored = study_config(study)
    if project is not None and project.to_dict() != stored and not (args.param or args.compare):
        print(f"note: study {study.study_name!r} trains the project it was started with; the changes "
              f"in {args.project} since are not used", file=sys.stderr)
    lines = sys.stderr if args.json else sys.stdout
    varied = f"compare {config.compare or 'variants'}: " + ", ".join(config.variants) if config.variants \
        else f"{config.strategy}: " + " ".join(str(p) for p in config.params)
    print(f"guidl sweep: study {study.study_name!r} in {shown}: {config.budget()} trials ({varied}), {config.metric} ({config.resolved_direction}), run folders in {runs_root}",
          file=sys.stderr, flush=True)
    printer = _TrialPrinter(config.metric, lines)
    if args.jobs > 1:
        status = _run_jobs(args, study, shown, runs_root, printer)
    else:
        status = _run_here(args, study, shown, runs_root, printer)
    return _finish(args, study, shown, runs_root, status, lines)


def _storage_error(error: BaseException) -> str:
    from .formatting import first_line

    return f"guidl sweep: the study's storage failed: {type(error).__name__}: {first_line(error)}"


def _run_here(args, study, shown: str, runs_root: Path, printer, quiet: bool = False) -> str:
    """The trials in this process: "done", "stopped", or "error"."""
    import optuna

    from .engine.callbacks import ProgressBar
    from .engine.sweep import SweepError, run_worker, watch_parent
    from .engine.trainer import TrainControl

    if args.tensorboard:
        try:
            import torch.utils.tensorboard  # noqa: F401
        except ImportError:
            print("guidl sweep: --tensorboard needs the tensorboard package: pip install tensorboard",
                  file=sys.stderr)
            return "bad input"
    control = TrainControl()
    parent = os.environ.get(PARENT_ENV)
    watcher = watch_parent(control, int(parent)) if quiet and parent and parent.isdigit() else None

    def stop(signum, frame):
        if not quiet:
            print("\nguidl sweep: stopping after this batch (Ctrl+C again to abort)", file=sys.stderr)
        control.request_stop()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = {signum: signal.signal(signum, stop) for signum in stop_signals()}
    bar = (lambda: [ProgressBar(lines=io.StringIO())]) if sys.stderr.isatty() and not quiet else None
    try:
        return run_worker(study, runs_root, tensorboard=args.tensorboard, control=control,
                          on_trial_end=None if quiet else printer, storage_text=shown,
                          tune_threads=not quiet, callbacks=bar, on_wait_start=None if quiet else _waiting)
    except SweepError as error:
        print(f"guidl sweep: {error}", file=sys.stderr)
        return "bad input"
    except (OSError, optuna.exceptions.StorageInternalError) as error:
        print(_storage_error(error), file=sys.stderr)
        return "error"
    finally:
        if watcher is not None:
            watcher.stop()  # at once: exit_now then finds no other thread
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _run_jobs(args, study, shown: str, runs_root: Path, printer) -> str:
    """J worker processes sharing the study; this one prints its progress and
    passes Ctrl+C on to them."""
    from .engine.sweep import study_seed, trial_rows
    from .engine.threads import cores

    launches = worker_launches(args.jobs, cores(), study=study.study_name, runs_root=runs_root,
                               storage=args.storage or f"journal:{Path(shown).absolute()}",
                               seed=study_seed(study), tensorboard=args.tensorboard, environ=os.environ,
                               parent=os.getpid())
    threads = int(launches[0][1]["OMP_NUM_THREADS"])
    if len(launches) < args.jobs:
        print(f"note: --jobs {args.jobs} on {cores()} cores: {len(launches)} worker processes (more would "
              "share cores and each run slower)", file=sys.stderr)
    print(f"guidl sweep: {len(launches)} worker processes, {threads} thread{'s' if threads > 1 else ''} each",
          file=sys.stderr)
    # Each in a session of its own: a terminal's Ctrl+C reaches this process
    # alone, which passes it on once (a worker's second Ctrl+C aborts it).
    workers = [subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, **worker_popen_options())
               for command, env in launches]
    stops = 0
    asked = 0

    def stop(signum, frame):
        nonlocal stops
        stops += 1

    previous = {signum: signal.signal(signum, stop) for signum in stop_signals()}
    seen: set[int] = set()
    try:
        while True:
            if stops > asked:
                asked = stops
                if asked == 1:
                    print("\nguidl sweep: stopping every worker after its batch (Ctrl+C again to abort)",
                          file=sys.stderr)
                for worker in workers:
                    if worker.poll() is None:
                        ask_to_stop(worker)
            try:
                for row in trial_rows(study):
                    if row["state"] in _FINISHED and row["number"] not in seen:
                        seen.add(row["number"])
                        printer(row)
            except Exception as error:  # noqa: BLE001 - the workers go on; their own errors say why
                print(_storage_error(error), file=sys.stderr)
            if all(worker.poll() is not None for worker in workers):
                break
            time.sleep(0.5)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for worker in workers:
            if worker.poll() is None:
                ask_to_stop(worker)
                try:
                    worker.wait(30)
                except subprocess.TimeoutExpired:
                    worker.kill()
    codes = [worker.returncode for worker in workers]
    if stops or EXIT_STOPPED in codes:
        return "stopped"
    failed = [code for code in codes if code != 0]
    if failed:
        print(f"guidl sweep: {len(failed)} of {len(workers)} worker processes failed "
              f"(exit status {', '.join(str(c) for c in failed)}): their messages are above", file=sys.stderr)
        return "bad input" if set(failed) == {EXIT_BAD_INPUT} else "error"
    return "done"


def worker_popen_options() -> dict:
    """How a ``--jobs`` worker is started: in a session (Windows: a process
    group) of its own, so a terminal's Ctrl+C reaches the parent alone."""
    from .engine.sweep import WINDOWS

    if WINDOWS:
        return {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}
    return {"start_new_session": True}


def ask_to_stop(worker: subprocess.Popen) -> None:
    """Ask a ``--jobs`` worker to stop after its batch: SIGINT; on Windows,
    where a process is sent no SIGINT, CTRL_BREAK_EVENT to its process group
    (the worker takes SIGBREAK as Ctrl+C)."""
    from .engine.sweep import WINDOWS

    worker.send_signal(signal.CTRL_BREAK_EVENT if WINDOWS else signal.SIGINT)


def stop_signals() -> tuple[int, ...]:
    """The signals that stop a sweep after its batch: Ctrl+C, SIGTERM and, on
    Windows, Ctrl+Break (what the window and a --jobs parent send there)."""
    extra = (signal.SIGBREAK,) if hasattr(signal, "SIGBREAK") else ()
    return (signal.SIGINT, signal.SIGTERM) + extra


def worker_launches(jobs: int, cores: int, *, study: str, runs_root: Path, storage: str, seed: int,
                    tensorboard: bool, environ, parent: int) -> list[tuple[list[str], dict[str, str]]]:
    """The command and environment of each ``--jobs`` worker process: as many
    as the cores allow (never more processes than cores), each with its
    share of them as its thread count (``cores // processes``, at least 1),
    the storage in the environment (never on a command line others can
    read), its sampler's seed (``seed + 1009 * index``) and this process's id."""
    count = max(1, min(jobs, cores))
    threads = max(1, cores // count)
    base = [sys.executable, "-m", "guidl", "sweep", "--study", study, "--runs-dir", str(Path(runs_root).absolute()),
            "--worker"] + (["--tensorboard"] if tensorboard else [])
    env = {**environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), STORAGE_ENV: storage,
           PARENT_ENV: str(parent)}
    return [(base + ["--worker-index", str(i)], {**env, SEED_ENV: str(seed + 1009 * i)}) for i in range(count)]


def _worker(args: argparse.Namespace) -> int:
    """``guidl sweep --worker``: one of --jobs J's processes; quiet but for its errors."""
    from .engine.sweep import SweepError, load_study, open_storage

    runs_root = Path(args.runs_dir)
    try:
        storage, shown = open_storage(os.environ.get(STORAGE_ENV) or args.storage, runs_root, args.study)
        seed = os.environ.get(SEED_ENV, "")
        study = load_study(storage, args.study, seed=int(seed) if seed.isdigit() else None)
    except SweepError as error:
        print(f"guidl sweep [worker {args.worker_index}]: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    status = _run_here(args, study, shown, runs_root, None, quiet=True)
    return {"done": 0, "stopped": EXIT_STOPPED, "bad input": EXIT_BAD_INPUT}.get(status, 1)


def exit_now(code: int) -> None:
    """End the process with ``code`` at once, skipping the interpreter's
    teardown, when that loses nothing; else return (the caller exits as usual).

    After a sweep, tearing down torch, NumPy and Optuna's objects takes the
    process 1.5-2 s (measured: 2.3 s after the last line on 2 busy cores,
    0.06 s without), paid by every ``--jobs`` worker and then by the parent:
    the window's Stop waited that long for a sweep that had stopped. Every
    atexit handler still runs (logging, multiprocessing's children,
    TemporaryDirectory's cleanup, torch's); only object teardown is skipped,
    so it is taken only when no other thread runs and no file is open for
    writing but stdout and stderr (a buffered write would be lost). A journal
    storage opens its file for each write; a study's trials are told before
    ``run_worker`` returns."""
    import atexit
    import threading

    import psutil

    try:
        sys.stdout.flush()
        sys.stderr.flush()
        if any(thread is not threading.main_thread() and thread.is_alive() for thread in threading.enumerate()):
            return
        # psutil names the mode on Linux only: elsewhere any open file is taken as written.
        writing = [f for f in psutil.Process().open_files()
                   if f.fd not in (1, 2) and getattr(f, "mode", None) != "r"]
        if writing or not hasattr(atexit, "_run_exitfuncs"):
            return
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError, psutil.Error):
        return  # cannot tell: the usual exit
    os._exit(code)


def _waiting(rows: list[dict]) -> None:
    print(f"guidl sweep: waiting for {len(rows)} trial{'s' if len(rows) != 1 else ''} running in other "
          "processes (one whose worker dies is retried here); Ctrl+C leaves them", file=sys.stderr, flush=True)


#: A trial's row states once it has ended (retried: ended when its worker died).
_FINISHED = ("complete", "pruned", "failed", "stopped", "retried")


class _TrialPrinter:
    """A line per finished trial: number, state, metric, values, run folder."""

    def __init__(self, metric: str, stream):
        self.metric, self.stream = metric, stream

    def __call__(self, row: dict) -> None:
        print(trial_line(row, self.metric), file=self.stream, flush=True)


def _shown_path(path: str | None) -> str:
    if not path:
        return ""
    try:
        return os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        return path


def _values(row: dict) -> str:
    from .spec.paths import format_value

    if row.get("variant") is not None:
        return str(row["variant"])
    # A sampled float to 4 significant digits: the run folder's record keeps it whole.
    return "  ".join(f"{path}={value:.4g}" if isinstance(value, float) else f"{path}={format_value(value)}"
                     for path, value in row["params"].items())


def trial_line(row: dict, metric: str) -> str:
    from .formatting import printable

    value = "" if row["value"] is None else f"{metric} {row['value']:.4g}"
    state = row["state"]
    if state == "pruned" and row["intermediate"]:
        state = f"pruned at epoch {max(row['intermediate'])}"
    parts = [f"trial {row['number']:>3}", f"{state:<8}", value, _values(row), _shown_path(row["run_dir"])]
    if row["state"] in ("failed", "stopped", "retried") and row.get("cause"):
        parts.append(f"({row['cause']})")
    # A shared storage's trials may be anyone's: no escape of theirs reaches the terminal.
    return printable("  ".join(part for part in parts if part))


def _finish(args, study, shown: str, runs_root: Path, status: str, lines) -> int:
    from .engine.sweep import sweep_summary
    from .formatting import printable

    try:
        summary = sweep_summary(study, shown)
    except Exception as error:  # noqa: BLE001 - the storage went away: say so, once
        print(_storage_error(error), file=sys.stderr)
        if args.json:
            print(json.dumps({"ok": False, "error": _storage_error(error)}))
        return 1
    counts = summary["counts"]
    metric = summary["metric"]
    parts = [f"{counts[k]} {k}" for k in ("complete", "pruned", "failed", "stopped", "running", "waiting")
             if counts[k] or k in ("complete", "failed")]
    print(f"{study.study_name}: " + ", ".join(parts)
          + (f" ({counts['retried']} retried after their worker died)" if counts["retried"] else ""),
          file=lines)
    best = summary["best"]
    if best is not None:
        print(f"best: {trial_line(best, metric)}", file=lines)
    if summary["importances"] and not summary["compare"]:  # a race's one "parameter" is the variant
        print("importance: " + ", ".join(f"{name} {value:.2f}" for name, value in summary["importances"].items()),
              file=lines)
    print(f"see every run: guidl runs {_shown_path(str(runs_root.absolute()))}", file=lines)
    summary["runs_dir"] = str(runs_root)
    if status == "stopped":
        print("guidl sweep: stopped; join the study again to finish it: guidl sweep --study "
              f"{study.study_name}" + (f" --storage {shown}" if args.storage else "")  # no password
              + (f" --runs-dir {args.runs_dir}" if args.runs_dir != "runs" else ""), file=sys.stderr)
        code = EXIT_STOPPED
    elif status == "bad input":
        code = EXIT_BAD_INPUT
    elif status == "error":
        code = 1
    elif counts["complete"] + counts["pruned"] == 0:
        causes = [row["cause"] for row in summary["trials"] if row["state"] == "failed" and row["cause"]]
        print("guidl sweep: no trial finished" + (f"; the last failed with: {printable(causes[-1])}" if causes else ""),
              file=sys.stderr)
        code = 1
    else:
        code = 0
    summary["ok"] = code == 0
    if args.json:
        print(json.dumps(summary))
    return code
