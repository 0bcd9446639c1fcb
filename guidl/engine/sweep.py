"""Sweeps: one project trained many times with some settings varied, searched,
pruned, stored and analysed by Optuna.

A sweep is an Optuna study. What it varies (``spec.sweep.SweepConfig``) and the
project it varies are stored in the study's user attributes, so any process
that reaches the storage can join it or watch it with the storage and the
study's name alone (``guidl sweep --storage URL --study NAME``; the window).
Each trial trains with the same ``Trainer`` as ``guidl train`` and writes a
normal run folder (``RUNS/STEM-STUDY-tNNN``) whose run.json carries a
``sweep`` record, so ``guidl runs`` and the Runs panel list it.

Storages: a journal file (the default, ``RUNS/sweeps/STUDY.journal``; on a
shared file system it serves several machines) or an SQL database
(``sqlite:///sweep.db``, ``postgresql://...``, ``mysql://...``), whose
heartbeat lets Optuna fail the trial of a worker that vanished on any machine
and retry it (``RetryHeartbeatStaleTrialCallback``).

The budget is exact across workers. A worker asks Optuna for a trial, then
counts the trials numbered before it that are COMPLETE, PRUNED, RUNNING or
WAITING: when they already fill the budget, the trial it got is over budget.
Optuna cannot take back a trial once asked, so such a trial is told FAIL at
once, before it trains, with the user attribute ``guidl_over_budget``; every
reader here (``trial_rows``, the counts, the window) leaves it out, so it is
never shown as a trial of the sweep. A trial that fails (a NaN loss, a
setting refused) is FAIL with its ``cause`` and another trial takes its
place; after as many failures as the budget the sweep stops asking.

A grid's points are enqueued once, by the process that creates the study
(Optuna's ``create_study`` lets exactly one process create a name), each as
a WAITING trial that exactly one worker pops: no point runs twice, however
many processes share the study. A failed grid point is a result, not
replaced (there is no other point to run in its place).

A worker that dies (killed, crashed, its machine rebooted) leaves a RUNNING
trial. Any worker of the study judges it, as ``runs.read_run`` judges a run:
the process named in the trial's ``pid``/``host``/``process_started``/
``boot_time`` attributes is gone from this machine, or the trial's run folder
reads as failed because its process is gone (another machine's run whose
heartbeat stopped, an hour on: ``runs.STALE_AFTER_S``; that needs the runs
folder shared as well as the journal), or, on another machine, its worker's
heartbeat (the trial's ``alive_at``, set every minute) is older than
``ALIVE_STALE_S``, or it never said which process runs it (``UNCLAIMED_S``). An SQL storage's own heartbeat fails another machine's
dead trial after ``GRACE_S`` seconds. Such a trial is marked FAIL (a
compare-and-set in the storage: of two workers judging it, one wins) and
retried once with the same parameters. A worker with nothing left to start
waits for the trials still running elsewhere, so that it can retry them.
A trial the user stops (Ctrl+C) is FAIL with the cause "stopped by the
user"; a grid point is enqueued again, so whoever joins the study runs it.
"""

from __future__ import annotations

import gc
import itertools
import json
import math
import os
import secrets
import threading
import time
import warnings
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, NoReturn

import optuna
from optuna.exceptions import DuplicatedStudyError, ExperimentalWarning, UpdateFinishedTrialError
from optuna.trial import TrialState

from ..spec import Project, ProjectError
from ..spec.paths import parse_path
from ..spec.sweep import SweepConfig, apply_values
from .callbacks import Callback
from .runs import PROCESS_GONE, RunError, is_run_dir, process_gone, process_identity, read_run

#: Study user attributes: what the study was made with.
CONFIG_ATTR, PROJECT_ATTR, SOURCE_ATTR, STEM_ATTR, READY_ATTR = (
    "guidl_config", "guidl_project", "guidl_source", "guidl_stem", "guidl_ready")
#: Trial user attribute of an ask beyond the budget (told FAIL before it trained).
OVER_BUDGET_ATTR = "guidl_over_budget"
#: The cause of a trial whose worker process died.
WORKER_GONE = "its worker process ended without finishing (killed or crashed)"
STOPPED_BY_USER = "stopped by the user"
INTERRUPTED_BY_USER = "interrupted by the user"
#: An RDB storage's heartbeat: a trial not heard of for GRACE_S seconds is stale.
HEARTBEAT_S, GRACE_S = 30, 120
#: A RUNNING trial whose worker never recorded itself (it died between asking
#: and its first write) is judged dead after this long.
UNCLAIMED_S = 600.0
#: A running trial's heartbeat: its worker sets the trial's ALIVE_ATTR (UTC
#: epoch seconds) every ALIVE_EVERY_S; a trial of another machine not heard of
#: for ALIVE_STALE_S is judged dead (its worker killed, crashed or cut off),
#: whatever the storage: a journal file has no heartbeat of its own.
ALIVE_ATTR, ALIVE_EVERY_S, ALIVE_STALE_S = "alive_at", 60.0, 600.0
#: A trial of another machine whose worker stopped its heartbeat.
WORKER_SILENT = "its worker on {host} stopped reporting ({minutes} minutes without a heartbeat: killed, " \
                "crashed or cut off)"
#: How often a worker with nothing to start looks at the study again.
POLL_S = 1.0
#: The parameter a comparison varies: the variant's label.
VARIANT = "variant"
_STATE_NAMES = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned", TrialState.FAIL: "failed",
                TrialState.RUNNING: "running", TrialState.WAITING: "waiting"}
_STUDY_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
#: Tries at opening a new database whose tables another worker makes meanwhile.
_SCHEMA_ATTEMPTS = 4
_RDB_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql", "mariadb", "oracle", "mssql")

# Optuna reports each trial through its logger; guidl prints its own lines.
optuna.logging.set_verbosity(optuna.logging.ERROR)


