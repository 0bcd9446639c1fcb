"""Signals that cross threads must not corrupt reference counts (PySide6
6.12.0 did, and the interpreter aborted mid-training)."""

import os
import subprocess
import sys

import pytest

CODE = r'''
import sys
from PySide6.QtCore import QCoreApplication, QObject, QThread, Signal, Slot
app = QCoreApplication([])
class Worker(QObject):
    item = Signal(object)
    done = Signal()
    @Slot()
    def run(self):
        for i in range(20000):
            self.item.emit({"loss": None, "ok": True, "step": i})
        self.done.emit()
class Sink(QObject):
    count = 0
    @Slot(object)
    def take(self, value):
        Sink.count += 1
worker, sink, thread = Worker(), Sink(), QThread()
worker.moveToThread(thread)
worker.item.connect(sink.take)
worker.done.connect(thread.quit)
thread.started.connect(worker.run)
thread.start()
while not thread.isFinished():
    app.processEvents()
thread.wait()
app.processEvents()
print(Sink.count)
'''


def test_cross_thread_signals_keep_reference_counts():
    result = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=120,
                            env={"QT_QPA_PLATFORM": "offscreen", "PATH": ""})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "20000"


POOL = r'''
import os, sys
os.environ["QT_QPA_PLATFORM"] = "offscreen"
if sys.argv[1] == "guidl":
    from guidl.qt.app import create_app
    app = create_app()
else:
    from PySide6.QtWidgets import QApplication
    app = QApplication([])
from PySide6.QtGui import QColor, QImage, QPainter
image = QImage(2000, 2000, QImage.Format.Format_ARGB32_Premultiplied)
source = QImage(2000, 2000, QImage.Format.Format_ARGB32_Premultiplied)
source.fill(QColor(10, 20, 30, 128))
painter = QPainter(image)
for _ in range(5):
    painter.fillRect(0, 0, 2000, 2000, QColor(200, 100, 50, 120))
    painter.drawImage(0, 0, source)
painter.end()
print(sum(open(f"/proc/self/task/{t}/comm").read().strip() == "Thread (pooled)"
          for t in os.listdir("/proc/self/task")))
'''


def test_the_window_paints_without_qt_s_thread_pool():
    """Qt's raster painter farms large fills out to pooled threads and waits
    for them; beside a training process those threads wait for a core."""
    if not os.path.isdir("/proc/self/task"):
        pytest.skip("threads are counted through Linux's /proc")
    env = {k: v for k, v in os.environ.items() if k != "QT_NO_GUI_THREADPOOL"}

    def pooled(app: str) -> int:
        result = subprocess.run([sys.executable, "-c", POOL, app], capture_output=True, text=True,
                                timeout=120, env=env)
        assert result.returncode == 0, result.stderr
        return int(result.stdout.split()[-1])

    if pooled("plain") == 0:
        pytest.skip("this Qt paints large fills in one thread anyway")
    assert pooled("guidl") == 0
