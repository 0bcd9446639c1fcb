"""Graph models (branches, merges, blocks with repeats, an unused branch)
through every export format: each file, loaded back independently, gives
the model's outputs; the Python export is a readable module with an
explicit forward() and one class per block configuration that runs without
guidl; text from the project never becomes code."""

import ast
import copy
import json
import subprocess
import sys
import warnings

import numpy as np
import onnxruntime
import pytest
import torch
from safetensors.torch import load_file

from guidl import spec
from guidl.engine.build import build
from guidl.engine.export import FORMATS, ExportError, export, load_bundle, load_trained
from guidl.engine.graph import GraphModel
from guidl.engine.python_source import SourceError, python_source
from guidl.spec import ProjectError

SHAPE = [1, 8, 8]


def conv(out, kernel=3, **params):
    return {"type": "Conv2d", "params": {"out_channels": out, "kernel_size": kernel, **params}}


def layer(type_, id_=None, inputs=None, **params):
    out = {"type": type_, "params": params}
    if id_ is not None:
        out["id"] = id_
    if inputs is not None:
        out["inputs"] = inputs
    return out


HEAD = [layer("AdaptiveAvgPool2d", output_size=1), layer("Flatten"), layer("Linear", "head", out_features=10)]

RESIDUAL = {
    "params": [{"name": "channels", "kind": "int", "default": 4, "minimum": 1},
               {"name": "stride", "kind": "int", "default": 1, "minimum": 1}],
    "layers": [
        {"id": "conv1", **conv("$channels", stride="$stride", padding=1)},
        layer("BatchNorm2d"), layer("ReLU"),
        {"id": "conv2", **conv("$channels", padding=1)},
        layer("BatchNorm2d", "bn2"),
        {"id": "proj", "inputs": ["input"], **conv("$channels", 1, stride="$stride")},
        layer("Add", "add", ["bn2", "proj"]), layer("ReLU"),
    ],
}

#: name -> (blocks, layers, the number of classes the Python export writes)
MODELS = {
    # A residual block with a 1x1 projection shortcut, repeated twice (each
    # repetition another configuration: 4 -> 8 channels, then 8 -> 8) and used
    # once more with other parameters.
    "residual": ({"ResidualBlock": RESIDUAL},
                 [{"id": "stem", **conv(4, padding=1)},
                  layer("ResidualBlock", "stage1", channels=8, stride=2) | {"repeat": 2},
                  layer("ResidualBlock", "stage2", channels=6), *HEAD], 3),
    "inception": ({}, [
        {"id": "stem", **conv(4, padding=1)},
        {"id": "b1", **conv(2, 1)},
        {"id": "b3", "inputs": ["stem"], **conv(3, padding=1)},
        layer("MaxPool2d", "pool", ["stem"], kernel_size=3, stride=1, padding=1),
        {"id": "bp", **conv(2, 1)},
        layer("Concat", "mixed", ["b1", "b3", "bp", "stem"]),
        layer("ReLU"), *HEAD], 0),
    # "aux" takes the stem's output and nobody takes aux's; a block named Model
    # and layers named x and self must not hide the generated names.
    "unused": ({"Model": {"params": [], "layers": [layer("Tanh")]}}, [
        {"id": "x", **conv(3, padding=1)},
        layer("Model", "self"),
        layer("Flatten", "flat"),
        layer("Linear", "aux", ["flat"], out_features=5),
        layer("Linear", "head", ["flat"], out_features=10)], 1),
    # Blocks inside blocks: Outer uses Inner twice; Outer is used with two sizes.
    "nested": ({"Inner": {"params": [{"name": "width", "kind": "int", "default": 2, "minimum": 1}],
                          "layers": [{"id": "c", **conv("$width", padding=1)}, layer("ReLU", "r"),
                                     layer("Add", "sum", ["r", "input"])]},
                "Outer": {"params": [{"name": "channels", "kind": "int", "default": 3, "minimum": 1}],
                          "layers": [{"id": "widen", **conv("$channels", 1)},
                                     layer("Inner", "inner", width="$channels") | {"repeat": 2}]}},
               [layer("Outer", "first", channels=3), layer("Outer", "second", channels=5), *HEAD], 4),
    # A gate: one branch's sigmoid scales the other's features.
    "gated": ({}, [
        {"id": "features", **conv(4, padding=1)},
        {"id": "gate_conv", "inputs": ["input"], **conv(4, padding=1)},
        layer("Sigmoid", "gate"),
        layer("Multiply", "torch", ["features", "gate", "gate_conv"]),
        *HEAD], 0),
}


