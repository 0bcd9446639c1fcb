"""Catalogues of everything a project file can name: layers, losses,
optimizers and schedulers, with parameter schemas and help text.

No torch and no Qt here: the catalogues load in milliseconds and can be read
on a machine without either. A ``type`` in a project file is only ever looked
up in these catalogues, so nothing in a file can make guidl import or call an
arbitrary name.
"""

from .datasets import AUGMENT, DATASETS
from .layers import LAYERS
from .schema import INT64_MAX, INT64_MIN, REQUIRED, Catalogue, Entry, Param, UnknownNameError
from .training import EARLY_STOPPING, LOSSES, OPTIMIZERS, PRECISIONS, SCHEDULERS

#: Every catalogue by family name.
CATALOGUES: dict[str, Catalogue] = {
    "layer": LAYERS,
    "loss": LOSSES,
    "optimizer": OPTIMIZERS,
    "scheduler": SCHEDULERS,
    "dataset": DATASETS,
}

__all__ = [
    "AUGMENT", "CATALOGUES", "DATASETS", "EARLY_STOPPING", "INT64_MAX", "INT64_MIN", "LAYERS",
    "LOSSES", "OPTIMIZERS", "PRECISIONS", "REQUIRED", "SCHEDULERS",
    "Catalogue", "Entry", "Param", "UnknownNameError",
]
