"""guidl: design, train and export neural networks from a desktop window."""

__version__ = "0.1.0"
