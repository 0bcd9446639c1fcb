"""Icons from ``guidl.resources`` (our own SVGs), drawn for the palette in use:
the neutral slate strokes turn light on a dark background, and a disabled
icon is grey and faint on any background (the style's grey version alone is
as bright as an enabled icon in the dark theme)."""

from __future__ import annotations

from functools import lru_cache

from PySide6.QtCore import QByteArray, QRect, QRectF, QSize, Qt
from PySide6.QtGui import QIcon, QIconEngine, QPainter, QPalette, QPixmap
from PySide6.QtSvg import QSvgRenderer
from PySide6.QtWidgets import QApplication, QStyleOption

from ..resources import path

#: How much of a disabled icon shows, on a light and on a dark background
#: (the style's grey is light already: on white it needs less dimming).
DISABLED_OPACITY = {False: 0.6, True: 0.4}
#: The icons' neutral (slate) colours, and what they become on a dark background.
DARK_VARIANTS = {"#1e293b": "#e2e8f0", "#334155": "#e2e8f0", "#475569": "#cbd5e1", "#64748b": "#94a3b8"}


def dark_palette_in_use() -> bool:
    app = QApplication.instance()
    return app is not None and app.palette().color(QPalette.ColorRole.Window).lightness() < 128


class PaletteIconEngine(QIconEngine):
    """Draws one SVG file at any size, for the application's current palette."""

    def __init__(self, file: str):
        super().__init__()
        self.file = file
        with open(file, encoding="utf-8") as handle:
            light = handle.read()
        dark = light
        for colour, replacement in DARK_VARIANTS.items():
            dark = dark.replace(colour, replacement)
        self.renderers = {False: QSvgRenderer(QByteArray(light.encode())),
                          True: QSvgRenderer(QByteArray(dark.encode()))}

    def _render(self, size: QSize) -> QPixmap:
        pixmap = QPixmap(size)
        pixmap.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pixmap)
        renderer = self.renderers[dark_palette_in_use()]
        # Keep the SVG's aspect ratio, centred in the square asked for.
        wanted = renderer.defaultSize().scaled(size, Qt.AspectRatioMode.KeepAspectRatio)
        renderer.render(painter, QRectF((size.width() - wanted.width()) / 2,
                                        (size.height() - wanted.height()) / 2,
                                        wanted.width(), wanted.height()))
        painter.end()
        return pixmap

    def pixmap(self, size: QSize, mode: QIcon.Mode, state: QIcon.State) -> QPixmap:
        normal = self._render(size)
        if mode != QIcon.Mode.Disabled:
            return normal
        app = QApplication.instance()
        option = QStyleOption()
        option.palette = app.palette()
        grey = app.style().generatedIconPixmap(QIcon.Mode.Disabled, normal, option)
        dimmed = QPixmap(grey.size())
        dimmed.fill(Qt.GlobalColor.transparent)
        painter = QPainter(dimmed)
        painter.setOpacity(DISABLED_OPACITY[dark_palette_in_use()])
        painter.drawPixmap(0, 0, grey)
        painter.end()
        return dimmed

    def scaledPixmap(self, size: QSize, mode: QIcon.Mode, state: QIcon.State,  # noqa: N802
                     scale: float) -> QPixmap:
        pixmap = self.pixmap(size * scale, mode, state)
        pixmap.setDevicePixelRatio(scale)
        return pixmap

    def paint(self, painter: QPainter, rect: QRect, mode: QIcon.Mode, state: QIcon.State) -> None:
        scale = painter.device().devicePixelRatioF() if painter.device() else 1.0
        painter.drawPixmap(rect, self.scaledPixmap(rect.size(), mode, state, scale))

    def actualSize(self, size: QSize, mode: QIcon.Mode, state: QIcon.State) -> QSize:  # noqa: N802
        return size

    def clone(self) -> QIconEngine:
        return PaletteIconEngine(self.file)


@lru_cache(maxsize=None)
def icon(name: str) -> QIcon:
    """``icon("train")`` is ``resources/icons/train.svg``; ``icon("guidl")`` the app icon."""
    file = "guidl.svg" if name == "guidl" else f"icons/{name}.svg"
    try:
        found = str(path(file))
    except FileNotFoundError:
        return QIcon()
    return QIcon(found) if name == "guidl" else QIcon(PaletteIconEngine(found))


def category_icon(category: str) -> QIcon:
    return icon(f"layer-{category.lower()}")
