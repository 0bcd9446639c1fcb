"""How long a run has left, from its training speed."""

from __future__ import annotations

import math


class EtaEstimator:
    """A run's batches a second and the time it has left.

    The first batches say little about the others: they compile
    (``torch.compile``, cuDNN trying algorithms), allocate and warm caches. A
    char LSTM's first batch took seconds where the next took milliseconds, and
    an ETA extrapolated from it said 55 minutes for a run of 71 s. So the first
    ``warmup_batches`` are not timed; no estimate is given until ``min_batches``
    batches or ``min_seconds`` of steady timing have passed; and from then on
    the speed is a moving average over time (time constant ``tau_s``), which
    follows a change of speed without jumping at every validation pass.

    Feed it with ``update(batches, seconds)``: the batches trained so far and
    the seconds of training so far (time paused left out).
    """

    def __init__(self, warmup_batches: int = 2, min_batches: int = 10, min_seconds: float = 1.0,
                 tau_s: float = 10.0):
        self.warmup_batches = warmup_batches
        self.min_batches = min_batches
        self.min_seconds = min_seconds
        self.tau_s = tau_s
        self._steady_from: tuple[int, float] | None = None  # (batches, seconds) when the warm-up ended
        self._last: tuple[int, float] | None = None
        self._rate: float | None = None

    def update(self, batches: int, seconds: float) -> None:
        if batches < self.warmup_batches:
            return
        if self._steady_from is None:
            self._steady_from = self._last = (batches, seconds)
            return
        last_batches, last_seconds = self._last
        if batches <= last_batches or seconds <= last_seconds:
            return
        if self._rate is None:
            first_batches, first_seconds = self._steady_from
            if batches - first_batches >= self.min_batches or seconds - first_seconds >= self.min_seconds:
                self._rate = (batches - first_batches) / (seconds - first_seconds)
                self._last = (batches, seconds)
            return
        weight = 1.0 - math.exp(-(seconds - last_seconds) / self.tau_s)
        self._rate += weight * ((batches - last_batches) / (seconds - last_seconds) - self._rate)
        self._last = (batches, seconds)

    @property
    def rate(self) -> float | None:
        """Batches a second, once the timing is steady; None until then."""
        return self._rate

    def eta(self, remaining_batches: int) -> float | None:
        """Seconds left for ``remaining_batches``; None while the speed is not known yet."""
        return None if self._rate is None else max(remaining_batches, 0) / self._rate
