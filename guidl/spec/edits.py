"""Edits of a model's graph as plain functions of the project file.

The window's commands (connect two layers, delete a layer and heal its wires,
paste layers with their inner wires, make a block from a selection, expand it
again...) live here, without Qt, so they are tested headless and the command
line can use them; the window runs each inside one undoable step.

Every function edits the ``Model`` in place and either leaves every list of
layers it touched as valid as it was (``graph.resolve_inputs`` without
problems when it had none) or raises ``EditError`` with a sentence for the
user and leaves the model unchanged.

How the wiring is kept: an edit first states what each layer should take (as
layer objects, not ids or indexes, which shift), changes the list, then
spells each layer's ``inputs`` afresh only where it no longer takes what it
should: ``None`` when it takes the layer above it (a plain stack stays a
plain stack), else the ids of its sources, giving an id (``conv2d_1``) to a
source that has none.
"""

from __future__ import annotations

import copy
import functools
import json
from typing import Any, Callable, Iterable, Mapping, Sequence

from ..registry import LAYERS, UnknownNameError
from .fixes import Fix, apply_fix as _apply_fix
from .graph import (
    INPUT, MAX_REPEAT, block_cycle, block_name_problem, block_params, default_values, entry_for,
    fresh_id, id_problem, is_merge, reference, resolve_inputs, substitute,
)
from .project import MAX_LAYERS, MAX_LR_MULTIPLIER, Block, Layer, Model, Project, _Reader

#: What ``copy_layers`` writes and ``paste`` reads (JSON text).
CLIPBOARD_FORMAT = "guidl-layers"
CLIPBOARD_MIME = "application/x-guidl-layers"


class EditError(ValueError):
    """An edit that cannot be made; ``str()`` says why, for the user."""


class _Entry:
    """The input of the list (the model's or the block's) among layer objects."""

    def __repr__(self) -> str:
        return "ENTRY"


ENTRY = _Entry()
Source = Any  # a Layer, or ENTRY
Wanted = dict  # id(layer) -> list[Source]


# -- wiring by object ---------------------------------------------------------------------------

def _sources(layers: Sequence[Layer]) -> Wanted:
    """What each layer takes now, as objects."""
    wiring = resolve_inputs(layers)
    return {id(layer): [ENTRY if k < 0 else layers[k] for k in wiring.inputs[i]]
            for i, layer in enumerate(layers)}


def _has(sources: Iterable[Source], source: Source) -> bool:
    return any(s is source for s in sources)


def _unique(sources: Iterable[Source]) -> list[Source]:
    out: list[Source] = []
    for source in sources:
        if not _has(out, source):
            out.append(source)
    return out


def _index_of(layers: Sequence[Layer], layer: Layer) -> int:
    return next(i for i, other in enumerate(layers) if other is layer)


def _name(source: Source, layers: Sequence[Layer]) -> str:
    """The id a layer's ``inputs`` names ``source`` by, giving it one if it has none."""
    if source is ENTRY:
        return INPUT
    if source.id is None:
        source.id = fresh_id({layer.id for layer in layers if layer.id}, source.type)
    return source.id


def _write(layers: list[Layer], wanted: Wanted) -> None:
    """Spell each layer's ``inputs`` so that it takes ``wanted[id(layer)]``;
    layers that already do are left as they are."""
    wiring = resolve_inputs(layers)
    broken = {p.index for p in wiring.problems if p.key == "inputs"}
    for index, layer in enumerate(layers):
        want = wanted.get(id(layer))
        if want is None:
            continue
        have = [ENTRY if k < 0 else layers[k] for k in wiring.inputs[index]]
        if index not in broken and len(have) == len(want) and all(a is b for a, b in zip(have, want)):
            continue
        above = layers[index - 1] if index else ENTRY
        if len(want) == 1 and want[0] is above and not is_merge(layer.type):
            layer.inputs = None
        else:
            layer.inputs = [_name(source, layers) for source in want]


def _replace_source(wanted: Wanted, old: Source, new: Source, skip: Layer | None = None) -> None:
    """Every layer that takes ``old`` takes ``new`` instead."""
    for key, sources in wanted.items():
        if skip is not None and key == id(skip):
            continue
        if _has(sources, old):
            wanted[key] = _unique(new if s is old else s for s in sources)


def _consumers(layers: Sequence[Layer], wanted: Wanted, layer: Layer) -> list[Layer]:
    return [other for other in layers if _has(wanted.get(id(other), ()), layer)]


def _label(layers: Sequence[Layer], index: int) -> str:
    layer = layers[index]
    return f"{layer.id!r} ({layer.type})" if layer.id else f"layer {index} ({layer.type})"


def _source_label(layers: Sequence[Layer], source: Source) -> str:
    return "the input" if source is ENTRY else _label(layers, _index_of(layers, source))


# -- checks around every edit -------------------------------------------------------------------

def _lists(model: Model) -> dict[str | None, list[Layer]]:
    return {None: model.layers, **{name: block.layers for name, block in model.blocks.items()}}


