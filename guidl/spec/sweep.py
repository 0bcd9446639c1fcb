"""What a sweep varies, and how it is judged.

A sweep names settings of the project by their JSON path
(``training.optimizer.params.lr``) and gives each a list of values, a range or
a log range, written on the command line as ``PATH=a,b,c``, ``PATH=lo..hi``
or ``PATH=log:lo..hi``. Paths and values are checked here against the
project and its catalogues' schemas, the way any project field is, before a
trial trains; the search itself (Optuna) lives in ``engine.sweep``.

No torch, no Qt, no Optuna: the window's Sweep dialog validates as the user
types.
"""

from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from ..formatting import quote, shorten
from ..registry import (
    AUGMENT, DATASETS, EARLY_STOPPING, FINE_TUNE, LAYERS, LOSSES, Entry,
)
from .errors import Problem, ProjectError
from .paths import PathError, component_catalogue, component_entry, format_path, get_path, parse_path, set_path
from .project import Project

STRATEGIES = ("grid", "random", "tpe")
KINDS = ("values", "range", "log_range")
DIRECTIONS = ("minimize", "maximize")
COMPARISONS = ("optimizers", "activations")

#: Every figure a run records per epoch that a sweep can optimise, and which
#: way is better (``engine.trainer.EpochMetrics``; metrics.csv's columns).
METRICS: dict[str, str] = {
    "val_loss": "minimize",
    "val_accuracy": "maximize",
    "val_mae": "minimize",
    "val_mse": "minimize",
    "val_psnr": "maximize",
    "train_loss": "minimize",
    "train_accuracy": "maximize",
    "train_mae": "minimize",
    "train_mse": "minimize",
    # GANs have no validation loss: their losses, and the judge's view of the samples.
    "g_loss": "minimize",
    "d_loss": "minimize",
    "judge_confidence": "maximize",
    "judge_coverage": "maximize",
    "sample_diversity": "maximize",
}

#: More grid points than this is not a sweep anyone waits for.
MAX_GRID = 10_000
MAX_TRIALS = 100_000
MAX_VALUES = 1_000
#: Settings that say what the file is, not what is trained.
_NOT_SETTINGS = (("format",), ("version",), ("name",))

_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


# -- one swept setting ---------------------------------------------------------------

@dataclass(frozen=True)
class SweepParam:
    """One setting a sweep varies: a list of values, or a (log) range."""

    path: str
    kind: str  # "values" | "range" | "log_range"
    values: tuple = ()
    low: float | int | None = None
    high: float | int | None = None
    #: A range of whole numbers (both ends written as integers, on an integer
    #: setting such as ``out_features``): Optuna's ``suggest_int``.
    integer: bool = False

    @property
    def log(self) -> bool:
        return self.kind == "log_range"

    def to_dict(self) -> dict[str, Any]:
        if self.kind == "values":
            return {"path": self.path, "kind": self.kind, "values": list(self.values)}
        return {"path": self.path, "kind": self.kind, "low": self.low, "high": self.high,
                "integer": self.integer}

    @classmethod
    def from_dict(cls, doc: Any) -> "SweepParam":
        """Read what ``to_dict`` wrote; ValueError naming what is wrong."""
        if not isinstance(doc, Mapping):
            raise ValueError(f"a swept parameter must be an object, got {quote(doc, 60)}")
        path, kind = doc.get("path"), doc.get("kind")
        if not isinstance(path, str):
            raise ValueError(f"a swept parameter's path must be text, got {quote(path, 60)}")
        parse_path(path)  # PathError (a ValueError) when malformed
        if kind not in KINDS:
            raise ValueError(f"{path}: kind must be one of {', '.join(KINDS)}, got {quote(kind, 60)}")
        if kind == "values":
            values = doc.get("values")
            if not isinstance(values, list) or not values:
                raise ValueError(f"{path}: values must be a non-empty list, got {quote(values, 60)}")
            for value in values:
                if value is not None and not isinstance(value, (bool, int, float, str)):
                    raise ValueError(f"{path}: a value must be a number, text, true/false or null, "
                                     f"got {quote(value, 60)}")
            return cls(path, kind, tuple(values))
        low, high, integer = doc.get("low"), doc.get("high"), doc.get("integer", False)
        for end in (low, high):
            if isinstance(end, bool) or not isinstance(end, (int, float)):
                raise ValueError(f"{path}: a range's ends must be numbers, got {quote(end, 60)}")
        if not isinstance(integer, bool):
            raise ValueError(f"{path}: integer must be true or false, got {quote(integer, 60)}")
        _check_range(path, kind, low, high)
        return cls(path, kind, (), low, high, integer)

    def spec_text(self) -> str:
        """The command line's form: ``a,b,c``, ``lo..hi`` or ``log:lo..hi``."""
        if self.kind == "values":
            return ",".join(_literal_text(v) for v in self.values)
        text = f"{_literal_text(self.low)}..{_literal_text(self.high)}"
        return "log:" + text if self.log else text

    def __str__(self) -> str:
        return f"{self.path}={self.spec_text()}"

    def grid_values(self, points: int = 5) -> list:
        """The values a grid tries: the values as given; an integer range:
        every integer when there are at most 10, else ``points`` of them spread
        evenly (geometrically for a log range); a float range: ``points``
        values spread evenly (``linspace``), or geometrically (``geomspace``)."""
        if self.kind == "values":
            return list(self.values)
        points = max(2, int(points))
        low, high = self.low, self.high
        if self.integer:
            low, high = int(low), int(high)
            if high - low + 1 <= 10:
                return list(range(low, high + 1))
            spread = _geomspace(low, high, points) if self.log else _linspace(low, high, points)
            return sorted({int(round(v)) for v in spread})
        spread = _geomspace(low, high, points) if self.log else _linspace(low, high, points)
        return [_tidy(v) for v in spread]

    def ends(self) -> list:
        """The values to check: each value, or a range's two ends."""
        return list(self.values) if self.kind == "values" else [self.low, self.high]


