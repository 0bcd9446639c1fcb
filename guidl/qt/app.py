"""Starting the desktop application."""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication


def dark_palette() -> QPalette:
    palette = QPalette()
    colors = {
        QPalette.ColorRole.Window: "#1f2329", QPalette.ColorRole.WindowText: "#e5e7eb",
        QPalette.ColorRole.Base: "#16191d", QPalette.ColorRole.AlternateBase: "#1d2127",
        QPalette.ColorRole.Text: "#e5e7eb", QPalette.ColorRole.Button: "#2a2f36",
        QPalette.ColorRole.ButtonText: "#e5e7eb", QPalette.ColorRole.Highlight: "#2563eb",
        QPalette.ColorRole.HighlightedText: "#ffffff", QPalette.ColorRole.ToolTipBase: "#2a2f36",
        QPalette.ColorRole.ToolTipText: "#e5e7eb", QPalette.ColorRole.PlaceholderText: "#8b949e",
        QPalette.ColorRole.Link: "#60a5fa",
    }
    for role, color in colors.items():
        palette.setColor(role, QColor(color))
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.WindowText, QPalette.ColorRole.ButtonText):
        palette.setColor(QPalette.ColorGroup.Disabled, role, QColor("#6b7280"))
    return palette


def apply_theme(app: QApplication, name: str) -> None:
    """``system`` follows the desktop's light or dark scheme; ``light`` and
    ``dark`` force one. Takes full effect for charts after a restart."""
    hints = app.styleHints()
    scheme = {"light": Qt.ColorScheme.Light, "dark": Qt.ColorScheme.Dark}.get(name, Qt.ColorScheme.Unknown)
    if hasattr(hints, "setColorScheme"):
        hints.setColorScheme(scheme)
    dark = name == "dark" or (name == "system" and hints.colorScheme() == Qt.ColorScheme.Dark)
    palette = dark_palette() if dark else app.style().standardPalette()
    app.setPalette(palette)
    restyle_plots(app, palette)


def restyle_plots(app: QApplication, palette: QPalette) -> None:
    """pyqtgraph draws its own background and axes: give them the palette's colours."""
    import pyqtgraph as pg

    background = palette.color(QPalette.ColorRole.Base)
    text = palette.color(QPalette.ColorRole.Text)
    for widget in app.allWidgets():
        if isinstance(widget, pg.GraphicsView):
            widget.setBackground(background)
            for item in widget.scene().items():
                if isinstance(item, pg.AxisItem):
                    item.setPen(pg.mkPen(text))
                    item.setTextPen(pg.mkPen(text))


def create_app(argv: list[str] | None = None) -> QApplication:
    app = QApplication.instance() or QApplication(argv if argv is not None else sys.argv[:1])
    app.setApplicationName("guidl")
    app.setOrganizationName("guidl")
    app.setApplicationDisplayName("guidl")
    app.setDesktopFileName("guidl")
    app.setStyle("Fusion")
    return app


def main(project: str | None = None) -> int:
    """Open the main window with ``project`` (a path), or with the MNIST CNN
    example on the offline ``mnist_sample`` data."""
    app = create_app()
    from .. import spec
    from ..examples import DEFAULT, example_path
    from .icons import icon
    from .main_window import MainWindow

    app.setWindowIcon(icon("guidl"))
    from .main_window import default_settings

    apply_theme(app, str(default_settings().value("view/theme", "system")))
    window = MainWindow()
    window.show()
    if not window.offer_recovery():
        if project:
            if not window.open_path(Path(project), ask=False):
                window.document.set_project(spec.load(example_path(DEFAULT)), None)
        else:
            window.document.set_project(spec.load(example_path(DEFAULT)), None)
    return app.exec()
