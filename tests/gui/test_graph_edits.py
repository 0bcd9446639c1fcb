"""Graph edits in the window: each is one undo step on the document, the
layer table shows the wiring, the form edits ids, inputs and block uses, and
copy/paste goes through the real clipboard."""

import copy

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QSpinBox

from guidl.spec import Block, Data, Layer, Model, Project
from guidl.spec.edits import CLIPBOARD_MIME
from guidl.spec.fixes import InsertLayer
from guidl.qt.document import LayerEdits, ProjectDocument
from guidl.qt.model_stack import COLUMNS, INPUTS_COLUMN
from qt_helpers import type_text


def conv(channels=8, **extra):
    return {"out_channels": channels, "kernel_size": 3, "padding": 1, **extra}


def graph_project() -> Project:
    unit = Block([{"name": "channels", "kind": "int", "default": 8, "minimum": 1}],
                 [Layer("Conv2d", {"out_channels": "$channels", "kernel_size": 3, "padding": 1}, "conv"),
                  Layer("BatchNorm2d", {}, "bn"),
                  Layer("Add", {}, "add", ["bn", "input"])])
    return Project("graph", Model([
        Layer("Conv2d", conv(), "stem"),
        Layer("Conv2d", conv(), "conv1"),
        Layer("BatchNorm2d", {}, "bn1"),
        Layer("Add", {}, "add", ["bn1", "stem"]),
        Layer("Unit", {}, "stage", repeat=2),
        Layer("ReLU"),
        Layer("Flatten"),
        Layer("Linear", {"out_features": 10}, "head"),
    ], [1, 28, 28], blocks={"Unit": unit}), Data("mnist_sample"))


@pytest.fixture
def document(qtbot):
    document = ProjectDocument()
    document.set_project(graph_project(), None)
    return document


OPERATIONS = {
    "insert": lambda e: e.insert("Dropout", 3),
    "insert_block": lambda e: e.insert("Unit", 6),
    "remove": lambda e: e.remove(2),
    "remove_layers": lambda e: e.remove_layers([1, 2]),
    "duplicate": lambda e: e.duplicate(1),
    "move": lambda e: e.move(5, 6),
    "set_param": lambda e: e.set_param(1, "out_channels", 16),
    "connect": lambda e: e.connect(1, 3),
    "set_inputs": lambda e: e.set_inputs(5, ["add"]),
    "insert_on_wire": lambda e: e.insert_on_wire("Conv2d", 0, 3),
    "add_skip_connection": lambda e: e.add_skip_connection(5, 6),
    "wrap_in_residual": lambda e: e.wrap_in_residual([1, 2]),
    "make_block": lambda e: e.make_block([1, 2, 3], "Body"),
    "expand_block": lambda e: e.expand_block(4),
    "paste": lambda e: e.paste(e.copy([1, 2, 3]), 4),
    "set_position": lambda e: e.set_position(0, 10, 20),
    "set_positions": lambda e: e.set_positions({0: (1, 2), 1: (3, 4)}),
    "apply_fix": lambda e: e.apply_fix(InsertLayer(3, "Conv2d", {"out_channels": 8, "kernel_size": 1},
                                                   input_item=1)),
    "rename_id": lambda e: e.rename_id(0, "trunk"),
    "set_repeat": lambda e: e.set_repeat(4, 3),
    "block_insert": lambda e: e.insert("ReLU", 2, block="Unit"),
    "block_remove": lambda e: e.remove(1, block="Unit"),
    "block_set_param": lambda e: e.set_param(0, "kernel_size", 5, block="Unit"),
    "add_block_param": lambda e: e.add_block_param("Unit", {"name": "k", "kind": "int", "default": 3}),
    "rename_block_param": lambda e: e.rename_block_param("Unit", "channels", "width"),
    "remove_block_param": lambda e: e.remove_block_param("Unit", "channels"),
    "rename_block": lambda e: e.rename_block("Unit", "Residual"),
}


