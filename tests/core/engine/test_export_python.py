"""The Python export: text from a project, a bundle or a run folder never
becomes code (names, class names, parameters, file names), the module is
checked wherever it is written, and a text model's module encodes and
decodes text."""

import ast
import copy
import importlib.util
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guidl import spec
from guidl.engine import python_source as source_module
from guidl.engine.export import ExportError, export, load_trained, python_check_command
from guidl.engine.python_source import SourceError, layer_source, literal, training_source

ROOT = Path(__file__).resolve().parents[3]


def hostile(marker: Path) -> list[str]:
    """Strings that would create ``marker`` if pasted into source unescaped."""
    create = f"open({str(marker)!r}, 'w').close()"
    system = f"import os; os.system({('touch ' + str(marker))!r})"  # the issue's own case
    return [
        f'Moons"""\n{system}\n"""',
        f"x'''\n{create}\n'''",
        f"x')\n{create}\n#",
        f'x"]\n{create}\n#',
        f"back\\slash\\\n{create}\\",
        f"cr\r{create}\rnul\x00end",
        f"ünïcødé ✓ \u202e{create}\u2028{create}",
        "{0}{{}}%s\\N{BULLET}",
    ]


@pytest.fixture(scope="module")
def moons():
    return load_trained(ROOT / "examples/moons_mlp.guidl.json")


