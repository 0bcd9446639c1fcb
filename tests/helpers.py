"""Small projects and data shared by the tests (``pythonpath`` includes tests/)."""

import contextlib
import os
import signal
import subprocess
import sys
import time

from guidl.spec import Component, Data, Layer, Model, Project, Training


def small_moons(epochs: int | None = None, lr: float | None = None) -> Project:
    """The moons example cut to 200 samples on the CPU: a trial or a run in a second."""
    from guidl import spec
    from guidl.examples import example_path

    project = spec.load(example_path("moons_mlp"))
    project.data.params["n_samples"] = 200
    project.training.device = "cpu"
    if epochs is not None:
        project.training.epochs = epochs
    if lr is not None:
        project.training.optimizer.params["lr"] = lr
    return project


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


def small_graph_project(repeat: int = 1, unused_branch: bool = False, **changes) -> Project:
    """``small_project`` with a small residual network on the digits (1x8x8):
    a block with an identity shortcut (``repeat`` times), then a strided
    convolution merged with a 1x1 convolution on its shortcut; with
    ``unused_branch`` a 1x1 convolution ("aux") whose output nobody takes."""
    from guidl.spec import Block

    def conv(channels, kernel, **params):
        return {"out_channels": channels, "kernel_size": kernel, **params}

    block = Block([{"name": "channels", "kind": "int", "default": 8, "minimum": 1}], [
        Layer("Conv2d", conv("$channels", 3, padding=1), id="conv1"), Layer("BatchNorm2d"), Layer("ReLU"),
        Layer("Conv2d", conv("$channels", 3, padding=1), id="conv2"), Layer("BatchNorm2d", id="bn2"),
        Layer("Add", inputs=["bn2", "input"]), Layer("ReLU")])
    layers = [Layer("Conv2d", conv(8, 3, padding=1), id="stem"), Layer("ReLU"),
              Layer("ResidualBlock", {"channels": 8}, id="res", repeat=repeat),
              Layer("Conv2d", conv(16, 3, stride=2, padding=1), id="down"), Layer("ReLU", id="act"),
              Layer("Conv2d", conv(16, 1, stride=2), id="shortcut", inputs=["res"]),
              Layer("Add", id="add", inputs=["act", "shortcut"]), Layer("Flatten"),
              Layer("Linear", {"out_features": 10}, id="head")]
    if unused_branch:
        layers.insert(6, Layer("Conv2d", conv(4, 1), id="aux", inputs=["stem"]))
    project = small_project(model__layers=layers, model__blocks={"ResidualBlock": block},
                            training__scheduler=None)
    return _change(project, changes)


def _change(project: Project, changes: dict) -> Project:
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
