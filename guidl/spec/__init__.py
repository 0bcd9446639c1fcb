"""The guidl project file (``*.guidl.json``): dataclasses, load and save,
versions and validation. Imports neither torch nor Qt."""

from .errors import Problem, ProjectError
from .io import (
    MIGRATIONS, UnreadableFileError, atomic_path, atomic_write_bytes, atomic_write_text, dumps, load, loads,
    open_regular_file, read_regular_file, replace_file, save, upgrade,
)
from .project import (
    CURRENT_VERSION, FORMAT, INPUT_DTYPES, Block, Component, Data, Layer, Model, Project, Training,
)
from .paths import MISSING, Change, PathError, diff, format_change, get_path, parse_path, set_path
from .sweep import METRICS, STRATEGIES, SweepConfig, SweepParam, default_metric, metric_direction, parse_param

__all__ = [
    "CURRENT_VERSION", "FORMAT", "INPUT_DTYPES", "MIGRATIONS",
    "Block", "Component", "Data", "Layer", "Model", "Problem", "Project", "ProjectError", "Training",
    "UnreadableFileError", "atomic_path", "atomic_write_bytes", "atomic_write_text", "dumps", "load", "loads",
    "open_regular_file", "read_regular_file", "replace_file", "save", "upgrade",
    "MISSING", "Change", "PathError", "diff", "format_change", "get_path", "parse_path", "set_path",
    "METRICS", "STRATEGIES", "SweepConfig", "SweepParam", "default_metric", "metric_direction", "parse_param",
]
