"""Parameter schemas and catalogue entries.

Plain data, no torch and no Qt: the GUI builds its editors from these, the
project-file validator checks values against them, and the engine maps an
entry's name to a constructor. Every schema round-trips through JSON
(``to_config`` / ``from_config``) so catalogues can be written out, diffed and
read back.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping

from ..formatting import quote


class _Required:
    """Marks a parameter that has no default: the user must give it."""

    _instance: "_Required | None" = None

    def __new__(cls) -> "_Required":
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "REQUIRED"

    def __reduce__(self) -> str:
        return "REQUIRED"


REQUIRED = _Required()

#: The value kinds a parameter can have. ``ints`` and ``floats`` accept a single
#: number or a list of ``arity`` numbers (``kernel_size: 3`` or ``[3, 5]``);
#: ``int_list`` and ``float_list`` are lists only, of ``arity`` items when it is
#: given, else of any length (``milestones``, ``unflattened_size``, ``betas``).
KINDS = ("int", "float", "bool", "str", "ints", "floats", "int_list", "float_list", "str_list")

#: Every integer parameter ends up in torch or NumPy, which hold it in 64 bits
#: (an ``int64``, a C ``long long``): larger values fail there with an
#: overflow, so they are refused here whatever the parameter's own bounds.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def _is_int(value: Any) -> bool:
    # JSON has no separate bool type in Python's eyes: True is an int. Refuse it.
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and not isinstance(value, bool)


def _close_matches(word: str, names: list[str]) -> list[str]:
    """The name ``word`` was probably meant to be; none for text far longer
    than any name (difflib indexes every character of it)."""
    if len(word) > 100:
        return []
    return difflib.get_close_matches(word, names, n=1, cutoff=0.6)


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return quote(value, 40)
    if _is_int(value) and value.bit_length() > 64:
        # str() of a huge integer is slow (and refused past 4,300 digits).
        return f"an integer of about {int(value.bit_length() * math.log10(2)) + 1} digits"
    if isinstance(value, (list, tuple)):
        return "a list" if len(value) > 6 else "[" + ", ".join(_describe(v) for v in value) + "]"
    if isinstance(value, dict):
        return "an object"
    return repr(value)


@dataclass(frozen=True)
class Param:
    """One constructor argument of a layer, loss, optimizer or scheduler.

    ``inferred`` names where guidl takes the value from when the user leaves it
    out (``"channels"``, ``"features"``, ``"training"``...); such a parameter is
    shown read-only in the GUI. ``suggested`` is the value the palette starts a
    required parameter with, so a freshly dropped layer builds.
    """

    name: str
    kind: str
    default: Any = REQUIRED
    help: str = ""
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    #: The maximum itself is refused (Adam's betas: < 1).
    exclusive_maximum: bool = False
    choices: tuple[Any, ...] | None = None
    nullable: bool = False
    arity: int | None = None
    inferred: str | None = None
    suggested: Any = None
    #: Strings also accepted by an otherwise numeric parameter
    #: (``padding: "same"``).
    keywords: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"{self.name}: unknown kind {self.kind!r}")

    @property
    def required(self) -> bool:
        return self.default is REQUIRED and self.inferred is None

    # -- validation -------------------------------------------------------

    def check(self, value: Any) -> str | None:
        """Return why ``value`` is not acceptable, or ``None`` when it is."""
        if value is None:
            return None if self.nullable else f"must not be null; {self.expects()}"
        if isinstance(value, str) and value in self.keywords:
            return None
        kind = self.kind
        if kind == "bool":
            return None if isinstance(value, bool) else f"must be true or false, got {_describe(value)}"
        if kind == "str":
            if not isinstance(value, str):
                return f"must be a string, got {_describe(value)}"
            if self.choices is not None and value not in self.choices:
                return self._choice_message(value)
            return None
        if kind in ("int", "float"):
            return self._check_number(value)
        if kind in ("ints", "floats"):
            if isinstance(value, list):
                if self.arity is not None and len(value) != self.arity:
                    return f"must be a number or a list of {self.arity} numbers, got {_describe(value)}"
                for item in value:
                    problem = self._check_number(item, "int" if kind == "ints" else "float")
                    if problem:
                        return f"each item {problem}"
                return None
            return self._check_number(value, "int" if kind == "ints" else "float")
        if kind == "str_list":
            if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
                return f"must be a non-empty list of strings, got {_describe(value)}"
            return None
        if kind in ("int_list", "float_list"):
            if not isinstance(value, list):
                return f"{self.expects()}, got {_describe(value)}"
            if self.arity is not None and len(value) != self.arity:
                return f"{self.expects()}, got {_describe(value)}"
            if not value:
                return "must not be empty"
            for item in value:
                problem = self._check_number(item, "int" if kind == "int_list" else "float")
                if problem:
                    return f"each item {problem}"
            return None
        raise AssertionError(kind)  # pragma: no cover - guarded in __post_init__

    def _check_number(self, value: Any, kind: str | None = None) -> str | None:
        kind = kind or self.kind
        if kind == "int":
            if not _is_int(value):
                if isinstance(value, float) and value.is_integer():
                    return f"must be an integer, got {_describe(value)} (write {int(value)})"
                return f"{self._number_expects()}, got {_describe(value)}"
        elif not _is_number(value):
            return f"{self._number_expects()}, got {_describe(value)}"
        elif not _is_finite(value):
            return f"must be a finite number, got {_describe(value)}"
        low, high = self.minimum, self.maximum
        if low is not None and (value <= low if self.exclusive_minimum else value < low):
            return f"{self._number_expects()}, got {_describe(value)}"
        if high is not None and self.exclusive_maximum and value >= high:
            return f"{self._number_expects()}, got {_describe(value)}"
        if high is not None and value > high or kind == "int" and not INT64_MIN <= value <= INT64_MAX:
            # Past a limit the short form leaves out (a size cap, 64 bits): name it.
            return f"{self._number_expects(bounds=True)}, got {_describe(value)}"
        return None

    def _number_expects(self, bounds: bool = False) -> str:
        """What one number must be (an item, for the list kinds)."""
        if self.kind not in ("int_list", "float_list"):
            return self.expects(bounds)
        item = Param(self.name, self.kind[:-5], minimum=self.minimum, maximum=self.maximum,
                     exclusive_minimum=self.exclusive_minimum, exclusive_maximum=self.exclusive_maximum)
        return item.expects(bounds)

    def _choice_message(self, value: str) -> str:
        options = ", ".join(repr(c) for c in self.choices or ())
        close = _close_matches(value, [str(c) for c in self.choices or ()])
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"must be one of {options}, got {quote(value)}{hint}"

    def expects(self, bounds: bool = False) -> str:
        """Human words for what the parameter accepts; with ``bounds``, also
        the technical limits (the 64-bit range of integers, a size cap) that
        are left out of the short form."""
        if self.kind == "bool":
            return "must be true or false"
        if self.kind == "str":
            return "must be a string" if self.choices is None else "must be one of " + ", ".join(
                repr(c) for c in self.choices
            )
        if self.kind == "str_list":
            return "must be a non-empty list of strings"
        if self.kind in ("int_list", "float_list"):
            items = "integers" if self.kind == "int_list" else "numbers"
            count = f"{self.arity} " if self.arity else ""
            return f"must be a list of {count}{items}"
        base = "an integer" if self.kind in ("int", "ints") else "a number"
        low, high = self.minimum, self.maximum
        if bounds and self.kind in ("int", "ints") and (high is None or high >= 2**31 - 1):
            low = INT64_MIN if low is None else low
            high = INT64_MAX if high is None else min(high, INT64_MAX)
            if not self.exclusive_minimum:
                base, low = f"an integer from {_fmt(low)} to {_fmt(high)}", None
                high = None
        elif high is not None and high >= 2**31 - 1:
            high = None  # a technical cap, not something to tell a person
        if self.kind in ("int", "ints") and high is None and low is not None:
            if low == 1 or (low == 0 and self.exclusive_minimum):
                base, low = "a positive integer", None
            elif low == 0:
                base, low = "a non-negative integer", None
        if low is not None:
            base += f" {'>' if self.exclusive_minimum else '>='} {_fmt(low)}"
        if high is not None:
            base += f"{' and' if low is not None else ''} {'<' if self.exclusive_maximum else '<='} {_fmt(high)}"
        if self.kind in ("ints", "floats") and self.arity:
            base += f" (or a list of {self.arity})"
        if self.keywords:
            base += " or " + " or ".join(repr(k) for k in self.keywords)
        return "must be " + base

    # -- JSON -------------------------------------------------------------

    def to_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"name": self.name, "kind": self.kind}
        if self.default is not REQUIRED:
            config["default"] = self.default
        if self.help:
            config["help"] = self.help
        for key in ("minimum", "maximum", "suggested", "inferred", "arity"):
            value = getattr(self, key)
            if value is not None:
                config[key] = value
        if self.exclusive_minimum:
            config["exclusive_minimum"] = True
        if self.exclusive_maximum:
            config["exclusive_maximum"] = True
        if self.nullable:
            config["nullable"] = True
        if self.choices is not None:
            config["choices"] = list(self.choices)
        if self.keywords:
            config["keywords"] = list(self.keywords)
        return config

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "Param":
        values = dict(config)
        values.setdefault("default", REQUIRED)
        for key in ("choices", "keywords"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)


def _fmt(number: float) -> str:
    if isinstance(number, int):
        return str(number)
    return str(int(number)) if float(number).is_integer() and abs(number) < 1e15 else repr(number)


def _holds(value: Any, op: str, bound: float) -> bool:
    if not _is_number(value):
        return False
    return {">": value > bound, ">=": value >= bound, "==": value == bound,
            "<": value < bound, "<=": value <= bound}[op]


def _is_finite(value: float) -> bool:
    """``math.isfinite`` that also answers for integers too large for a float
    (``10**400`` in a JSON file), which are not finite floats either."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