def _problem_text(model: Model, where: str | None) -> str | None:
    layers = _lists(model).get(where)
    if layers is None:
        return None
    problems = resolve_inputs(layers).problems
    if not problems:
        return None
    first = problems[0]
    place = f"block {where}, " if where else ""
    return f"{place}{_label(layers, first.index)}: {first.message}"


def _edit(function: Callable) -> Callable:
    """Run ``function`` on a copy of the model; keep the result only when no
    list of layers that was valid became invalid and no block uses itself."""

    @functools.wraps(function)
    def wrapper(model: Model, *args, **kwargs):
        work = copy.deepcopy(model)
        result = function(work, *args, **kwargs)
        before = _lists(model)
        for where in _lists(work):
            was_valid = where not in before or _problem_text(model, where) is None
            problem = _problem_text(work, where) if was_valid else None
            if problem is not None:
                raise EditError(f"that would leave the model broken: {problem}")
        for name in work.blocks:
            cycle = block_cycle(work.blocks, name)
            if cycle:
                raise EditError("a block cannot contain itself: " + " -> ".join(cycle))
        model.__dict__.update(work.__dict__)
        return result

    return wrapper


def _layers(model: Model, block: str | None) -> list[Layer]:
    if block is None:
        return model.layers
    if block not in model.blocks:
        raise EditError(f"the project has no block named {block!r}")
    return model.blocks[block].layers


def _wire(layers: Sequence[Layer], source: int, target: int):
    """``(the wiring, layer target, what source stands for)`` of the wire from
    ``source`` (-1: the input) to ``target``; ``EditError`` when there is none."""
    wanted = _sources(layers)
    layer = layers[target]
    src = ENTRY if source < 0 else layers[source] if 0 <= source < len(layers) else None
    if src is None or not _has(wanted[id(layer)], src):
        raise EditError(f"{_label(layers, target)} does not take "
                        f"{'the input' if source < 0 else f'layer {source}'}")
    return wanted, layer, src


def _check_index(layers: Sequence[Layer], index: int) -> None:
    if not isinstance(index, int) or not 0 <= index < len(layers):
        raise EditError(f"there is no layer {index} (the list has {len(layers)})")


def _entry(model: Model, type_: str):
    try:
        return entry_for(model, type_)
    except UnknownNameError as error:
        raise EditError(str(error)) from None


def _second_source(layers: Sequence[Layer], wanted: Wanted, position: int, first: Source,
                   type_: str) -> Source:
    """What a merge inserted at ``position`` merges with ``first``: the latest
    earlier branch whose output nothing takes, else what ``first`` takes (a
    residual around it)."""
    used = {id(s) for sources in wanted.values() for s in sources}
    for index in range(position - 1, -1, -1):
        layer = layers[index]
        if layer is not first and id(layer) not in used:
            return layer
    if first is not ENTRY and wanted.get(id(first)):
        return wanted[id(first)][0]
    raise EditError(f"{type_} merges two or more outputs: add the layers to merge before it first")


# -- adding and removing layers -----------------------------------------------------------------

@_edit
def insert(model: Model, type_: str, position: int | None = None, params: Mapping | None = None,
           block: str | None = None) -> int:
    """Insert a new layer at ``position`` (default: the end), into the chain:
    it takes the layer above it, and the layer below, if it took the layer
    above, takes the new one. A merge also takes the latest branch whose
    output nothing uses (or what the layer above takes). Returns its index."""
    layers = _layers(model, block)
    entry = _entry(model, type_)
    position = len(layers) if position is None else max(0, min(position, len(layers)))
    new = Layer(entry.name, copy.deepcopy(dict(params)) if params is not None else entry.initial_params())
    wanted = _sources(layers)
    above = layers[position - 1] if position else ENTRY
    wanted[id(new)] = ([above, _second_source(layers, wanted, position, above, entry.name)]
                       if is_merge(entry.name) else [above])
    if position < len(layers) and layers[position].inputs is None:
        wanted[id(layers[position])] = [new]
    layers.insert(position, new)
    _write(layers, wanted)
    return position


def _remove(layers: list[Layer], wanted: Wanted, doomed: list[Layer]) -> list[int]:
    """Remove ``doomed`` and heal: whatever took a removed layer takes what it
    took (a merge all of it, any other layer the first); a merge left with a
    single input merges nothing and goes too. Returns the removed indexes."""
    queue = sorted(doomed, key=lambda layer: _index_of(layers, layer))
    removed: list[Layer] = []
    while queue:
        gone = queue.pop(0)
        removed.append(gone)
        feeds = wanted.get(id(gone), [])
        for layer in layers:
            if _has(removed, layer):
                continue
            sources = wanted.get(id(layer), [])
            if not _has(sources, gone):
                continue
            merge = is_merge(layer.type)
            healed: list[Source] = []
            for source in sources:
                healed += (feeds if merge else feeds[:1]) if source is gone else [source]
            wanted[id(layer)] = _unique(healed)
            if merge and len(wanted[id(layer)]) < 2 and not _has(queue, layer):
                queue.append(layer)
                queue.sort(key=lambda other: _index_of(layers, other))
    indexes = sorted(_index_of(layers, layer) for layer in removed)
    for index in reversed(indexes):
        del layers[index]
    return indexes


