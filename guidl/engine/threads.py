"""How many threads torch's parallel sections use while training on the CPU,
chosen by measuring.

torch's parallel sections (OpenMP) split each operation evenly between their
threads and wait for the slowest. With a thread per core, anything else that
wants a core for a moment (the window painting its charts, another program)
holds back one thread, and every other thread waits for it. On two cores,
beside one busy program, the MLP trained at 16,000 samples/s with two threads
and 67,000 with one; on an otherwise idle machine two threads were 1.2-1.3x
faster than one. Neither count is right everywhere, nor for a whole run: the
other program may start or end while the model trains.

``ThreadTuner`` therefore tries its candidate counts in turn for a fraction
of a second of training each, keeps the fastest, and tries again later; a
choice that wins again is kept twice as long the next time (up to a minute),
so a steady machine spends about 1% of its time trying the others.
"""

from __future__ import annotations

import os
import time

import torch

from .callbacks import Callback


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def thread_candidates(most: int | None = None) -> list[int]:
    """Counts worth trying, most first: every core, all but one (left to the
    window or another program), and half of them."""
    most = most or torch.get_num_threads()
    return sorted({most, max(1, most - 1), max(1, most // 2)}, reverse=True)


class ThreadTuner(Callback):
    """Sets ``torch.set_num_threads`` during a CPU run to whichever of
    ``candidates`` trains fastest now (see the module's docstring).

    Each candidate is measured over at least ``probe_s`` seconds and
    ``probe_batches`` batches, not counting the first batch after a change
    (the thread pool may grow then), nor time across an epoch's end or a
    pause; one running at under half the current choice's rate is given up
    after a batch. The winner is then kept for ``hold_s`` seconds, doubled each time
    the same count wins again, up to ``max_hold_s``, and never less than
    ten times what the trial took. Must run in the training thread: the
    setting belongs to the thread that makes it.
    """

    GIVE_UP = 0.5  # a trial ends early below this fraction of the choice's rate

    def __init__(self, candidates: list[int] | None = None, probe_s: float = 0.25,
                 probe_batches: int = 3, hold_s: float = 2.0, max_hold_s: float = 60.0,
                 clock=time.perf_counter):
        self.candidates = sorted(set(candidates or thread_candidates()), reverse=True)
        if not self.candidates or min(self.candidates) < 1:
            raise ValueError(f"thread counts must be at least 1, not {candidates}")
        self.probe_s, self.probe_batches = probe_s, probe_batches
        self.min_hold_s, self.max_hold_s = hold_s, max_hold_s
        self.hold_s = hold_s
        self.clock = clock
        self.enabled = len(self.candidates) > 1
        self.choice = self.candidates[0]
        #: samples/s of each candidate in the latest trial
        self.rates: dict[int, float] = {}
        #: (seconds into the run, count chosen) at the end of each trial
        self.decisions: list[tuple[float, int]] = []
        self._threads_before: int | None = None
        self._trying: list[int] = []  # candidates still to try in this trial
        self._mark: float | None = None  # end of the previous batch
        self._seconds = 0.0  # measured so far in the current phase
        self._batches = 0
        self._samples = 0
        self._trial_s = 0.0
        self._started = 0.0
        self._reference = 0.0  # samples/s of the current choice, as last measured

    # -- hooks ----------------------------------------------------------------------------------

    def on_fit_start(self, trainer) -> None:
        if trainer.device.type != "cpu" or getattr(trainer, "distributed", None) is not None:
            self.enabled = False  # the threads then feed a GPU, or are the launcher's to set
        if not self.enabled:
            return
        self._threads_before = torch.get_num_threads()
        self._started = self.clock()
        self._start_trial()

    def on_epoch_start(self, trainer, epoch_index: int) -> None:
        self._mark = None  # validation and checkpoints are not batches

    def on_pause(self, trainer) -> None:
        self._mark = None

    def on_resume(self, trainer) -> None:
        self._mark = None

    def on_train_batch_end(self, trainer, batch: int, loss: float) -> None:
        if not self.enabled:
            return
        now = self.clock()
        if self._mark is None:  # the first batch after a gap or a change: not measured
            self._mark = now
            return
        self._seconds += now - self._mark
        self._mark = now
        self._batches += 1
        self._samples += trainer.batch_size
        if self._trying:
            rate = self._samples / max(self._seconds, 1e-9)
            # A count far slower than another (threads waiting for a core
            # another program holds) is given up after one batch.
            best = max([self._reference, *self.rates.values()])
            if self._measured() or rate < self.GIVE_UP * best:
                self._trial_s += self._seconds
                self.rates[self._trying.pop(0)] = rate
                if self._trying:
                    self._use(self._trying[0])
                else:
                    self._decide()
        elif self._seconds >= self.hold_s:
            self._reference = self._samples / max(self._seconds, 1e-9)  # the choice's rate, held
            self._start_trial()

    def on_fit_end(self, trainer, result) -> None:
        self._restore()  # the final evaluation (before this hook) used the choice

    def on_exception(self, trainer, error: BaseException) -> None:
        self._restore()

    # -- the choice -----------------------------------------------------------------------------

    def _measured(self) -> bool:
        return self._seconds >= self.probe_s and self._batches >= self.probe_batches

    def _start_trial(self) -> None:
        self.rates = {}
        self._trial_s = 0.0
        # The current choice last: the others are tried while it is still fresh
        # in the pool, and the run goes on with it if it wins again.
        self._trying = [c for c in self.candidates if c != self.choice] + [self.choice]
        self._use(self._trying[0])

    def _decide(self) -> None:
        best = max(self.rates, key=self.rates.get)
        if best == self.choice:
            self.hold_s = min(2 * self.hold_s, self.max_hold_s)
        else:
            self.hold_s = self.min_hold_s
        # A slow model's trial (seconds a batch) must stay a small part of its run.
        self.hold_s = max(self.hold_s, 10 * self._trial_s)
        self.choice = best
        self._reference = self.rates[best]
        self.decisions.append((self.clock() - self._started, best))
        self._use(best)

    def _use(self, threads: int) -> None:
        if threads != torch.get_num_threads():
            torch.set_num_threads(threads)
            self._mark = None  # the pool may grow on its first batch
        self._seconds, self._batches, self._samples = 0.0, 0, 0

    def _restore(self) -> None:
        if self._threads_before is not None:
            torch.set_num_threads(self._threads_before)
            self._threads_before = None
