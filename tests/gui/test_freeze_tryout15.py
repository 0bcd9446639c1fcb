"""Freezing after the issue-15 tryout: the block editor's layer form has the
Frozen box and the lr multiplier; Model > Freeze / Unfreeze Selected Layers
is one undo step; a backbone node's title ends before its snowflake."""

import pytest

from guidl import spec
from guidl.examples import example_path
from guidl.qt.graph_canvas import NodeText


@pytest.fixture
def resnet(window):
    window.document.set_project(spec.load(example_path("resnet_mnist")), None)
    return window


def test_the_block_editors_layer_form_freezes_and_sets_the_lr_multiplier(resnet):
    window, document = resnet, resnet.document
    layers = document.project.model.layers
    window.stack.select_layer(next(i for i, layer in enumerate(layers) if layer.type == "ResidualBlock"))
    window.edit_block_action.trigger()
    editor = window.block_editors.editors["ResidualBlock"]
    editor.stack.select_layer(0)
    wiring = editor.wiring
    assert wiring.frozen.isVisibleTo(editor) and wiring.lr_field.widget.isVisibleTo(editor)
    steps = document.undo_stack.index()
    wiring.frozen.setChecked(True)
    block = document.project.model.blocks["ResidualBlock"]
    assert block.layers[0].frozen and document.undo_stack.index() == steps + 1
    wiring.lr_field.edit.setText("0.1")
    wiring.lr_field.edit.setModified(True)
    wiring.lr_field.edit.editingFinished.emit()
    block = document.project.model.blocks["ResidualBlock"]
    assert block.layers[0].lr_multiplier == 0.1
    window.undo_action.trigger()
    window.undo_action.trigger()
    block = document.project.model.blocks["ResidualBlock"]
    assert not block.layers[0].frozen and block.layers[0].lr_multiplier == 1
    assert not wiring.frozen.isChecked()
    editor.close()


def test_the_model_menus_freeze_action_toggles_the_selected_layers_in_one_step(window):
    document, action = window.document, window.freeze_action
    model_menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&Model")
    assert action in model_menu.actions() and action.shortcut().toString() == "Ctrl+Shift+F"
    window.stack.select_layers([])
    window.update_actions()
    assert not action.isEnabled()
    window.stack.select_layers([0, 6])
    window.update_actions()
    assert action.isEnabled()
    steps = document.undo_stack.index()
    action.trigger()
    assert [layer.frozen for layer in document.project.model.layers] == [True] + [False] * 5 + [True]
    assert document.undo_stack.index() == steps + 1
    action.trigger()  # all frozen: unfreezes them
    assert not any(layer.frozen for layer in document.project.model.layers)
    window.undo_action.trigger()
    assert [layer.frozen for layer in document.project.model.layers] == [True] + [False] * 5 + [True]


def test_a_backbone_nodes_title_ends_before_its_snowflake(window):
    document, canvas = window.document, window.canvas
    document.apply(lambda p: (setattr(p.model, "layers", [
        spec.Layer("mobilenet_v3_small", {"weights": "IMAGENET1K_V1"}), spec.Layer("Linear", {"out_features": 10})]),
        setattr(p.model, "input_shape", [3, 224, 224])), "Use mobilenet")
    node = canvas.by_index[0]
    assert "mobilenet_v3_small" in node.content.title and not node.content.frozen
    metrics = NodeText.current().title_metrics

    def title_end():
        return 12 + metrics.horizontalAdvance(node.title_text())

    node.hovered = True  # the faint snowflake, offered
    node.show_frozen_button()
    assert node.frozen_button.isVisible()
    assert title_end() <= node.frozen_badge().left()
    assert node.title_text() != node.content.title  # elided: it did not fit beside the badge
    node.hovered = False
    node.show_frozen_button()
    assert node.title_text() == node.content.title  # no badge: the whole title
