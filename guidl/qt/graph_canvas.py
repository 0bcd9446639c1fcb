"""The Model tab's graph canvas: the model as nodes and wires.

A view of the document, as the layer table is: it changes the project only
through ``LayerEdits`` (each one undo step) and follows the document's
signals. Items are kept by layer key (the id, else the index) and updated in
place, so an edit of one parameter repaints one node, not the whole graph.
Where nodes go is ``graph_layout.layered_layout``'s work; a node the user
moved keeps its stored position.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from PySide6.QtCore import QEvent, QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import (
    QAction, QColor, QFont, QFontMetricsF, QKeySequence, QPainter, QPainterPath,
    QPainterPathStroker, QPalette, QPen,
)
from PySide6.QtWidgets import (
    QApplication, QFrame, QGraphicsItem, QGraphicsPathItem, QGraphicsScene, QGraphicsView,
    QHBoxLayout, QInputDialog, QMenu, QStyle, QStyleOptionGraphicsItem, QToolButton, QVBoxLayout,
    QWidget,
)

from ..formatting import format_shape
from ..registry import LAYERS
from ..spec.graph import INPUT_INDEX, resolve_inputs
from .document import LayerEdits, ProjectDocument
from .icons import icon
from .model_stack import FROZEN_COLOR
from .graph_layout import INPUT_NODE, layered_layout, output_node
from .palette import LAYER_MIME

PALETTE_EVENTS = (QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange)
INPUT_KEY = "<input>"
OUTPUT_KEY = "<output>"
#: The node that stands for the model's output (not a layer).
OUTPUT_INDEX = -2
NODE_MIN_WIDTH = 150.0
NODE_MAX_WIDTH = 300.0
#: Widths go in steps, so editing a parameter rarely changes the layout.
WIDTH_STEP = 20.0
#: The least space between two nodes a resize in place keeps (else the layout runs again).
GAP_KEPT = 8.0
#: The least heights; a larger application font makes nodes taller (``NodeText``).
NODE_HEIGHT = 50.0
PROBLEM_HEIGHT = 18.0
MARKER_HEIGHT = 40.0
PORT_RADIUS = 5.0
#: How near (in scene units) a press must be to a port to start a wire.
PORT_REACH = 10.0
ERROR_COLOR = QColor("#dc2626")
#: The snowflake's size on a frozen node.
FROZEN_BADGE = 14.0
WARNING_COLOR = QColor("#d97706")
MIN_ZOOM, MAX_ZOOM = 0.02, 3.0
#: The least zoom Fit to View picks: a node's title stays legible (about 10 px with a
#: 9-point font; zooming out by hand goes further, and the overview shows the whole graph).
READABLE_ZOOM = 0.8
ZOOM_STEP = 1.2


def layer_key(layer, index: int) -> str:
    """What keeps a layer's node across edits: its id, else its index."""
    return layer.id if layer.id else f"#{index}"


class NodeText:
    """A node's fonts and rows: the title one point above the application's
    font, in bold; the details and the problem in the application's font
    (never smaller, at 100%), and rows as tall as those fonts need."""

    def __init__(self, font: QFont):
        self.plain = QFont(font)
        self.plain.setBold(False)
        self.title = QFont(font)
        self.title.setBold(True)
        if font.pointSizeF() > 0:
            self.title.setPointSizeF(font.pointSizeF() + 1)
        elif font.pixelSize() > 0:
            self.title.setPixelSize(font.pixelSize() + 1)
        self.title_metrics, self.plain_metrics = QFontMetricsF(self.title), QFontMetricsF(self.plain)
        self.title_height = max(20.0, self.title_metrics.height() + 4)
        self.detail_height = max(18.0, self.plain_metrics.height() + 2)
        self.node_height = max(NODE_HEIGHT, 6 + self.title_height + self.detail_height + 6)
        self.marker_height = max(MARKER_HEIGHT, 3 + self.title_height + self.detail_height + 3)
        self.problem_height = max(PROBLEM_HEIGHT, self.plain_metrics.height() + 2)

    _cache: "tuple[str, NodeText] | None" = None

    @classmethod
    def current(cls) -> "NodeText":
        """For the application's font now (kept until that font changes)."""
        font = QApplication.font()
        key = font.toString()
        if cls._cache is None or cls._cache[0] != key:
            cls._cache = (key, cls(font))
        return cls._cache[1]


@dataclass(frozen=True)
class NodeContent:
    title: str
    detail: str
    problem: str | None = None  # the whole message (the node shows its first line, elided)
    level: str = ""  # "", "warning" or "error"
    fix: bool = False
    marker: bool = False  # the input or output, not a layer
    block: bool = False  # a use of one of the model's blocks
    frozen: bool = False  # its parameters do not train: a snowflake on an ice-tinted box


class Colors:
    """The canvas's colours, taken from the application's palette (light or dark)."""

    def __init__(self, palette: QPalette):
        self.background = palette.color(QPalette.ColorRole.Base)
        self.text = palette.color(QPalette.ColorRole.Text)
        self.muted = palette.color(QPalette.ColorRole.PlaceholderText)
        self.highlight = palette.color(QPalette.ColorRole.Highlight)
        dark = self.background.lightness() < 128
        self.node = palette.color(QPalette.ColorRole.Window).lighter(112 if dark else 103)
        self.marker = palette.color(QPalette.ColorRole.AlternateBase)
        self.border = QColor(self.text)
        self.border.setAlpha(90)
        self.wire = QColor(self.text)
        self.wire.setAlpha(150)
        self.grid = QColor(self.text)
        self.grid.setAlpha(14)
        self.error_fill = QColor(ERROR_COLOR)
        self.error_fill.setAlpha(50 if dark else 28)
        self.warning_fill = QColor(WARNING_COLOR)
        self.warning_fill.setAlpha(45 if dark else 24)


