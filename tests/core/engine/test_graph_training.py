"""Graph models through training: the same numbers as the network written by
hand, exact resume, a branch nobody uses, DistributedDataParallel, and the
messages that name a layer."""

import io
import math
import socket

import pytest
import torch
from torch import nn

from guidl.engine.build import analyze
from guidl.engine.distributed import DistributedContext
from guidl.engine.graph import unreached_parameters
from guidl.engine.summary import summary_text
from guidl.engine.trainer import NonFiniteLossError, Trainer
from guidl.spec import Component, Data, Layer, ProjectError
from helpers import small_graph_project


class HandWritten(nn.Module):
    """``small_graph_project()``'s network as one would write it in PyTorch,
    its layers created in the project's order (so one seed gives both the
    same initial weights)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, padding=1)
        self.conv1 = nn.Conv2d(8, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(8)
        self.down = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.shortcut = nn.Conv2d(8, 16, 1, stride=2)
        self.head = nn.Linear(16 * 4 * 4, 10)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        y = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.conv2(y)) + x)
        x = torch.relu(self.down(x)) + self.shortcut(x)
        return self.head(torch.flatten(x, 1))


def train_by_hand(model, data, epochs, batch_size, lr, seed):
    """The plain PyTorch loop: Adam (fused, as guidl takes it where torch has
    it), cross-entropy, each epoch's order drawn from a generator seeded with
    ``seed``; returns the validation accuracy."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, fused=True)
    generator = torch.Generator().manual_seed(seed)
    x, y = data.train.x, data.train.y
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), batch_size):
            index = order[start:start + batch_size]
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x[index]), y[index]).backward()
            optimizer.step()
    model.eval()
    with torch.no_grad():
        predicted = model(data.val.x).argmax(dim=1)
    return float((predicted == data.val.y).float().mean())


def test_a_graph_trains_to_the_accuracy_of_the_same_network_written_by_hand(digits_data):
    project = small_graph_project()
    trainer = Trainer(project, data=digits_data, epochs=2)
    trainer.setup()
    torch.manual_seed(project.training.seed)
    hand = HandWritten()
    graph_weights = list(trainer.model.state_dict().values())
    hand_weights = list(hand.state_dict().values())
    # The same parameters, in the same order, with the same initial values.
    assert [w.shape for w in graph_weights] == [w.shape for w in hand_weights]
    assert all(torch.equal(a, b) for a, b in zip(graph_weights, hand_weights))
    count = sum(p.numel() for p in hand.parameters())
    report = trainer.built.report
    assert report.total_params == count == sum(p.numel() for p in trainer.model.parameters())
    assert f"Total params: {count:,} " in summary_text(analyze(project.model, (1, 8, 8)))

    result = trainer.fit()
    expected = train_by_hand(hand, digits_data, 2, project.data.batch_size,
                             project.training.optimizer.params["lr"], project.training.seed)
    assert expected > 0.9
    assert math.isclose(result.history[-1].val_accuracy, expected, abs_tol=1 / len(digits_data.val))
    for a, b in zip(trainer.model.state_dict().values(), hand.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-4)