class SweepError(ValueError):
    """A sweep that cannot start: a bad storage URL, a study that exists with
    other settings, a study not made by guidl. The message says what to do."""


# -- storages ---------------------------------------------------------------------------

def check_study_name(name: str) -> str:
    """A study's name, as it goes into file names; SweepError when unusable."""
    if not isinstance(name, str) or not 1 <= len(name) <= 100 or not set(name) <= _STUDY_NAME_CHARS \
            or name.startswith("."):
        raise SweepError(f"--study {name!r}: use 1 to 100 letters, digits, '.', '_' or '-' "
                         "(not starting with '.')")
    return name


def default_storage_path(runs_root: str | os.PathLike[str], study: str) -> Path:
    return Path(runs_root) / "sweeps" / f"{check_study_name(study)}.journal"


def open_storage(url: str | None, runs_root: str | os.PathLike[str],
                 study: str) -> tuple[optuna.storages.BaseStorage, str]:
    """The storage a sweep keeps its study in, and how to show it (an SQL
    URL without its password).

    None: a journal file ``runs_root/sweeps/STUDY.journal``. ``sqlite:///x.db``,
    ``postgresql://...``, ``mysql://...``: Optuna's RDBStorage with a heartbeat,
    whose stale trials are failed and retried once. A path ending ``.journal``
    or ``.log``, or ``journal:PATH``: a journal file there."""
    if url is None:
        return _journal(default_storage_path(runs_root, study))
    text = url.strip()
    if text.startswith("journal:"):
        return _journal(Path(text[len("journal:"):]))
    if "://" in text:
        scheme = text.split("://", 1)[0].split("+", 1)[0].lower()
        if scheme not in _RDB_SCHEMES:
            raise SweepError(f"--storage {_hide_password(text)}: unknown kind of storage {scheme!r}: give "
                             "sqlite:///FILE.db, postgresql://USER@HOST/DB, mysql://USER@HOST/DB, or a "
                             "journal file (PATH.journal)")
        return _rdb(text)
    path = Path(text)
    if path.suffix.lower() in (".journal", ".log"):
        return _journal(path)
    if path.suffix.lower() in (".db", ".sqlite", ".sqlite3"):
        raise SweepError(f"--storage {text}: an SQLite file is given as a URL: sqlite:///{text}")
    raise SweepError(f"--storage {text}: give a journal file (PATH.journal, or journal:PATH) or a database "
                     "URL (sqlite:///FILE.db, postgresql://..., mysql://...)")


#: Windows: no SIGINT for a worker (Ctrl+Break instead).
WINDOWS = os.name == "nt"


def _journal(path: Path) -> tuple[optuna.storages.BaseStorage, str]:
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock, JournalStorage

    path = path.expanduser().absolute()
    if path.is_dir():
        raise SweepError(f"--storage {path}: is a folder; give a journal file in it (e.g. {path / 'sweep.journal'})")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # A lock file created exclusively (NFSv3 or later), not Optuna's default
        # symbolic link: a writer killed while holding the lock leaves it behind,
        # and Optuna frees a stale lock only when it can stat it. A link to a
        # relative path dangles (its target is read from the link's folder), and
        # the next writer then spun for ever at full speed; a link needs
        # administrator rights on Windows, too.
        lock = JournalFileOpenLock(str(path))
        return JournalStorage(JournalFileBackend(str(path), lock_obj=lock)), str(path)
    except OSError as error:
        raise SweepError(f"cannot open the journal file {path}: {error.strerror or error}") from None


def _rdb(url: str) -> tuple[optuna.storages.BaseStorage, str]:
    shown = _hide_password(url)
    kwargs: dict[str, Any] = {}
    if url.lower().startswith("sqlite"):
        # Several workers write one SQLite file: wait for its lock instead of failing at once.
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}
    try:
        for attempt in range(_SCHEMA_ATTEMPTS):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ExperimentalWarning)
                    retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1)
                    return optuna.storages.RDBStorage(
                        url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
                        heartbeat_stale_trial_callback=retry, **kwargs), shown
            except ImportError:
                raise
            except Exception as error:  # noqa: BLE001 - SQLAlchemy's, of any driver
                # Workers started together on a new database each create Optuna's tables;
                # one wins, the others find them made: the next try uses them.
                if "already exists" not in str(error) or attempt == _SCHEMA_ATTEMPTS - 1:
                    raise
                time.sleep(0.5 * (attempt + 1))
        raise AssertionError("unreachable")
    except ImportError as error:
        raise SweepError(f"--storage {shown}: its database driver is not installed ({error.name or error}): "
                         "pip install it (psycopg2-binary for PostgreSQL, PyMySQL for MySQL with "
                         "mysql+pymysql://)") from None
    except Exception as error:  # noqa: BLE001 - SQLAlchemy's many errors: one line each
        from ..formatting import first_line

        raise SweepError(f"--storage {shown}: cannot open it: {first_line(error)}") from None


def _hide_password(url: str) -> str:
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a URL SQLAlchemy reads: show it as given
        return url


# -- studies ------------------------------------------------------------------------------

class _GridSampler(optuna.samplers.GridSampler):
    """Optuna's GridSampler over the sweep's grid. Its points are enqueued
    once each when the study is made, so workers pop them rather than draw
    them (drawing, two workers may take the same point at once). Its
    ``after_trial``, which stops an ``optimize`` loop once every point was
    handed out, is left out: the budget ends each worker, and with enqueued
    points it would look for a grid id those trials do not carry."""

    def after_trial(self, study, trial, state, values) -> None:
        return None