def project_dict(name, blocks, layers):
    return {"format": "guidl-project", "version": 2, "name": name,
            "model": {"input_shape": SHAPE, "blocks": blocks, "layers": layers},
            "data": {"dataset": "digits", "batch_size": 16},
            "training": {"epochs": 1, "device": "cpu", "seed": 1}}


def untrained(tmp_path, name):
    blocks, layers, _ = MODELS[name]
    path = tmp_path / f"{name}.guidl.json"
    path.write_text(json.dumps(project_dict(name, blocks, layers)))
    model = load_trained(path)
    assert isinstance(model.module, GraphModel) and model.report.ok
    # BatchNorm as after training (not the identity of a fresh layer).
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for module in model.module.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                for tensor, low in ((module.running_mean, -0.2), (module.running_var, 0.5),
                                    (module.weight, 0.5), (module.bias, -0.2)):
                    tensor.copy_(torch.rand(tensor.shape, generator=generator) + low)
    return model


#: Runs a generated module without guidl: prints its state_dict's keys, saves its outputs.
RUN_MODULE = """\
import importlib.util, json, sys
sys.modules['guidl'] = None
import torch
path, inputs, outputs = sys.argv[1:4]
spec = importlib.util.spec_from_file_location('exported', path)
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
model = module.load()
with torch.no_grad():
    torch.save(model(torch.load(inputs)), outputs)
print(json.dumps(sorted(model.state_dict())))
"""


def run_module(path, x, tmp_path):
    torch.save(x, tmp_path / "x.pt")
    result = subprocess.run([sys.executable, "-c", RUN_MODULE, str(path), str(tmp_path / "x.pt"),
                             str(tmp_path / "y.pt")], capture_output=True, text=True, cwd=tmp_path,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    return torch.load(tmp_path / "y.pt"), json.loads(result.stdout)


def difference(a, b):
    return float((torch.as_tensor(np.asarray(a)) - b).abs().max())


@pytest.mark.parametrize("name", list(MODELS))
def test_every_format_reproduces_a_graph_model(tmp_path, name):
    model = untrained(tmp_path, name)
    for fmt, suffix in FORMATS.items():
        result = export(model, fmt, tmp_path / f"g_{name}{suffix}")
        assert result.max_difference <= (1e-4 if fmt == "onnx" else 1e-6), (fmt, result.max_difference)
    # Each file again, loaded the way its users load it, on a batch size not traced.
    x = torch.randn(5, *SHAPE, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        want = model.module(x)
        session = onnxruntime.InferenceSession(str(tmp_path / f"g_{name}.onnx"))
        assert difference(session.run(None, {"input": x.numpy()})[0], want) <= 1e-4
        program = torch.export.load(str(tmp_path / f"g_{name}.pt2")).module()
        assert difference(program(x), want) <= 1e-6
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated, still exported
            assert difference(torch.jit.load(str(tmp_path / f"g_{name}.pt"))(x), want) <= 1e-6
        for weights in (load_file(tmp_path / f"g_{name}.safetensors"),
                        torch.load(tmp_path / f"g_{name}.pth", weights_only=True)):
            fresh = build(model.project).module.eval()
            assert not torch.equal(fresh(x), want)  # the weights below are what makes it the model
            fresh.load_state_dict(weights)
            assert torch.equal(fresh(x), want)
        bundle = load_bundle(tmp_path / f"g_{name}.guidl")
        assert isinstance(bundle.module, GraphModel)
        assert torch.equal(bundle.module(x), want)
    got, keys = run_module(tmp_path / f"g_{name}.py", x, tmp_path)
    assert difference(got, want) <= 1e-6
    assert keys == sorted(model.module.state_dict()) == sorted(load_file(tmp_path / f"g_{name}.safetensors"))


def _classes(source):
    return [node.name for node in ast.parse(source).body if isinstance(node, ast.ClassDef)]


def _forward(source, class_name):
    tree = ast.parse(source)
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == class_name)
    function = next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "forward")
    return [ast.unparse(statement) for statement in function.body]