def _saved(state):
    """``state`` as written to checkpoint.pt and read back."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def test_a_graph_resumes_exactly(digits_data):
    # A repeated block, dropout and augmentation: every kind of state a resume needs.
    def project(epochs):
        layers = small_graph_project(repeat=2).model.layers
        layers.insert(-1, Layer("Dropout", {"p": 0.2}))
        return small_graph_project(repeat=2, model__layers=layers, training__epochs=epochs,
                                   data__augment={"crop_padding": 1},
                                   training__scheduler=Component("StepLR", {"step_size": 1, "gamma": 0.5}))

    whole = Trainer(project(2), data=digits_data)
    expected = whole.fit()
    first = Trainer(project(1), data=digits_data)
    first.fit()
    state = _saved(first.state_dict())
    assert "res.1.conv1.weight" in state["model"] and "shortcut.weight" in state["model"]
    resumed = Trainer(project(2), data=digits_data)
    resumed.load_state_dict(state)
    result = resumed.fit()
    assert [m.epoch for m in result.history] == [1, 2]
    for a, b in zip(expected.history, result.history):
        assert (a.train_loss, a.val_loss, a.train_accuracy, a.lr) == (b.train_loss, b.val_loss,
                                                                       b.train_accuracy, b.lr)
    for (key, a), (other, b) in zip(whole.model.state_dict().items(), resumed.model.state_dict().items()):
        assert key == other and torch.equal(a, b), key


def test_a_graph_with_an_unused_branch_trains_and_leaves_that_branch_as_it_was(digits_data):
    project = small_graph_project(unused_branch=True, training__epochs=1)
    trainer = Trainer(project, data=digits_data)
    trainer.setup()
    assert unreached_parameters(trainer.model) == ["aux.weight", "aux.bias"]
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    result = trainer.fit()
    assert result.history[0].val_accuracy > 0.8
    after = trainer.model.state_dict()
    assert torch.equal(before["aux.weight"], after["aux.weight"])
    assert torch.equal(before["aux.bias"], after["aux.bias"])
    assert not torch.equal(before["head.weight"], after["head.weight"])
    assert any(note.startswith("layer 6 'aux' (Conv2d): its output is not used by any layer")
               for note in trainer.notes), trainer.notes
    # Its parameters have no optimizer state, and the checkpoint still resumes.
    resumed = Trainer(small_graph_project(unused_branch=True, training__epochs=2), data=digits_data)
    resumed.load_state_dict(_saved(trainer.state_dict()))
    assert len(resumed.fit().history) == 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_distributed_data_parallel_trains_a_graph_with_an_unused_branch(digits_data, monkeypatch):
    """A real gloo process group of one: DDP waits for a gradient of every
    parameter unless told that some get none, which is told only then."""
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(_free_port()))
    context = DistributedContext(0, 0, 1, 1, "gloo", torch.device("cpu"))
    context.start()
    try:
        # With DDP not told, the second step fails: it waits for gradients that never come.
        trainer = Trainer(small_graph_project(unused_branch=True, training__epochs=1),
                          data=digits_data, distributed=context)
        result = trainer.fit()
        assert trainer._train_model.find_unused_parameters
        plain = Trainer(small_graph_project(), data=digits_data, distributed=context, epochs=1)
        plain.setup()
        assert not plain._train_model.find_unused_parameters
    finally:
        context.close()
    assert trainer.step > 2 and result.history[-1].val_accuracy > 0.8
    assert not any(key.startswith("module.") for key in trainer.state_dict()["model"])


def test_a_non_finite_loss_names_the_layer_by_its_id(digits_data):
    class Explode:
        def on_epoch_start(self, trainer, epoch_index):
            for group in trainer.optimizer.param_groups:
                group["lr"] = 1e30

    project = small_graph_project(training__optimizer=Component("SGD", {"lr": 0.01}))
    with pytest.raises(NonFiniteLossError) as caught:
        Trainer(project, data=digits_data, callbacks=[Explode()]).fit()
    layer = caught.value.layer
    assert layer is not None
    name = project.model.layers[layer].id
    assert name and f"layer {layer} '{name}' (" in str(caught.value)


def _two_embeddings(**changes):
    """A text model whose two Embeddings (96 and 10 rows) both take the input."""
    return small_graph_project(
        model__input_shape=[16], model__input_dtype="int64", model__blocks={},
        data=Data("text", {"seq_len": 16}, val_fraction=0.1, batch_size=64),
        model__layers=[Layer("Embedding", {"num_embeddings": 96, "embedding_dim": 8}, id="chars"),
                       Layer("Embedding", {"num_embeddings": 10, "embedding_dim": 8}, id="small",
                             inputs=["input"]),
                       Layer("Add", inputs=["chars", "small"]), Layer("Flatten"),
                       Layer("Linear", {"out_features": 96})], **changes)


def test_predict_takes_the_token_ids_every_input_embedding_has_a_row_for(tmp_path):
    from guidl.engine.build import build
    from guidl.engine.export import TrainedModel
    from guidl.engine.predict import PredictError, read_inputs

    project = _two_embeddings()
    built = build(project.model, (16,))
    model = TrainedModel(project, built.module, built.report, (16,), "int64", trained=False)
    rows = tmp_path / "rows.csv"
    rows.write_text(",".join(["9"] * 16) + "\n" + ",".join(["12"] * 16) + "\n")
    with pytest.raises(PredictError, match="row 2 holds 12; this model takes token ids, whole numbers "
                                           "from 0 to 9"):
        read_inputs(model, [str(rows)])


def test_every_embedding_that_takes_the_input_is_checked_against_the_token_ids():
    from guidl.engine.data import prepare

    project = _two_embeddings()
    data = prepare(project, seed=0)
    trainer = Trainer(project, data=data)
    with pytest.raises(ProjectError) as caught:
        trainer.setup()
    problems = [str(p) for p in caught.value.problems]
    assert any(p.startswith("model.layers[1].params.num_embeddings: is 10 but the data holds token ids up to")
               for p in problems), problems


def test_a_batch_norm_inside_a_block_is_named_with_the_block_use(digits_data):
    from guidl.spec import Block

    dense = Block([], [Layer("Linear", {"out_features": 16}), Layer("BatchNorm1d"), Layer("ReLU")])
    project = small_graph_project(data__batch_size=1, model__blocks={"Dense": dense}, model__layers=[
        Layer("Flatten"), Layer("Dense", id="hidden"), Layer("Linear", {"out_features": 10})])
    with pytest.raises(ProjectError) as caught:
        Trainer(project, data=digits_data).setup()
    assert str(caught.value.problems[0]) == (
        "data.batch_size: is 1, but layer 1 'hidden' (Dense), its layer 1 (BatchNorm1d) normalises "
        "over the batch and needs at least 2 samples per batch in training: set it to 2 or more")


def test_a_non_finite_output_inside_a_block_names_the_layer_there(digits_data):
    project = small_graph_project(repeat=2)
    trainer = Trainer(project, data=digits_data)
    trainer.setup()
    with torch.no_grad():
        trainer.model.res[1].conv2.weight[0, 0, 0, 0] = math.inf
    assert trainer._first_non_finite_layer() == (
        2, "layer 2 'res' (ResidualBlock), repetition 2, its layer 3 'conv2' (Conv2d)")
    with torch.no_grad():
        trainer.model.res[1].conv2.weight.zero_()
        trainer.model.head.bias[0] = math.nan  # NaN weights, but only the last output shows it
    assert trainer._first_non_finite_layer() == (len(project.model.layers) - 1, "layer 8 'head' (Linear)")


def test_unreached_parameters_are_found_inside_repeated_blocks_too():
    from guidl.engine.build import build

    project = small_graph_project(repeat=2)
    block = project.model.blocks["ResidualBlock"]
    block.layers.insert(5, Layer("Conv2d", {"out_channels": 2, "kernel_size": 1}, id="probe",
                                 inputs=["conv1"]))
    module = build(project.model, (1, 8, 8)).module
    assert unreached_parameters(module) == ["res.0.probe.weight", "res.0.probe.bias",
                                            "res.1.probe.weight", "res.1.probe.bias"]
    assert unreached_parameters(build(small_graph_project().model, (1, 8, 8)).module) == []


def test_channels_last_reaches_the_convolutions_inside_blocks(digits_data):
    trainer = Trainer(small_graph_project(repeat=2, training__channels_last=True), data=digits_data)
    trainer.setup()
    weights = [trainer.model.stem.weight, trainer.model.res[1].conv2.weight, trainer.model.shortcut.weight]
    assert all(w.is_contiguous(memory_format=torch.channels_last) for w in weights)
    x, y = digits_data.train.x[:16], digits_data.train.y[:16]
    before = trainer.model.res[1].conv2.weight.clone()
    loss, output = trainer._train_step(x, y)
    assert torch.isfinite(loss) and output.shape == (16, 10)
    assert not torch.equal(before, trainer.model.res[1].conv2.weight)


def test_torch_compile_traces_a_graph_whole():
    """torch.compile follows GraphModel's forward plan without a graph break
    (checked with dynamo's eager backend, which compiles nothing: seconds, not
    the minute inductor takes; the trainer itself compiles stacks and graphs alike)."""
    from guidl.engine.build import build

    torch._dynamo.reset()
    module = build(small_graph_project(repeat=2, unused_branch=True).model, (1, 8, 8)).module
    compiled = torch.compile(module, backend="eager", fullgraph=True)
    x = torch.randn(4, 1, 8, 8)
    torch.testing.assert_close(compiled(x), module(x))
    compiled(x).sum().backward()
    assert module.res[0].conv1.weight.grad is not None and module.aux.weight.grad is None
