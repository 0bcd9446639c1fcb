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
from .tasks import DEFAULT_DISCRIMINATOR_OPTIMIZER, PIXEL_RANGES, TASKS
from .training import EARLY_STOPPING, FINE_TUNE, LOSSES, OPTIMIZERS, PRECISIONS, SCHEDULERS

#: Every catalogue by family name.
CATALOGUES: dict[str, Catalogue] = {
    "layer": LAYERS,
    "loss": LOSSES,
    "optimizer": OPTIMIZERS,
    "scheduler": SCHEDULERS,
    "dataset": DATASETS,
    "task": TASKS,
}

__all__ = [
    "AUGMENT", "CATALOGUES", "DATASETS", "DEFAULT_DISCRIMINATOR_OPTIMIZER", "EARLY_STOPPING", "FINE_TUNE", "INT64_MAX", "INT64_MIN", "LAYERS",
    "LOSSES", "OPTIMIZERS", "PIXEL_RANGES", "PRECISIONS", "REQUIRED", "SCHEDULERS", "TASKS",
    "Catalogue", "Entry", "Param", "UnknownNameError",
]