@_edit
def remove(model: Model, indexes: int | Iterable[int], block: str | None = None) -> list[int]:
    """Delete layers and heal their wires (see ``_remove``); returns the
    indexes removed (more than asked when a merge was left with one input)."""
    layers = _layers(model, block)
    indexes = sorted({indexes} if isinstance(indexes, int) else set(indexes))
    for index in indexes:
        _check_index(layers, index)
    if not indexes:
        return []
    if block is not None and len(indexes) >= len(layers):
        raise EditError(f"the block {block} needs at least one layer")
    wanted = _sources(layers)
    removed = _remove(layers, wanted, [layers[i] for i in indexes])
    if block is not None and not layers:
        raise EditError(f"the block {block} needs at least one layer")
    _write(layers, wanted)
    return removed


@_edit
def duplicate(model: Model, index: int, block: str | None = None) -> int:
    """A copy of layer ``index`` just below it, with a fresh id when it had
    one. A layer in the chain (no ``inputs``) gets its copy after it in the
    chain; a layer with ``inputs`` gets a sibling taking the same inputs.
    Returns the copy's index."""
    layers = _layers(model, block)
    _check_index(layers, index)
    original = layers[index]
    clone = copy.deepcopy(original)
    clone.position = None
    clone.id = fresh_id({layer.id for layer in layers if layer.id}, original.type) if original.id else None
    wanted = _sources(layers)
    if original.inputs is None:
        _replace_source(wanted, original, clone)
        wanted[id(clone)] = [original]
    else:
        wanted[id(clone)] = list(wanted[id(original)])
    layers.insert(index + 1, clone)
    _write(layers, wanted)
    return index + 1


@_edit
def move(model: Model, source: int, target: int, block: str | None = None) -> int:
    """Move layer ``source`` to index ``target``, as in a stack: layers without
    ``inputs`` take the layer above them wherever they are. Refused when a
    layer would come before a layer it takes."""
    layers = _layers(model, block)
    _check_index(layers, source)
    target = max(0, min(target, len(layers) - 1))
    if target == source:
        return target
    moved = layers.pop(source)
    layers.insert(target, moved)
    for problem in resolve_inputs(layers).problems:
        if "listed after" not in problem.message:
            continue
        name = layers[problem.index].inputs[problem.item] if problem.item is not None else "?"
        other = next((i for i, layer in enumerate(layers) if layer.id == name), None)
        if layers[problem.index] is moved and other is not None:
            raise EditError(f"{_label(layers, problem.index)} cannot move above {_label(layers, other)}, "
                            "the layer it takes")
        raise EditError(f"{_label(layers, _index_of(layers, moved))} cannot move below "
                        f"{_label(layers, problem.index)}, which takes its output")
    return target


# -- wires ----------------------------------------------------------------------------------------

@_edit
def connect(model: Model, source: int, target: int, block: str | None = None) -> None:
    """Layer ``target`` takes the output of ``source`` (-1: the input). A merge
    adds it to what it merges; any other layer takes it instead of what it took."""
    layers = _layers(model, block)
    _check_index(layers, target)
    if source != -1:
        _check_index(layers, source)
    if source >= target:
        raise EditError(f"{_label(layers, target)} can only take layers listed before it: move it "
                        f"below {_label(layers, source)} first")
    wanted = _sources(layers)
    layer = layers[target]
    src = ENTRY if source < 0 else layers[source]
    if _has(wanted[id(layer)], src):
        return
    wanted[id(layer)] = (wanted[id(layer)] + [src]) if is_merge(layer.type) else [src]
    _write(layers, wanted)


@_edit
def disconnect(model: Model, source: int, target: int, block: str | None = None) -> list[int]:
    """Delete the wire from ``source`` (-1: the input) to ``target``. A merge
    keeps at least two inputs and a layer its one input: deleting the wire
    they cannot lose is refused with what to do (a wire deleted never deletes
    a layer behind the user's back). Returns the indexes of layers removed
    with the wire (none)."""
    layers = _layers(model, block)
    _check_index(layers, target)
    wanted, layer, src = _wire(layers, source, target)
    rest = [s for s in wanted[id(layer)] if s is not src]
    if not is_merge(layer.type):
        raise EditError(f"{_label(layers, target)} takes one input and cannot lose it: drag another "
                        "wire onto it instead, or delete the layer")
    if len(rest) < 2:
        raise EditError(f"{_label(layers, target)} merges two or more inputs and would keep one: drag "
                        "another wire onto it first, or delete the layer")
    wanted[id(layer)] = rest
    _write(layers, wanted)
    return []


