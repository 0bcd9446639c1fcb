"""Signals that cross threads must not corrupt reference counts (PySide6
6.12.0 did, and the interpreter aborted mid-training)."""

import subprocess
import sys

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
