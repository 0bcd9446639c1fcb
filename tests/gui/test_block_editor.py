"""The block editor: a block's parameters, layers and their properties edited
in a dialog of their own, each change one undo step of the document, every
use of the block following the definition."""

import json

import pytest
from PySide6.QtCore import QModelIndex, Qt

from guidl import spec
from guidl.examples import example_path
from guidl.qt.block_editor import BlockEditor, compatible
from guidl.registry import LAYERS, Param
from guidl.qt.model_stack import INPUTS_COLUMN, NOT_USED
from guidl.qt.palette import palette_mime
from qt_helpers import type_text

RESIDUAL_USES = (4, 6)  # stage1 (16 channels, twice) and stage2b (32 channels)


@pytest.fixture
def resnet(window):
    window.document.set_project(spec.load(example_path("resnet_mnist")), None)
    return window


def open_editor(window, name="ResidualBlock") -> BlockEditor:
    layers = window.document.project.model.layers
    window.stack.select_layer(next(i for i, layer in enumerate(layers) if layer.type == name))
    assert window.edit_block_action.isEnabled()
    window.edit_block_action.trigger()
    editor = window.block_editors.editors[name]
    assert editor.isVisible() and not editor.isModal()
    return editor


def counts(window, indexes=RESIDUAL_USES):
    return [window.document.report.layers[i].param_count for i in indexes]


def test_opened_from_the_model_menu_the_table_and_the_palette_one_per_block(resnet, qtbot):
    window = resnet
    window.stack.select_layer(0)
    assert not window.edit_block_action.isEnabled()  # a Conv2d is no block
    editor = open_editor(window)
    assert editor.windowTitle() == "Block ResidualBlock"
    assert window.edit_block_action in window.stack.actions()
    # Opening again raises the same dialog; double-clicking a use's row, or the palette's menu, too.
    assert window.block_editors.open("ResidualBlock") is editor
    button = window.model_tab.edit_block_button  # beside a use's name, in its properties
    assert not button.isHidden()
    editor.close()
    qtbot.waitUntil(lambda: not window.block_editors.editors)
    button.click()
    editor = window.block_editors.editors["ResidualBlock"]
    window.stack.doubleClicked.emit(window.stack.table.index(0 + 1, 1))  # a Conv2d: nothing to open
    assert list(window.block_editors.editors) == ["ResidualBlock"]
    window.stack.doubleClicked.emit(window.stack.table.index(5 + 1, 1))  # stage2: DownsampleBlock
    downsample = window.block_editors.editors["DownsampleBlock"]
    menu = window.palette_widget.block_menu("DownsampleBlock")
    next(a for a in menu.actions() if a.text().startswith("Edit Block")).trigger()
    assert window.block_editors.editors == {"ResidualBlock": editor, "DownsampleBlock": downsample}
    assert downsample.windowTitle() == "Block DownsampleBlock"
    # Its wiring shows from the start: the shortcut takes the block's input.
    assert not downsample.stack.isColumnHidden(INPUTS_COLUMN)
    assert downsample.stack.table.index(5 + 1, INPUTS_COLUMN).data() == "input"
    # The block's layers, with the shapes of the first use.
    table = editor.stack.table
    assert [table.index(r, 1).data() for r in range(1, 4)] == [
        "conv1: Conv2d($channels, 3)", "BatchNorm2d", "ReLU"]
    assert table.index(1, 2).data() == "(16, 14, 14)"
    assert table.index(0, 1).data() == "Block input"


def test_a_layer_dropped_into_the_block_changes_every_use_and_one_undo_restores(resnet, qtbot):
    window = resnet
    editor = open_editor(window)
    before = counts(window)
    steps = window.document.undo_stack.count()
    table = editor.stack.table
    # The palette's drop below conv1 (row 1): a BatchNorm2d of $channels in each repetition of each use.
    assert table.dropMimeData(palette_mime("BatchNorm2d"), Qt.DropAction.CopyAction, 2, 0, QModelIndex())
    layers = window.document.project.model.blocks["ResidualBlock"].layers
    assert [layer.type for layer in layers[:3]] == ["Conv2d", "BatchNorm2d", "BatchNorm2d"]
    assert counts(window) == [before[0] + 2 * (2 * 16), before[1] + 2 * 32]
    assert window.document.undo_stack.count() == steps + 1
    assert editor.stack.selected_layer() == 1  # the new layer, ready to edit
    assert editor.properties.title() == "Layer 1: BatchNorm2d"
    editor.activateWindow()
    qtbot.waitUntil(editor.isActiveWindow)
    qtbot.keyClick(editor.stack, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)  # Ctrl+Z, in the dialog
    assert counts(window) == before
    assert len(window.document.project.model.blocks["ResidualBlock"].layers) == 7
    assert table.rowCount() == 7 + 2  # the dialog follows