def make_sampler(config: SweepConfig, seed: int | None) -> optuna.samplers.BaseSampler:
    # A project's seed goes up to 2**63 - 1 (and workers add to it); NumPy's, which the samplers use, below 2**32.
    seed = seed % 2**32 if seed is not None else None
    if config.strategy == "grid":
        return _GridSampler(config.grid_space(), seed=seed)
    if config.strategy == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        # constant_liar: several workers' TPE treat each other's running
        # trials as bad, so they spread out instead of piling on one point.
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True,
                                          n_startup_trials=max(3, min(10, config.budget() // 3)))


def make_pruner(config: SweepConfig) -> optuna.pruners.BasePruner:
    if not config.pruner or config.variants is not None:
        return optuna.pruners.NopPruner()
    # Steps are 1-based epochs: n_warmup_steps=2 judges a trial from its second
    # epoch on, never on the first. Optuna's own default of five finished trials
    # before judging any: with two, the median of two early trials (often lucky
    # ones) pruned 12 of a 16-trial TPE sweep.
    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2)


def grid_points(config: SweepConfig) -> list[dict[str, Any]]:
    """The grid's points, in order; the budget's worth when ``trials`` is
    smaller than the grid (evenly spread over it)."""
    space = config.grid_space()
    names = list(space)
    points = [dict(zip(names, values)) for values in itertools.product(*space.values())]
    budget = config.budget()
    if budget < len(points):
        points = [points[(i * len(points)) // budget] for i in range(budget)]
    return points


def create_or_load_study(storage: optuna.storages.BaseStorage, name: str, project: Project,
                         config: SweepConfig, *, source: str | os.PathLike[str] | None = None,
                         stem: str | None = None, worker: int = 0) -> optuna.Study:
    """The study ``name`` in ``storage``: made with ``config`` and ``project``
    (stored in its user attributes, a grid's points enqueued) when it does
    not exist; joined when it exists with the same config (its own project
    is then the one trained). SweepError when it exists with other settings.

    ``worker`` varies the random samplers' seed between workers of one study
    (each worker has its own sampler; with the same seed they would draw the
    same points). A study that exists is joined with a seed of this
    process's own (as ``load_study`` without a seed).

    ``study_seed(study)`` is its sampler's seed: the worker processes this
    process starts take ``study_seed(study) + 1009 * index``."""
    check_study_name(name)
    direction = config.resolved_direction
    seed = project.training.seed + 1009 * worker
    try:
        study = optuna.create_study(storage=storage, study_name=name, direction=direction,
                                    sampler=make_sampler(config, seed), pruner=make_pruner(config))
        _opened(study, storage, seed)
    except DuplicatedStudyError:
        study = load_study(storage, name)
        theirs, _ = study_config(study)
        if theirs.to_dict() != config.to_dict():
            raise SweepError(f"study {name!r} exists with other settings ({_difference(theirs, config)}): "
                             "give another --study to start a new sweep, or leave out --param (and "
                             "--strategy, --trials, ...) to join this one") from None
        return study
    study.set_user_attr(CONFIG_ATTR, config.to_dict())
    study.set_user_attr(PROJECT_ATTR, project.to_dict())
    study.set_user_attr(SOURCE_ATTR, str(Path(source).absolute()) if source is not None else None)
    study.set_user_attr(STEM_ATTR, stem or run_stem(source, project))
    _enqueue_grid(study, config)
    study.set_user_attr(READY_ATTR, True)
    return study


def _enqueue_grid(study: optuna.Study, config: SweepConfig, repair: bool = False) -> None:
    if config.strategy != "grid":
        return
    for point in grid_points(config):
        # skip_if_exists only when finishing a set-up its maker left half done.
        study.enqueue_trial(point, skip_if_exists=repair)


def load_study(storage: optuna.storages.BaseStorage, name: str, *, seed: int | None = None,
               wait_s: float = 30.0) -> optuna.Study:
    """The guidl study ``name`` in ``storage``, with its sampler and pruner as
    its config says. SweepError when there is no such study, or it was not
    made by guidl sweep.

    ``seed``: the sampler's (``study_seed``). None draws one of this
    process's own: processes that join a study from other machines (or other
    terminals) must not draw the same random and TPE start-up points as its
    maker, which seeds from the project's seed."""
    check_study_name(name)
    try:
        bare = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        raise SweepError(f"there is no study {name!r} in this storage: give a PROJECT and --param to "
                         "start it") from None
    deadline = time.monotonic() + wait_s
    # Its maker stores the settings, then enqueues the grid, then says ready.
    while not bare.user_attrs.get(READY_ATTR):
        if time.monotonic() > deadline:
            if CONFIG_ATTR not in bare.user_attrs:
                raise SweepError(f"study {name!r} was not made by guidl sweep (it holds no sweep settings)")
            # Its maker stopped while enqueueing the grid: finish it (points already there are kept).
            config, _ = study_config(bare)
            _enqueue_grid(bare, config, repair=True)
            bare.set_user_attr(READY_ATTR, True)
            break
        time.sleep(0.2)
    config, _ = study_config(bare)
    if seed is None:
        seed = secrets.randbelow(2**31)
    study = optuna.load_study(study_name=name, storage=storage, sampler=make_sampler(config, seed),
                              pruner=make_pruner(config))
    return _opened(study, storage, seed)


#: What a study made or loaded here was opened with: the storage (its trials
#: are changed through the storage's public methods, never Optuna's private
#: ``study._storage``) and its sampler's seed. Weak: a study dropped is gone.
_OPENED: "weakref.WeakKeyDictionary[optuna.Study, tuple[optuna.storages.BaseStorage, int]]" = \
    weakref.WeakKeyDictionary()


def _opened(study: optuna.Study, storage: optuna.storages.BaseStorage, seed: int) -> optuna.Study:
    _OPENED[study] = (storage, seed)
    return study


def study_seed(study: optuna.Study) -> int:
    """The seed of the sampler ``create_or_load_study``/``load_study`` gave
    ``study`` (KeyError for a study they did not open)."""
    return _OPENED[study][1]


def study_config(study: optuna.Study) -> tuple[SweepConfig, dict]:
    """The config and the project dict the study was made with."""
    attrs = study.user_attrs
    if CONFIG_ATTR not in attrs or PROJECT_ATTR not in attrs:
        raise SweepError(f"study {study.study_name!r} was not made by guidl sweep (it holds no sweep settings)")
    try:
        return SweepConfig.from_dict(attrs[CONFIG_ATTR]), attrs[PROJECT_ATTR]
    except ValueError as error:
        raise SweepError(f"study {study.study_name!r}: its sweep settings cannot be read ({error})") from None


def study_project(study: optuna.Study) -> Project:
    """The project the study trains, checked as any project file is (a
    storage others write to holds no trusted settings); SweepError when it
    does not pass."""
    _, doc = study_config(study)
    try:
        return Project.from_dict(doc)
    except ProjectError as error:
        raise SweepError(f"study {study.study_name!r}: its project is not valid here: "
                         + "; ".join(str(p) for p in error.problems)) from None


def _difference(theirs: SweepConfig, ours: SweepConfig) -> str:
    a, b = theirs.to_dict(), ours.to_dict()
    parts = []
    for key in a:
        if a[key] == b.get(key):
            continue
        if key == "params":
            shown = lambda c: " ".join(str(p) for p in c.params) or "(none)"  # noqa: E731
            parts.append(f"it varies {shown(theirs)}; this command {shown(ours)}")
        elif key == "variants":
            parts.append("its variants differ")
        else:
            parts.append(f"its {key} is {a[key]}, this command's {b.get(key)}")
    return "; ".join(parts) or "its settings differ"


def run_stem(source: str | os.PathLike[str] | None, project: Project) -> str:
    """The first part of a sweep's run folder names (``STEM.STUDY.tN``) and
    of its project copy: the project file's name up to its first dot, else
    the project's name made safe for a file name."""
    if source is not None:
        name = Path(source).name.split(".")[0]
        if name:
            return name
    slug = "".join(c if c in _STUDY_NAME_CHARS else "_" for c in project.name.lower().replace(" ", "_"))
    return slug.strip("._-") or "run"


# -- the trials ----------------------------------------------------------------------------

class PruningCallback(Callback):
    """Reports the sweep's metric to Optuna after every epoch; when the pruner
    says so, ends the run as pruned (``trainer.outcome``), so RunFolder writes
    status pruned and the trial is told PRUNED."""

    def __init__(self, trial: optuna.Trial, metric: str):
        self.trial, self.metric = trial, metric
        self.taken = False  # another worker judged this trial's worker dead

    def on_epoch_end(self, trainer, metrics) -> None:
        value = metrics.get(self.metric)
        if value is None or not math.isfinite(value):
            return
        try:
            self.trial.report(float(value), metrics.epoch)
        except UpdateFinishedTrialError:
            self.taken = True
            trainer.stop_training = True
            trainer.stop_reason = "another worker marked this trial failed and retried it"
            return
        # At the last epoch the training is done: stopping it saves nothing, and a
        # pruned trial's figure would be left out of the best and the importances.
        if metrics.epoch < trainer.epochs and self.trial.should_prune():
            trainer.outcome = "pruned"
            trainer.stop_training = True
            trainer.stop_reason = (f"pruned by Optuna's median pruner at epoch {metrics.epoch} "
                                   f"({self.metric} {value:.4g})")


class _TrialFailed(Exception):
    """A trial that could not train (its cause is in its user attributes)."""


class _OverBudget(Exception):
    """An ask beyond the budget: told FAIL before it trains, never shown."""


class SweepStopped(Exception):
    """The user stopped the sweep (its current trial is FAIL, stopped by the user)."""


@dataclass
class Tally:
    """The sweep's trials by state (over-budget asks left out; a failed trial
    that was retried counts as retried, not failed)."""

    budget: int
    complete: int = 0
    pruned: int = 0
    failed: int = 0
    running: int = 0
    waiting: int = 0
    retried: int = 0
    stopped: int = 0

    @property
    def finished(self) -> int:
        return self.complete + self.pruned + self.failed


def _retried_numbers(trials: Iterable[optuna.trial.FrozenTrial]) -> set[int]:
    return {number for t in trials for number in t.system_attrs.get("retry_history", [])}


def _visible(trials: list[optuna.trial.FrozenTrial]) -> list[optuna.trial.FrozenTrial]:
    return [t for t in trials if not t.user_attrs.get(OVER_BUDGET_ATTR)]


def tally(study: optuna.Study, config: SweepConfig | None = None) -> Tally:
    config = config or study_config(study)[0]
    trials = _visible(study.get_trials(deepcopy=False))
    retried = _retried_numbers(trials)
    result = Tally(config.budget())
    for t in trials:
        if t.state == TrialState.FAIL and t.number in retried:
            result.retried += 1
        elif _stopped(t):
            result.stopped += 1
        elif t.state in _STATE_NAMES:
            name = _STATE_NAMES[t.state]
            setattr(result, name, getattr(result, name) + 1)
    return result


def _counts_toward_budget(t: optuna.trial.FrozenTrial, grid: bool, retried: set[int]) -> bool:
    if t.user_attrs.get(OVER_BUDGET_ATTR):
        return False
    if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING):
        return True
    # A grid's failed point is its result; elsewhere another trial takes its place.
    # A point the user stopped is enqueued again: whoever joins the study runs it.
    return grid and t.state == TrialState.FAIL and t.number not in retried and not _stopped(t)


def _stopped(t: optuna.trial.FrozenTrial) -> bool:
    return t.state == TrialState.FAIL and t.user_attrs.get("cause") in (STOPPED_BY_USER, INTERRUPTED_BY_USER)


def _over_budget(study: optuna.Study, number: int, config: SweepConfig) -> bool:
    trials = study.get_trials(deepcopy=False)
    retried = _retried_numbers(trials)
    grid = config.strategy == "grid"
    before = sum(1 for t in trials if t.number < number and _counts_toward_budget(t, grid, retried))
    return before >= config.budget()


def _plan(study: optuna.Study, config: SweepConfig) -> str:
    """What a worker does next: "ask" (start a trial), "wait" (others' trials
    run; one of them may still fail and need a retry) or "done"."""
    count = tally(study, config)
    if count.waiting:
        return "ask"
    grid = config.strategy == "grid"
    if not grid:
        capped = count.failed >= count.budget  # as many failures as the budget: stop asking
        filled = count.complete + count.pruned + count.running >= count.budget
        if not capped and not filled:
            return "ask"
    return "wait" if count.running else "done"


#: When this process first saw each RUNNING trial that no worker has claimed,
#: (study, number) -> time.monotonic(): judged on this process's own clock,
#: as the trial's datetime_start is the naive local time of whichever machine
#: asked for it (another time zone, another clock).
_UNCLAIMED_SEEN: dict[tuple[str, int], float] = {}


def _dead_reason(t: optuna.trial.FrozenTrial, study_name: str = "") -> str | None:
    """Why the RUNNING trial ``t`` is judged dead (its worker gone), or None."""
    attrs = t.user_attrs
    host = process_identity()["host"]
    if attrs.get("pid") == os.getpid() and attrs.get("host") == host:
        return None  # this process's own trial
    alive = attrs.get(ALIVE_ATTR)
    if attrs.get("host") not in (None, host) and isinstance(alive, (int, float)) and not isinstance(alive, bool) \
            and time.time() - alive > ALIVE_STALE_S:
        # Another machine's worker: its process cannot be looked at from here, its
        # heartbeat can (UTC epoch seconds both sides; clocks kept by NTP agree well
        # within the ten minutes).
        return WORKER_SILENT.format(host=str(attrs.get("host"))[:80], minutes=round((time.time() - alive) / 60))
    run_dir = attrs.get("run_dir")
    if isinstance(run_dir, str) and is_run_dir(run_dir):
        try:
            record = read_run(run_dir)  # a run whose process is gone is marked failed here
        except RunError:
            record = None
        if record is not None and record.get("status") == "failed" and record.get("error") == PROCESS_GONE:
            return WORKER_GONE
    identity = {key: attrs.get(key) for key in ("pid", "host", "process_started", "boot_time")}
    if identity["pid"] is None:
        first = _UNCLAIMED_SEEN.setdefault((study_name, t.number), time.monotonic())
        if time.monotonic() - first > UNCLAIMED_S:
            return WORKER_GONE  # asked, but its worker never said who it is: it died at once
    if isinstance(identity["pid"], int):
        # Only this machine's processes can be checked; "modified" now leaves other machines' alone.
        try:
            if process_gone(identity, time.time()):
                return WORKER_GONE
        except (ValueError, OverflowError):
            return None
    return None


def reap_dead_trials(study: optuna.Study, storage: optuna.storages.BaseStorage | None = None) -> list[int]:
    """Mark each RUNNING trial whose worker is gone FAIL (with its cause) and
    retry it once with the same parameters; the numbers of those marked.
    ``storage``: the study's (default: the one it was opened with here)."""
    storage = storage if storage is not None else _OPENED[study][0]
    study_id = storage.get_study_id_from_name(study.study_name)
    marked = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1)
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        reason = _dead_reason(t, study.study_name)
        if reason is None:
            continue
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, t.number)
        try:
            storage.set_trial_user_attr(trial_id, "cause", reason)
            # A compare-and-set: of two workers judging it, one alone succeeds.
            if not storage.set_trial_state_values(trial_id, TrialState.FAIL):
                continue
        except UpdateFinishedTrialError:
            continue  # it finished meanwhile, or another worker marked it
        marked.append(t.number)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            retry(study, storage.get_trial(trial_id))
    return marked


