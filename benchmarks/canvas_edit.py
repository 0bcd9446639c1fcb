"""Editing one parameter of a 200-layer graph in the window: how long until
the canvas shows it.

The graph is ResNet-50-sized and written out layer by layer: a stem
(Conv2d 7x7 stride 2, BatchNorm2d, ReLU, MaxPool2d), bottleneck blocks
(1x1, 3x3, 1x1 convolutions each with BatchNorm2d, a 1x1 projection on the
shortcut where the shape changes, an Add merge and a ReLU) in four stages,
then pooling and a Linear head. It opens in ``MainWindow``, the Model tab
showing the canvas fitted to the view; then the out_channels of one 3x3
convolution in the third stage is set ``--edits`` times through
``LayerEdits.set_param`` (as the properties form does), each time until the
window has repainted (the edit's signals, then the pending paint events).

Prints the median over the edits of the whole edit and of its parts: the
shape analysis and checks (``engine.build.analyze`` and
``engine.checks.report_compatibility``), the canvas's update of its
items (``GraphCanvas.sync``), the window's actions (``MainWindow.state``,
read on each update of the menus), painting (the event loop's pending
paint events), and the rest (the undo command's copies of the project, the
layer table, the properties form). Uses the display in ``DISPLAY`` (e.g. Xvfb) or
Qt's offscreen platform. Figures only; it never fails on time.

    python benchmarks/canvas_edit.py [--edits 20] [--stages 3,4,8,4]
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QSettings  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def resnet_layers(stages: list[int]):
    """A ResNet-50-style graph as a flat list of layers (ids where wired)."""
    from guidl.spec import Layer

    def conv(out, kernel, stride=1, **kw):
        params = {"out_channels": out, "kernel_size": kernel, "padding": kernel // 2}
        if stride != 1:
            params["stride"] = stride
        return Layer("Conv2d", params, **kw)

    layers = [conv(64, 7, 2), Layer("BatchNorm2d"), Layer("ReLU"),
              Layer("MaxPool2d", {"kernel_size": 3, "stride": 2, "padding": 1}, id="stem")]
    previous, channels = "stem", 64
    for stage, blocks in enumerate(stages):
        width = 64 * 2 ** stage
        for block in range(blocks):
            name = f"s{stage + 1}b{block + 1}"
            stride = 2 if stage > 0 and block == 0 else 1
            layers += [conv(width, 1, inputs=[previous], id=f"{name}_conv1"), Layer("BatchNorm2d"), Layer("ReLU"),
                       conv(width, 3, stride, id=f"{name}_conv2"), Layer("BatchNorm2d"), Layer("ReLU"),
                       conv(width * 4, 1), Layer("BatchNorm2d", id=f"{name}_bn3")]
            shortcut = previous
            if block == 0 and (stride != 1 or channels != width * 4):
                layers += [conv(width * 4, 1, stride, inputs=[previous], id=f"{name}_proj"),
                           Layer("BatchNorm2d", id=f"{name}_projbn")]
                shortcut = f"{name}_projbn"
            layers += [Layer("Add", id=f"{name}_add", inputs=[f"{name}_bn3", shortcut]),
                       Layer("ReLU", id=f"{name}_out")]
            previous, channels = f"{name}_out", width * 4
    layers += [Layer("AdaptiveAvgPool2d", {"output_size": 1}), Layer("Flatten"),
               Layer("Linear", {"out_features": 10})]
    return layers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--edits", type=int, default=20)
    parser.add_argument("--stages", default="3,4,8,4", help="bottleneck blocks per stage")
    args = parser.parse_args()

    app = QApplication.instance() or QApplication(sys.argv)
    from guidl import spec
    from guidl.examples import example_path
    from guidl.qt.engine_loader import ENGINE_MODULES
    from guidl.qt.main_window import MainWindow

    for name in ENGINE_MODULES:
        __import__(name)
    folder = Path(tempfile.mkdtemp())
    window = MainWindow(settings=QSettings(str(folder / "settings.ini"), QSettings.Format.IniFormat),
                        state_dir=folder / "state")
    project = spec.load(example_path("mnist_cnn"))
    project.model.input_shape = [3, 64, 64]
    project.model.layers = resnet_layers([int(n) for n in args.stages.split(",")])
    window.document.set_project(project, None)
    window.resize(1600, 1000)
    window.show()
    window.show_tab("model")
    canvas = window.model_tab.canvas
    for _ in range(5):
        app.processEvents()
    canvas.fit_to_view()
    app.processEvents()
    report = window.document.report
    print(f"{len(project.model.layers)} layers, {len(canvas.wires)} wires, "
          f"{report.total_params:,} parameters; problems: {len(report.problems())}")

    # Time the parts by wrapping them on these instances.
    spent = {"analysis": 0.0, "canvas": 0.0, "actions": 0.0}

    def timed(part, function):
        def wrapper(*a, **k):
            began = time.perf_counter()
            try:
                return function(*a, **k)
            finally:
                spent[part] += time.perf_counter() - began
        return wrapper

    # The engine's checks, as the document calls them (imported at each call).
    build = importlib.import_module("guidl.engine.build")  # the package's ``build`` is a function
    checks = importlib.import_module("guidl.engine.checks")
    build.analyze = timed("analysis", build.analyze)
    checks.report_compatibility = timed("analysis", checks.report_compatibility)
    canvas._sync = timed("canvas", canvas._sync)  # what sync() runs, on this instance
    window.state = timed("actions", window.state)  # what each update of the window's actions reads

    target = next(i for i, layer in enumerate(project.model.layers) if layer.id == "s3b3_conv2")
    window.stack.select_layer(target)
    app.processEvents()
    rows = []
    for edit in range(args.edits):
        spent.update(analysis=0.0, canvas=0.0, actions=0.0)
        began = time.perf_counter()
        window.edits.set_param(target, "out_channels", 256 + 8 * (edit % 2 + 1))
        signals = time.perf_counter()
        app.processEvents()  # the repaints the edit asked for
        done = time.perf_counter()
        repainted = time.perf_counter()
        canvas.viewport().repaint()  # the whole visible canvas, for scale
        rows.append({"total": done - began, "analysis": spent["analysis"], "canvas": spent["canvas"],
                     "actions": spent["actions"], "paint": done - signals,
                     "rest": signals - began - spent["analysis"] - spent["canvas"] - spent["actions"],
                     "full": time.perf_counter() - repainted})
    assert "Conv2d(" in canvas.node(target).content.title

    def median(key):
        return statistics.median(row[key] for row in rows) * 1000

    total = median("total")
    print(f"parameter edit, median of {len(rows)}: {total:.1f} ms (target: under 50 ms)")
    for key, label in (("analysis", "shape analysis and checks"), ("canvas", "canvas items (sync)"),
                       ("actions", "window actions' state"),
                       ("paint", "painting (pending paint events)"),
                       ("rest", "undo command, table, form")):
        share = median(key)
        print(f"  {label:34} {share:7.1f} ms  ({share / total:.0%})")
    print(f"repainting the whole visible canvas (not part of an edit): {median('full'):.1f} ms")
    window.close()


if __name__ == "__main__":
    main()