def test_a_parameter_set_to_a_value_then_linked_to_a_block_parameter(resnet, qtbot, tmp_path):
    window = resnet
    editor = open_editor(window)
    editor.stack.select_layer(3)  # conv2: out_channels "$channels"
    form = editor.layer_form
    assert form.is_linked("out_channels")
    assert form.reference_field("out_channels").text() == "$channels"
    assert form.reference_field("out_channels").isReadOnly()
    assert form.link_targets("out_channels") == ["channels"]
    form.link("out_channels", None)  # a value again: the block parameter's default
    conv2 = lambda: window.document.project.model.blocks["ResidualBlock"].layers[3]  # noqa: E731
    assert conv2().params["out_channels"] == 16 and not form.is_linked("out_channels")
    spin = form.editor("out_channels")
    spin.setValue(24)
    assert conv2().params["out_channels"] == 24
    # The shapes of the uses follow: the Add of the first use now refuses 24 against 16 channels.
    assert window.document.report.layers[4].error
    # Linking through the "$" button's menu.
    menu = form.link_button("out_channels").menu()
    menu.aboutToShow.emit()
    next(a for a in menu.actions() if a.text() == "$channels").trigger()
    assert conv2().params["out_channels"] == "$channels"
    assert form.is_linked("out_channels")
    assert not window.document.report.layers[4].error
    window.document.save(tmp_path / "net.guidl.json")
    saved = json.loads((tmp_path / "net.guidl.json").read_text())
    assert saved["model"]["blocks"]["ResidualBlock"]["layers"][3]["params"]["out_channels"] == "$channels"


def test_a_block_parameter_added_renamed_and_its_references_follow(resnet, qtbot):
    window = resnet
    editor = open_editor(window)
    block = lambda: window.document.project.model.blocks["ResidualBlock"]  # noqa: E731
    editor.add_param()
    assert block().params[-1] == {"name": "param", "kind": "int", "default": 1}
    editor.set_cell(1, "default", "3")
    assert block().params[1]["default"] == 3
    editor.stack.select_layer(0)
    assert editor.layer_form.link_targets("kernel_size") == ["channels", "param"]
    editor.layer_form.link("kernel_size", "param")
    assert block().layers[0].params["kernel_size"] == "$param"
    editor.set_cell(1, "name", "kernel")
    assert [p["name"] for p in block().params] == ["channels", "kernel"]
    assert block().layers[0].params["kernel_size"] == "$kernel"
    assert editor.layer_form.reference_field("kernel_size").text() == "$kernel"
    assert editor.params_table.item(1, 0).text() == "kernel"
    # A name that is no identifier, or is taken, is refused in its cell.
    editor.set_cell(1, "name", "channels")
    assert "already" in editor.refused_cells()[(1, "name")][1]
    assert [p["name"] for p in block().params] == ["channels", "kernel"]


