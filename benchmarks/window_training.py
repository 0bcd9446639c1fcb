"""Training from the window: throughput against headless, and how responsive
the window stays.

The MLP example on 60,000 MNIST-shaped samples (an .npz written to a
temporary folder), batch 128, Adam, CPU. Rounds alternate between

- headless: ``Trainer.fit()`` as ``guidl train`` runs it,
- process: the training process the window starts, without a window (what
  the process machinery itself costs), and
- the window: ``MainWindow`` (live charts, status bar, progress) trains the
  same project in its training process.

Then, in runs of their own, a probe timer asks the event loop for a tick
every 5 ms while the window trains, and records how late each tick comes.
``GUIDL_TRAIN_IN_THREAD=1`` makes the window train in a thread of its own
process instead, for comparison.

Samples/s are the trainer's own epoch figures (the same clock in both).
Also prints how often the loss chart repainted, and how long the charts
take to redraw when they hold 1,000,000 points. Uses the display in
``DISPLAY`` (e.g. Xvfb) or Qt's offscreen platform. Figures only; it never
fails on time.

    python benchmarks/window_training.py [--samples 60000] [--epochs 3] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
from common import mlp_project
from PySide6.QtCore import QElapsedTimer, QEvent, QEventLoop, QObject, QSettings, Qt, QTimer
PROBE_MS = 5
THREADS: list[dict | None] = []  # the training process's thread choices, run by run


def headless(project) -> float:
    from guidl.engine.trainer import Trainer

    result = Trainer(project).fit()
    return statistics.fmean(m.samples_per_s for m in result.history)


def in_process(project) -> float:
    """The window's way of training (a child process, the data shared), with
    no window."""
    from guidl.engine.training_process import Job, TrainingProcess
    from guidl.qt.worker import prepare_shared, process_threads

    process = TrainingProcess(Job(project, prepare_shared(project), None, None, **process_threads()))
    process.start()
    events = list(process.events())
    process.close()
    if events[-1][0] != "finished":
        sys.exit(f"training in a process failed: {events[-1][1]}")
    return statistics.fmean(m.samples_per_s for m in events[-1][1]["result"].history)


class Probe(QObject):
    """Event-loop delay: how late a 5 ms timer's ticks come, and how often
    the loss chart's view is painted."""

    def __init__(self, watched, training) -> None:
        super().__init__()
        self.training = training  # True while batches are trained
        self.delays: list[float] = []
        self.paints = 0
        self.clock = QElapsedTimer()
        self.timer = QTimer(self)
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(PROBE_MS)
        self.timer.timeout.connect(self.tick)
        watched.installEventFilter(self)

    def start(self, interval_ms: int | None = PROBE_MS) -> None:
        self.interval = interval_ms
        self.delays.clear()
        self.paints = 0
        self.clock.start()
        self.last = 0.0
        self.seconds = 0.0
        if interval_ms is not None:
            self.timer.start(interval_ms)

    def tick(self) -> None:
        now = self.clock.nsecsElapsed() / 1e6
        if self.training():
            self.delays.append(max(0.0, now - self.last - self.interval))
            self.seconds = now / 1e3
        self.last = now

    def stop(self) -> float:
        """Stop; returns the seconds during which batches were trained."""
        self.timer.stop()
        return self.seconds

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 - Qt's name
        if event.type() == QEvent.Type.Paint and self.training():
            self.paints += 1
        return False


