"""The Write tab of a text generation model: shown for that task only, filled
with what the trainer wrote after each epoch, and writing on demand with the
model the window holds (in the background)."""

from PySide6.QtCore import Qt

from guidl.qt.write_panel import WritePanel
from guidl.spec import Component, Data, Layer, Model, Project, Training


def char_project(**task) -> Project:
    return Project(
        name="chars",
        model=Model([Layer("Embedding", {"num_embeddings": 96, "embedding_dim": 8}),
                     Layer("LSTM", {"hidden_size": 16}), Layer("Linear", {"out_features": 96})]),
        data=Data("text", {"seq_len": 16, "stride": 16, "max_samples": 200}, val_fraction=0.1, batch_size=64),
        training=Training(Component("CrossEntropyLoss"), Component("Adam", {"lr": 0.01}), None, epochs=1,
                          device="cpu", seed=0),
        task=Component("text_generation", {"prompt": "Once ", "length": 300, "temperature": 0.7, **task}))


def test_the_text_written_after_an_epoch_is_shown(qtbot):
    panel = WritePanel()
    qtbot.addWidget(panel)
    assert not panel.button.isEnabled()  # nothing trained yet
    panel.show_epoch_samples(3, {"kind": "text", "prompt": "The ", "text": "cat <sat>", "temperature": 0.8})
    assert panel.output.toPlainText() == "The cat <sat>" and panel.written == "cat <sat>"
    assert "epoch 3" in panel.status.text()
    panel.show_epoch_samples(4, {"kind": "images", "images": None, "labels": None})  # not text: ignored
    assert panel.written == "cat <sat>"


def test_the_window_writes_with_the_trained_model(window, qtbot):
    from guidl.engine.data import VOCAB
    from guidl.engine.trainer import Trainer

    tabs = window.tabs
    write_tab = tabs.indexOf(window.write_panel)
    assert not tabs.isTabVisible(write_tab)  # the example classifier writes nothing
    project = char_project()
    window.document.set_project(project, None)
    assert tabs.isTabVisible(write_tab) and not window.samples_view.isHidden()
    panel = window.write_panel
    assert (panel.prompt.text(), panel.length.value(), panel.temperature.value()) == ("Once ", 300, 0.7)
    assert not panel.button.isEnabled()
    trainer = Trainer(project)  # untrained weights write too: the panel shows what the model gives
    trainer.setup()
    window.session.trainer = trainer
    window.update_actions()
    assert panel.button.isEnabled()
    window.show_tab("write")
    qtbot.mouseClick(panel.button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not window.writing.running and bool(panel.written), timeout=30_000)
    assert len(panel.written) == 300 and set(panel.written) <= set(VOCAB)
    assert panel.output.toPlainText() == "Once " + panel.written
    assert panel.status.text() == "The trained model wrote 300 characters."
    assert panel.button.isEnabled() and not panel.stop_button.isEnabled()
    first = panel.written
    qtbot.mouseClick(panel.button, Qt.MouseButton.LeftButton)  # again: other text, as a user expects
    qtbot.waitUntil(lambda: not window.writing.running and panel.written != first, timeout=30_000)
    # A long text grows in pieces, and Stop ends it after the current one.
    panel.length.setValue(10_000)
    qtbot.mouseClick(panel.button, Qt.MouseButton.LeftButton)
    # Stop is a button of its own: Write waits, so a click meant for Stop never writes again.
    assert panel.stop_button.isEnabled() and not panel.button.isEnabled()
    qtbot.waitUntil(lambda: "of 10,000 characters" in panel.status.text(), timeout=30_000)
    assert 0 < len(panel.written) < 10_000 and panel.written[:100] != first[:100]
    qtbot.mouseClick(panel.stop_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not window.writing.running, timeout=30_000)
    assert len(panel.written) < 10_000 and panel.status.text().startswith("Stopped: the trained model wrote")
    assert "of 10,000 characters" in panel.status.text()
    stopped = panel.written
    qtbot.mouseClick(panel.stop_button, Qt.MouseButton.LeftButton)  # a late click on Stop: nothing starts
    assert not window.writing.running and panel.written == stopped
    assert set(panel.written) <= set(VOCAB)
    # Another project without the task: the tab goes.
    window.document.set_project(char_project(), None)
    window.document.set_project(Project.from_dict({**char_project().to_dict(), "task": None}), None)
    assert not tabs.isTabVisible(write_tab) and window.samples_view.isHidden()
    window.document.set_project(char_project(), None)  # back to writing: the old text is gone
    assert panel.output.toPlainText() == "" and panel.written == ""
