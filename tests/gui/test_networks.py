"""A GAN's two networks in the Model tab: a switch chooses the one the layer
table, the canvas, the palette and undo work on."""

from PySide6.QtCore import QModelIndex, Qt

from guidl.qt.palette import palette_mime


def make_gan(window):
    combo = window.setup.task.combo
    combo.setCurrentIndex(combo.findData("gan"))
    assert window.document.project.discriminator is not None


def cell(window, row, column):
    table = window.stack.table
    return table.data(table.index(row, column))


def test_the_switch_shows_for_a_gan_only(window):
    tab = window.model_tab
    assert not tab.network_bar.isVisibleTo(tab)
    make_gan(window)
    assert tab.network_bar.isVisibleTo(tab)
    assert [tab.network_tabs.tabText(i) for i in range(tab.network_tabs.count())] == [
        "Generator", "Discriminator"]
    assert tab.network_tabs.currentIndex() == 0
    window.undo_action.trigger()
    assert not tab.network_bar.isVisibleTo(tab)


def test_the_views_show_the_discriminator_with_its_shapes(window):
    make_gan(window)
    tab = window.model_tab
    generator_rows = window.stack.table.rowCount()
    tab.network_tabs.setCurrentIndex(1)
    document = window.document
    assert document.network == "discriminator"
    discriminator = document.project.discriminator
    assert window.stack.table.rowCount() == len(discriminator.layers) + 2 != generator_rows
    assert cell(window, 0, 2) == "(1, 28, 28)"  # the input row: the data's images
    assert cell(window, 1, 1).startswith("Conv2d")
    assert cell(window, 1, 2) == "(64, 14, 14)"
    assert cell(window, len(discriminator.layers) + 1, 2) == "(1,)"  # one score per sample
    assert "samples" in tab.network_note.text() and "score" in tab.network_note.text()
    assert "<b>Discriminator</b>" in window.summary.text()
    # The canvas draws the same network.
    canvas = window.canvas
    assert len(canvas.by_index) == len(discriminator.layers)
    assert canvas.node(0).content.title.startswith("Conv2d")
    # A layer selected there is the discriminator's layer, in the properties too.
    window.stack.select_layer(3)
    assert window.properties.title() == "Layer 3: BatchNorm2d"


def test_an_edit_goes_to_the_shown_network_and_undo_finds_it_there(window):
    make_gan(window)
    document = window.document
    generator = list(document.project.model.layers)
    window.model_tab.show_network("discriminator")
    before = len(document.project.discriminator.layers)
    # The palette's double-click and a drop on the table: both land in the discriminator.
    window.palette_widget.layer_requested.emit("Dropout")
    table = window.stack.table
    assert table.dropMimeData(palette_mime("Sigmoid"), Qt.DropAction.CopyAction, -1, 0, QModelIndex())
    layers = document.project.discriminator.layers
    assert [layer.type for layer in layers].count("Dropout") == 1 and layers[-1].type == "Sigmoid"
    assert len(layers) == before + 2
    assert document.project.model.layers == generator
    assert "(discriminator)" in document.undo_stack.undoText()
    # Back on the generator, undo still takes the layers out of the discriminator, and shows it.
    window.model_tab.show_network("model")
    window.undo_action.trigger()
    assert document.network == "discriminator" and window.model_tab.network_tabs.currentIndex() == 1
    window.model_tab.show_network("model")
    window.undo_action.trigger()
    assert len(document.project.discriminator.layers) == before
    assert document.project.model.layers == generator
    window.redo_action.trigger()
    assert document.project.discriminator.layers[-1].type != "Sigmoid"
    assert "Dropout" in [layer.type for layer in document.project.discriminator.layers]


def test_a_parameter_edit_on_each_network_is_its_own_step(window):
    make_gan(window)
    document = window.document
    window.edits.set_param(0, "out_features", 6272)  # the generator's first Linear: 128x7x7 already
    window.model_tab.show_network("discriminator")
    window.edits.set_param(0, "out_channels", 32)
    window.model_tab.show_network("model")
    window.edits.set_param(0, "out_features", 3136)
    assert document.project.discriminator.layers[0].params["out_channels"] == 32
    assert document.project.model.layers[0].params["out_features"] == 3136
    window.undo_action.trigger()  # the generator's edit only
    assert document.project.model.layers[0].params["out_features"] == 6272
    assert document.project.discriminator.layers[0].params["out_channels"] == 32
    window.undo_action.trigger()  # then the discriminator's (not merged with the generator's)
    assert document.project.discriminator.layers[0].params["out_channels"] == 64


def test_the_discriminator_goes_when_the_task_does(window):
    make_gan(window)
    window.model_tab.show_network("discriminator")
    combo = window.setup.task.combo
    combo.setCurrentIndex(combo.findData(None))
    document = window.document
    assert document.project.discriminator is None and document.network == "model"
    assert not window.model_tab.network_bar.isVisibleTo(window.model_tab)
    assert "removed the discriminator" in window.statusBar().currentMessage()
    window.undo_action.trigger()
    assert document.project.discriminator is not None


def test_a_discriminator_that_does_not_end_in_one_score_is_marked_and_fixed_there(window):
    make_gan(window)
    document = window.document
    window.model_tab.show_network("discriminator")
    last = len(document.project.discriminator.layers) - 1
    window.edits.set_param(last, "out_features", 2)
    row = last + 1
    assert "one score per sample" in window.stack.table.data(window.stack.table.index(row, 1),
                                                             Qt.ItemDataRole.ToolTipRole)
    assert window.model_message.text().startswith(f"discriminator.layers[{last}]")
    # Train waits for it, whichever network is shown.
    window.model_tab.show_network("model")
    assert not window.train_action.isEnabled()
    assert f"discriminator.layers[{last}]" in window.train_action.toolTip()
    # The fix applies to the discriminator's layer, as one undo step.
    window.model_tab.show_network("discriminator")
    window.stack.select_layer(last)
    assert not window.model_tab.fix_button.isHidden()
    window.model_tab.fix_button.click()
    assert document.project.discriminator.layers[last].params["out_features"] == 1
    assert document.project.model.layers[0].params["out_features"] == 6272  # the generator's untouched
    assert window.train_action.isEnabled()


def test_a_block_editor_closes_when_the_other_network_shows(window):
    make_gan(window)
    window.edits.make_block([1, 2], "Head")
    editor = window.block_editors.open("Head")
    assert editor is not None and editor.isVisible()
    window.model_tab.show_network("discriminator")
    assert not editor.isVisible()
    assert window.block_editors.open("Head") is None  # the discriminator has no such block
