"""Colour themes: the application's palette."""

from __future__ import annotations

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
    ``dark`` force one. Takes effect at once: the charts follow the
    application's palette themselves (``charts.follow_palette``)."""
    hints = app.styleHints()
    scheme = {"light": Qt.ColorScheme.Light, "dark": Qt.ColorScheme.Dark}.get(name, Qt.ColorScheme.Unknown)
    if hasattr(hints, "setColorScheme"):
        hints.setColorScheme(scheme)
    dark = name == "dark" or (name == "system" and hints.colorScheme() == Qt.ColorScheme.Dark)
    palette = dark_palette() if dark else app.style().standardPalette()
    app.setPalette(palette)