#: The settings the prepared data depends on, beyond ``data`` (as ``_data_key``).
_DATA_FREE = ("batch_size", "augment")


def _related(a: str, b: str) -> bool:
    """Whether two JSON paths touch the same part of a project: the same
    section (``data``), training component (``training.loss``) or layer list
    (``model.layers``), or one holds the other. A value swept at one may cause
    or cure a problem found at the other."""
    def key(path: str) -> tuple:
        try:
            return tuple(parse_path(path)[:2]) if path else ()
        except ValueError:
            return ()  # a path that does not parse: related to all (the trials then meet it)
    ka, kb = key(a), key(b)
    return ka[:len(kb)] == kb or kb[:len(ka)] == ka


def _data_swept(paths: Iterable[str]) -> bool:
    """Whether a swept path changes the prepared data (its settings, its seed, the task's scaling)."""
    for path in paths:
        try:
            parts = parse_path(path)
        except ValueError:
            return True  # cannot tell: the trials meet whatever it is
        if parts[0] == "data" and (len(parts) < 2 or parts[1] not in _DATA_FREE):
            return True
        if parts[0] == "task" or parts == ["training", "seed"]:
            return True
    return False


def shared_problems(project: Project, config: SweepConfig) -> list[str]:
    """What every trial of the sweep would fail on, found before the first
    one starts: the data cannot be prepared, or the model, loss or optimizer
    do not fit it (``Trainer.setup``: data prepared and the model built
    once, nothing trained). A problem a swept value may cause or cure is left
    for the trials to meet; a comparison is refused only when every variant
    fails. Lines to print; [] when the trials can start."""
    from .data import DatasetError, prepare
    from .trainer import Trainer, TrainingError

    if config.variants is not None:
        candidates = [Project.from_dict(doc) for doc in config.variants.values()]
        swept: list[str] = []
    else:
        candidates, swept = [project.copy()], [p.path for p in config.params]
    for candidate in candidates:
        if config.epochs:
            candidate.training.epochs = config.epochs
    try:
        data = prepare(candidates[0], seed=candidates[0].training.seed)
    except DatasetError as error:
        return [] if _data_swept(swept) else [str(error)]
    except ProjectError as error:
        return [] if _data_swept(swept) else error.lines()
    found: list[str] = []
    for candidate in candidates:
        try:
            Trainer(candidate, data=data).setup()
        except ProjectError as error:
            if any(_related(problem.path, path) for problem in error.problems for path in swept):
                return []
            found = found or error.lines()
        except (DatasetError, TrainingError) as error:  # e.g. the data does not fit on the device
            if _data_swept(swept):
                return []
            found = found or [str(error)]
        except Exception:  # noqa: BLE001 - not a setting's fault (torch, the device): each trial says it
            return []
        else:
            return []  # one trial at least can train
        finally:
            gc.collect()  # the check's model and data go before the first trial's come
            _release_gpu_cache()
    return found