@_edit
def set_inputs(model: Model, index: int, ids: Sequence[str] | None, block: str | None = None) -> None:
    """Set layer ``index``'s ``inputs`` to ``ids`` (None: the layer above it)."""
    layers = _layers(model, block)
    _check_index(layers, index)
    if ids is not None and (not isinstance(ids, (list, tuple)) or not all(isinstance(i, str) for i in ids)):
        raise EditError("inputs must be a list of layer ids")
    layers[index].inputs = None if ids is None else list(ids)
    problem = resolve_inputs(layers).problem_of(index)
    if problem is not None:
        raise EditError(problem.message + (f"; {problem.fix}" if problem.fix else ""))


@_edit
def rename_id(model: Model, index: int, new_id: str | None, block: str | None = None) -> None:
    """Give layer ``index`` the id ``new_id`` (None or "": none), renaming every
    reference to it."""
    layers = _layers(model, block)
    _check_index(layers, index)
    layer = layers[index]
    old = layer.id
    users = [i for i, other in enumerate(layers) if old is not None and other.inputs and old in other.inputs]
    if not new_id:
        if users:
            raise EditError(f"{_label(layers, users[0])} names it in its inputs: it needs an id")
        layer.id = None
        return
    problem = id_problem(new_id)
    if problem:
        raise EditError(f"the id {problem}")
    other = next((i for i, o in enumerate(layers) if o is not layer and o.id == new_id), None)
    if other is not None:
        raise EditError(f"{new_id!r} is already the id of layer {other}; ids must be unique")
    for i in users:
        layers[i].inputs = [new_id if name == old else name for name in layers[i].inputs]
    layer.id = new_id


@_edit
def insert_on_wire(model: Model, type_: str, source: int, target: int, params: Mapping | None = None,
                   block: str | None = None) -> int:
    """Insert a new layer on the wire from ``source`` (-1: the input) to
    ``target``, just above ``target``. Returns its index."""
    layers = _layers(model, block)
    _check_index(layers, target)
    entry = _entry(model, type_)
    if is_merge(entry.name):
        raise EditError(f"{entry.name} merges two or more outputs: drop it between two layers of "
                        "the list, then connect what it merges")
    wanted, layer, src = _wire(layers, source, target)
    new = Layer(entry.name, copy.deepcopy(dict(params)) if params is not None else entry.initial_params())
    wanted[id(new)] = [src]
    wanted[id(layer)] = [new if s is src else s for s in wanted[id(layer)]]
    layers.insert(target, new)
    _write(layers, wanted)
    return target


def _merge_after(layers: list[Layer], wanted: Wanted, last: Layer, source: Source) -> Layer:
    """An Add after ``last`` merging its output with ``source``; what took
    ``last`` takes the Add."""
    add = Layer("Add")
    _replace_source(wanted, last, add)
    wanted[id(add)] = [last, source]
    layers.insert(_index_of(layers, last) + 1, add)
    return add


@_edit
def add_skip_connection(model: Model, first: int, last: int, block: str | None = None) -> int:
    """An Add merging the output of layer ``last`` with the input of layer
    ``first`` (a residual around ``first``..``last``); what took ``last``
    takes the Add. Returns the Add's index."""
    layers = _layers(model, block)
    _check_index(layers, first)
    _check_index(layers, last)
    first, last = min(first, last), max(first, last)
    wanted = _sources(layers)
    feeds = wanted[id(layers[first])]
    if len(feeds) != 1:
        raise EditError(f"{_label(layers, first)} takes {len(feeds)} inputs: start the skip "
                        "connection at a layer that takes one")
    add = _merge_after(layers, wanted, layers[last], feeds[0])
    _write(layers, wanted)
    return _index_of(layers, add)


# -- blocks ---------------------------------------------------------------------------------------

def fresh_block_name(model: Model, base: str = "Block") -> str:
    """A block name not used yet: ``Block``, ``Block2``..."""
    taken = set(model.blocks) | set(LAYERS.names())
    name, number = base, 1
    while name in taken:
        number += 1
        name = f"{base}{number}"
    return name


def _region(layers: Sequence[Layer], wanted: Wanted, indexes: Iterable[int]):
    """The selection as a sub-graph with one input and one output:
    ``(its input source, its output layer, its layers in order)``."""
    indexes = sorted(set(indexes))
    if not indexes:
        raise EditError("select the layers first")
    for index in indexes:
        _check_index(layers, index)
    members = [layers[i] for i in indexes]
    inside = {id(layer) for layer in members}
    outside_sources = _unique(s for m in members for s in wanted[id(m)]
                              if s is ENTRY or id(s) not in inside)
    if len(outside_sources) != 1:
        names = ", ".join(_source_label(layers, s) for s in outside_sources)
        raise EditError(f"the selection takes {len(outside_sources)} outputs from outside it ({names}); "
                        "a block takes one: select the layers between one input and one output")
    exits = [m for m in members
             if m is layers[-1] or any(_has(wanted[id(o)], m) for o in layers if id(o) not in inside)]
    if not exits:
        exits = [m for m in members if not any(_has(wanted[id(o)], m) for o in members)]
    if len(exits) != 1:
        names = ", ".join(_label(layers, _index_of(layers, m)) for m in exits)
        raise EditError(f"the selection gives {len(exits)} outputs to layers outside it ({names}); "
                        "a block gives one")
    exit_ = exits[0]
    reached, todo = {id(exit_)}, [exit_]
    while todo:
        for source in wanted[id(todo.pop())]:
            if source is not ENTRY and id(source) in inside and id(source) not in reached:
                reached.add(id(source))
                todo.append(source)
    stray = [m for m in members if id(m) not in reached]
    if stray:
        raise EditError(f"{_label(layers, _index_of(layers, stray[0]))} does not lead to the "
                        f"selection's output, {_label(layers, _index_of(layers, exit_))}")
    return outside_sources[0], exit_, members