def test_a_refused_default_stays_with_its_reason_and_the_project_keeps_its_value(resnet, qtbot):
    window = resnet
    editor = open_editor(window)
    block = lambda: window.document.project.model.blocks["ResidualBlock"]  # noqa: E731
    steps = window.document.undo_stack.count()
    editor.set_cell(0, "default", "0")
    text, reason = editor.refused_cells()[(0, "default")]
    assert text == "0" and "positive integer" in reason
    assert editor.params_table.item(0, 2).text() == "0"
    assert "positive integer" in editor.params_message.text() and not editor.params_message.isHidden()
    assert block().params[0]["default"] == 16
    assert window.document.undo_stack.count() == steps
    problems = window.document.field_problems()
    assert list(problems) == ["block ResidualBlock · parameter channels · default"]
    assert "positive integer" in problems["block ResidualBlock · parameter channels · default"]
    assert not window.train_action.isEnabled()
    # Another edit elsewhere keeps the refused text where it was typed.
    editor.set_cell(0, "help", "width")
    assert editor.params_table.item(0, 2).text() == "0"
    # A valid value replaces it: one step, and the mark goes.
    editor.set_cell(0, "default", "8")
    assert block().params[0]["default"] == 8 and not editor.refused_cells()
    assert not window.document.field_problems()
    # A minimum above the default is refused too, and a kind change keeps what still fits.
    editor.set_cell(0, "minimum", "10")
    assert "default" in editor.refused_cells()[(0, "minimum")][1]
    editor.set_cell(0, "minimum", "1")
    editor.kind_combo(0).setCurrentText("float")
    assert block().params[0] == {"name": "channels", "kind": "float", "default": 8.0, "minimum": 1,
                                 "help": "width"}
    # A parameter removed with a refused value in its row takes the refusal along.
    editor.add_param()
    editor.set_cell(1, "default", "many")
    assert "not an integer" in editor.refused_cells()[(1, "default")][1]
    assert window.document.field_problems()
    editor.params_table.setCurrentCell(1, 0)
    editor.remove_param()
    assert [p["name"] for p in block().params] == ["channels"]
    assert not editor.refused_cells() and not window.document.field_problems()


def test_links_offer_the_block_parameters_of_a_fitting_kind():
    conv = LAYERS.get("Conv2d")
    channels = Param("channels", "int", 16, minimum=1)
    assert compatible(conv.param("out_channels"), channels)
    assert compatible(conv.param("kernel_size"), channels)  # ints: one for every dimension
    assert not compatible(conv.param("out_channels"), Param("rate", "float", 0.5))
    assert not compatible(conv.param("out_channels"), Param("width", "int", 0))  # its default does not fit
    assert compatible(conv.param("padding"), Param("pad", "str", "same"))  # a keyword of an int parameter
    assert not compatible(conv.param("bias"), channels)


def test_the_dialog_follows_undo_and_redo_of_its_changes(resnet, qtbot):
    window = resnet
    editor = open_editor(window)
    type_text(qtbot, editor.help_field.edit, "A residual unit.")
    assert window.document.project.model.blocks["ResidualBlock"].help == "A residual unit."
    editor.set_cell(0, "default", "12")
    editor.stack.select_layer(0)
    editor.layer_form.param_changed.emit("kernel_size", 5)
    window.undo_action.trigger()  # the main window's Undo
    assert editor.layer_form.editor("kernel_size").text() == "3"
    window.undo_action.trigger()
    assert editor.params_table.item(0, 2).text() == "16"
    window.undo_action.trigger()
    assert editor.help_field.edit.text() != "A residual unit."
    window.redo_action.trigger()
    assert editor.help_field.edit.text() == "A residual unit."


def test_the_last_use_deleted_keeps_the_definition_and_shapes_show_a_dash(resnet, qtbot):
    window = resnet
    editor = open_editor(window, "DownsampleBlock")
    table = editor.stack.table
    assert table.index(1, 2).data() == "(32, 7, 7)"
    window.edits.remove(5)
    assert "DownsampleBlock" in window.document.project.model.blocks
    assert editor.isVisible()
    assert table.rowCount() == 9 + 2
    assert {table.index(r, c).data() for r in range(1, 10) for c in (2, 3)} == {NOT_USED}
    assert table.index(0, 2).data() == NOT_USED
    # Deleting the definition too closes the dialog; undo brings nothing back by itself.
    window.edits.remove_block("DownsampleBlock")
    qtbot.waitUntil(lambda: "DownsampleBlock" not in window.block_editors.editors)