def test_the_python_module_of_a_graph_reads_like_hand_written_code(tmp_path):
    source = python_source(untrained(tmp_path, "residual"), "residual.safetensors")
    assert "import guidl" not in source and "def forward(self, x):" in source
    # One class per configuration of the block: stage1's two repetitions differ
    # (4 -> 8 channels, then 8 -> 8), stage2 has other parameters.
    assert _classes(source) == ["ResidualBlock", "ResidualBlock_2", "ResidualBlock_3", "Model"]
    assert "# ResidualBlock(channels=8, stride=2) on inputs of shape (4, 8, 8)" in source
    assert "self.stage1 = nn.Sequential(ResidualBlock(), ResidualBlock_2())" in source
    assert "self.stage2 = ResidualBlock_3()" in source
    assert _forward(source, "Model") == [
        "stem = self.stem(x)", "stage1 = self.stage1(stem)", "stage2 = self.stage2(stage1)",
        "adaptive_avg_pool2d_3 = self.adaptive_avg_pool2d_3(stage2)",
        "flatten_4 = self.flatten_4(adaptive_avg_pool2d_3)", "head = self.head(flatten_4)", "return head"]
    assert _forward(source, "ResidualBlock") == [
        "conv1 = self.conv1(x)", "batch_norm2d_1 = self.batch_norm2d_1(conv1)",
        "relu_2 = self.relu_2(batch_norm2d_1)", "conv2 = self.conv2(relu_2)", "bn2 = self.bn2(conv2)",
        "proj = self.proj(x)", "add = bn2 + proj", "relu_7 = self.relu_7(add)", "return relu_7"]
    assert "self.conv1 = nn.Conv2d(in_channels=4, out_channels=8, kernel_size=3, stride=2, padding=1)" \
        in source


def test_merges_are_plain_expressions_and_names_never_hide_the_generated_ones(tmp_path):
    inception = python_source(untrained(tmp_path, "inception"), "i.safetensors")
    assert "mixed = torch.cat((b1, b3, bp, stem), dim=1)" in _forward(inception, "Model")
    gated = python_source(untrained(tmp_path, "gated"), "g.safetensors")
    assert "torch_ = features * gate * gate_conv" in _forward(gated, "Model")
    unused = python_source(untrained(tmp_path, "unused"), "u.safetensors")
    assert _classes(unused) == ["Model_2", "Model"]  # the block named Model gets another name
    assert _forward(unused, "Model") == [
        "x_ = self.x(x)", "self_ = self.self(x_)", "flat = self.flat(self_)", "head = self.head(flat)",
        "return head"]
    assert ("        flat = self.flat(self_)\n"
            "        # aux: not called, its output does not reach the output (it is built all the same: its "
            "weights are in the file)\n"
            "        head = self.head(flat)\n") in unused
    assert "self.aux = nn.Linear(in_features=192, out_features=5)  # not called: see forward()" in unused
    nested = python_source(untrained(tmp_path, "nested"), "n.safetensors")
    assert _classes(nested) == ["Inner", "Outer", "Inner_2", "Outer_2", "Model"]
    assert "self.inner = nn.Sequential(Inner(), Inner())" in nested
    assert "self.inner = nn.Sequential(Inner_2(), Inner_2())" in nested


def test_the_training_script_trains_a_graph_model(tmp_path):
    export(untrained(tmp_path, "residual"), "python", tmp_path / "resnet.py", training_script=True)
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "data.npz", x=rng.integers(0, 17, size=(32, *SHAPE)).astype(np.float32),
             y=rng.integers(0, 10, size=32))
    code = "import sys; sys.modules['guidl'] = None\nimport resnet_train\nresnet_train.main('data.npz', 1)\n"
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert "epoch 1/1  loss" in result.stdout
    retrained = load_file(tmp_path / "resnet_retrained.safetensors")
    assert retrained.keys() == load_file(tmp_path / "resnet.safetensors").keys()


HOSTILE = 'a"); import os; ("'


def test_a_hostile_id_or_block_name_never_reaches_generated_code(tmp_path):
    blocks, layers, _ = MODELS["residual"]
    with pytest.raises(ProjectError, match="must start with a letter"):
        spec.loads(json.dumps(project_dict("h", blocks, [{**layers[0], "id": HOSTILE}, *layers[1:]])))
    with pytest.raises(ProjectError, match="a block's name must start with a letter"):
        spec.loads(json.dumps(project_dict("h", {HOSTILE: RESIDUAL}, [layers[0], layer(HOSTILE)])))
    # Were one to get past the file's checks, the generator refuses it.
    model = untrained(tmp_path, "residual")
    marker = tmp_path / "marker"
    for bad in (HOSTILE, f"ok\nopen({str(marker)!r}, 'w').close()", "stage1.x", "_private", "class",
                "state_dict", 3):
        for change in ("key", "block", "inner key"):
            changed = copy.copy(model)
            changed.report = copy.deepcopy(model.report)
            target = {"key": changed.report.layers[0], "block": changed.report.layers[1],
                      "inner key": changed.report.layers[1].blocks[1].layers[4]}[change]
            if change == "block":
                if bad in ("state_dict",):
                    continue  # a fine class name
                target.type = bad
            else:
                target.key = bad
            with pytest.raises(SourceError):
                python_source(changed, "w.safetensors")
            with pytest.raises(ExportError, match="the Python source cannot be written"):
                export(changed, "python", tmp_path / "evil.py")
    assert not marker.exists() and not (tmp_path / "evil.py").exists()
    assert not (tmp_path / "evil.safetensors").exists()