@pytest.mark.parametrize("name", OPERATIONS)
def test_each_edit_is_one_undo_step(document, name):
    edits = LayerEdits(document)
    stack = document.undo_stack
    before = copy.deepcopy(document.project)
    OPERATIONS[name](edits)
    after = copy.deepcopy(document.project)
    assert after != before and stack.count() == 1, name
    assert Project.problems(after) == []
    stack.undo()
    assert document.project == before
    stack.redo()
    assert document.project == after


def test_a_refused_edit_changes_nothing_and_says_why(document, qtbot):
    edits = LayerEdits(document)
    with qtbot.waitSignal(document.edit_refused) as said:
        assert edits.move(3, 1) is None  # the Add above bn1, which it takes
    assert "cannot move above 'bn1'" in said.args[0]
    assert document.undo_stack.count() == 0 and document.project == graph_project()


def test_a_layout_edit_does_not_analyze_the_model_again(document, qtbot, monkeypatch):
    calls = []
    monkeypatch.setattr(document, "analyze", lambda: calls.append(1))
    edits = LayerEdits(document)
    with qtbot.waitSignal(document.changed):
        edits.set_positions({0: (5, 6), 3: (7, 8)})
    assert document.project.model.layers[3].position == [7.0, 8.0]
    with qtbot.waitSignal(document.changed):
        document.undo_stack.undo()
    with qtbot.waitSignal(document.changed):
        document.undo_stack.redo()
    edits.clear_positions()
    assert calls == []
    edits.set_param(1, "out_channels", 4)  # a model edit does
    assert calls == [1]


# -- the window ----------------------------------------------------------------------------------

def _cell(window, layer, column):
    return window.stack.table.data(window.stack.table.index(layer + 1, column))


def test_the_table_shows_what_each_layer_takes(window):
    stack = window.stack
    assert stack.isColumnHidden(INPUTS_COLUMN)  # the example is a plain stack: as it always looked
    assert _cell(window, 0, 1) == "Conv2d(32, 3)"
    window.document.set_project(graph_project(), None)
    assert COLUMNS[INPUTS_COLUMN] == "Inputs" and not stack.isColumnHidden(INPUTS_COLUMN)
    assert [_cell(window, i, INPUTS_COLUMN) for i in range(8)] == ["", "", "", "bn1, stem", "", "", "", ""]
    assert _cell(window, 0, 1) == "stem: Conv2d(8, 3)"
    assert _cell(window, 4, 1) == "stage: Unit(8) ×2"
    assert _cell(window, 4, 2) == "(8, 28, 28)"
    window.edits.connect(-1, 5)  # the ReLU takes the input (an unnamed source shows as #index)
    window.edits.set_inputs(6, ["stem"])
    assert _cell(window, 5, INPUTS_COLUMN) == "input" and _cell(window, 6, INPUTS_COLUMN) == "stem"


def test_a_block_use_is_edited_in_the_form(window, qtbot):
    window.document.set_project(graph_project(), None)
    window.stack.select_layer(4)
    assert window.properties.title() == "Layer 4: Unit (block)"
    editor = window.layer_form.editor("channels")
    assert isinstance(editor, QSpinBox)
    editor.setValue(16)
    assert window.document.project.model.layers[4].params == {"channels": 16}
    window.model_tab.repeat.setValue(3)
    assert window.document.project.model.layers[4].repeat == 3
    assert _cell(window, 4, 1) == "stage: Unit(16) ×3"
    window.undo_action.trigger()
    assert window.document.project.model.layers[4].repeat == 2
    window.stack.select_layer(1)  # a plain layer: no repeat
    assert window.model_tab.repeat.isHidden()


def test_rename_id_in_the_form_updates_references(window, qtbot):
    window.document.set_project(graph_project(), None)
    window.stack.select_layer(0)
    field = window.model_tab.id_field
    type_text(qtbot, field.edit, "bn1")  # taken: refused, kept in the field
    assert "already the id of layer 2" in field.note.text()
    assert window.document.field_problems() and window.document.project.model.layers[0].id == "stem"
    type_text(qtbot, field.edit, "trunk")
    model = window.document.project.model
    assert model.layers[0].id == "trunk" and model.layers[3].inputs == ["bn1", "trunk"]
    assert not window.document.field_problems()
    assert _cell(window, 3, INPUTS_COLUMN) == "bn1, trunk"