def _linspace(low: float, high: float, points: int) -> list[float]:
    return [low + (high - low) * i / (points - 1) for i in range(points)]


def _geomspace(low: float, high: float, points: int) -> list[float]:
    ratio = math.log(high / low)
    return [low * math.exp(ratio * i / (points - 1)) for i in range(points)]


def _tidy(value: float) -> float:
    """0.0010000000000000002 -> 0.001: grid points as a person writes them."""
    return float(f"{value:.12g}")


def _literal_text(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        # Text that would read back as something else is quoted.
        plain = value and "," not in value and value.strip() == value and not value.startswith(("'", '"'))
        if plain and isinstance(_literal(value), str) and ".." not in value and not value.startswith("log:"):
            return value
        return '"' + value.replace('"', '\\"') + '"'
    return str(value)


def _literal(text: str) -> Any:
    """A value as written on the command line: ``3``, ``-1``, ``1e-3``,
    ``true``, ``null``, ``Adam``, ``"3"`` (quoted: text)."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1].replace('\\"', '"')
    lower = text.lower()
    if lower in ("true", "false"):
        return lower == "true"
    if lower in ("null", "none"):
        return None
    if _INT.fullmatch(text):
        return int(text)
    if _FLOAT.fullmatch(text):
        return float(text)
    if lower.lstrip("+-") in ("inf", "infinity", "nan"):
        return float(text)
    return text


def _number(path: str, text: str, what: str) -> int | float:
    value = _literal(text)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{path}: a range's {what} end must be a number, got {quote(text.strip(), 60)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{path}: a range's {what} end must be a finite number, got {text.strip()}")
    return value


def _check_range(path: str, kind: str, low, high) -> None:
    for end in (low, high):
        if isinstance(end, float) and not math.isfinite(end):
            raise ValueError(f"{path}: a range's ends must be finite numbers, got {end}")
    if kind == "log_range" and low <= 0:
        raise ValueError(f"{path}: log range needs low > 0, got {_literal_text(low)}")
    if not low < high:
        raise ValueError(f"{path}: range {_literal_text(low)}..{_literal_text(high)} needs low < high"
                         + (" (to try one value, write PATH=value)" if low == high else ""))


def parse_param(text: str, project: Project | None = None) -> SweepParam:
    """``PATH=a,b,c``, ``PATH=lo..hi`` or ``PATH=log:lo..hi`` (spaces around
    the parts are fine). ValueError with a message that names the path and
    what is wrong.

    With ``project``, a range is an integer range only when the setting is a
    whole number (``lr=0..1`` is a float range; ``out_features=16..128`` an
    integer one), and values of a text setting stay text (``Adam``, ``3``)."""
    if not isinstance(text, str):
        raise ValueError(f"a swept parameter must be text such as 'training.optimizer.params.lr=log:1e-4..1e-1', "
                         f"got {quote(text, 60)}")
    if "=" not in text:
        raise ValueError(f"{shorten(text.strip(), 120)}: write PATH=VALUES, e.g. "
                         f"'training.optimizer.params.lr=0.001,0.01' or 'data.batch_size=16..128' "
                         f"or 'training.optimizer.params.lr=log:1e-4..1e-1'")
    path_text, spec = text.split("=", 1)
    parts = parse_path(path_text)  # PathError (a ValueError) says what is wrong with it
    path = format_path(parts)
    spec = spec.strip()
    if not spec:
        raise ValueError(f"{path}: no values after '=': write values (a,b,c), a range (lo..hi) "
                         f"or a log range (log:lo..hi)")
    kind_of_setting = setting_kind(project, parts) if project is not None else None
    log = spec.lower().startswith("log:")
    body = spec[4:].strip() if log else spec
    if log or (".." in body and "," not in body and not _quoted(body)):
        if "," in body:
            raise ValueError(f"{path}: {quote(spec, 60)} mixes a list and a range: write a,b,c or lo..hi")
        if ".." not in body:
            raise ValueError(f"{path}: a log range is written log:lo..hi (e.g. log:1e-4..1e-1), "
                             f"got {quote(spec, 60)}")
        low_text, high_text = body.split("..", 1)
        low, high = _number(path, low_text, "low"), _number(path, high_text, "high")
        kind = "log_range" if log else "range"
        _check_range(path, kind, low, high)
        integer = isinstance(low, int) and isinstance(high, int) and kind_of_setting in (None, "int")
        return SweepParam(path, kind, (), low, high, integer)
    pieces = _split_values(body)
    if any(".." in piece and not _quoted(piece.strip()) for piece in pieces):
        raise ValueError(f"{path}: {quote(spec, 60)} mixes a list and a range: write a,b,c or lo..hi")
    if any(not piece.strip() for piece in pieces):
        raise ValueError(f"{path}: {quote(spec, 60)} has an empty value: write values separated by commas")
    if len(pieces) > MAX_VALUES:
        raise ValueError(f"{path}: {len(pieces):,} values; a sweep takes at most {MAX_VALUES:,}")
    if kind_of_setting == "str":
        values = [_unquote(piece) for piece in pieces]
    else:
        values = [_literal(piece) for piece in pieces]
    for piece, value in zip(pieces, values):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{path}: {piece.strip()} is not a finite number")
    seen: list = []
    for value in values:
        if any(type(value) is type(other) and value == other for other in seen):
            raise ValueError(f"{path}: {_literal_text(value)} is listed twice")
        seen.append(value)
    return SweepParam(path, "values", tuple(values))


def _quoted(text: str) -> bool:
    return len(text) >= 2 and text[0] == text[-1] and text[0] in "'\""


def _unquote(text: str) -> str | None:
    """A value of a text setting: as written (``3`` stays text), ``null``
    for a nullable one (task.params.code_layer), quotes removed."""
    text = text.strip()
    if text.lower() == "null":
        return None
    return text[1:-1] if _quoted(text) else text


def _split_values(body: str) -> list[str]:
    """Comma-separated values; a comma inside quotes belongs to the value."""
    pieces, current, quote_char = [], "", None
    for char in body:
        if quote_char:
            current += char
            if char == quote_char:
                quote_char = None
        elif char in "'\"" and not current.strip():
            quote_char = char
            current += char
        elif char == ",":
            pieces.append(current)
            current = ""
        else:
            current += char
    pieces.append(current)
    return pieces


# -- what a path names ---------------------------------------------------------------

def _schema(doc: Mapping[str, Any], parts: list) -> dict[str, str] | None:
    """The parameters (name -> kind) the component holding ``parts[:-1]``
    (a ``params`` object) takes, from its catalogue entry or its block's
    declaration; None when ``parts`` is not a parameter of a component."""
    if len(parts) < 2 or parts[-2] != "params" or not isinstance(parts[-1], str):
        return None
    entry = component_entry(doc, parts)
    if entry is not None:
        return _kinds(entry)
    found = component_catalogue(parts[:-1])
    if found is None or found[0] is not LAYERS:
        return None
    owner = parts[:-2]
    try:
        holder = get_path(doc, owner)
    except PathError:
        return None
    name = holder.get("type") if isinstance(holder, Mapping) else None
    if not isinstance(name, str) or name in LAYERS:
        return None
    # A block used as a layer: the parameters its definition declares.
    network = owner[0] if owner[0] in ("model", "discriminator") else "model"
    try:
        declared = get_path(doc, [network, "blocks", name, "params"])
    except PathError:
        return None
    return {d["name"]: d.get("kind") for d in declared
            if isinstance(d, Mapping) and isinstance(d.get("name"), str)} if isinstance(declared, list) else None


def _kinds(entry: Entry | None) -> dict[str, str] | None:
    return None if entry is None else {p.name: p.kind for p in entry.params}


_OPTIONS = {("data", "augment"): AUGMENT, ("training", "early_stopping"): EARLY_STOPPING,
            ("training", "fine_tune"): FINE_TUNE}
#: The fixed numeric fields of the file and their kind.
_FIELDS = {
    ("data", "batch_size"): "int", ("data", "val_fraction"): "float", ("training", "epochs"): "int",
    ("training", "seed"): "int", ("training", "grad_clip"): "float",
}


def setting_kind(project: Project | Mapping[str, Any] | None, path: str | list) -> str | None:
    """What kind of value the setting at ``path`` holds: ``"int"``,
    ``"float"``, ``"bool"``, ``"str"``, or a list kind of the catalogue's
    schema (``"ints"`` for kernel_size...); None when unknown (no such path)."""
    if project is None:
        return None
    doc = project.to_dict() if isinstance(project, Project) else project
    parts = parse_path(path) if isinstance(path, str) else list(path)
    kind = None
    schema = _schema(doc, parts)
    if schema is not None:
        kind = schema.get(parts[-1])
    elif len(parts) == 3 and tuple(parts[:2]) in _OPTIONS:
        entry = _OPTIONS[tuple(parts[:2])]
        kind = entry.param(parts[2]).kind if parts[2] in entry.param_names else None
    elif tuple(parts) in _FIELDS:
        kind = _FIELDS[tuple(parts)]
    elif len(parts) >= 2 and parts[-1] == "lr_multiplier":
        kind = "float"
    elif len(parts) >= 2 and parts[-1] == "repeat":
        kind = "int"
    if kind in ("ints", "floats"):
        # A single number is the usual value (kernel_size: 3).
        kind = kind[:-1]
    if kind is None or not isinstance(kind, str):
        try:
            value = get_path(doc, parts)
        except PathError:
            return None
        kind = {bool: "bool", int: "int", float: "float", str: "str"}.get(type(value))
        if kind is None and isinstance(value, list):
            kind = "list"
        elif kind is None and isinstance(value, dict):
            kind = "object"
    return kind


# -- checking a sweep against a project ----------------------------------------------------

def _problems_of(doc: dict) -> list[Problem]:
    try:
        Project.from_dict(doc)
    except ProjectError as error:
        return error.problems
    return []


def check_params(project: Project, params: Iterable[SweepParam]) -> list[Problem]:
    """Everything wrong with sweeping ``params`` over ``project``: a path the
    project does not have (nor its catalogue schema), a range on a setting
    that is not a number, a value the schema refuses. Each Problem's path is
    the sweep's path and its message says why, naming the value."""
    project_doc = project.to_dict()
    params = list(params)
    swept_types = _swept_types(params)
    project_baseline = set(_problems_of(project_doc))
    problems: list[Problem] = []
    seen: set[str] = set()
    for param in params:
        path = param.path
        try:
            parts = parse_path(path)
        except PathError as error:
            problems.append(Problem(path, error.reason))
            continue
        if path in seen:
            problems.append(Problem(path, "is swept twice: give each setting once"))
            continue
        seen.add(path)
        doc, problem = _base_for(project_doc, parts, swept_types)
        if problem:
            problems.append(Problem(path, problem))
            continue
        baseline = project_baseline if doc is project_doc else set(_problems_of(doc))
        problem = _path_problem(doc, parts)
        if problem:
            problems.append(Problem(path, problem))
            continue
        kind = setting_kind(doc, parts)
        if param.kind != "values":
            if kind not in ("int", "float"):
                shown = _current(doc, parts)
                problems.append(Problem(path, f"a range needs a number setting; this one is "
                                              f"{_kind_words(kind)}{shown}: list its values instead "
                                              f"({path}=a,b,c)"))
                continue
            if kind == "int" and not param.integer:
                problems.append(Problem(path, f"is a whole-number setting: write the range with whole "
                                              f"numbers (e.g. {_whole_example(param)}), got {param.spec_text()}"))
                continue
        label = f"range {param.spec_text()}" if param.kind != "values" else None
        for value in param.ends():
            candidate = copy.deepcopy(doc)
            try:
                set_setting(candidate, parts, value)
            except PathError as error:
                problems.append(Problem(path, error.reason))
                break
            found = [p for p in _problems_of(candidate) if p not in baseline]
            if found:
                where = label or f"value {_literal_text(value)}"
                first = found[0]
                reason = first.message if first.path == path else str(first)
                problems.append(Problem(path, f"{where}: {reason}"))
                if label:
                    break
    return problems


def _swept_types(params: list[SweepParam]) -> dict[tuple, list[str]]:
    """Owner path -> the types a sweep gives it (``training.optimizer.type=SGD,Adam``)."""
    found = {}
    for param in params:
        try:
            parts = parse_path(param.path)
        except PathError:
            continue
        if parts[-1] == "type" and param.kind == "values":
            found[tuple(parts[:-1])] = [v for v in param.values if isinstance(v, str)]
    return found


def _base_for(doc: dict, parts: list, swept_types: dict[tuple, list[str]]) -> tuple[dict, str | None]:
    """The project to check ``parts`` against: as it is, or, for a parameter
    of a component whose type is swept too (momentum while the optimizer is
    SGD or Adam), with the first swept type that takes the parameter. Its
    trials with a type that does not take it leave it out (``apply_values``)."""
    if len(parts) < 3 or parts[-2] != "params" or tuple(parts[:-2]) not in swept_types:
        return doc, None
    schema = _schema(doc, parts)
    if schema is None or parts[-1] in schema:
        return doc, None
    owner = list(parts[:-2])
    for type_ in swept_types[tuple(owner)]:
        candidate = copy.deepcopy(doc)
        try:
            set_setting(candidate, owner + ["type"], type_)
        except PathError:
            continue
        other = _schema(candidate, parts)
        if other is not None and parts[-1] in other:
            return candidate, None
    types = ", ".join(dict.fromkeys([str(get_path(doc, owner + ["type"]))] + swept_types[tuple(owner)]))
    return doc, f"none of the types swept ({types}) takes a parameter {quote(parts[-1])}"


def _path_problem(doc: dict, parts: list) -> str | None:
    """Why ``parts`` names no setting a sweep can vary, or None."""
    if tuple(parts) in _NOT_SETTINGS or not parts:
        return "is not a setting a sweep can vary (it names the file, not what is trained)"
    if any(part in ("*", "**", "[*]") for part in parts):
        return "a path with wildcards names no single setting"
    try:
        value = get_path(doc, parts)
    except PathError as error:
        # A parameter the catalogue knows but the project leaves at its default.
        schema = _schema(doc, parts)
        if schema is not None:
            if parts[-1] in schema:
                return None
            owner = get_path(doc, parts[:-2])
            takes = f"it takes {', '.join(schema)}" if schema else "it takes no parameters"
            return f"{owner.get('type') or format_path(parts[:-2])} has no parameter {quote(parts[-1])} ({takes})"
        if len(parts) == 3 and tuple(parts[:2]) in _OPTIONS:
            try:
                get_path(doc, parts[:2])
                if parts[2] in _OPTIONS[tuple(parts[:2])].param_names:
                    return None
            except PathError:
                return f"{format_path(parts[:2])} is not set in this project: turn it on first"
        if tuple(parts) in _FIELDS:
            return None  # an optional field such as training.grad_clip
        return error.reason
    if _nested(value):
        return (f"names {_kind_words('object' if isinstance(value, dict) else 'list')}, not one setting: "
                f"name one of its values (e.g. {_setting_inside(value, list(parts))})")
    return None


def _nested(value: Any) -> bool:
    """Whether ``value`` is an object or a list holding one (not one setting)."""
    return isinstance(value, dict) or isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value)