def test_a_block_parameter_that_is_text_is_a_literal_in_its_comment(tmp_path):
    blocks = {"Act": {"params": [{"name": "kind", "kind": "str", "default": "tanh",
                                  "choices": ["tanh", "relu"]}],
                      "layers": [layer("Tanh")]}}
    model_path = tmp_path / "act.guidl.json"
    model_path.write_text(json.dumps(project_dict("act", blocks, [conv(2, padding=1), layer("Act"), *HEAD])))
    model = load_trained(model_path)
    model.report = copy.deepcopy(model.report)
    model.report.layers[1].params["kind"] = "tanh\nimport os"
    source = python_source(model, "w.safetensors")
    assert "# Act(kind='tanh\\nimport os') on inputs of shape (2, 8, 8)" in source
    assert "\nimport os" not in source


def test_a_layer_a_format_cannot_express_is_named_inside_its_block(tmp_path):
    # torch's ONNX exporter translates AdaptiveMaxPool2d only when the output
    # size divides the input's (8 x 8 to 3 x 3 does not).
    blocks = {"Pool": {"params": [], "layers": [layer("ReLU"), layer("AdaptiveMaxPool2d", "squeeze", output_size=3)]}}
    path = tmp_path / "pool.guidl.json"
    path.write_text(json.dumps(project_dict("pool", blocks, [
        {"id": "stem", **conv(2, padding=1)}, layer("Pool", "pooled"), layer("Flatten"),
        layer("Linear", out_features=10)])))
    model = load_trained(path)
    with pytest.raises(ExportError) as caught:
        export(model, "onnx", tmp_path / "m.onnx")
    assert str(caught.value) == (
        "layer 1 'pooled' (Pool), its layer 1 'squeeze' (AdaptiveMaxPool2d) cannot be expressed in "
        "ONNX: torch's ONNX exporter has no translation for aten.adaptive_max_pool2d. The other "
        "formats may still work.")
    assert list(tmp_path.iterdir()) == [path]
    assert export(model, "pt2", tmp_path / "m.pt2").max_difference == 0


def test_token_ids_for_a_graph_suit_the_embedding_that_takes_the_input(tmp_path):
    layers = [layer("Embedding", "embed", num_embeddings=7, embedding_dim=4),
              layer("Linear", "left", out_features=4), layer("Linear", "right", ["embed"], out_features=4),
              layer("Add", "both", ["left", "right"]), layer("Flatten"), layer("Linear", out_features=3)]
    document = project_dict("tokens", {}, layers)
    document["model"].update(input_shape=[5], input_dtype="int64")
    path = tmp_path / "tokens.guidl.json"
    path.write_text(json.dumps(document))
    model = load_trained(path)
    batch = model.example_batch(64)
    assert batch.dtype == torch.int64 and int(batch.max()) == 6 and int(batch.min()) == 0
    for fmt in ("onnx", "python", "bundle"):
        assert export(model, fmt, tmp_path / f"tokens{FORMATS[fmt]}").max_difference <= 1e-4


def test_predict_refuses_token_ids_beyond_any_branch_s_embedding(tmp_path):
    from guidl.engine.predict import PredictError, predict, read_inputs

    layers = [layer("Embedding", "wide", num_embeddings=9, embedding_dim=4),
              layer("Embedding", "narrow", ["input"], num_embeddings=6, embedding_dim=4),
              layer("Add", "both", ["wide", "narrow"]), layer("Flatten"), layer("Linear", out_features=3)]
    document = project_dict("tokens", {}, layers)
    document["model"].update(input_shape=[2], input_dtype="int64")
    path = tmp_path / "tokens.guidl.json"
    path.write_text(json.dumps(document))
    model = load_trained(path)
    (tmp_path / "ok.csv").write_text("5,0\n1,2\n")
    x, names = read_inputs(model, [str(tmp_path / "ok.csv")])
    assert len(predict(model, x, names=names)) == 2
    (tmp_path / "bad.csv").write_text("5,0\n6,2\n")
    with pytest.raises(PredictError, match="row 2 holds 6; this model takes token ids, whole numbers from 0 to 5"):
        read_inputs(model, [str(tmp_path / "bad.csv")])