def _check_block_name(model: Model, name: str) -> None:
    problem = block_name_problem(name)
    if problem:
        raise EditError(problem)
    if name in model.blocks:
        raise EditError(f"the project has a block named {name!r} already")


def _make_block(model: Model, wanted: Wanted, entry_source: Source, exit_: Layer, members: list[Layer],
                name: str, help_: str = "") -> int:
    """Replace ``members`` (a region, see ``_region``) by one use of a new block
    ``name`` made of them; returns the use's index."""
    layers = model.layers
    copies = {id(m): copy.deepcopy(m) for m in members}
    inner = [copies[id(m)] for m in members]
    inner_wanted = {id(copies[id(m)]): [copies[id(s)] if s is not ENTRY and id(s) in copies else ENTRY
                                        for s in wanted[id(m)]] for m in members}
    for layer in inner:
        layer.position = None
    _write(inner, inner_wanted)
    use = Layer(name, {}, exit_.id)
    wanted[id(use)] = [entry_source]
    _replace_source(wanted, exit_, use)
    position = _index_of(layers, exit_) - len(members) + 1
    for member in members:
        del layers[_index_of(layers, member)]
    layers.insert(position, use)
    model.blocks[name] = Block([], inner, help_)
    _write(layers, wanted)
    return position


@_edit
def make_block(model: Model, indexes: Iterable[int], name: str | None = None) -> int:
    """Replace the selected layers of the model (one input, one output) by one
    use of a new block made of them. Returns the use's index."""
    name = name or fresh_block_name(model)
    _check_block_name(model, name)
    wanted = _sources(model.layers)
    return _make_block(model, wanted, *_region(model.layers, wanted, indexes), name)


@_edit
def wrap_in_residual(model: Model, indexes: Iterable[int], name: str | None = None) -> int:
    """Make a residual block of the selection: its layers, then an Add of
    their output and the selection's input; the selection becomes one use of
    the block. Returns the use's index."""
    name = name or fresh_block_name(model, "Residual")
    _check_block_name(model, name)
    layers = model.layers
    wanted = _sources(layers)
    entry_source, exit_, members = _region(layers, wanted, indexes)
    add = _merge_after(layers, wanted, exit_, entry_source)
    return _make_block(model, wanted, entry_source, add, members + [add], name,
                       f"{', '.join(m.type for m in members)} with a shortcut around them.")


@_edit
def expand_block(model: Model, index: int) -> list[int]:
    """Put the layers of the block used at ``index`` in its place: its
    parameters' values written in, one copy per repetition, ids made unique
    (the last layer takes the use's id). Returns the new layers' indexes."""
    layers = model.layers
    _check_index(layers, index)
    use = layers[index]
    if use.type not in model.blocks or use.type in LAYERS:
        raise EditError(f"{_label(layers, index)} is a layer, not a use of a block")
    block = model.blocks[use.type]
    count = len(layers) - 1 + use.repeat * len(block.layers)
    if count > MAX_LAYERS:
        raise EditError(f"expanding {_label(layers, index)} (×{use.repeat:,}) would give the list "
                        f"{count:,} layers; at most {MAX_LAYERS:,} are supported: lower its repeat first")
    values = {**default_values(block_params(block)), **use.params}
    wanted = _sources(layers)
    taken = {layer.id for layer in layers if layer.id}
    inner = resolve_inputs(block.layers)
    current = wanted[id(use)][0]
    expanded: list[Layer] = []
    for _ in range(use.repeat):
        renamed: dict[str, str] = {}
        copies = []
        for layer in block.layers:
            clone = copy.deepcopy(layer)
            clone.params = substitute(clone.params, values)
            clone.position = None
            if clone.id is not None:
                if clone.id in taken:
                    renamed[clone.id] = fresh_id(taken, clone.type)
                    clone.id = renamed[clone.id]
                taken.add(clone.id)
            copies.append(clone)
        for k, clone in enumerate(copies):
            if clone.inputs is not None:
                clone.inputs = [renamed.get(name, name) for name in clone.inputs]
            wanted[id(clone)] = [current if j < 0 else copies[j] for j in inner.inputs[k]]
        current = copies[-1]
        expanded += copies
    last = expanded[-1]
    if use.id is not None and last.id != use.id:
        if last.id is not None:
            taken.discard(last.id)
        last.id = use.id  # what named the use by its id takes the block's output
    _replace_source(wanted, use, last)
    del layers[index]
    layers[index:index] = expanded
    _write(layers, wanted)
    return list(range(index, index + len(expanded)))