class GraphScene(QGraphicsScene):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.colors = Colors(QApplication.palette())

    def drawBackground(self, painter: QPainter, rect: QRectF) -> None:  # noqa: N802 - Qt's name
        painter.fillRect(rect, self.colors.background)
        if painter.worldTransform().m11() < 0.5:
            return  # dots at this zoom are noise
        step = 24.0
        painter.setPen(QPen(self.colors.grid, 2))
        left, top = int(rect.left() // step) * step, int(rect.top() // step) * step
        x = left
        points = []
        while x < rect.right():
            y = top
            while y < rect.bottom():
                points.append(QPointF(x, y))
                y += step
            x += step
        if len(points) < 20000:
            painter.drawPoints(points)


class NodeItem(QGraphicsItem):
    """A layer (or the input, or the output marker): a box with its type and
    key parameters, output shape and parameter count; an input port on top,
    the output port at the bottom."""

    def __init__(self, canvas: "GraphCanvas", key: str, index: int):
        super().__init__()
        self.canvas, self.key, self.index = canvas, key, index
        self.content = NodeContent("", "")
        self.width, self.height = NODE_MIN_WIDTH, NODE_HEIGHT
        self.input_slots = 1
        self.hot = False  # a wire being dragged would go into it
        self.fix_button: FixButton | None = None
        #: The snowflake: on a frozen node, and faint on a node under the mouse; a click toggles it.
        self.frozen_button = FrozenBadge(self) if index >= 0 else None
        self.hovered = False
        if index >= 0:
            self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIsSelectable)
            self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIsMovable)
            self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemSendsGeometryChanges)
        self.setAcceptHoverEvents(True)
        self.setZValue(1)

    @property
    def is_layer(self) -> bool:
        return self.index >= 0

    def set_content(self, content: NodeContent) -> bool:
        """Show ``content``; True when the node's size changed."""
        if content == self.content:
            return False
        self.content = content
        width, height = self._size(content)
        resized = (width, height) != (self.width, self.height)
        if resized:
            self.prepareGeometryChange()
            self.width, self.height = width, height
        self.setToolTip(content.problem or "")
        if content.fix and self.fix_button is None:
            self.fix_button = FixButton(self)
        if self.fix_button is not None:
            self.fix_button.setVisible(content.fix)
            self.fix_button.setPos(self.width - self.fix_button.WIDTH - 6, 6)
        self.show_frozen_button()
        self.update()
        return resized

    def show_frozen_button(self) -> None:
        button = self.frozen_button
        if button is None:
            return
        button.setPos(self.frozen_badge().topLeft())
        button.setVisible(self.content.frozen or self.hovered)
        button.setToolTip("Frozen: its parameters do not train. Click to unfreeze" if self.content.frozen
                          else "Click to freeze: its parameters stop training")
        button.update()
        self.update()  # the title makes room for the snowflake, or takes it back

    def hoverEnterEvent(self, event) -> None:  # noqa: N802 - Qt's name
        self.hovered = True
        self.show_frozen_button()
        super().hoverEnterEvent(event)

    def hoverLeaveEvent(self, event) -> None:  # noqa: N802 - Qt's name
        self.hovered = False
        self.show_frozen_button()
        super().hoverLeaveEvent(event)

    @staticmethod
    def _size(content: NodeContent) -> tuple[float, float]:
        fonts = NodeText.current()
        plain = fonts.plain_metrics
        problem = content.problem.splitlines()[0] if content.problem else ""
        text = max(fonts.title_metrics.horizontalAdvance(content.title) + (52 if content.fix else 0)
                   + (FROZEN_BADGE + 6 if content.frozen else 0),
                   plain.horizontalAdvance(content.detail), plain.horizontalAdvance(problem)) + 24
        # The widest node grows with the font too (a long title elides beyond it).
        widest = NODE_MAX_WIDTH * max(1.0, plain.height() / 14.0)
        width = min(widest, max(NODE_MIN_WIDTH, -(-text // WIDTH_STEP) * WIDTH_STEP))
        if content.marker:
            return width, fonts.marker_height
        return width, fonts.node_height + (fonts.problem_height if content.problem else 0)

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt's name
        return QRectF(-3, -PORT_RADIUS - 3, self.width + 8, self.height + 2 * PORT_RADIUS + 8)

    def shape(self) -> QPainterPath:
        path = QPainterPath()
        path.addRoundedRect(QRectF(0, 0, self.width, self.height), 8, 8)
        return path

    def output_port(self) -> QPointF:
        return self.mapToScene(QPointF(self.width / 2, self.height))

    def input_port(self, slot: int = 0, slots: int = 1) -> QPointF:
        return self.mapToScene(QPointF(self.width * (slot + 1) / (slots + 1), 0))

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget=None) -> None:
        colors = self.canvas.scene_.colors
        content = self.content
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        rect = QRectF(0, 0, self.width, self.height)
        edge = (ERROR_COLOR if content.level == "error" else WARNING_COLOR if content.level == "warning"
                else colors.border)
        fill = colors.marker if content.marker else colors.node
        lod = option.levelOfDetailFromTransform(painter.worldTransform())
        if lod < 0.35:  # the overview, or far out: a box in its colour is enough
            painter.fillRect(rect, edge if content.level else (colors.highlight if selected else colors.wire))
            return
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        if content.frozen and not content.marker:  # ice: a tint, so it never reads as selected
            tint = QColor(FROZEN_COLOR)
            tint.setAlpha(40)
            fill = QColor.fromRgbF(*(a * (1 - tint.alphaF()) + b * tint.alphaF() for a, b in zip(
                fill.getRgbF()[:3], tint.getRgbF()[:3])))
        pen = QPen(colors.highlight if selected or self.hot else edge,
                   2.5 if selected or self.hot or content.level else 1)
        if self.hot:
            pen.setStyle(Qt.PenStyle.DashLine)
        if content.block:  # a card behind the card: a block holds layers of its own
            painter.setPen(QPen(colors.border, 1))
            painter.setBrush(colors.marker)
            painter.drawRoundedRect(rect.translated(4, 4), 8, 8)
        painter.setPen(pen)
        painter.setBrush(fill)
        painter.drawRoundedRect(rect, 8, 8)
        fonts = NodeText.current()
        problem_height = fonts.problem_height
        if content.level:
            band = QRectF(1, self.height - problem_height - 2, self.width - 2, problem_height + 1)
            painter.fillRect(band, colors.error_fill if content.level == "error" else colors.warning_fill)
        painter.setFont(fonts.title)
        painter.setPen(colors.text)
        top = 6 if not content.marker else 3
        painter.drawText(QRectF(12, top, self.title_width(), fonts.title_height),
                         Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, self.title_text())
        painter.setFont(fonts.plain)
        painter.setPen(colors.muted)
        metrics = fonts.plain_metrics
        top += fonts.title_height
        painter.drawText(QRectF(12, top, self.width - 24, fonts.detail_height),
                         Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                         metrics.elidedText(content.detail, Qt.TextElideMode.ElideRight, self.width - 24))
        if content.problem:
            painter.setPen(ERROR_COLOR if content.level == "error" else WARNING_COLOR.darker(
                110 if colors.background.lightness() >= 128 else 80))
            line = content.problem.splitlines()[0]
            painter.drawText(QRectF(12, self.height - problem_height - 2, self.width - 24, problem_height),
                             Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                             metrics.elidedText(line, Qt.TextElideMode.ElideRight, self.width - 24))
        painter.setPen(QPen(colors.wire, 1.2))
        painter.setBrush(colors.background)
        if self.index != INPUT_INDEX:
            for slot in range(self.input_slots):
                x = self.width * (slot + 1) / (self.input_slots + 1)
                painter.drawEllipse(QPointF(x, 0), PORT_RADIUS, PORT_RADIUS)
        if self.index != OUTPUT_INDEX:
            painter.setBrush(colors.wire)
            painter.drawEllipse(QPointF(self.width / 2, self.height), PORT_RADIUS, PORT_RADIUS)

    def title_width(self) -> float:
        """The title's room: it ends before a Fix button and before the snowflake
        whenever that shows (frozen, or faint under the mouse)."""
        badge = self.frozen_button is not None and self.frozen_button.isVisible()
        right = 12 + (48 if self.content.fix else 0) + (FROZEN_BADGE + 6 if self.content.frozen or badge else 0)
        return self.width - 12 - right

    def title_text(self) -> str:
        """The title as drawn: elided to its room."""
        return NodeText.current().title_metrics.elidedText(self.content.title, Qt.TextElideMode.ElideRight,
                                                           self.title_width())

    def frozen_badge(self) -> QRectF:
        """Where the snowflake of a frozen node is (its top right corner, left of a Fix)."""
        right = self.width - 8 - (48 if self.content.fix else 0)
        return QRectF(right - FROZEN_BADGE, 6 + (NodeText.current().title_height - FROZEN_BADGE) / 2,
                      FROZEN_BADGE, FROZEN_BADGE)

    def itemChange(self, change, value):  # noqa: N802 - Qt's name
        if change == QGraphicsItem.GraphicsItemChange.ItemPositionHasChanged:
            self.canvas.node_moved(self)
        return super().itemChange(change, value)


class _NodeButton(QGraphicsItem):
    """A small clickable item on a node: ``clicked`` runs when the press is
    released over it."""

    def __init__(self, node: NodeItem):
        super().__init__(node)
        self.node = node
        self.setAcceptedMouseButtons(Qt.MouseButton.LeftButton)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setZValue(2)

    def clicked(self) -> None:
        raise NotImplementedError

    def mousePressEvent(self, event) -> None:  # noqa: N802 - Qt's name
        event.accept()

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if self.boundingRect().contains(event.pos()):
            self.clicked()


class FixButton(_NodeButton):
    """The small "Fix" on a node whose problem has a fix that applies with one click."""

    WIDTH, HEIGHT = 40.0, 18.0

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt's name
        return QRectF(0, 0, self.WIDTH, self.HEIGHT)

    def paint(self, painter: QPainter, option, widget=None) -> None:
        colors = self.node.canvas.scene_.colors
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(colors.highlight)
        painter.drawRoundedRect(self.boundingRect(), 4, 4)
        painter.setPen(QColor("#ffffff"))
        painter.drawText(self.boundingRect(), Qt.AlignmentFlag.AlignCenter, "Fix")

    def clicked(self) -> None:
        self.node.canvas.apply_fix(self.node.index)


class FrozenBadge(_NodeButton):
    """The snowflake at a node's top right: one click freezes or unfreezes the layer."""

    def __init__(self, node: NodeItem):
        super().__init__(node)
        self.hide()

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt's name
        return QRectF(-2, -2, FROZEN_BADGE + 4, FROZEN_BADGE + 4)

    def paint(self, painter: QPainter, option, widget=None) -> None:
        if not self.node.content.frozen:
            painter.setOpacity(0.35)  # offered, not set
        icon("frozen").paint(painter, QRectF(0, 0, FROZEN_BADGE, FROZEN_BADGE).toRect())

    def clicked(self) -> None:
        self.node.canvas.toggle_frozen(self.node.index)


class WireItem(QGraphicsPathItem):
    """A wire from ``source``'s output to ``target``'s input (layer indexes;
    ``INPUT_INDEX`` for the input, ``OUTPUT_INDEX`` for the output marker)."""

    def __init__(self, canvas: "GraphCanvas", source: int, target: int):
        super().__init__()
        self.canvas, self.source, self.target = canvas, source, target
        self.geometry: tuple | None = None
        self.hot = False  # a layer dragged from the palette would land on it
        if target != OUTPUT_INDEX:
            self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIsSelectable)
        self.setAcceptHoverEvents(True)
        self.setZValue(0)

    def set_points(self, points: list[QPointF]) -> None:
        geometry = tuple((p.x(), p.y()) for p in points)
        if geometry == self.geometry:
            return
        self.geometry = geometry
        path = QPainterPath(points[0])
        for start, end in zip(points, points[1:]):
            bend = (end.y() - start.y()) / 2
            if abs(end.x() - start.x()) < 0.5 or bend <= 0:
                if bend <= 0:  # a wire up to a moved node: an S to the side
                    path.cubicTo(QPointF(start.x(), start.y() + 60), QPointF(end.x(), end.y() - 60), end)
                else:
                    path.lineTo(end)
            else:
                path.cubicTo(QPointF(start.x(), start.y() + bend), QPointF(end.x(), end.y() - bend), end)
        self.setPath(path)

    def shape(self) -> QPainterPath:
        stroker = QPainterPathStroker()
        stroker.setWidth(12)
        return stroker.createStroke(self.path())

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt's name
        return super().boundingRect().adjusted(-6, -6, 6, 6)

    def paint(self, painter: QPainter, option, widget=None) -> None:
        colors = self.canvas.scene_.colors
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        color = colors.highlight if selected or self.hot else colors.wire
        painter.setPen(QPen(color, 3 if selected or self.hot else 1.6))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawPath(self.path())


class Overview(QGraphicsView):
    """The whole graph small, in a corner of the canvas, with the visible
    part outlined; a click or a drag moves the canvas there."""

    def __init__(self, canvas: "GraphCanvas"):
        super().__init__(canvas.scene_, canvas)
        self.canvas = canvas
        self.setInteractive(False)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setFrameShape(QFrame.Shape.Box)
        self.setToolTip("Overview: click or drag to move there")
        self.setCursor(Qt.CursorShape.PointingHandCursor)

    def refit(self) -> None:
        self.fitInView(self.canvas.graph_rect(), Qt.AspectRatioMode.KeepAspectRatio)
        self.viewport().update()

    def drawForeground(self, painter: QPainter, rect: QRectF) -> None:  # noqa: N802 - Qt's name
        colors = self.canvas.scene_.colors
        visible = self.canvas.visible_rect()
        fill = QColor(colors.highlight)
        fill.setAlpha(40)
        painter.setPen(QPen(colors.highlight, 0))
        painter.setBrush(fill)
        painter.drawRect(visible)

    def mousePressEvent(self, event) -> None:  # noqa: N802 - Qt's name
        self.canvas.look_at(self.mapToScene(event.position().toPoint()))

    def mouseMoveEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if event.buttons() & Qt.MouseButton.LeftButton:
            self.canvas.look_at(self.mapToScene(event.position().toPoint()))

    def wheelEvent(self, event) -> None:  # noqa: N802 - Qt's name
        event.ignore()


class GraphCanvas(QGraphicsView):
    """Emits ``layer_selected(index or -1)`` when the user selects a node."""

    layer_selected = Signal(int)
    #: The user's selection of layers changed: every selected layer's index, in order.
    layers_selected = Signal(list)
    #: Nodes or wires were selected or deselected by the user (menus follow).
    selection_changed = Signal()
    #: A layer's node was double-clicked (a block's use opens its definition).
    layer_activated = Signal(int)

    def __init__(self, document: ProjectDocument, edits: LayerEdits, parent: QWidget | None = None):
        self.scene_ = GraphScene()
        super().__init__(self.scene_, parent)
        self.scene_.setParent(self)
        self.document, self.edits = document, edits
        self.nodes: dict[str, NodeItem] = {}
        self.wires: dict[tuple[str, str], WireItem] = {}
        self.by_index: list[NodeItem] = []
        self.input_node = NodeItem(self, INPUT_KEY, INPUT_INDEX)
        self.output_node = NodeItem(self, OUTPUT_KEY, OUTPUT_INDEX)
        self.scene_.addItem(self.input_node)
        self.scene_.addItem(self.output_node)
        self._layout_key = None
        self._layout = None
        self._graph_rect: QRectF | None = None
        self._moved_by_hand = False
        #: ``report_changed`` alone (an analysis without an edit) syncs once the
        #: event loop runs; an edit's ``changed`` comes at once and syncs instead.
        self._report_sync = QTimer(self)
        self._report_sync.setSingleShot(True)
        self._report_sync.setInterval(0)
        self._report_sync.timeout.connect(self.sync)
        self._quiet = 0  # > 0 while the canvas itself moves or selects items
        self._emitting = False
        self._wire_drag: tuple[NodeItem, QGraphicsPathItem] | None = None
        self._pan: QPointF | None = None
        self._space = False
        self._drag_start: dict[NodeItem, QPointF] = {}
        self._hot_wire: WireItem | None = None
        self._hot_node: NodeItem | None = None
        self._pressed: NodeItem | None = None
        #: How long the last ``sync`` took (seconds): what the benchmark reads.
        self.last_sync_seconds = 0.0

        self.setRenderHints(QPainter.RenderHint.Antialiasing | QPainter.RenderHint.TextAntialiasing)
        self.setDragMode(QGraphicsView.DragMode.RubberBandDrag)
        self.setRubberBandSelectionMode(Qt.ItemSelectionMode.IntersectsItemShape)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        # A canvas made shorter (a problem shown below it) keeps its top where it is.
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.NoAnchor)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.SmartViewportUpdate)
        self.setAcceptDrops(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.DefaultContextMenu)
        self.overview = Overview(self)
        self.overview.hide()
        self.scene_.selectionChanged.connect(self._selection_changed)
        for bar in (self.horizontalScrollBar(), self.verticalScrollBar()):
            bar.valueChanged.connect(lambda _value: self.overview.viewport().update())
            bar.actionTriggered.connect(self._scrolled_by_hand)
        document.changed.connect(self.sync)
        document.report_changed.connect(self._report_sync.start)
        document.project_replaced.connect(self._project_replaced)
        #: Until the user zooms or scrolls, the view fits the graph (a new project, a resize).
        self._auto_fit = True
        self._build_actions()
        self.sync()

    # -- following the document ------------------------------------------------------------

    def sync(self) -> None:
        """Make nodes and wires match the document: add, update and remove
        only what differs."""
        started = time.perf_counter()
        self._report_sync.stop()
        self._quiet += 1
        try:
            self._sync()
        finally:
            self._quiet -= 1
        self.last_sync_seconds = time.perf_counter() - started

    def _sync(self) -> None:
        project, report = self.document.project, self.document.report
        layers = self.document.model.layers
        wiring = resolve_inputs(layers)
        reports = report.layers if report is not None and len(report.layers) == len(layers) else None
        keys = [layer_key(layer, i) for i, layer in enumerate(layers)]
        resized = False
        by_index = []
        used: set[str] = set()
        for index, layer in enumerate(layers):
            key = keys[index]
            node = self.nodes.get(key)
            if node is None or key in used:  # a duplicate id: a node of its own
                key = key if node is None else f"{key}#{index}"
                node = self.nodes.get(key)
                if node is None:
                    node = self.nodes[key] = NodeItem(self, key, index)
                    self.scene_.addItem(node)
                    resized = True
                keys[index] = key
            used.add(key)
            node.index = index
            slots = max(1, len(wiring.inputs[index]))
            if slots != node.input_slots:
                node.input_slots = slots
                node.update()
            resized |= node.set_content(self._content(project, layer, reports[index] if reports else None,
                                                      wiring, index))
            by_index.append(node)
        for key in [key for key in self.nodes if key not in keys]:
            node = self.nodes.pop(key)
            self.scene_.removeItem(node)
        self.by_index = by_index
        shape = report.input_shape if report is not None else None
        dtype = " (token ids)" if report is not None and report.input_dtype == "int64" else ""
        self.input_node.set_content(NodeContent("Input" + dtype, format_shape(shape) if shape else "?",
                                                marker=True))
        out_shape = report.output_shape if report is not None else None
        self.output_node.set_content(NodeContent("Output", format_shape(out_shape) if out_shape else "?",
                                                 marker=True))

        # Wires: one per (source, target) pair of the wiring, and the last layer to the output.
        wanted: dict[tuple[str, str], tuple[int, int]] = {}
        for target, sources in enumerate(wiring.inputs):
            for source in sources:
                wanted[(INPUT_KEY if source == INPUT_INDEX else keys[source], keys[target])] = (source, target)
        last = len(layers) - 1
        wanted[(keys[last] if layers else INPUT_KEY, OUTPUT_KEY)] = (last if layers else INPUT_INDEX, OUTPUT_INDEX)
        rewired = False
        for pair in [pair for pair in self.wires if pair not in wanted]:
            self.scene_.removeItem(self.wires.pop(pair))
            rewired = True
        for pair, (source, target) in wanted.items():
            wire = self.wires.get(pair)
            if wire is None:
                wire = self.wires[pair] = WireItem(self, source, target)
                self.scene_.addItem(wire)
                rewired = True
            if (wire.source, wire.target) != (source, target):
                wire.source, wire.target = source, target
                rewired = True

        # Layout: worked out again only when the wiring, a size or a stored position changed.
        inputs = [list(sources) for sources in wiring.inputs]
        sizes = {node.index if node.is_layer else (INPUT_NODE if node is self.input_node else output_node(
            len(layers))): (node.width, node.height) for node in [*by_index, self.input_node, self.output_node]}
        positions = {i: tuple(layer.position) for i, layer in enumerate(layers) if layer.position}
        structure = (tuple(map(tuple, inputs)), tuple(sorted(positions.items())))
        layout_key = (structure, tuple(sorted(sizes.items())))
        layout_changed = layout_key != self._layout_key or resized
        # Only sizes changed (a parameter edit, a fix that sets one): the nodes stay where
        # the user saw them, each around its own centre, so the next click lands where aimed.
        in_place = (layout_changed and self._layout is not None and self._layout_key is not None
                    and structure == self._layout_key[0] and self._resize_in_place(sizes))
        if layout_changed:
            self._layout_key = layout_key
            if not in_place:
                self._layout = layered_layout(inputs, sizes, positions)
                self._place()
        if layout_changed or rewired or self._moved_by_hand:
            # Nothing moved and no wire changed (a parameter edit): the wires stay as drawn.
            self._moved_by_hand = False
            self._route_wires()
        if layout_changed:
            self._graph_rect = None
            rect = self.graph_rect().adjusted(-400, -300, 400, 300)
            if in_place and self.scene_.sceneRect().contains(self.graph_rect()):
                # As it is: a scene rect that shrinks clamps the scroll bars, one that
                # widens may bring in a scroll bar; either way the view would jump.
                rect = self.scene_.sceneRect()
            elif in_place:
                rect = rect.united(self.scene_.sceneRect())
            self.scene_.setSceneRect(rect)
            self._update_overview()
            if self._auto_fit and not in_place:
                self.fit_to_view(keep_auto=True)

    def _resize_in_place(self, sizes: dict) -> bool:
        """Keep every node where it is after a change of sizes alone: a node
        that grew or shrank keeps its centre x and its top. False (and
        nothing moved) when a node would then overlap another: the layout
        runs again instead."""
        layout = self._layout
        old_sizes = dict(self._layout_key[1])
        moved: dict[int, tuple[float, float]] = {}
        for number, (width, _height) in sizes.items():
            if number not in layout.positions or number not in old_sizes:
                return False
            x, y = layout.positions[number]
            old_width = old_sizes[number][0]
            moved[number] = (x + round((old_width - width) / 2), y) if width != old_width else (x, y)
        boxes = sorted((moved[n][1], moved[n][0], sizes[n][0], sizes[n][1]) for n in moved)
        for i, (top, left, width, height) in enumerate(boxes):
            for other_top, other_left, other_width, other_height in boxes[i + 1:]:
                if other_top >= top + height + GAP_KEPT:
                    break  # sorted by top: no later box reaches up to this one
                if other_left < left + width + GAP_KEPT and left < other_left + other_width + GAP_KEPT:
                    return False
        layout.positions.update(moved)
        self._place()
        return True

    def _content(self, project, layer, info, wiring, index: int) -> NodeContent:
        if info is not None:
            title = f"{layer.id}: {info.label}" if layer.id else info.label
            detail = format_shape(info.output_shape) if info.output_shape is not None else "?"
            if info.output_shape is not None:
                detail += f" · {info.param_count:,} params"
            if layer.lr_multiplier != 1:
                detail += f" · lr ×{layer.lr_multiplier:g}"
        else:
            title, detail = layer.type + (f" ×{layer.repeat}" if layer.repeat != 1 else ""), "?"
            title = f"{layer.id}: {title}" if layer.id else title
        problem, level = None, ""
        wiring_problem = wiring.problem_of(index)
        if info is not None and info.error:
            problem, level = info.message, "error"
        elif wiring_problem is not None:
            problem, level = wiring_problem.message, "error"
        elif info is not None and info.warnings:
            problem, level = "\n".join(info.warnings), "warning"
        fix = (level == "error" and info is not None and getattr(info, "fix_action", None) is not None
               and hasattr(self.edits, "apply_fix"))
        return NodeContent(title, detail, problem, level, fix, block=layer.type in self.document.model.blocks,
                           frozen=layer.frozen)

    def _place(self) -> None:
        layout = self._layout
        count = len(self.by_index)
        self._quiet += 1
        try:
            for node in [*self.by_index, self.input_node, self.output_node]:
                number = node.index if node.is_layer else INPUT_NODE if node is self.input_node else output_node(count)
                x, y = layout.positions[number]
                if node.pos() != QPointF(x, y):
                    node.setPos(x, y)
                    if node in self._drag_start:
                        # Moved by the layout (a Fix clicked, an edit) during a press:
                        # not the user's drag, so the release stores no position for it.
                        self._drag_start[node] = node.pos()
        finally:
            self._quiet -= 1

    def _node_of(self, index: int) -> NodeItem:
        if index == INPUT_INDEX:
            return self.input_node
        if index == OUTPUT_INDEX:
            return self.output_node
        return self.by_index[index]

    def _route_wires(self, only: set[NodeItem] | None = None) -> None:
        layout = self._layout
        count = len(self.by_index)
        wiring_inputs = {}
        for wire in self.wires.values():
            wiring_inputs.setdefault(wire.target, []).append(wire)
        for target, wires in wiring_inputs.items():
            target_node = self._node_of(target)
            if only is not None and target_node not in only and not any(
                    self._node_of(w.source) in only for w in wires):
                continue
            # Ports left to right in the order of their sources' x: no wire crosses another at the node.
            wires.sort(key=lambda w: (self._last_x(w), w.source))
            moved = only is not None
            for slot, wire in enumerate(wires):
                start = self._node_of(wire.source).output_port()
                end = target_node.input_port(slot, len(wires))
                number_target = output_node(count) if target == OUTPUT_INDEX else target
                number_source = INPUT_NODE if wire.source == INPUT_INDEX else wire.source
                route = [] if moved else layout.routes.get((number_source, number_target), [])
                wire.set_points([start, *(QPointF(x, y) for x, y in route), end])

    def _last_x(self, wire: WireItem) -> float:
        count = len(self.by_index)
        number_target = output_node(count) if wire.target == OUTPUT_INDEX else wire.target
        number_source = INPUT_NODE if wire.source == INPUT_INDEX else wire.source
        route = self._layout.routes.get((number_source, number_target)) if self._layout else None
        return route[-1][0] if route else self._node_of(wire.source).output_port().x()

    def node_moved(self, node: NodeItem) -> None:
        if self._quiet or self._layout is None:
            return
        self._moved_by_hand = True  # until the document says where it is
        self._graph_rect = None
        self._route_wires({node} | {n for n in self._drag_start})

    def _scrolled_by_hand(self, _action: int) -> None:
        self._auto_fit = False

    def _project_replaced(self) -> None:
        """A new project (New, Open): nothing of the old one stays selected
        (its indexes mean other layers, or none, in the new one)."""
        self._auto_fit = True
        self._drag_start, self._pressed = {}, None
        self._quiet += 1
        try:
            self.scene_.clearSelection()
        finally:
            self._quiet -= 1

    # -- what other views and tests read ---------------------------------------------------

    def graph_rect(self) -> QRectF:
        """The nodes' bounding rectangle with a margin (scene coordinates)."""
        if self._graph_rect is None:
            rect = QRectF()
            for node in [*self.by_index, self.input_node, self.output_node]:
                rect = rect.united(node.sceneBoundingRect())
            self._graph_rect = rect.adjusted(-40, -40, 40, 40)
        return QRectF(self._graph_rect)

    def visible_rect(self) -> QRectF:
        return self.mapToScene(self.viewport().rect()).boundingRect()

    def selected_layers(self) -> list[int]:
        """The selected nodes' layer indexes, in order."""
        return sorted(item.index for item in self.scene_.selectedItems()
                      if isinstance(item, NodeItem) and item.is_layer)

    def selected_wires(self) -> list[WireItem]:
        return [item for item in self.scene_.selectedItems() if isinstance(item, WireItem)]

    def node(self, index: int) -> NodeItem:
        """The node of layer ``index`` (``INPUT_INDEX``: the input; ``OUTPUT_INDEX``: the output)."""
        return self._node_of(index)

    def wire(self, source: int, target: int) -> WireItem | None:
        return next((w for w in self.wires.values() if (w.source, w.target) == (source, target)), None)

    def wire_pairs(self) -> set[tuple[int, int]]:
        return {(w.source, w.target) for w in self.wires.values()}

    def zoom(self) -> float:
        return self.transform().m11()

    # -- selection, kept in step with the layer table --------------------------------------

    def select_layer(self, index: int) -> None:
        """Follow a selection made elsewhere (the table, an edit's undo)."""
        if self._emitting:
            return
        if index >= 0 and index in self.selected_layers():
            return  # part of a multiple selection: keep it
        self._quiet += 1
        try:
            self.scene_.clearSelection()
            if 0 <= index < len(self.by_index):
                node = self.by_index[index]
                node.setSelected(True)
                self._bring_into_view(node)
        finally:
            self._quiet -= 1

    def _selection_changed(self) -> None:
        if self._quiet:
            return
        self.selection_changed.emit()
        selected = self.selected_layers()
        if self._pressed is not None and self._pressed.isSelected() and self._pressed.is_layer:
            current = self._pressed.index
        else:
            current = selected[-1] if selected else -1
        self._emitting = True
        try:
            self.layers_selected.emit(selected)
            self.layer_selected.emit(current)
        finally:
            self._emitting = False

    def follow_selection(self, indexes) -> None:
        """Select these layers' nodes, as another view (the table) did:
        several at once too, without saying so back."""
        if self._emitting:
            return
        wanted = sorted(i for i in indexes if 0 <= i < len(self.by_index))
        if wanted == self.selected_layers():  # (a selected wire, which the table does not show, stays)
            return
        self._quiet += 1
        try:
            self.scene_.clearSelection()
            for index in wanted:
                self.by_index[index].setSelected(True)
            if wanted:
                self._bring_into_view(self.by_index[wanted[-1]])
        finally:
            self._quiet -= 1

    def _bring_into_view(self, node: NodeItem) -> None:
        """Scroll so that ``node`` shows. A view scrolled to a node the user
        picked stays there: the view's own fitting ends (else the next edit
        that lays the graph out again would take the view back to the top)."""
        bars = (self.horizontalScrollBar(), self.verticalScrollBar())
        before = [bar.value() for bar in bars]
        self.ensureVisible(node, 40, 40)
        if [bar.value() for bar in bars] != before:
            self._auto_fit = False

    def select_layers(self, indexes) -> None:
        """Select these layers' nodes (as a rubber band would)."""
        self.scene_.clearSelection()
        for index in indexes:
            self.by_index[index].setSelected(True)

    # -- view: zoom, fit, pan ----------------------------------------------------------------

    def look_at(self, scene_pos: QPointF) -> None:
        """Centre the view on ``scene_pos`` (the overview's click)."""
        self._auto_fit = False
        self.centerOn(scene_pos)

    def zoom_by(self, factor: float) -> None:
        self._auto_fit = False
        factor = max(MIN_ZOOM / self.zoom(), min(MAX_ZOOM / self.zoom(), factor))
        self.scale(factor, factor)
        self._update_overview()

    def zoom_in(self) -> None:
        self.zoom_by(ZOOM_STEP)

    def zoom_out(self) -> None:
        self.zoom_by(1 / ZOOM_STEP)

    def fit_to_view(self, keep_auto: bool = False) -> None:
        """The whole graph in sight (never larger than life, never so small
        that the nodes' titles cannot be read): a graph taller than that shows
        from its input down, the scroll bars and the overview reach the rest.
        ``keep_auto``: the view's own fit (a new project, a resize), which
        goes on following the graph until the user zooms or scrolls."""
        rect = self.graph_rect()
        self._auto_fit = keep_auto
        self.fitInView(rect, Qt.AspectRatioMode.KeepAspectRatio)
        least = READABLE_ZOOM
        if self.zoom() > 1.0:
            self.resetTransform()
        elif self.zoom() < least:
            self.scale(least / self.zoom(), least / self.zoom())
        if rect.height() * self.zoom() <= self.viewport().height() + 1:
            self.centerOn(rect.center())
        else:  # the top: the input and the first layers
            visible = self.visible_rect()
            self.centerOn(QPointF(rect.center().x(), rect.top() + visible.height() / 2))
        self._update_overview()

    def tidy_up(self) -> None:
        """Forget the nodes' stored positions: the automatic layout again."""
        if hasattr(self.edits, "clear_positions"):
            self.edits.clear_positions()

    def _update_overview(self) -> None:
        rect = self.graph_rect()
        big = (rect.width() * self.zoom() > self.viewport().width() + 1
               or rect.height() * self.zoom() > self.viewport().height() + 1)
        self.overview.setVisible(big and len(self.by_index) > 3)
        if self.overview.isVisible():
            self.overview.refit()

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        viewport = self.viewport().geometry()
        # A corner of the canvas, never most of it.
        self.overview.setFixedSize(max(80, min(170, viewport.width() // 4)),
                                   max(90, min(200, viewport.height() * 2 // 5)))
        self.overview.move(viewport.right() - self.overview.width() - 8,
                           viewport.bottom() - self.overview.height() - 8)
        if self._auto_fit:
            self.fit_to_view(keep_auto=True)
        self._update_overview()

    def changeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().changeEvent(event)
        if event.type() in PALETTE_EVENTS:
            self.scene_.colors = Colors(self.palette())
            self.scene_.update()
            self.overview.viewport().update()

    def wheelEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.zoom_by(1.0015 ** event.angleDelta().y())
            event.accept()
            return
        self._auto_fit = False  # the user scrolls: the view stays where it is taken
        super().wheelEvent(event)

    # -- mouse: wires from ports, nodes moved, panning ----------------------------------------

    def _node_at(self, scene_pos: QPointF) -> NodeItem | None:
        for item in self.scene_.items(scene_pos):
            while item is not None and not isinstance(item, NodeItem):
                item = item.parentItem()
            if isinstance(item, NodeItem):
                return item
        return None

    def _output_port_at(self, scene_pos: QPointF) -> NodeItem | None:
        for node in [self.input_node, *self.by_index]:
            port = node.output_port()
            if abs(port.x() - scene_pos.x()) <= PORT_REACH and abs(port.y() - scene_pos.y()) <= PORT_REACH:
                return node
        return None

    def _target_at(self, scene_pos: QPointF) -> NodeItem | None:
        """The layer node a wire dropped here would go into (its box, or its input ports)."""
        node = self._node_at(scene_pos)
        if node is not None and node.is_layer:
            return node
        for node in self.by_index:
            top = node.mapToScene(QPointF(0, 0))
            if (top.x() - PORT_REACH <= scene_pos.x() <= top.x() + node.width + PORT_REACH
                    and abs(scene_pos.y() - top.y()) <= PORT_REACH):
                return node
        return None

    def _wire_at(self, scene_pos: QPointF) -> WireItem | None:
        for item in self.scene_.items(scene_pos):
            if isinstance(item, WireItem):
                return item
            if isinstance(item, NodeItem):
                return None
        return None

    def begin_wire(self, source: NodeItem) -> None:
        """Start dragging a wire out of ``source``'s output port."""
        preview = QGraphicsPathItem()
        preview.setPen(QPen(self.scene_.colors.highlight, 2, Qt.PenStyle.DashLine))
        preview.setZValue(3)
        self.scene_.addItem(preview)
        self._wire_drag = (source, preview)

    def drag_wire_to(self, scene_pos: QPointF) -> None:
        if self._wire_drag is None:
            return
        source, preview = self._wire_drag
        target = self._target_at(scene_pos)
        self._set_hot_node(target if target is not source else None)
        start = source.output_port()
        bend = max(40.0, abs(scene_pos.y() - start.y()) / 2)
        path = QPainterPath(start)
        path.cubicTo(QPointF(start.x(), start.y() + bend), QPointF(scene_pos.x(), scene_pos.y() - bend), scene_pos)
        preview.setPath(path)

    def end_wire(self, scene_pos: QPointF | None) -> bool:
        """Drop the wire being dragged at ``scene_pos``: on a layer, the
        layer takes the source's output (one undo step). True when wired."""
        if self._wire_drag is None:
            return False
        source, preview = self._wire_drag
        self._wire_drag = None
        self._set_hot_node(None)
        self.scene_.removeItem(preview)
        target = self._target_at(scene_pos) if scene_pos is not None else None
        if target is None or target is source or not hasattr(self.edits, "connect"):
            return False
        # The edit refuses (and says why) a wire up to a layer listed before the source.
        self.edits.connect(source.index, target.index)
        return True

    def _set_hot_node(self, node: NodeItem | None) -> None:
        self._hot_node = _light(self._hot_node, node)

    def mousePressEvent(self, event) -> None:  # noqa: N802 - Qt's name
        scene_pos = self.mapToScene(event.position().toPoint())
        if event.button() == Qt.MouseButton.MiddleButton or (
                event.button() == Qt.MouseButton.LeftButton and self._space):
            self._pan = event.position()
            self.viewport().setCursor(Qt.CursorShape.ClosedHandCursor)
            event.accept()
            return
        if event.button() == Qt.MouseButton.LeftButton:
            port = self._output_port_at(scene_pos)
            if port is not None:
                self.begin_wire(port)
                self.drag_wire_to(scene_pos)
                event.accept()
                return
        self._pressed = self._node_at(scene_pos)
        super().mousePressEvent(event)
        self._drag_start = {item: item.pos() for item in self.scene_.selectedItems()
                            if isinstance(item, NodeItem) and item.is_layer}

    def mouseDoubleClickEvent(self, event) -> None:  # noqa: N802 - Qt's name
        node = self._node_at(self.mapToScene(event.position().toPoint()))
        if node is not None and node.is_layer and event.button() == Qt.MouseButton.LeftButton:
            self.layer_activated.emit(node.index)
            event.accept()
            return
        super().mouseDoubleClickEvent(event)

    def mouseMoveEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if self._pan is not None:
            self._auto_fit = False
            delta = event.position() - self._pan
            self._pan = event.position()
            self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() - round(delta.x()))
            self.verticalScrollBar().setValue(self.verticalScrollBar().value() - round(delta.y()))
            return
        if self._wire_drag is not None:
            self.drag_wire_to(self.mapToScene(event.position().toPoint()))
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if self._pan is not None:
            self._pan = None
            self.viewport().unsetCursor()
            return
        if self._wire_drag is not None:
            self.end_wire(self.mapToScene(event.position().toPoint()))
            return
        super().mouseReleaseEvent(event)
        self._pressed = None
        moved = {node.index: (node.pos().x(), node.pos().y()) for node, start in self._drag_start.items()
                 if node.scene() is self.scene_ and node.pos() != start}
        self._drag_start = {}
        if moved:
            self._auto_fit = False  # the user arranges the nodes: the view stays as it is
            self.commit_positions(moved)

    def commit_positions(self, moved: dict[int, tuple[float, float]]) -> None:
        """Store where the user put these nodes (one undo step, layout only)."""
        moved = {index: (float(round(x)), float(round(y))) for index, (x, y) in moved.items()}
        if hasattr(self.edits, "set_positions"):
            self.edits.set_positions(moved)
        elif len(moved) == 1 and hasattr(self.edits, "set_position"):
            (index, (x, y)), = moved.items()
            self.edits.set_position(index, x, y)

    def keyPressEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space = True
            self.viewport().setCursor(Qt.CursorShape.OpenHandCursor)
            return
        if event.key() in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace):
            self.delete_selection()
            return
        super().keyPressEvent(event)

    def keyReleaseEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space = False
            self.viewport().unsetCursor()
            return
        super().keyReleaseEvent(event)

    # -- drops from the palette ----------------------------------------------------------------

    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if event.mimeData().hasFormat(LAYER_MIME):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if not event.mimeData().hasFormat(LAYER_MIME):
            event.ignore()
            return
        wire = self._wire_at(self.mapToScene(event.position().toPoint()))
        self._set_hot_wire(wire)
        event.acceptProposedAction()

    def dragLeaveEvent(self, event) -> None:  # noqa: N802 - Qt's name
        self._set_hot_wire(None)

    def _set_hot_wire(self, wire: WireItem | None) -> None:
        self._hot_wire = _light(self._hot_wire, wire)

    def dropEvent(self, event) -> None:  # noqa: N802 - Qt's name
        self._set_hot_wire(None)
        if not event.mimeData().hasFormat(LAYER_MIME):
            event.ignore()
            return
        name = bytes(event.mimeData().data(LAYER_MIME)).decode()
        if self.drop_layer(name, self.mapToScene(event.position().toPoint())):
            event.acceptProposedAction()
        else:
            event.ignore()

    def drop_layer(self, name: str, scene_pos: QPointF) -> bool:
        """A layer type dropped at ``scene_pos``: onto a wire, inserted on it;
        elsewhere, after the selected layer (or at the end)."""
        if name not in LAYERS and name not in self.document.model.blocks:
            return False
        wire = self._wire_at(scene_pos)
        if wire is not None:
            self.insert_on_wire(name, wire.source, wire.target)
            return True
        selected = self.selected_layers()
        self.edits.insert(name, selected[-1] + 1 if selected else None)
        return True

    def insert_on_wire(self, name: str, source: int, target: int) -> None:
        layers = self.document.model.layers
        if target == OUTPUT_INDEX:
            self.edits.insert(name, None)
        elif hasattr(self.edits, "insert_on_wire"):
            self.edits.insert_on_wire(name, source, target)
        elif layers[target].inputs is None:  # the plain wire from the layer listed before
            self.edits.insert(name, target)

    # -- commands --------------------------------------------------------------------------------

    def _build_actions(self) -> None:
        def action(text: str, slot: Callable[[], None], keys=None) -> QAction:
            made = QAction(text, self)
            made.triggered.connect(lambda _checked=False: slot())
            if keys is not None:
                unique: list[QKeySequence] = []  # a key listed twice would trigger nothing
                for key in keys if isinstance(keys, list) else [keys]:
                    if not key.isEmpty() and key not in unique:
                        unique.append(key)
                made.setShortcuts(unique)
                made.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
                self.addAction(made)
            return made

        sequences = QKeySequence.keyBindings
        self.zoom_in_action = action("Zoom In", self.zoom_in,
                                     [QKeySequence("Ctrl+="), QKeySequence("Ctrl++"),
                                      *sequences(QKeySequence.StandardKey.ZoomIn)])
        self.zoom_out_action = action("Zoom Out", self.zoom_out,
                                      [QKeySequence("Ctrl+-"), *sequences(QKeySequence.StandardKey.ZoomOut)])
        self.fit_action = action("Fit to View", self.fit_to_view, QKeySequence("Ctrl+0"))
        self.tidy_action = action("Tidy Up", self.tidy_up)
        self.tidy_action.setToolTip("Forget where nodes were moved: lay the graph out automatically")
        # No keys: the window's Edit menu owns Ctrl+C and Ctrl+V (for the canvas too).
        self.copy_action = action("Copy", self.copy_selection)
        self.paste_action = action("Paste", self.paste)

    def _edit(self, name: str, *args):
        method = getattr(self.edits, name, None)
        if method is not None:
            return method(*args)
        return None

    def delete_selection(self) -> None:
        """Delete the selected wires, else the selected layers (one undo step)."""
        wires = self.selected_wires()
        if wires:
            self._as_one_step("Delete wire", [
                (lambda w=w: self._edit("disconnect", w.source, w.target)) for w in wires])
            return
        indexes = self.selected_layers()
        if len(indexes) > 1 and hasattr(self.edits, "remove_layers"):
            self.edits.remove_layers(indexes)
            return
        self._as_one_step(f"Delete {len(indexes)} layers",
                          [(lambda i=i: self.edits.remove(i)) for i in sorted(indexes, reverse=True)])

    def _as_one_step(self, text: str, edits: list[Callable[[], None]]) -> None:
        if len(edits) == 1:
            edits[0]()
            return
        if not edits:
            return
        stack = self.document.undo_stack
        stack.beginMacro(text)
        try:
            for edit in edits:
                edit()
        finally:
            stack.endMacro()

    def toggle_frozen(self, index: int) -> None:
        """Freeze layer ``index`` or unfreeze it (the snowflake on its node): one undo step."""
        self.edits.toggle_frozen(index)

    def apply_fix(self, index: int) -> None:
        report = self.document.report
        if report is None or not 0 <= index < len(report.layers):
            return
        fix = getattr(report.layers[index], "fix_action", None)
        if fix is not None:
            self._edit("apply_fix", fix)

    def copy_selection(self) -> None:
        indexes = self.selected_layers()
        text = self._edit("copy", indexes) if indexes else None
        if text:
            QApplication.clipboard().setText(text)

    def paste(self) -> None:
        text = QApplication.clipboard().text()
        if not text:
            return
        selected = self.selected_layers()
        self._edit("paste", text, selected[-1] + 1 if selected else None)

    def make_block(self, indexes: list[int], name: str | None = None) -> None:
        if name is None:
            taken = set(self.document.model.blocks)
            number = 1
            while f"Block{number}" in taken:
                number += 1
            name, ok = QInputDialog.getText(self, "Make a block", "The new block's name:", text=f"Block{number}")
            if not ok or not name.strip():
                return
        self._edit("make_block", indexes, name.strip())

    def contextMenuEvent(self, event) -> None:  # noqa: N802 - Qt's name
        scene_pos = self.mapToScene(event.pos())
        menu = self.menu_at(scene_pos)
        if not menu.isEmpty():
            menu.exec(event.globalPos())

    def menu_at(self, scene_pos: QPointF) -> QMenu:
        """The context menu for what is at ``scene_pos`` (a node, a wire, or the canvas)."""
        menu = QMenu(self)
        node = self._node_at(scene_pos)
        wire = None if node is not None else self._wire_at(scene_pos)
        has = lambda name: hasattr(self.edits, name)  # noqa: E731 - short and local

        def add(text: str, slot, enabled: bool = True) -> QAction:
            made = menu.addAction(text)
            made.triggered.connect(lambda _checked=False: slot())
            made.setEnabled(enabled)
            return made

        if node is not None and node.is_layer:
            if not node.isSelected():
                self.scene_.clearSelection()
                node.setSelected(True)
            indexes = self.selected_layers()
            first, last = indexes[0], indexes[-1]
            layer = self.document.model.layers[node.index]
            add("Delete", self.delete_selection)
            add("Duplicate", lambda: self.edits.duplicate(node.index), len(indexes) == 1)
            # Several selected: all of them, one step (frozen when any of them trains).
            freeze = not all(self.document.model.layers[i].frozen for i in indexes)
            count = "" if len(indexes) == 1 else f" {len(indexes)} Layers"
            add(("Freeze" if freeze else "Unfreeze") + count,
                lambda: self.edits.set_option(indexes, "frozen", freeze), has("set_option"))
            menu.addSeparator()
            add("Add Skip Connection", lambda: self._edit("add_skip_connection", first, last),
                has("add_skip_connection"))
            add("Wrap in Residual Block", lambda: self._edit("wrap_in_residual", indexes), has("wrap_in_residual"))
            add("Make Block from Selection…", lambda: self.make_block(indexes), has("make_block"))
            if layer.type in self.document.model.blocks:
                add("Expand Block", lambda: self._edit("expand_block", node.index), has("expand_block"))
            menu.addSeparator()
            add("Copy", self.copy_selection, has("copy"))
            add("Paste", self.paste, has("paste") and bool(QApplication.clipboard().text()))
        elif wire is not None:
            if not wire.isSelected() and wire.flags() & QGraphicsItem.GraphicsItemFlag.ItemIsSelectable:
                self.scene_.clearSelection()
                wire.setSelected(True)
            add("Delete Wire", lambda: self._edit("disconnect", wire.source, wire.target),
                has("disconnect") and wire.target != OUTPUT_INDEX)
            insert = menu.addMenu("Insert Layer Here")
            model = self.document.model
            for category, entries in LAYERS.categories().items():
                sub = insert.addMenu(category)
                for entry in entries:
                    sub.addAction(entry.name).triggered.connect(
                        lambda _checked=False, n=entry.name: self.insert_on_wire(n, wire.source, wire.target))
            if model.blocks:
                sub = insert.addMenu("Blocks")
                for name in model.blocks:
                    sub.addAction(name).triggered.connect(
                        lambda _checked=False, n=name: self.insert_on_wire(n, wire.source, wire.target))
        else:
            add("Paste", self.paste, has("paste") and bool(QApplication.clipboard().text()))
            menu.addSeparator()
            menu.addAction(self.fit_action)
            menu.addAction(self.tidy_action)
            self.tidy_action.setEnabled(has("clear_positions"))
        return menu


class GraphPanel(QWidget):
    """The canvas with its small toolbar (zoom, fit, tidy up)."""

    def __init__(self, document: ProjectDocument, edits: LayerEdits, parent: QWidget | None = None):
        super().__init__(parent)
        self.canvas = GraphCanvas(document, edits, self)
        bar = QHBoxLayout()
        bar.setContentsMargins(0, 0, 0, 0)
        for action, tip in ((self.canvas.zoom_out_action, "Zoom out (Ctrl+-, or Ctrl+wheel)"),
                            (self.canvas.zoom_in_action, "Zoom in (Ctrl+=, or Ctrl+wheel)"),
                            (self.canvas.fit_action, "Show the whole graph (Ctrl+0)"),
                            (self.canvas.tidy_action, self.canvas.tidy_action.toolTip())):
            button = QToolButton()
            button.setDefaultAction(action)
            button.setAutoRaise(True)
            action.setToolTip(tip)
            bar.addWidget(button)
        bar.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addLayout(bar)
        layout.addWidget(self.canvas, 1)
        self.canvas.tidy_action.setEnabled(hasattr(edits, "clear_positions"))


def _light(old, new):
    """Highlight ``new`` (a node or wire, or None) instead of ``old``; returns ``new``."""
    if new is not old:
        for item in (old, new):
            if item is not None:
                item.hot = item is new
                item.update()
    return new
