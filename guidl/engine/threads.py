"""How many threads torch's parallel sections use while training on the CPU,
following what else keeps the machine's cores busy.

torch's parallel sections (OpenMP) split each operation evenly between their
threads and wait for the slowest. With a thread per core, a program that keeps
one core busy holds back one thread, and every other thread waits for it at
every step: on two cores, beside one busy program, the MLP trained at 31,800
samples/s with two threads, 1,100 with two at niceness 10 (as the window runs
it) and 79,000 with one. On an idle machine two threads were 1.3x faster than
one (``benchmarks/busy_machine.py``).

``ThreadTuner`` trains with every core while the machine is otherwise idle,
and with one thread fewer for each core that other programs keep busy, for as
long as they do. It measures that load (the busy time of the cores this
process may use, less its own, its children's and the window's, on Linux)
rather than trying thread counts in turn: the count changes the order of
floating-point sums, and so the last digits of the results, so on an idle
machine a run keeps one count from start to end and gives the same numbers
every time, in the window as headless.
"""

from __future__ import annotations

import os
import time
from typing import Callable

import torch

from .callbacks import Callback

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def _stat(pid: int | str) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _process_seconds(pid: int | str) -> float | None:
    """CPU seconds used so far by process ``pid`` (all its threads)."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / _TICK if fields else None


def _busy_seconds(cpus: set[int] | None = None) -> float | None:
    """CPU seconds that ``cpus`` (every CPU when None) have spent busy so
    far. Time the hypervisor stole is not counted: no thread count gets it
    back."""
    try:
        with open("/proc/stat") as f:
            lines = [line.split() for line in f if line.startswith("cpu")]
    except OSError:
        return None
    total = 0
    try:
        for name, user, nice, system, _idle, _iowait, irq, softirq, *_ in lines:
            if (name == "cpu") if cpus is None else (name[3:].isdigit() and int(name[3:]) in cpus):
                total += int(user) + int(nice) + int(system) + int(irq) + int(softirq)
    except ValueError:
        return None
    return total / _TICK


def _descendants(roots: set[int]) -> set[int]:
    """``roots`` and every process started from them, however indirectly."""
    parents: dict[int, int] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:  # no /proc: nothing to find
        return set(roots)
    for entry in entries:
        if entry.isdigit():
            fields = _stat(entry)
            if fields:
                parents[int(entry)] = int(fields[1])
    family = set(roots)
    for pid in parents:
        chain, p = [], pid
        while p in parents and p not in family and p not in chain and p > 1:
            chain.append(p)
            p = parents[p]
        if p in family:
            family.update(chain)
    return family


def can_follow_load() -> bool:
    """Whether the system says how busy the other programs keep its cores."""
    return _busy_seconds() is not None and _process_seconds("self") is not None


def threads_set_by_user() -> bool:
    """Whether ``OMP_NUM_THREADS`` sets torch's thread count: it is then kept."""
    return bool(os.environ.get("OMP_NUM_THREADS"))