def _uses(model: Model, name: str) -> list[Layer]:
    return [layer for layers in _lists(model).values() for layer in layers if layer.type == name]


@_edit
def set_repeat(model: Model, index: int, repeat: int, block: str | None = None) -> None:
    layers = _layers(model, block)
    _check_index(layers, index)
    layer = layers[index]
    if layer.type not in model.blocks:
        raise EditError(f"only a block can repeat; {layer.type} is a layer (duplicate it instead)")
    if isinstance(repeat, bool) or not isinstance(repeat, int) or not 1 <= repeat <= MAX_REPEAT:
        raise EditError(f"repeat must be an integer from 1 to {MAX_REPEAT}, got {repeat!r}")
    layer.repeat = repeat


@_edit
def rename_block(model: Model, old: str, new: str) -> None:
    """Rename a block and every use of it."""
    if old not in model.blocks:
        raise EditError(f"the project has no block named {old!r}")
    if new == old:
        return
    problem = block_name_problem(new)
    if problem:
        raise EditError(problem)
    if new in model.blocks:
        raise EditError(f"the project has a block named {new!r} already")
    for layer in _uses(model, old):
        layer.type = new
    model.blocks = {new if name == old else name: block for name, block in model.blocks.items()}


@_edit
def remove_block(model: Model, name: str) -> None:
    """Delete a block's definition; refused while a layer uses it."""
    if name not in model.blocks:
        raise EditError(f"the project has no block named {name!r}")
    if _uses(model, name):
        raise EditError(f"the block {name} is used by {len(_uses(model, name))} layer(s): "
                        "expand or delete them first")
    del model.blocks[name]


def _block(model: Model, name: str) -> Block:
    if name not in model.blocks:
        raise EditError(f"the project has no block named {name!r}")
    return model.blocks[name]


def _block_param_names(block: Block) -> list[str]:
    return [config.get("name") for config in block.params]


@_edit
def add_block_param(model: Model, block: str, config: Mapping[str, Any]) -> None:
    """Declare a parameter of a block (a ``Param`` config with a default)."""
    definition = _block(model, block)
    reader = _Reader()
    checked = reader.block_param(dict(config), "param")
    if checked is None:
        raise EditError(str(reader.problems[0]) if reader.problems else "not a valid parameter")
    if checked["name"] in _block_param_names(definition):
        raise EditError(f"the block {block} has a parameter {checked['name']!r} already")
    definition.params.append(checked)


@_edit
def remove_block_param(model: Model, block: str, name: str) -> None:
    """Remove a block's parameter: its references in the block's layers take
    its default value, and the uses forget the value they gave it."""
    definition = _block(model, block)
    if name not in _block_param_names(definition):
        raise EditError(f"the block {block} has no parameter {name!r}")
    default = default_values(block_params(definition)).get(name)
    definition.params = [c for c in definition.params if c.get("name") != name]
    for layer in definition.layers:
        layer.params = {key: copy.deepcopy(default) if reference(value) == name else value
                        for key, value in layer.params.items()}
    for use in _uses(model, block):
        use.params.pop(name, None)