def test_inputs_are_typed_and_checked(window, qtbot):
    window.document.set_project(graph_project(), None)
    window.stack.select_layer(5)
    field = window.model_tab.inputs_field
    type_text(qtbot, field.edit, "head")
    assert "listed after" in field.note.text() and window.document.project.model.layers[5].inputs is None
    type_text(qtbot, field.edit, "add")
    assert window.document.project.model.layers[5].inputs == ["add"]
    field.edit.selectAll()
    qtbot.keyClick(field.edit, Qt.Key.Key_Backspace)
    qtbot.keyClick(field.edit, Qt.Key.Key_Return)  # empty: the layer above it
    assert window.document.project.model.layers[5].inputs is None


def test_copy_and_paste_through_the_clipboard(window, qtbot):
    window.document.set_project(graph_project(), None)
    window.stack.select_layers([1, 2, 3])
    assert window.copy_action.isEnabled()
    window.copy_action.trigger()
    data = QApplication.clipboard().mimeData()
    assert data.hasFormat(CLIPBOARD_MIME) and '"guidl-layers"' in data.text()
    count = window.document.undo_stack.count()
    window.stack.select_layer(3)
    window.paste_action.trigger()  # below the Add
    layers = window.document.project.model.layers
    assert [layer.type for layer in layers[4:7]] == ["Conv2d", "BatchNorm2d", "Add"]
    assert layers[6].inputs == [layers[5].id, "add"] and layers[5].id not in ("bn1", None)
    assert window.document.undo_stack.count() == count + 1
    assert window.stack.selected_layers() == [4, 5, 6]  # the pasted layers
    assert window.statusBar().currentMessage() == "Pasted 3 layer(s) as layers 4–6"  # not "Copied"
    # Plain text from elsewhere is read too (and refused with a message when it is not layers).
    QApplication.clipboard().setText("not layers")
    window.paste_action.trigger()
    assert "no layers copied from guidl" in window.statusBar().currentMessage()
    assert window.document.undo_stack.count() == count + 1


def test_block_commands_on_a_selection(window):
    window.document.set_project(graph_project(), None)
    window.stack.select_layers([1, 2, 3])
    assert window.make_block_action.isEnabled() and not window.expand_block_action.isEnabled()
    window.make_block_action.trigger()
    model = window.document.project.model
    assert model.layers[1].type == "Block" and "Block" in model.blocks
    assert "Block" in window.palette_widget.block_names()  # the palette lists the project's blocks
    window.stack.select_layer(1)
    assert window.expand_block_action.isEnabled()
    window.expand_block_action.trigger()
    assert [layer.type for layer in window.document.project.model.layers[1:4]] == ["Conv2d", "BatchNorm2d", "Add"]
    window.stack.select_layers([5, 6])
    window.add_skip_action.trigger()
    assert window.document.project.model.layers[7].type == "Add"
    window.stack.select_layers([1, 2])
    window.wrap_residual_action.trigger()
    assert window.document.project.model.layers[1].type == "Residual"


def test_several_selected_layers_are_deleted_as_one_step(window):
    window.document.set_project(graph_project(), None)
    window.stack.select_layers([1, 2])
    assert window.stack.selected_layers() == [1, 2] and window.stack.selected_layer() == -1
    assert "2 layers" in window.properties.title()
    window.delete_action.trigger()
    layers = window.document.project.model.layers
    assert [layer.type for layer in layers[:3]] == ["Conv2d", "Unit", "ReLU"]  # the Add went with its path
    window.undo_action.trigger()
    assert window.document.project == graph_project()