def _setting_inside(value: Any, parts: list) -> str:
    """A path to one setting inside the object or list ``value`` at ``parts``,
    as an example: ``model.layers`` -> ``model.layers[0].params.NAME``,
    ``training`` -> ``training.epochs``, ``training.optimizer.params`` ->
    ``training.optimizer.params.NAME``."""
    while True:
        if isinstance(value, list) and _nested(value):
            parts, value = parts + [0], value[0]
        elif isinstance(value, dict):
            if isinstance(value.get("params"), dict):
                return format_path(parts + ["params"]) + ".NAME"
            if parts and parts[-1] == "params" or not value:
                return format_path(parts) + ".NAME"
            scalar = next((key for key, item in value.items() if item is not None and not _nested(item)), None)
            if scalar is not None:
                return format_path(parts + [scalar])
            key = next(iter(value))
            parts, value = parts + [key], value[key]
        else:
            return format_path(parts)


def _current(doc: dict, parts: list) -> str:
    try:
        return f" ({shorten(_literal_text(get_path(doc, parts)), 40)})"
    except PathError:
        return ""


def _kind_words(kind: str | None) -> str:
    return {"str": "text", "bool": "true/false", "list": "a list", "object": "a whole object",
            None: "not a number"}.get(kind, str(kind))


def _whole_example(param: SweepParam) -> str:
    low = math.floor(param.low) if param.low is not None else 1
    high = math.ceil(param.high) if param.high is not None else 10
    if high <= low:
        high = low + 1
    return ("log:" if param.log else "") + f"{max(low, 1) if param.log else low}..{high}"