class OtherLoad:
    """Cores, among those this process may run on, kept busy by processes
    other than this one, ``ignore`` (the window that started the run: its
    bursts of painting are no reason to change anything) and the processes
    they started (compiler workers, the fork server); on average since the
    previous call. None where the system does not say (anything but Linux)."""

    RESCAN = 10  # samples between looks for new processes of the family

    def __init__(self, ignore: tuple[int, ...] = (), clock: Callable[[], float] = time.monotonic):
        self.roots = {os.getpid(), *ignore}
        self.cpus = set(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
        self.clock = clock
        self._family = _descendants(self.roots)
        self._samples = 0
        self._last = self._read()

    def _read(self) -> tuple[float, float] | None:
        busy = _busy_seconds(self.cpus)
        own = [_process_seconds(pid) for pid in self._family]
        if busy is None or not any(s is not None for s in own):
            return None
        return busy - sum(s for s in own if s is not None), self.clock()

    def __call__(self) -> float | None:
        """Other programs' cores since the previous call (None: not known)."""
        self._samples += 1
        if self._samples % self.RESCAN == 0:
            family = _descendants(self.roots)
            if family != self._family:  # both readings over the same processes
                self._family = family
                self._last = self._read()
                return None
        now = self._read()
        last, self._last = self._last, now
        if now is None or last is None or now[1] <= last[1]:
            return None
        return max(0.0, (now[0] - last[0]) / (now[1] - last[1]))

    def restart(self) -> None:
        """Forget the time since the last sample (a pause)."""
        self._last = self._read()


class ThreadTuner(Callback):
    """Sets ``torch.set_num_threads`` during a CPU run: ``most`` threads
    (torch's own count, at most one per core this process may use) while the
    machine is otherwise idle, one fewer for each core other programs keep
    busy. The load is sampled every ``interval_s`` seconds of training; a
    count changes when ``agree`` samples in a row ask for the same new one, so
    a moment's burst (a program starting) changes nothing. A core counts as
    taken from ``DROP`` of its time on, and free again below ``FREE``, so a
    program using half a core does not flip the count to and fro. Each change
    is recorded in ``decisions``, and the run's notes say that it happened.
    Runs in the training thread: the setting belongs to the thread that makes
    it.
    """

    DROP = 0.6  # of a core's time, kept busy by others: one thread fewer
    FREE = 0.3  # below this, the thread comes back

    def __init__(self, most: int | None = None, load: Callable[[], float | None] | None = None,
                 interval_s: float = 0.5, agree: int = 2, clock: Callable[[], float] = time.monotonic,
                 ignore: tuple[int, ...] = (), available: int | None = None):
        self.cores = available or cores()  # the cores this process may use
        self.most = min(most or torch.get_num_threads(), self.cores)
        self.interval_s, self.agree = interval_s, agree
        self.clock = clock
        self._load = load if load is not None else OtherLoad(ignore, clock)
        self.enabled = self.most > 1
        self.choice = self.most
        #: (seconds into the run, epoch, thread count) for each change
        self.decisions: list[tuple[float, int, int]] = []
        self._threads_before: int | None = None
        self._taken = 0  # cores other programs hold, as last decided
        self._wanted: list[int] = []  # the latest samples' counts
        self._sampled = 0.0
        self._started = 0.0

    # -- hooks ----------------------------------------------------------------------------------

    def on_fit_start(self, trainer) -> None:
        if trainer.device.type != "cpu" or getattr(trainer, "distributed", None) is not None:
            self.enabled = False  # the threads then feed a GPU, or are the launcher's to set
        if not self.enabled:
            return
        self.choice, self.decisions, self._taken = self.most, [], 0
        self._threads_before = torch.get_num_threads()
        torch.set_num_threads(self.most)
        self._started = self.clock()
        self._restart()

    def on_resume(self, trainer) -> None:
        if self.enabled:
            self._restart()  # the load while paused says nothing of the load while training

    def on_train_batch_end(self, trainer, batch: int, loss: float) -> None:
        now = self.clock()
        if not self.enabled or now - self._sampled < self.interval_s:
            return
        self._sampled = now
        others = self._load()
        if others is None:
            return
        taken = self._taken
        if int(others + 1 - self.DROP) > taken:
            taken = int(others + 1 - self.DROP)
        elif int(others + 1 - self.FREE) < taken:
            taken = int(others + 1 - self.FREE)
        wanted = max(1, min(self.most, self.cores - taken))
        self._wanted = (self._wanted + [wanted])[-self.agree:]
        if wanted != self.choice and self._wanted == [wanted] * self.agree:
            self.choice, self._taken = wanted, taken
            torch.set_num_threads(wanted)
            self.decisions.append((self._sampled - self._started, trainer.epoch + 1, wanted))

    def on_train_end(self, trainer, result) -> None:
        if self.decisions:
            fewest = min(count for _, _, count in self.decisions)
            trainer.notes.append(
                f"other programs kept the CPU busy during this run, so part of it trained with "
                f"{fewest} thread{'s' if fewest > 1 else ''} instead of {self.most} "
                f"({len(self.decisions)} change{'s' if len(self.decisions) > 1 else ''}, the first in "
                f"epoch {self.decisions[0][1]}): its last digits may differ from a run on an idle machine")

    def on_fit_end(self, trainer, result) -> None:
        self._restore()

    def on_exception(self, trainer, error: BaseException) -> None:
        self._restore()

    # -- helpers --------------------------------------------------------------------------------

    def _restart(self) -> None:
        self._wanted = []
        self._sampled = self.clock()
        if hasattr(self._load, "restart"):
            self._load.restart()

    def _restore(self) -> None:
        if self._threads_before is not None:
            torch.set_num_threads(self._threads_before)
            self._threads_before = None