def _release_gpu_cache() -> None:
    """Hand the GPU memory torch caches back (a ``--jobs`` parent trains nothing)."""
    import torch

    if torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def _data_key(project: Project) -> str:
    """The settings the prepared data depends on (as the window's data cache)."""
    from .data import pixel_range_of

    data = {k: v for k, v in project.data.to_dict().items() if k not in _DATA_FREE}
    return json.dumps({"data": data, "seed": project.training.seed, "scaling": pixel_range_of(project)},
                      sort_keys=True)


def _suggest(trial: optuna.Trial, config: SweepConfig) -> dict[str, Any]:
    if config.variants is not None:
        return {VARIANT: trial.suggest_categorical(VARIANT, list(config.variants))}
    values = {}
    for param in config.params:
        if config.strategy == "grid":
            values[param.path] = trial.suggest_categorical(param.path, param.grid_values(config.grid_points))
        elif param.kind == "values":
            values[param.path] = trial.suggest_categorical(param.path, list(param.values))
        elif param.integer:
            values[param.path] = trial.suggest_int(param.path, int(param.low), int(param.high), log=param.log)
        else:
            values[param.path] = trial.suggest_float(param.path, float(param.low), float(param.high),
                                                     log=param.log)
    return values


def run_dir_for(runs_root: Path, stem: str, study: str, number: int) -> Path:
    """A free folder for trial ``number`` (a folder left from an earlier
    study of the same name is never written over)."""
    from .runs import is_free_run_dir

    base = Path(runs_root) / f"{stem}-{study}-t{number:03d}"
    path, attempt = base, 1
    while not is_free_run_dir(path):
        attempt += 1
        path = base.with_name(f"{base.name}-{attempt}")
    return path