def test_a_renamed_block_keeps_its_dialog(resnet, qtbot):
    window = resnet
    editor = open_editor(window)
    window.edits.rename_block("ResidualBlock", "Residual")
    assert editor.windowTitle() == "Block Residual"
    assert window.block_editors.editors == {"Residual": editor}
    editor.set_cell(0, "default", "8")
    assert window.document.project.model.blocks["Residual"].params[0]["default"] == 8
    window.undo_action.trigger()
    window.undo_action.trigger()
    assert editor.windowTitle() == "Block ResidualBlock"
    assert window.block_editors.open("ResidualBlock") is editor
    # Renamed from the dialog itself; a name that is taken or no name stays with its reason.
    type_text(qtbot, editor.name_field.edit, "DownsampleBlock")
    assert "already" in editor.name_field.note.text()
    type_text(qtbot, editor.name_field.edit, "Conv2d")
    assert "layer type" in editor.name_field.note.text()
    assert set(window.document.project.model.blocks) == {"ResidualBlock", "DownsampleBlock"}
    type_text(qtbot, editor.name_field.edit, "Unit")
    assert window.document.project.model.layers[4].type == "Unit"
    assert editor.windowTitle() == "Block Unit" and window.block_editors.editors == {"Unit": editor}


def test_inner_layers_are_deleted_moved_and_given_ids_as_in_the_model(resnet, qtbot):
    window = resnet
    editor = open_editor(window)
    block = lambda: window.document.project.model.blocks["ResidualBlock"]  # noqa: E731
    editor.stack.select_layer(2)  # the first ReLU
    editor.delete_action.trigger()
    assert [layer.type for layer in block().layers][:3] == ["Conv2d", "BatchNorm2d", "Conv2d"]
    editor.stack.select_layer(1)
    type_text(qtbot, editor.wiring.id_field.edit, "bn1")
    assert block().layers[1].id == "bn1"
    type_text(qtbot, editor.wiring.id_field.edit, "conv2")  # taken
    assert "already the id" in editor.wiring.id_field.note.text()
    assert block().layers[1].id == "bn1"
    editor.wiring.id_field.discard()
    editor.stack.select_layer(1)
    editor.up_action.trigger()
    assert [layer.type for layer in block().layers][:2] == ["BatchNorm2d", "Conv2d"]
    type_text(qtbot, editor.add_layer_field, "dropout")
    assert block().layers[1].type == "Dropout"
    # The dialog's refused values no longer hold Train back once it is closed.
    editor.close()
    qtbot.waitUntil(lambda: not window.block_editors.editors)
    assert not window.document.field_problems()


def test_a_block_used_only_inside_another_block_shows_the_shapes_of_that_use(qtbot):
    from guidl.qt.document import ProjectDocument
    from guidl.qt.model_stack import ModelStackView
    from guidl.spec import Block, Data, Layer, Model, Project

    inner = Block([{"name": "width", "kind": "int", "default": 6, "minimum": 1}],
                  [Layer("Conv2d", {"out_channels": "$width", "kernel_size": 3, "padding": 1}), Layer("ReLU")])
    outer = Block([], [Layer("Inner", {"width": 5}), Layer("MaxPool2d", {"kernel_size": 2})])
    document = ProjectDocument()
    document.set_project(Project("nested", Model([Layer("Outer"), Layer("Flatten")], [1, 8, 8],
                                                 blocks={"Inner": inner, "Outer": outer}),
                                 Data("mnist_sample")), None)
    view = ModelStackView(document, block="Inner")
    qtbot.addWidget(view)
    assert view.table.index(1, 2).data() == "(5, 8, 8)"
    assert view.table.index(1, 3).data() == f"{5 * 9 + 5:,}"


def test_a_block_used_in_the_block_repeats_and_links_its_parameters(resnet, qtbot):
    window = resnet
    editor = open_editor(window, "DownsampleBlock")
    blocks = lambda: window.document.project.model.blocks  # noqa: E731
    editor.stack.select_layer(8)  # the last ReLU: a ResidualBlock after it
    index = editor.insert_layer("ResidualBlock")
    assert index == 9 and blocks()["DownsampleBlock"].layers[9].type == "ResidualBlock"
    assert not editor.repeat.isHidden()
    editor.repeat.setValue(3)
    assert blocks()["DownsampleBlock"].layers[9].repeat == 3
    assert editor.layer_form.link_targets("channels") == ["channels", "stride"]
    editor.layer_form.link("channels", "channels")
    assert blocks()["DownsampleBlock"].layers[9].params == {"channels": "$channels"}
    use = window.document.report.layers[5]  # stage2: its inner ResidualBlock, 32 channels, 3 times
    assert [len(r.layers) for r in use.blocks[0].layers[9].blocks] == [7, 7, 7]
    editor.stack.select_layer(0)
    assert editor.repeat.isHidden()
