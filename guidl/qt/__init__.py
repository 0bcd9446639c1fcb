"""The desktop application: the only part of guidl that imports PySide6 or
pyqtgraph. ``guidl.qt.app.main`` starts it."""