@dataclass(frozen=True)
class Entry:
    """A catalogue entry: one layer, loss, optimizer or scheduler.

    ``name`` is the torch class name and the ``type`` used in project files.
    ``info`` holds family-specific facts (a layer's accepted input ranks, a
    scheduler's stepping rule...) as plain JSON values.
    """

    name: str
    category: str
    help: str
    params: tuple[Param, ...] = ()
    info: Mapping[str, Any] = field(default_factory=dict)

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(f"{self.name} has no parameter {name!r}")

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    def initial_params(self) -> dict[str, Any]:
        """Parameters for a freshly added component: required ones (and those
        with a suggestion, such as Upsample's scale_factor) filled in with their
        suggestions; inferred and defaulted ones left out."""
        return {
            p.name: p.suggested
            for p in self.params
            if p.inferred is None and (p.required or p.suggested is not None)
        }

    def resolve(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Defaults filled in for every parameter the user left out (inferred
        ones stay out: the engine fills them)."""
        out = {}
        for p in self.params:
            if p.name in params:
                out[p.name] = params[p.name]
            elif p.default is not REQUIRED:
                out[p.name] = p.default
        return out

    def check_params(self, params: Mapping[str, Any]) -> list[tuple[str, str]]:
        """Problems as ``(parameter name or "", message)`` pairs."""
        problems: list[tuple[str, str]] = []
        known = self.param_names
        for key, value in params.items():
            if key not in known:
                close = _close_matches(key, known)
                if close:
                    hint = f"; did you mean {close[0]!r}?"
                elif known:
                    hint = f"; it takes {', '.join(known)}"
                else:
                    hint = "; it takes no parameters"
                problems.append((key, f"{self.name} does not take a parameter {quote(key)}{hint}"))
                continue
            message = self.param(key).check(value)
            if message:
                problems.append((key, message))
        for p in self.params:
            if p.required and p.name not in params:
                problems.append((p.name, f"is required by {self.name} ({p.help or p.expects()})"))
        if not problems:
            problems += self._check_requires(self.resolve(params))
        return problems

    def _check_requires(self, params: Mapping[str, Any]) -> list[tuple[str, str]]:
        """``info["requires"]``: a switch that, when on, needs other
        parameters to hold (SGD's nesterov: momentum > 0 and dampening == 0),
        as torch checks when it builds the object."""
        problems = []
        for switch, conditions in self.info.get("requires", {}).items():
            if not params.get(switch):
                continue
            failed = [(name, op, bound) for name, op, bound in conditions
                      if not _holds(params.get(name), op, bound)]
            if failed:
                needs = " and ".join(f"{name} {op} {_fmt(bound)}" for name, op, bound in conditions)
                got = ", ".join(f"{name} is {_describe(params.get(name))}" for name, _, _ in failed)
                problems.append((switch, f"needs {needs} ({got})"))
        return problems

    def to_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "category": self.category,
            "help": self.help,
            "params": [p.to_config() for p in self.params],
            "info": dict(self.info),
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "Entry":
        return cls(
            name=config["name"],
            category=config["category"],
            help=config["help"],
            params=tuple(Param.from_config(p) for p in config.get("params", ())),
            info=dict(config.get("info", {})),
        )


class UnknownNameError(KeyError):
    """A ``type`` that is not in the catalogue. ``str()`` gives a full sentence."""

    def __init__(self, family: str, name: str, suggestion: str | None):
        self.family, self.name, self.suggestion = family, name, suggestion
        super().__init__(name)

    def __str__(self) -> str:
        hint = f"; did you mean {self.suggestion!r}?" if self.suggestion else ""
        return f"unknown {self.family} {quote(self.name)}{hint}"


class Catalogue:
    """An ordered, read-only collection of entries of one family."""

    def __init__(self, family: str, entries: Iterable[Entry]):
        self.family = family
        self._entries: dict[str, Entry] = {}
        for entry in entries:
            if entry.name in self._entries:
                raise ValueError(f"duplicate {family} {entry.name!r}")
            self._entries[entry.name] = entry

    def get(self, identifier: "str | Mapping[str, Any] | Entry") -> Entry:
        """The entry for a name, a ``{"type": ...}`` config, or an entry."""
        if isinstance(identifier, Entry):
            identifier = identifier.name
        if isinstance(identifier, Mapping):
            identifier = identifier.get("type")
        if not isinstance(identifier, str):
            raise UnknownNameError(self.family, repr(identifier), None)
        try:
            return self._entries[identifier]
        except KeyError:
            raise UnknownNameError(self.family, identifier, self.suggest(identifier)) from None

    def suggest(self, name: str) -> str | None:
        by_lower = {n.lower(): n for n in self._entries}
        if name.lower() in by_lower:
            return by_lower[name.lower()]
        close = _close_matches(name, list(self._entries))
        return close[0] if close else None

    def names(self) -> list[str]:
        return list(self._entries)

    def categories(self) -> dict[str, list[Entry]]:
        groups: dict[str, list[Entry]] = {}
        for entry in self._entries.values():
            groups.setdefault(entry.category, []).append(entry)
        return groups

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def to_config(self) -> dict[str, Any]:
        return {"family": self.family, "entries": [e.to_config() for e in self]}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "Catalogue":
        return cls(config["family"], (Entry.from_config(e) for e in config["entries"]))