def set_setting(doc: dict, path: str | list, value: Any) -> None:
    """``set_path``, and when ``path`` is a component's ``type`` (an
    optimizer, a layer), the parameters the new type does not take are
    dropped (SGD's momentum when the optimizer becomes Adam), as the window
    does when the type is changed in a form."""
    parts = parse_path(path) if isinstance(path, str) else list(path)
    set_path(doc, parts, value)
    if parts[-1] != "type" or not isinstance(value, str):
        return
    holder = get_path(doc, parts[:-1])
    params = holder.get("params") if isinstance(holder, dict) else None
    if not isinstance(params, dict) or not params:
        return
    schema = _schema(doc, parts[:-1] + ["params", "?"])
    if schema is not None:
        for key in [k for k in params if k not in schema]:
            del params[key]


def apply_values(project: Project, values: Mapping[str, Any]) -> Project:
    """A new project with each path set to its value; ProjectError (with the
    paths) when a path is absent or a value is refused. Types are set first,
    so ``training.optimizer.type=SGD`` with ``training.optimizer.params.momentum``
    gives SGD that momentum; when the type set here does not take a parameter
    also given (``momentum`` with ``Adam``), that value is left out: the
    sweep's parameter only applies to the types that have it."""
    doc = project.to_dict()
    problems: list[Problem] = []
    ordered = sorted(values.items(), key=lambda item: not str(item[0]).endswith(".type"))
    retyped = {str(path)[:-len(".type")] for path in values if str(path).endswith(".type")}
    for path, value in ordered:
        try:
            parts = parse_path(path) if isinstance(path, str) else list(path)
            if len(parts) >= 3 and parts[-2] == "params" and format_path(parts[:-2]) in retyped:
                schema = _schema(doc, parts)
                if schema is not None and parts[-1] not in schema:
                    continue  # a parameter of another of the swept types (momentum on Adam)
            set_setting(doc, parts, value)
        except PathError as error:
            problems.append(Problem(error.path or str(path), error.reason))
    if problems:
        raise ProjectError(problems)
    return Project.from_dict(doc)