def _skeleton(source: str) -> str:
    """The source's syntax tree with every string constant blanked."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            node.value = ""
    return ast.dump(tree)


def _calls(source: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            names.add(ast.unparse(node.func))
    return names


def _constant(source: str, name: str):
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == name:
            return ast.literal_eval(node.value)
    raise KeyError(name)


def _import(path: Path):
    spec_ = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec_)
    spec_.loader.exec_module(module)
    return module


def test_hostile_names_and_class_names_stay_strings(moons, tmp_path):
    marker = tmp_path / "marker"
    texts = hostile(marker)
    benign = copy.copy(moons)
    benign.class_names = ["zero", "one"]
    export(benign, "python", tmp_path / "benign.py", training_script=True)
    expected = _skeleton((tmp_path / "benign.py").read_text())
    expected_calls = _calls((tmp_path / "benign.py").read_text())
    for index in range(0, len(texts), 2):
        model = copy.copy(moons)
        model.project = moons.project.copy()
        model.project.name = texts[index]
        model.class_names = [texts[index + 1], texts[index]]
        out = tmp_path / f"m{index}.py"
        export(model, "python", out, training_script=True)
        text = out.read_text(encoding="utf-8")
        compile(text, str(out), "exec")
        assert _skeleton(text) == expected  # nothing but string values differ
        assert _calls(text) == expected_calls
        assert _constant(text, "NAME") == texts[index]
        assert _constant(text, "CLASS_NAMES") == [texts[index + 1], texts[index]]
        train = (tmp_path / f"m{index}_train.py").read_text(encoding="utf-8")
        assert texts[index] not in train and "os.system" not in train
        compile(train, "train", "exec")
        assert not marker.exists()
        assert "\x00" not in text and "\r" not in text  # escaped, never raw


def test_a_layer_parameter_is_written_as_a_literal_and_unknown_types_are_refused(moons):
    report = copy.deepcopy(moons.report)
    evil = 'bilinear")\nimport os\nos.system("echo pwned")\n("'
    report.layers[1].type = "Upsample"
    report.layers[1].params = {"mode": evil, "scale_factor": 2.0}
    line = layer_source(1, report)
    call = ast.parse(line, mode="eval").body
    assert ast.unparse(call.func) == "nn.Upsample"
    assert [ast.literal_eval(k.value) for k in call.keywords if k.arg == "mode"] == [evil]
    for bad in ["Linear(1)); import os; (", "__import__", "os.system"]:
        report.layers[1].type = bad
        with pytest.raises(SourceError, match="is not a known layer"):
            layer_source(1, report)


def test_only_plain_finite_values_become_literals():
    assert literal("a'\"\n\r\x00\\") == repr("a'\"\n\r\x00\\")
    assert literal([1, 2.5], tuples=True) == "(1, 2.5)"
    deep = [1]
    for _ in range(20):
        deep = [deep]
    for bad in [float("nan"), float("inf"), object(), {1: "x"}, b"bytes", deep]:
        with pytest.raises(SourceError):
            literal(bad)


def test_the_training_script_names_only_known_losses_and_optimizers(moons):
    model = copy.copy(moons)
    model.project = moons.project.copy()
    model.project.training.optimizer.type = "Adam\nimport os"
    with pytest.raises(SourceError, match="is not a known optimizer"):
        training_source(model, "m")
    model.project = moons.project.copy()
    model.project.training.loss.type = "__import__('os').system('x') or CrossEntropyLoss"
    with pytest.raises(SourceError, match="is not a known loss"):
        training_source(model, "m")


@pytest.mark.parametrize("name", ['a"b.py', "class.py", "os.py", "torch.py", "1m.py", "m-x.py"])
def test_a_module_name_that_is_not_a_plain_new_identifier_is_refused(moons, tmp_path, name):
    with pytest.raises(ExportError, match="identifier|would hide"):
        export(moons, "python", tmp_path / name)
    assert list(tmp_path.iterdir()) == []


def test_the_check_imports_the_module_by_its_absolute_path(moons, tmp_path, monkeypatch):
    # Relative to a working folder the check does not run in (it failed with
    # "ModuleNotFoundError" whenever the path was relative).
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path)
    result = export(moons, "python", Path("sub/rel.py"))
    assert result.max_difference == 0
    assert (tmp_path / "sub/rel.py").is_file() and (tmp_path / "sub/rel.safetensors").is_file()
    result = export(moons, "python", Path("here.py"))
    assert (tmp_path / "here.py").is_file()


def test_the_check_runs_on_every_python_guidl_supports(tmp_path):
    # -P (safe path) exists from Python 3.11 only: on 3.10 every Python export failed.
    command = python_check_command(tmp_path / "m.py", tmp_path / "x.pt", tmp_path / "y.pt")
    options = command[1:command.index("-c")]
    assert "-P" not in options and set(options) <= {"-E", "-s", "-B", "-u", "-I"}


def test_a_python_export_that_fails_its_check_leaves_nothing(moons, tmp_path, monkeypatch):
    (tmp_path / "m.py").write_text("# an older export\n")
    broken = source_module.python_source

    def raising(model, weights_name):
        return broken(model, weights_name) + "\nraise SystemExit('broken on purpose')\n"

    monkeypatch.setattr("guidl.engine.export.python_source", raising)
    with pytest.raises(ExportError, match="does not run: broken on purpose"):
        export(moons, "python", tmp_path / "m.py", training_script=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.py"]  # no weights, no script, no temp
    assert (tmp_path / "m.py").read_text() == "# an older export\n"


@pytest.fixture(scope="module")
def char_lstm(tmp_path_factory):
    from guidl.engine.callbacks import RunFolder
    from guidl.engine.trainer import Trainer

    project = spec.load(ROOT / "examples/char_lstm.guidl.json")
    project.data.params.update(max_samples=64, stride=31)
    project.data.batch_size = 32
    folder = tmp_path_factory.mktemp("char_lstm") / "run"
    Trainer(project, callbacks=[RunFolder(folder)], epochs=1, device="cpu").fit()
    return load_trained(folder)


def test_a_text_model_module_encodes_and_decodes_text(char_lstm, tmp_path):
    from guidl.engine.data import VOCAB, encode_text

    export(char_lstm, "python", tmp_path / "chars.py")
    text = (tmp_path / "chars.py").read_text(encoding="utf-8")
    assert "'\\\\n'" not in text  # a newline class, not a backslash and an n
    module = _import(tmp_path / "chars.py")
    assert module.CLASS_NAMES == list(VOCAB) and module.CLASS_NAMES[0] == "\n"
    sample = "Hello,\nworld! {x} ~"
    ids = module.encode(sample)
    assert ids.dtype == torch.int64 and ids.tolist() == encode_text(sample).tolist()
    assert module.decode(ids) == sample
    assert module.decode(module.encode("naïve")) == "na ve"  # outside the vocabulary: a space
    model = module.load()
    following = module.predict_next(model, "To be, or not to be, that is the question:\nWhether 'tis")
    assert len(following) == 1 and following in VOCAB
    with torch.no_grad():
        scores = model(module.encode("abc").unsqueeze(0))
    assert module.decode(scores.argmax(-1)) in VOCAB


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.text(), classes=st.lists(st.text(), min_size=2, max_size=2))
def test_any_text_as_name_or_class_names_changes_only_string_values(moons, name, classes):
    from guidl.engine.python_source import python_source

    reference = copy.copy(moons)
    reference.class_names = ["a", "b"]
    model = copy.copy(moons)
    model.project = moons.project.copy()
    model.project.name = name
    model.class_names = classes
    text = python_source(model, "m.safetensors")
    compile(text, "m.py", "exec")  # compiling runs nothing
    assert _skeleton(text) == _skeleton(python_source(reference, "m.safetensors"))
    assert _constant(text, "NAME") == name and _constant(text, "CLASS_NAMES") == classes


def _transfer_moons(moons, **fine_tune):
    """Moons with its first Linear frozen, the last learning at 10x, class
    weights, and optionally a fine-tune schedule (the same built network)."""
    model = copy.copy(moons)
    model.project = moons.project.copy()
    model.project.model.layers[0].frozen = True
    model.project.model.layers[4].lr_multiplier = 10.0
    model.project.data.balance = "class_weights"
    model.project.training.fine_tune = fine_tune or None
    model.project.training.epochs = 3
    model.task = "classification"
    return model


def test_the_training_script_continues_from_the_weights_with_frozen_layers_and_multipliers(moons, tmp_path):
    import subprocess
    import sys

    import numpy as np
    from safetensors.torch import load_file

    export(_transfer_moons(moons), "python", tmp_path / "tl.py", training_script=True)
    script = (tmp_path / "tl_train.py").read_text(encoding="utf-8")
    assert _constant(script, "FROZEN") == ["0"]
    assert _constant(script, "LR_MULTIPLIERS") == {"4": 10.0}
    assert _constant(script, "BALANCE") == "class_weights"
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "data.npz", x=rng.normal(size=(40, 2)).astype(np.float32),
             y=(np.arange(40) < 30).astype(np.int64))
    code = ("import sys; sys.modules['guidl'] = None\nimport tl_train\n"
            "model = tl_train.load()\noptimizer = tl_train.make_optimizer(model)\n"
            "print(sorted(g['lr'] for g in optimizer.param_groups))\n"
            "print(sorted(n for n, p in model.named_parameters() if not p.requires_grad))\n"
            "tl_train.main('data.npz', 2)\nprint(tl_train.LOSS.weight.tolist())\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    base = moons.project.training.optimizer.params["lr"]
    assert lines[0] == str(sorted([base, base * 10]))
    assert lines[1] == str(["0.bias", "0.weight"])
    assert ast.literal_eval(lines[-1]) == pytest.approx([40 / (2 * 10), 40 / (2 * 30)])
    exported, retrained = load_file(tmp_path / "tl.safetensors"), load_file(tmp_path / "tl_retrained.safetensors")
    assert torch.equal(retrained["0.weight"], exported["0.weight"])  # started from it and kept it
    assert not torch.equal(retrained["4.weight"], exported["4.weight"])


def test_the_training_script_keeps_a_fine_tune_schedule_s_end_state(moons):
    unfrozen = training_source(_transfer_moons(moons, head_epochs=1, unfreeze="all", lr_factor=0.5), "m")
    assert _constant(unfrozen, "FROZEN") == []
    assert _constant(unfrozen, "LR_MULTIPLIERS") == {"0": 0.5, "4": 10.0}
    # The run ended in its head epochs: nothing was unfrozen.
    head_only = training_source(_transfer_moons(moons, head_epochs=3, unfreeze="all"), "m")
    assert _constant(head_only, "FROZEN") == ["0"]
    plain = training_source(moons, "m")
    assert _constant(plain, "FROZEN") == [] and _constant(plain, "LR_MULTIPLIERS") == {}
    assert "torchvision" not in plain.split('"""')[1]
