"""Small projects and data shared by the tests (``pythonpath`` includes tests/)."""

from guidl.spec import Component, Data, Layer, Model, Project, Training


def small_project(**changes) -> Project:
    """A tiny, fast project: an MLP with dropout on the digits."""
    project = Project(
        name="boring",
        model=Model([Layer("Flatten"), Layer("Linear", {"out_features": 32}), Layer("ReLU"),
                     Layer("Dropout", {"p": 0.2}), Layer("Linear", {"out_features": 10})]),
        data=Data("digits", {}, val_fraction=0.2, batch_size=64),
        training=Training(Component("CrossEntropyLoss"), Component("Adam", {"lr": 0.005}),
                          Component("StepLR", {"step_size": 2, "gamma": 0.5}), epochs=4, device="cpu",
                          seed=3),
    )
    for key, value in changes.items():
        target = project
        *parents, last = key.split("__")
        for parent in parents:
            target = getattr(target, parent)
        setattr(target, last, value)
    return project