# -- metrics ---------------------------------------------------------------------------

def label_task(project: Project) -> str:
    """What the project learns: ``"classification"``, ``"regression"``,
    ``"reconstruction"``, ``"gan"`` or ``"text_generation"``. For data that
    decides for itself (CSV, npz with task 'auto'), the loss says."""
    if project.task is not None:
        return project.task.type
    data = project.data
    task = None
    if data.dataset in DATASETS:
        task = DATASETS.get(data.dataset).info.get("task")
    if task in (None, "auto"):
        task = data.params.get("task", "auto")
    if task not in ("classification", "regression"):
        loss = project.training.loss.type
        task = LOSSES.get(loss).info.get("task") if loss in LOSSES else "classification"
    return task or "classification"


#: The figures a run of each task records, the main one first: validation
#: figures before training ones; a GAN's judge figures only when its data has
#: classes to judge by (``metrics_for``). ``engine.run_index`` ranks runs by
#: the same order.
TASK_METRICS: dict[str, tuple[str, ...]] = {
    "classification": ("val_accuracy", "val_loss", "train_accuracy", "train_loss"),
    "regression": ("val_mae", "val_loss", "train_mae", "train_loss"),
    "reconstruction": ("val_loss", "val_mse", "val_psnr", "train_loss", "train_mse"),
    "text_generation": ("val_loss", "val_accuracy", "train_loss", "train_accuracy"),
    "gan": ("judge_confidence", "judge_coverage", "g_loss", "d_loss", "sample_diversity"),
}
#: The order for a run whose task is not known (an old or foreign record):
#: each task's main figure, then the training loss.
ANY_TASK_METRICS: tuple[str, ...] = ("val_accuracy", "val_mae", "val_loss", "train_loss")