class _Worker:
    """One process's part of a sweep: trials one after another."""

    def __init__(self, study: optuna.Study, runs_root: Path, *, storage_text: str | None, tensorboard: bool,
                 control, tune_threads: bool, callbacks: Callable[[], list] | None):
        from .trainer import TrainControl

        self.study = study
        self.runs_root = Path(runs_root)
        self.storage_text = storage_text
        self.tensorboard = tensorboard
        self.control = control or TrainControl()
        self.tune_threads = tune_threads
        self.extra_callbacks = callbacks
        self.config, _ = study_config(study)
        self.base = study_project(study)
        attrs = study.user_attrs
        self.source = attrs.get(SOURCE_ATTR)
        self.stem = attrs.get(STEM_ATTR) or run_stem(None, self.base)
        self.metric = self.config.metric
        self._data: tuple[str, Any] | None = None  # (key, PreparedData) of the last trial
        self.current: int | None = None

    def objective(self, trial: optuna.Trial) -> float:
        self.current = trial.number
        if _over_budget(self.study, trial.number, self.config):
            trial.set_user_attr(OVER_BUDGET_ATTR, True)
            raise _OverBudget()
        run_dir = run_dir_for(self.runs_root, self.stem, self.study.study_name, trial.number)
        # Before anything slow: who runs it, so a dead worker's trial can be told apart.
        for key, value in {**process_identity(), "run_dir": str(run_dir.absolute()), "cause": None,
                           ALIVE_ATTR: time.time()}.items():
            trial.set_user_attr(key, value)
        heartbeat = Heartbeat(trial)
        try:
            return self._claimed(trial, run_dir)
        finally:
            heartbeat.stop()

    def _claimed(self, trial: optuna.Trial, run_dir: Path) -> float:
        values = _suggest(trial, self.config)
        variant = values.get(VARIANT) if self.config.variants is not None else None
        trial.set_user_attr("variant", variant)
        try:
            project = (Project.from_dict(self.config.variants[variant]) if variant is not None
                       else apply_values(self.base, values))
            if self.config.epochs:
                project.training.epochs = self.config.epochs
        except ProjectError as error:
            self._fail(trial, "; ".join(str(p) for p in error.problems))
        record = {"study": self.study.study_name, "storage": self.storage_text, "trial": trial.number,
                  "params": values, "variant": variant, "metric": self.metric,
                  "direction": self.config.resolved_direction}
        frozen = next(t for t in self.study.get_trials(deepcopy=False) if t.number == trial.number)
        retry_of = frozen.system_attrs.get("failed_trial")
        if retry_of is not None:
            record["retry_of"] = retry_of
        return self._train(trial, project, run_dir, record, values)

    def _fail(self, trial: optuna.Trial, cause: str) -> NoReturn:
        trial.set_user_attr("cause", cause)
        raise _TrialFailed(cause)

    def _prepared(self, project: Project):
        from .data import prepare

        key = _data_key(project)
        if self._data is None or self._data[0] != key:
            self._data = None  # the old data goes before the new is loaded
            self._data = (key, prepare(project, seed=project.training.seed))
        return self._data[1]

    def _train(self, trial: optuna.Trial, project: Project, run_dir: Path, record: dict,
               values: dict) -> float:
        from .callbacks import EarlyStopping, RunFolder, TensorBoardLogger
        from .trainer import Trainer, describe_error

        pruning = PruningCallback(trial, self.metric)
        callbacks: list = [RunFolder(run_dir, source=self.source, extra={"sweep": record}), pruning]
        if project.training.early_stopping is not None:
            callbacks.append(EarlyStopping(**project.training.early_stopping))
        if self.tune_threads:
            from .threads import ThreadTuner, can_follow_load, threads_set_by_user

            if not threads_set_by_user() and can_follow_load():
                callbacks.append(ThreadTuner())
        if self.tensorboard:
            callbacks.append(TensorBoardLogger(run_dir / "tensorboard"))
        if self.extra_callbacks is not None:
            callbacks += self.extra_callbacks()
        try:
            data = self._prepared(project)
            trainer = Trainer(project, data=data, callbacks=callbacks, control=self.control)
            result = trainer.fit()
        except KeyboardInterrupt:  # a second Ctrl+C: the run folder says interrupted
            trial.set_user_attr("cause", INTERRUPTED_BY_USER)
            self._enqueue_again(values)
            raise
        except Exception as error:  # noqa: BLE001 - a NaN loss, a refused setting, a full disk...:
            # this trial fails with its cause (as guidl train would say it); the sweep goes on.
            if is_run_dir(run_dir):
                self._hparams(run_dir, values, None, failed=True)
            else:  # refused before its run folder was made, as guidl train makes none then
                trial.set_user_attr("run_dir", None)
            self._fail(trial, describe_error(error))
        if self.control.stop_requested:
            trial.set_user_attr("cause", STOPPED_BY_USER)
            self._enqueue_again(values)
            raise SweepStopped(STOPPED_BY_USER)
        if pruning.taken:
            raise _TrialFailed(WORKER_GONE)
        final = result.final
        value = final.get(self.metric) if final is not None else None
        if getattr(trainer, "outcome", None) == "pruned":
            trial.set_user_attr("cause", result.stop_reason)
            self._hparams(run_dir, values, value)
            raise optuna.TrialPruned(result.stop_reason)
        if value is None or not math.isfinite(value):
            self._hparams(run_dir, values, None, failed=True)
            self._fail(trial, f"{self.metric} was {'not recorded' if value is None else value} "
                              "at the last epoch: the trial has no figure to compare")
        if result.stopped:
            trial.set_user_attr("cause", result.stop_reason)  # e.g. early stopping: still a result
        self._hparams(run_dir, values, value)
        return float(value)

    def _enqueue_again(self, values: dict) -> None:
        """A grid point the user stopped waits for the study's next worker
        (another sampler's trial is simply replaced by a new one)."""
        if self.config.strategy == "grid":
            self.study.enqueue_trial(values)

    def _hparams(self, run_dir: Path, values: dict, value: float | None, failed: bool = False) -> None:
        """The trial in TensorBoard's HParams view (a failed one as a failure, which it can filter out)."""
        if not self.tensorboard:
            return
        try:
            from .hparams import write_hparams
        except ImportError:
            return
        try:
            write_hparams(run_dir / "tensorboard", values, {self.metric: value},
                          status="failure" if failed else "success")
        except OSError:
            pass  # the run folder says what went wrong with the folder

    def run_one(self) -> int | None:
        """Ask for a trial and train it; its number (None when no trial was
        asked). SweepStopped when the user stopped it."""
        self.current = None
        try:
            self.study.optimize(self.objective, n_trials=1, catch=(_TrialFailed, _OverBudget),
                                gc_after_trial=False)
        except UpdateFinishedTrialError:
            pass  # another worker judged this one dead meanwhile and retried its trial
        return self.current