def _checked_param(definition: Block, block: str, name: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` as the new declaration of the parameter ``name`` of ``definition``,
    checked as the file's reader checks it; ``EditError`` says why it is refused."""
    if name not in _block_param_names(definition):
        raise EditError(f"the block {block} has no parameter {name!r}")
    if config.get("name") != name:
        raise EditError("rename a parameter with its own edit (its references follow)")
    reader = _Reader()
    checked = reader.block_param(dict(config), "param")
    if checked is None:
        problem = reader.problems[0] if reader.problems else None
        if problem is None:
            raise EditError("not a valid parameter")
        field = problem.path.rpartition(".")[2]
        raise EditError(f"the {field} {problem.message}" if field and field != "param" else problem.message)
    return checked


def block_param_problem(model: Model, block: str, name: str, config: Mapping[str, Any]) -> str | None:
    """Why ``set_block_param`` would refuse ``config``, or None (nothing changes)."""
    try:
        _checked_param(_block(model, block), block, name, config)
    except EditError as error:
        return str(error)
    return None


@_edit
def set_block_param(model: Model, block: str, name: str, config: Mapping[str, Any]) -> None:
    """Declare the block's parameter ``name`` anew (kind, default, bounds,
    choices, help; the name stays: see ``rename_block_param``). Refused when
    the default does not fit its own kind, bounds or choices. Uses and
    references keep their values; the analysis says where one no longer fits."""
    definition = _block(model, block)
    checked = _checked_param(definition, block, name, config)
    definition.params = [checked if c.get("name") == name else c for c in definition.params]


@_edit
def set_block_help(model: Model, block: str, text: str) -> None:
    """The block's help text (the palette's tooltip, the Python export's docstring)."""
    if not isinstance(text, str):
        raise EditError(f"a block's help is text, got {type(text).__name__}")
    _block(model, block).help = text.strip()


@_edit
def rename_block_param(model: Model, block: str, old: str, new: str) -> None:
    """Rename a block's parameter, in its references and in every use."""
    definition = _block(model, block)
    names = _block_param_names(definition)
    if old not in names:
        raise EditError(f"the block {block} has no parameter {old!r}")
    if new == old:
        return
    if not isinstance(new, str) or not new.isidentifier() or not new.isascii() or not new[0].isalpha():
        raise EditError(f"a parameter's name starts with a letter and holds letters, digits and "
                        f"underscores, got {new!r}")
    if new in names:
        raise EditError(f"the block {block} has a parameter {new!r} already")
    for config in definition.params:
        if config.get("name") == old:
            config["name"] = new
    for layer in definition.layers:
        layer.params = {key: f"${new}" if reference(value) == old else value
                        for key, value in layer.params.items()}
    for use in _uses(model, block):
        if old in use.params:
            use.params = {new if key == old else key: value for key, value in use.params.items()}


@_edit
def set_param(model: Model, index: int, name: str, value: Any, block: str | None = None,
              remove_: bool = False) -> None:
    """Set (or remove) one parameter of a layer; inside a block, ``"$name"``
    refers to a parameter of the block."""
    layers = _layers(model, block)
    _check_index(layers, index)
    layer = layers[index]
    target = reference(value)
    if target is not None and block is not None:
        if target not in _block_param_names(model.blocks[block]):
            raise EditError(f"the block {block} has no parameter {target!r}")
    if remove_:
        layer.params.pop(name, None)
    else:
        layer.params[name] = copy.deepcopy(value)


# -- training options of a layer (frozen, learning-rate multiplier) ----------------------------------

#: The keys beside ``params`` that say how a layer trains, with their defaults.
LAYER_OPTIONS = {"frozen": False, "lr_multiplier": 1.0}


def layer_option_problem(key: str, value: Any) -> str | None:
    """Why ``value`` cannot be layer option ``key``, or None."""
    if key not in LAYER_OPTIONS:
        return f"a layer has no option {key!r} (it has {', '.join(LAYER_OPTIONS)})"
    if key == "frozen":
        return None if isinstance(value, bool) else "frozen is true or false"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        return "the learning-rate multiplier is a number"
    if not 0 < value <= MAX_LR_MULTIPLIER:
        return f"the learning-rate multiplier must be above 0 and at most {MAX_LR_MULTIPLIER:g}"
    return None


@_edit
def set_layer_option(model: Model, index: int | Iterable[int], key: str, value: Any,
                     block: str | None = None) -> None:
    """Freeze a layer (or a block use, or a block's layer; or several at once)
    or give it a learning-rate multiplier; the default value removes the option."""
    layers = _layers(model, block)
    indexes = [index] if isinstance(index, int) else list(index)
    for one in indexes:
        _check_index(layers, one)
    problem = layer_option_problem(key, value)
    if problem:
        raise EditError(problem)
    for one in indexes:
        setattr(layers[one], key, float(value) if key == "lr_multiplier" else value)


# -- positions (layout only) ------------------------------------------------------------------------

def set_positions(model: Model, positions: Mapping[int, tuple[float, float]],
                  block: str | None = None) -> None:
    layers = _layers(model, block)
    for index, (x, y) in positions.items():
        _check_index(layers, index)
        layers[index].position = [float(x), float(y)]


def clear_positions(model: Model, block: str | None = None) -> None:
    for layer in _layers(model, block):
        layer.position = None


# -- fixes ---------------------------------------------------------------------------------------

def apply_fix(project: Project, fix: Fix) -> None:
    """Apply a proposed fix; ``EditError`` when it no longer fits the project."""
    work = copy.deepcopy(project)
    try:
        _apply_fix(work, fix)
    except (KeyError, IndexError, TypeError):
        raise EditError("the fix no longer fits the model (it changed meanwhile)") from None
    where = getattr(fix, "block", None)
    if _problem_text(project.model, where) is None:
        problem = _problem_text(work.model, where)
        if problem is not None:
            raise EditError(f"the fix would leave the model broken: {problem}")
    project.__dict__.update(work.__dict__)


# -- copy and paste ------------------------------------------------------------------------------

def _blocks_used(model: Model, layers: Iterable[Layer]) -> dict[str, Block]:
    found: dict[str, Block] = {}
    todo = [layer.type for layer in layers]
    while todo:
        name = todo.pop()
        if name in model.blocks and name not in LAYERS and name not in found:
            found[name] = model.blocks[name]
            todo += [layer.type for layer in model.blocks[name].layers]
    return found


def copy_layers(model: Model, indexes: Iterable[int], block: str | None = None) -> str:
    """The selected layers as JSON text, with the wires between them; a wire
    from outside the selection becomes ``"input"`` (the paste's input), and
    the blocks they use come along."""
    layers = _layers(model, block)
    indexes = sorted(set(indexes))
    if not indexes:
        raise EditError("select the layers to copy first")
    for index in indexes:
        _check_index(layers, index)
    wanted = _sources(layers)
    members = [layers[i] for i in indexes]
    copies = {id(m): copy.deepcopy(m) for m in members}
    clip = [copies[id(m)] for m in members]
    clip_wanted = {id(copies[id(m)]): _unique(copies[id(s)] if s is not ENTRY and id(s) in copies else ENTRY
                                              for s in wanted[id(m)]) for m in members}
    for layer in clip:
        layer.position = None
    _write(clip, clip_wanted)
    return json.dumps({
        "format": CLIPBOARD_FORMAT, "version": 1,
        "layers": [layer.to_dict() for layer in clip],
        "blocks": {name: b.to_dict() for name, b in _blocks_used(model, clip).items()},
    }, indent=1)


def _read_clipboard(model: Model, text: str) -> tuple[list[Layer], dict[str, Block]]:
    try:
        doc = json.loads(text)
    except (TypeError, ValueError):
        doc = None
    if not isinstance(doc, dict) or doc.get("format") != CLIPBOARD_FORMAT:
        raise EditError("the clipboard holds no layers copied from guidl")
    reader = _Reader()
    raw_blocks = doc.get("blocks") or {}
    blocks = reader.blocks(raw_blocks, "blocks") if raw_blocks else {}
    known = {**model.blocks, **blocks}
    raw_layers = doc.get("layers")
    if not isinstance(raw_layers, list) or not raw_layers:
        raise EditError("the clipboard's layers cannot be pasted: it holds no list of layers")
    layers = [reader.layer(raw, f"layers[{i}]", known) for i, raw in enumerate(raw_layers[:10_000])]
    if reader.problems or any(layer is None for layer in layers):
        first = reader.problems[0] if reader.problems else "a layer cannot be read"
        raise EditError(f"the clipboard's layers cannot be pasted: {first}")
    return layers, blocks


@_edit
def paste(model: Model, text: str, position: int | None = None, block: str | None = None) -> list[int]:
    """Insert the layers of ``copy_layers``'s text at ``position`` (default:
    the end), into the chain: what they took from outside the copied layers
    is the layer above ``position`` (or the input), and the layer below, if it
    took the layer above, takes the last pasted layer. Ids that are taken get
    fresh ones (and the pasted wires follow); a block of the same name and
    another definition comes in renamed. Returns the pasted layers' indexes."""
    layers = _layers(model, block)
    pasted, blocks = _read_clipboard(model, text)
    wiring = resolve_inputs(pasted)
    for problem in wiring.problems:
        layer = pasted[problem.index]
        if not (is_merge(layer.type) and problem.key == "inputs" and problem.item is None
                and len(wiring.inputs[problem.index]) < 2):
            raise EditError(f"the clipboard's layers cannot be pasted: layer {problem.index} "
                            f"({layer.type}): {problem.message}")
    # Blocks: the same definition is the same block; another gets a new name.
    clashing = [name for name, definition in blocks.items()
                if name in model.blocks and model.blocks[name].to_dict() != definition.to_dict()]
    renamed_blocks: dict[str, str] = {}
    for name in clashing:
        renamed_blocks[name] = fresh_block_name(model, name)
        model.blocks[renamed_blocks[name]] = Block()  # holds the name until the definition comes
    for layer in [*pasted, *(layer for d in blocks.values() for layer in d.layers)]:
        layer.type = renamed_blocks.get(layer.type, layer.type)
    for name, definition in blocks.items():
        if name in renamed_blocks or name not in model.blocks:
            model.blocks[renamed_blocks.get(name, name)] = definition
    # Ids: fresh where taken; the pasted wires follow.
    taken = {layer.id for layer in layers if layer.id}
    renamed: dict[str, str] = {}
    for layer in pasted:
        if layer.id is not None:
            if layer.id in taken:
                renamed[layer.id] = fresh_id(taken | set(renamed.values()), layer.type)
                layer.id = renamed[layer.id]
            taken.add(layer.id)
        layer.position = None
    for layer in pasted:
        if layer.inputs is not None:
            layer.inputs = [renamed.get(name, name) for name in layer.inputs]
    position = len(layers) if position is None else max(0, min(position, len(layers)))
    wanted = _sources(layers)
    above = layers[position - 1] if position else ENTRY
    for k, layer in enumerate(pasted):
        sources = _unique(above if j < 0 else pasted[j] for j in wiring.inputs[k])
        if is_merge(layer.type) and len(sources) < 2:
            sources.append(_second_source(layers, wanted, position, sources[0] if sources else above,
                                          layer.type))
        wanted[id(layer)] = _unique(sources)
    if position < len(layers) and layers[position].inputs is None:
        wanted[id(layers[position])] = [pasted[-1]]
    layers[position:position] = pasted
    _write(layers, wanted)
    return list(range(position, position + len(pasted)))