def in_window(app, project, folder: Path, probe_ms: int | None = PROBE_MS) -> tuple[float, Probe, float]:
    """Train from the window; with ``probe_ms``, a probe timer measures the
    event loop meanwhile (it wakes the GUI thread, so it costs throughput)."""
    from guidl.qt.main_window import MainWindow

    settings = QSettings(str(folder / "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(settings=settings, state_dir=folder / "state")
    window.document.set_project(project.copy(), None)
    window.show()
    app.processEvents()
    # Training: from the first batch reported until the last one.
    probe = Probe(window.charts.graphics.viewport(), lambda: window.thread is not None and (
        0 < window.progress.value() < window.progress.maximum()))
    window.start_training()
    worker = window.worker
    # The probe runs while batches are trained, not while data is loaded.
    wait_until(lambda: window.thread is None or window.progress.maximum() > 0)
    probe.start(probe_ms)
    wait_until(lambda: window.thread is None)
    seconds = probe.stop()
    result = window.last_result
    THREADS.append(worker.threads)
    window.close()
    window.deleteLater()
    app.processEvents()
    if result is None or not result.history:
        sys.exit(f"training in the window failed: {window.train_message.text()}")
    return statistics.fmean(m.samples_per_s for m in result.history), probe, seconds


def wait_until(condition) -> None:
    """Run the event loop (idle, as the app's own) until ``condition()``."""
    loop = QEventLoop()
    poll = QTimer()
    poll.timeout.connect(lambda: condition() and loop.quit())
    poll.start(20)
    loop.exec()
    poll.stop()


def million_point_redraw(app) -> tuple[float, float]:
    """Milliseconds to repaint the charts holding 1,000,000 batch losses:
    the paint alone, and new data handed over plus the paint."""
    from guidl.qt.charts import TrainingCharts

    charts = TrainingCharts()
    charts.resize(1000, 700)
    charts.show()
    charts.plan(epochs=100)  # as during training: x spans the planned run
    n = 1_000_000
    xs = np.linspace(0, 100, n, endpoint=False) + 100 / n
    losses = 2.3 * np.exp(-xs / 20) + 0.05 * np.random.default_rng(0).random(n)
    charts.add_batches(xs, losses)
    charts.refresh()
    app.processEvents()
    view = charts.graphics.viewport()
    paint, full = [], []
    for i in range(10):
        view.update()
        started = time.perf_counter()
        view.repaint()
        paint.append((time.perf_counter() - started) * 1e3)
        charts.add_batches(np.array([100 + (i + 1) / n]), np.array([0.05]))
        started = time.perf_counter()
        charts.refresh()
        view.repaint()
        full.append((time.perf_counter() - started) * 1e3)
    charts.close()
    return statistics.median(paint), statistics.median(full)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=60_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    from guidl.qt.app import create_app
    from guidl.qt.engine_loader import EngineLoader

    app = create_app()
    engine = EngineLoader()  # as the app loads torch (and readies the collector)
    engine.start()
    engine.wait()
    import torch

    platform = app.platformName()
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        project = mlp_project(folder, args.samples, args.epochs)
        head, proc, win, probes = [], [], [], []
        for round_ in range(args.rounds):
            order = ("headless", "process", "window")
            for kind in order if round_ % 2 == 0 else reversed(order):
                if kind == "headless":
                    head.append(headless(project))
                elif kind == "process":
                    proc.append(in_process(project))
                else:  # no probe: its 200 wake-ups a second would cost the training thread
                    win.append(in_window(app, project, folder, probe_ms=None)[0])
        # Responsiveness, in runs of their own: the probe wakes the GUI thread.
        for _ in range(max(1, args.rounds // 2)):
            _, probe, seconds = in_window(app, project, folder)
            probes.append((probe, seconds))
    delays = np.array([d for probe, _ in probes for d in probe.delays])
    paints_per_s = [probe.paints / seconds for probe, seconds in probes]
    paint_ms, full_ms = million_point_redraw(app)
    print(f"MLP, {args.samples:,} samples x {args.epochs} epochs, batch 128, Adam, CPU "
          f"({torch.get_num_threads()} threads), Qt platform {platform}, best of {args.rounds} rounds")
    print(f"  headless            {max(head):9,.0f} samples/s   (rounds: "
          f"{', '.join(f'{r:,.0f}' for r in head)})")
    print(f"  process, no window  {max(proc):9,.0f} samples/s   (rounds: "
          f"{', '.join(f'{r:,.0f}' for r in proc)})   process/headless {max(proc) / max(head):.3f}")
    print(f"  from the window     {max(win):9,.0f} samples/s   (rounds: "
          f"{', '.join(f'{r:,.0f}' for r in win)})   window/headless "
          f"{max(win) / max(head):.3f}   (goal >= 0.95)")
    changes = [len(t["decisions"]) if t else None for t in THREADS]
    print(f"  training process: {THREADS[-1]['most'] if THREADS[-1] else 1} threads; changes of "
          f"thread count (other programs busy), run by run: {changes}")
    print(f"  event-loop delay    p50 {np.percentile(delays, 50):.1f} ms   p99 "
          f"{np.percentile(delays, 99):.1f} ms   max {delays.max():.1f} ms   "
          f"({len(delays):,} ticks of a {PROBE_MS} ms timer while batches train; goal p99 <= 16, "
          "max <= 50)")
    print(f"  loss chart repaints {min(paints_per_s):.1f}/s   (goal >= 20)")
    print(f"  1,000,000-point chart: repaint {paint_ms:.1f} ms, new data + repaint {full_ms:.1f} ms "
          "(goal <= 16)")


if __name__ == "__main__":
    main()
