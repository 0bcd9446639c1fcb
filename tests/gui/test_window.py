"""The window's structure: controllers wired by the window, actions from one
table and one state, named tabs, and no import circles."""

import grimp

from guidl.qt.controllers.actions import ACTIONS


def test_no_module_of_the_window_imports_one_that_imports_it_back():
    graph = grimp.build_graph("guidl")
    circles = sorted((module, imported) for module in graph.modules if module.startswith("guidl.qt")
                     for imported in graph.find_modules_directly_imported_by(module)
                     if imported.startswith("guidl.qt")
                     and graph.chain_exists(importer=imported, imported=module))
    assert circles == []


def test_every_action_of_the_table_is_on_the_window(window):
    for spec in ACTIONS:
        action = getattr(window, f"{spec.id}_action")
        assert action is window.actions[spec.id]
        if spec.menu:
            assert action in _menu_actions(window), spec.id


def _menu_actions(window) -> set:
    return {action for top in window.menuBar().actions() for action in top.menu().actions()}


def test_train_is_disabled_while_a_field_holds_an_invalid_value(window):
    assert window.train_action.isEnabled()
    problems = {"Dropout.p": "must be at most 1"}
    window.document.field_problems = lambda: problems  # what the forms report
    window.document.changed.emit()
    assert not window.train_action.isEnabled()
    assert window.train_action.toolTip() == "Cannot train: Dropout.p: must be at most 1"
    problems.clear()
    window.document.changed.emit()
    assert window.train_action.isEnabled()


def test_the_layer_actions_follow_the_selection(window):
    count = len(window.document.project.model.layers)
    window.stack.select_layer(0)
    assert window.delete_action.isEnabled() and not window.up_action.isEnabled()
    assert window.down_action.isEnabled()
    window.stack.select_layer(count - 1)
    assert window.up_action.isEnabled() and not window.down_action.isEnabled()


def test_tabs_are_shown_by_name(window):
    for name in ("model", "data", "train", "results"):
        window.show_tab(name)
        assert window.tabs.currentWidget() is window.tab_pages[name]
    assert window.tabs.tabText(window.tabs.indexOf(window.results)) == "Results"


def test_the_paused_mark_comes_from_the_run_not_the_status_text(window, qtbot):
    training = window.training
    training._say("Epoch 1/2 · batch 3/10 · loss 0.5000 · 900 samples/s", 12.0)
    assert " · ETA " in window.status_text.text()
    window.status_text.setText("something else said meanwhile")
    training._set_paused(True)
    assert window.status_text.text() == "Epoch 1/2 · batch 3/10 · loss 0.5000 · 900 samples/s · paused"
    assert window.pause_action.text() == "&Resume"
    training._set_paused(False)
    assert window.pause_action.text() == "&Pause" and "paused" not in window.status_text.text()


def test_actions_that_would_edit_the_project_stay_disabled_during_a_run(window):
    window.document.apply(lambda p: setattr(p, "name", "first"), "Rename")
    window.document.undo_stack.undo()  # something to redo too
    window.training.thread = object()  # a run, as far as the actions can tell
    try:
        window.update_actions()
        frozen = ("undo", "redo", "save_as", "load_data", "new", "open")
        assert [name for name in frozen if window.actions[name].isEnabled()] == []
        # Something pushed meanwhile (Qt enables QUndoStack's own actions on each push).
        window.document.apply(lambda p: setattr(p, "name", "second"), "Rename")
        assert [name for name in frozen if window.actions[name].isEnabled()] == []
    finally:
        window.training.thread = None
    window.update_actions()
    assert window.undo_action.isEnabled() and window.undo_action.text() == "&Undo Rename"
    window.undo_action.trigger()
    assert window.document.project.name != "second" and window.redo_action.text() == "&Redo Rename"