def run_worker(study: optuna.Study, runs_root: str | os.PathLike[str], *, tensorboard: bool = False,
               on_trial_end: Callable[[dict], None] | None = None, control=None,
               storage_text: str | None = None, tune_threads: bool = False,
               callbacks: Callable[[], list] | None = None, poll_s: float = POLL_S,
               on_wait_start: Callable[[list[dict]], None] | None = None) -> str:
    """Run trials of ``study`` until its budget is met: "done"; "stopped"
    when ``control`` was asked to stop (the trial then running is FAIL,
    stopped by the user, its run folder stopped).

    ``on_trial_end(row)`` is called once for each trial of the study seen
    finished (this worker's and others'), ``row`` as ``trial_rows`` makes it.
    ``callbacks()`` gives more callbacks for each trial (a progress bar).
    ``tune_threads``: follow the machine's load as ``guidl train`` does (a
    worker started with its share of the cores keeps it instead).
    ``on_wait_start(rows)`` is called when the worker starts waiting for trials
    that run in other processes (once per wait)."""
    worker = _Worker(study, Path(runs_root), storage_text=storage_text, tensorboard=tensorboard,
                     control=control, tune_threads=tune_threads, callbacks=callbacks)
    seen: set[int] = set()
    waiting = False

    def report() -> None:
        if on_trial_end is None:
            return
        for row in trial_rows(study):
            if row["state"] in ("complete", "pruned", "failed", "stopped", "retried") and row["number"] not in seen:
                seen.add(row["number"])
                on_trial_end(row)

    while True:
        if worker.control.stop_requested:
            return "stopped"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)  # an RDB storage's heartbeat (nothing for a journal)
        reap_dead_trials(study)
        report()
        plan = _plan(study, worker.config)
        if plan == "done":
            report()
            return "done"
        if plan == "wait":
            if on_wait_start is not None and not waiting:
                on_wait_start([row for row in trial_rows(study) if row["state"] == "running"])
            waiting = True
            time.sleep(poll_s)
            continue
        waiting = False
        try:
            worker.run_one()
        except SweepStopped:
            report()
            return "stopped"
        report()