def metrics_for(project: Project) -> tuple[str, ...]:
    """The figures a run of this project records, the main one first."""
    task = label_task(project)
    names = TASK_METRICS.get(task, TASK_METRICS["classification"])
    if task == "gan":
        judged = DATASETS.get(project.data.dataset).info.get("task") == "classification" \
            if project.data.dataset in DATASETS else False
        return names if judged else tuple(n for n in names if not n.startswith("judge_"))
    validated = project.data.val_fraction > 0
    return names if validated else tuple(n for n in names if not n.startswith("val_"))


def default_metric(project: Project) -> str:
    """The figure a sweep optimises unless told: validation accuracy for
    classification, MAE for regression, the validation loss otherwise (the
    training figure when nothing is held out); for a GAN, which has no
    validation loss, the judge's confidence in the samples (or the
    generator's loss when the data has no classes to judge by)."""
    return metrics_for(project)[0]


def metric_direction(metric: str) -> str:
    """``"minimize"`` or ``"maximize"``; ValueError for a name not recorded."""
    try:
        return METRICS[metric]
    except (KeyError, TypeError):
        raise ValueError(f"unknown metric {quote(metric, 60)}: use one of {', '.join(METRICS)}") from None


# -- a whole sweep ------------------------------------------------------------------------

@dataclass
class SweepConfig:
    """What a sweep varies and how it searches; stored in the Optuna study so
    every worker and the window read the same."""

    params: list[SweepParam] = field(default_factory=list)
    strategy: str = "tpe"
    #: The study's total budget, over all workers.
    trials: int = 20
    metric: str = "val_loss"
    #: None: ``metric_direction(metric)``.
    direction: str | None = None
    #: Optuna's MedianPruner on the per-epoch metric.
    pruner: bool = True
    #: Overrides the project's epochs for every trial.
    epochs: int | None = None
    #: Comparisons: label -> whole project dict (a grid over the labels).
    variants: dict[str, dict] | None = None
    #: "optimizers" | "activations" when made by ``comparisons``.
    compare: str | None = None
    #: Points of a float range in a grid (``SweepParam.grid_values``).
    grid_points: int = 5

    @property
    def resolved_direction(self) -> str:
        return self.direction or metric_direction(self.metric)

    def grid_space(self) -> dict[str, list]:
        """The grid's values per path (the variants' labels under ``"variant"``)."""
        if self.variants is not None:
            return {"variant": list(self.variants)}
        return {p.path: p.grid_values(self.grid_points) for p in self.params}

    def grid_size(self) -> int:
        size = 1
        for values in self.grid_space().values():
            size *= max(len(values), 1)
        return size

    def budget(self) -> int:
        """Trials to run: ``trials``, but no more than a grid has points."""
        if self.strategy == "grid":
            return min(self.trials, self.grid_size())
        return self.trials

    def to_dict(self) -> dict[str, Any]:
        return {
            "params": [p.to_dict() for p in self.params],
            "strategy": self.strategy,
            "trials": self.trials,
            "metric": self.metric,
            "direction": self.direction,
            "pruner": self.pruner,
            "epochs": self.epochs,
            "variants": copy.deepcopy(self.variants),
            "compare": self.compare,
            "grid_points": self.grid_points,
        }

    @classmethod
    def from_dict(cls, doc: Any) -> "SweepConfig":
        """Read what ``to_dict`` wrote; ValueError naming the field."""
        if not isinstance(doc, Mapping):
            raise ValueError(f"a sweep's settings must be an object, got {quote(doc, 60)}")
        raw = doc.get("params", [])
        if not isinstance(raw, list):
            raise ValueError(f"params must be a list, got {quote(raw, 60)}")
        params = [SweepParam.from_dict(p) for p in raw]
        config = cls(params)
        for key, types in (("strategy", str), ("trials", int), ("metric", str), ("direction", (str, type(None))),
                           ("pruner", bool), ("epochs", (int, type(None))), ("compare", (str, type(None))),
                           ("grid_points", int)):
            if key not in doc:
                continue
            value = doc[key]
            if not isinstance(value, types) or isinstance(value, bool) and types is int:
                raise ValueError(f"{key}: got {quote(value, 60)}, which is not "
                                 + {str: "text", int: "an integer", bool: "true or false"}.get(types, "valid"))
            setattr(config, key, value)
        variants = doc.get("variants")
        if variants is not None:
            if not isinstance(variants, Mapping) or not all(
                    isinstance(k, str) and isinstance(v, Mapping) for k, v in variants.items()):
                raise ValueError("variants must map each label to a project object")
            config.variants = {k: copy.deepcopy(dict(v)) for k, v in variants.items()}
        return config

    def problems(self, project: Project) -> list[Problem]:
        """What is wrong with running this sweep over ``project`` (empty when
        it can run). Paths: ``strategy``, ``trials``, ``metric``, ``params``,
        a swept parameter's path, ``variants.LABEL...``."""
        problems: list[Problem] = []
        if self.strategy not in STRATEGIES:
            problems.append(Problem("strategy", f"must be one of {', '.join(STRATEGIES)}, "
                                                f"got {quote(self.strategy, 60)}"))
        if isinstance(self.trials, bool) or not isinstance(self.trials, int) or not 1 <= self.trials <= MAX_TRIALS:
            problems.append(Problem("trials", f"must be a whole number from 1 to {MAX_TRIALS:,}, "
                                              f"got {quote(self.trials, 60)}"))
        known = metrics_for(project)
        if self.metric not in METRICS:
            problems.append(Problem("metric", f"unknown metric {quote(self.metric, 60)}: "
                                              f"this project records {', '.join(known)}"))
        elif self.metric not in known:
            problems.append(Problem("metric", f"{self.metric} is not recorded for this "
                                              f"{label_task(project).replace('_', ' ')} project"
                                              + ("" if project.data.val_fraction > 0
                                                 else " (data.val_fraction is 0: nothing is held out)")
                                              + f": use {', '.join(known)}"))
        if self.direction is not None and self.direction not in DIRECTIONS:
            problems.append(Problem("direction", f"must be minimize or maximize, got {quote(self.direction, 60)}"))
        if self.epochs is not None and (isinstance(self.epochs, bool) or not isinstance(self.epochs, int)
                                        or not 1 <= self.epochs <= 1_000_000):
            problems.append(Problem("epochs", f"must be a whole number >= 1 or unset, got {quote(self.epochs, 60)}"))
        if isinstance(self.grid_points, bool) or not isinstance(self.grid_points, int) \
                or not 2 <= self.grid_points <= 100:
            problems.append(Problem("grid_points", f"must be a whole number from 2 to 100, "
                                                   f"got {quote(self.grid_points, 60)}"))
        if self.compare is not None and self.compare not in COMPARISONS:
            problems.append(Problem("compare", f"must be one of {', '.join(COMPARISONS)}, "
                                               f"got {quote(self.compare, 60)}"))
        if self.variants is not None:
            if self.params:
                problems.append(Problem("params", "a comparison trains whole variants of the project; "
                                                  "it varies no settings besides (drop the params)"))
            if not self.variants:
                problems.append(Problem("variants", "holds no variant to train"))
            if self.strategy != "grid":
                problems.append(Problem("strategy", "a comparison trains every variant once: use grid"))
            for label, doc in self.variants.items():
                try:
                    Project.from_dict(doc)
                except ProjectError as error:
                    problems.extend(Problem(f"variants.{label}" + (f".{p.path}" if p.path else ""), p.message)
                                    for p in error.problems)
            return problems
        if not self.params:
            problems.append(Problem("params", "a sweep needs at least one setting to vary "
                                              "(e.g. --param training.optimizer.params.lr=log:1e-4..1e-1)"))
        problems.extend(check_params(project, self.params))
        if self.epochs is not None and any(p.path == "training.epochs" for p in self.params):
            # epochs overrides every trial's training.epochs: the trials would all train
            # that many while each records (and the best reports) its swept value.
            problems.append(Problem("epochs", "cannot be set while the sweep varies training.epochs: every "
                                              "trial would train the same epochs whatever its training.epochs "
                                              "says; leave epochs unset, or stop varying training.epochs"))
        if isinstance(self.metric, str) and self.metric.startswith("val_"):
            # A trial at val_fraction 0 holds nothing out: it records no val_* figure.
            for p in self.params:
                if p.path == "data.val_fraction" and (
                        any(isinstance(v, (int, float)) and not isinstance(v, bool) and v <= 0 for v in p.values)
                        or p.kind != "values" and isinstance(p.low, (int, float)) and p.low <= 0):
                    problems.append(Problem("metric", f"{self.metric} is not recorded by the trials at "
                                                      "data.val_fraction 0 (nothing is held out): sweep "
                                                      "val_fraction above 0, or optimise a train_* figure"))
        if self.strategy == "grid" and self.params:
            size = self.grid_size()
            if size > MAX_GRID:
                problems.append(Problem("params", f"the grid has {size:,} points; at most {MAX_GRID:,}: "
                                                  "give fewer values, or use random or tpe"))
        return problems