def test_a_block_dropped_from_the_palette(window):
    from guidl.qt.palette import palette_mime

    window.document.set_project(graph_project(), None)
    assert "Unit" in window.palette_widget.block_names()
    model = window.stack.table
    assert model.dropMimeData(palette_mime("Unit"), Qt.DropAction.CopyAction, 1, 0, model.index(-1, -1))
    assert window.document.project.model.layers[0].type == "Unit"
    window.edits.rename_block("Unit", "Stage")
    assert window.palette_widget.block_names() == ["Stage"]


def test_a_proposed_fix_applies_from_the_form_in_one_step(window):
    project = graph_project()
    project.model.layers[1].params["out_channels"] = 16  # the shortcut keeps 8 channels
    window.document.set_project(project, None)
    window.stack.select_layer(3)
    assert "on the shortcut" in window.layer_message.text() and not window.model_tab.fix_button.isHidden()
    window.model_tab.fix_button.click()
    layers = window.document.project.model.layers
    assert layers[3].type == "Conv2d" and layers[3].params == {"out_channels": 16, "kernel_size": 1}
    report = window.document.report
    assert report.layers[4].type == "Add" and report.layers[4].error is None
    assert window.document.undo_stack.count() == 1


def test_renaming_a_block_in_the_form_renames_every_use(window, qtbot):
    project = graph_project()
    project.model.layers.insert(5, Layer("Unit", {"channels": 8}))
    window.document.set_project(project, None)
    window.stack.select_layer(4)
    field = window.model_tab.block_field
    assert field.edit.text() == "Unit"
    type_text(qtbot, field.edit, "Conv2d")
    assert "layer type of the catalogue" in field.note.text()
    type_text(qtbot, field.edit, "Stage")
    model = window.document.project.model
    assert list(model.blocks) == ["Stage"] and [layer.type for layer in model.layers[4:6]] == ["Stage"] * 2
    assert _cell(window, 5, 1) == "Stage(8)"


def test_the_table_offers_the_graph_commands(window):
    texts = [action.text() for action in window.stack.actions()]
    assert {"&Copy", "&Paste", "Add &Skip Connection", "&Make Block from Selection"} <= set(texts)


def test_a_block_layer_refers_to_the_block_parameters_only(document, qtbot):
    edits = LayerEdits(document)
    edits.set_param(1, "num_features", "$channels", block="Unit")
    assert document.project.model.blocks["Unit"].layers[1].params == {"num_features": "$channels"}
    with qtbot.waitSignal(document.edit_refused) as said:
        edits.set_param(0, "out_channels", "$width", block="Unit")
    assert "no parameter 'width'" in said.args[0]
    assert document.undo_stack.count() == 1


def test_delete_wire_deletes_the_wire_selected_on_the_canvas(window):
    window.document.set_project(graph_project(), None)
    LayerEdits(window.document).connect(1, 3)  # the Add merges three: one may go
    assert not window.delete_wire_action.isEnabled()
    window.canvas.wire(0, 3).setSelected(True)  # the shortcut of the residual
    assert window.delete_wire_action.isEnabled()
    window.delete_wire_action.trigger()
    layers = window.document.project.model.layers
    assert [layer.type for layer in layers[:4]] == ["Conv2d", "Conv2d", "BatchNorm2d", "Add"]
    assert layers[3].inputs == ["bn1", "conv1"]
    window.undo_action.trigger()
    window.undo_action.trigger()
    assert window.document.project == graph_project()


def test_deleting_a_wire_a_merge_needs_is_refused_with_what_to_do(document, qtbot):
    edits = LayerEdits(document)
    before = copy.deepcopy(document.project)
    with qtbot.waitSignal(document.edit_refused) as refused:
        edits.disconnect(0, 3)  # the Add would merge nothing: it stays, and says why
    assert "drag another wire onto it first, or delete the layer" in refused.args[0]
    assert document.project == before and document.undo_stack.count() == 0


def test_deleting_one_of_three_wires_of_a_merge_is_one_undo_step(document):
    edits = LayerEdits(document)
    edits.connect(1, 3)
    three = copy.deepcopy(document.project)
    edits.disconnect(0, 3)
    assert document.project.model.layers[3].inputs == ["bn1", "conv1"]
    document.undo_stack.undo()
    assert document.project == three
