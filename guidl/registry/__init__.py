"""Catalogues of everything a project file can name: layers, losses,
optimizers and schedulers, with parameter schemas and help text.

No torch and no Qt here: the catalogues load in milliseconds and can be read
on a machine without either. A ``type`` in a project file is only ever looked
up in these catalogues, so nothing in a file can make guidl import or call an
arbitrary name.
"""

from .layers import LAYERS
from .schema import REQUIRED, Catalogue, Entry, Param, UnknownNameError
from .training import LOSSES, OPTIMIZERS, SCHEDULERS

#: Every catalogue by family name.
CATALOGUES: dict[str, Catalogue] = {
    "layer": LAYERS,
    "loss": LOSSES,
    "optimizer": OPTIMIZERS,
    "scheduler": SCHEDULERS,
}

__all__ = [
    "CATALOGUES", "LAYERS", "LOSSES", "OPTIMIZERS", "REQUIRED", "SCHEDULERS",
    "Catalogue", "Entry", "Param", "UnknownNameError",
]
