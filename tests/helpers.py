"""Small projects and data shared by the tests (``pythonpath`` includes tests/)."""

import contextlib
import os
import signal
import subprocess
import sys
import time

from guidl.spec import Component, Data, Layer, Model, Project, Training


def small_project(**changes) -> Project:
    """A tiny, fast project: an MLP with dropout on the digits."""
    project = Project(
        name="boring",
        model=Model([Layer("Flatten"), Layer("Linear", {"out_features": 32}), Layer("ReLU"),
                     Layer("Dropout", {"p": 0.2}), Layer("Linear", {"out_features": 10})]),
        data=Data("digits", {}, val_fraction=0.2, batch_size=64),
        training=Training(Component("CrossEntropyLoss"), Component("Adam", {"lr": 0.005}),
                          Component("StepLR", {"step_size": 2, "gamma": 0.5}), epochs=4, device="cpu",
                          seed=3),
    )
    for key, value in changes.items():
        target = project
        *parents, last = key.split("__")
        for parent in parents:
            target = getattr(target, parent)
        setattr(target, last, value)
    return project


@contextlib.contextmanager
def busy_program():
    """Another program keeping one core busy while the block runs: not a
    child of this process (a shell starts it and exits), as a program the
    user runs beside guidl is not guidl's. Yields its process id."""
    shell = subprocess.run(["sh", "-c", f"'{sys.executable}' -c 'while True: pass' >/dev/null 2>&1 & echo $!"],
                           capture_output=True, text=True, check=True)
    pid = int(shell.stdout.strip())
    try:
        time.sleep(0.3)  # the interpreter starting
        yield pid
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


class Hung(BaseException):
    """Raised by ``no_hang``; not an OSError, so no ``except OSError`` hides it."""


@contextlib.contextmanager
def no_hang(seconds: float = 5):
    """Fail (instead of waiting forever) when the block takes longer than
    ``seconds``: a blocking open() or read() is interrupted by SIGALRM."""
    def expire(signum, frame):
        raise Hung(f"still blocked after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