class Heartbeat(threading.Thread):
    """Sets a running trial's ALIVE_ATTR to the time (UTC epoch seconds)
    every ``every_s`` until ``stop()``, so workers on other machines can tell
    a trial that runs from one whose worker died (see ``_dead_reason``)."""

    def __init__(self, trial: optuna.Trial, every_s: float = ALIVE_EVERY_S):
        super().__init__(name="guidl-sweep-heartbeat", daemon=True)
        self.trial, self.every_s = trial, every_s
        self.finished = threading.Event()
        self.start()

    def run(self) -> None:
        while not self.finished.wait(self.every_s):
            try:
                self.trial.set_user_attr(ALIVE_ATTR, time.time())
            except Exception:  # noqa: BLE001 - a storage hiccup: the next beat tries again
                continue

    def stop(self) -> None:
        self.finished.set()
        if self.is_alive():
            self.join()


class ParentWatch(threading.Thread):
    """The thread ``watch_parent`` starts; ``stop()`` ends it at once (an
    Event, not a sleep: a worker that is done exits without waiting for the
    thread's next look, and ``sweep_cli.exit_now`` sees no other thread)."""

    def __init__(self, control, parent: int, interval_s: float):
        super().__init__(name="guidl-sweep-parent", daemon=True)
        self.control, self.parent, self.interval_s = control, parent, interval_s
        self.finished = threading.Event()

    def run(self) -> None:
        import psutil

        while not self.control.stop_requested:
            if not psutil.pid_exists(self.parent) or os.getppid() != self.parent:
                self.control.request_stop()
                return
            if self.finished.wait(self.interval_s):
                return

    def stop(self) -> None:
        self.finished.set()
        if self.is_alive() and self is not threading.current_thread():
            self.join()


def watch_parent(control, parent: int, interval_s: float = 2.0) -> ParentWatch:
    """Stop a worker process (after its batch) when the ``guidl sweep`` that
    started it is gone, so a killed sweep leaves no workers behind. Call the
    returned thread's ``stop()`` when the worker is done."""
    thread = ParentWatch(control, parent, interval_s)
    thread.start()
    return thread


# -- reading a study ---------------------------------------------------------------------

def _row(t: optuna.trial.FrozenTrial, retried: set[int]) -> dict[str, Any]:
    duration = (t.datetime_complete - t.datetime_start).total_seconds() \
        if t.datetime_complete is not None and t.datetime_start is not None else None
    value = t.value if t.state in (TrialState.COMPLETE, TrialState.PRUNED) else None
    state = _STATE_NAMES.get(t.state, t.state.name.lower())
    if t.state == TrialState.FAIL and t.number in retried:
        state = "retried"
    elif _stopped(t):
        state = "stopped"
    return {
        "number": t.number, "state": state,
        "value": value if value is None or math.isfinite(value) else None,
        "params": dict(t.params), "run_dir": t.user_attrs.get("run_dir"),
        "duration_s": duration,
        "intermediate": {int(step): v for step, v in sorted(t.intermediate_values.items())},
        "variant": t.user_attrs.get("variant"), "cause": t.user_attrs.get("cause"),
        "retry_of": t.system_attrs.get("failed_trial"),
        "started": t.datetime_start.isoformat(timespec="seconds") if t.datetime_start else None,
    }


def trial_rows(study: optuna.Study) -> list[dict[str, Any]]:
    """Each trial of the sweep (over-budget asks left out), by number:
    ``number``, ``state`` (complete, pruned, failed, retried (its worker died;
    run again as the trial whose ``retry_of`` names it), stopped (by the user;
    a grid point is enqueued again), running, waiting), ``value`` (the metric;
    a pruned trial's last reported one), ``params``, ``run_dir``,
    ``duration_s``, ``intermediate`` {epoch: value}, ``variant``, ``cause``,
    ``retry_of``, ``started``."""
    trials = _visible(study.get_trials(deepcopy=False))
    retried = _retried_numbers(trials)
    return [_row(t, retried) for t in sorted(trials, key=lambda t: t.number)]


def best_row(study: optuna.Study) -> dict[str, Any] | None:
    """The best complete trial's row, or None before one completes."""
    try:
        best = study.best_trial
    except ValueError:
        return None
    trials = _visible(study.get_trials(deepcopy=False))
    return _row(best, _retried_numbers(trials))


def importances(study: optuna.Study) -> dict[str, float]:
    """Each parameter's importance for the metric (Optuna's fANOVA over the
    complete trials), highest first; {} while too few trials tell."""
    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    if len(complete) < 2:
        return {}
    try:
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            found = optuna.importance.get_param_importances(study, evaluator=evaluator)
    except Exception:  # noqa: BLE001 - too few distinct values, one value only, ...: nothing to say
        return {}
    return {name: float(value) for name, value in found.items() if math.isfinite(value)}


def sweep_summary(study: optuna.Study, storage_text: str | None = None) -> dict[str, Any]:
    """The sweep as one JSON-ready object (``guidl sweep --json``, the window)."""
    config, _ = study_config(study)
    count = tally(study, config)
    return {
        "ok": True, "study": study.study_name, "storage": storage_text,
        "metric": config.metric, "direction": config.resolved_direction,
        "strategy": config.strategy, "budget": config.budget(), "compare": config.compare,
        "params": [p.to_dict() for p in config.params],
        "counts": {"complete": count.complete, "pruned": count.pruned, "failed": count.failed,
                   "stopped": count.stopped, "retried": count.retried, "running": count.running,
                   "waiting": count.waiting},
        "trials": trial_rows(study), "best": best_row(study), "importances": importances(study),
    }

