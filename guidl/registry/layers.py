"""The layer catalogue: every ``torch.nn`` layer a guidl model can stack.

Names, parameter names and defaults are those of ``torch.nn`` (a test checks
the defaults against torch's signatures). Sizes that follow from the layer
before carry ``inferred``; guidl fills them in.

``info`` of each entry:

- ``input_ranks``: accepted ranks of one sample (batch excluded), ``None`` for any;
- ``input``: ``"float"`` or ``"index"`` (integer token ids, for Embedding);
- ``spatial``: for convolutions and pools, the number of spatial dimensions
  (used to check a kernel against its input before torch does);
- ``key_params``: the parameters shown beside the name (``Conv2d(32, 3)``);
- ``merge``: for layers that take two or more inputs, how they combine them
  (``"elementwise"``: same shapes, as ``Add``; ``"concat"``: joined along ``dim``);
- ``backbone``: a pretrained torchvision network (``registry/backbones.py``), not
  a ``torch.nn`` class: its parameters are guidl's, not a torch signature's.
"""

from __future__ import annotations

from .backbones import BACKBONE_LAYERS
from .schema import REQUIRED, Catalogue, Entry, Param

#: Largest size accepted in a size parameter. Real models stay far below; the
#: memory check in the engine refuses models that would not fit long before.
MAX_SIZE = 2**31 - 1

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _size(name: str, help: str, suggested: int | None = None, default=REQUIRED) -> Param:
    return Param(name, "int", default, help, minimum=1, maximum=MAX_SIZE, suggested=suggested)


def _inferred(name: str, source: str, help: str, kind: str = "int") -> Param:
    return Param(name, kind, REQUIRED, help, minimum=1, maximum=MAX_SIZE, inferred=source)


def _ints(name: str, default, help: str, arity: int | None, minimum: int = 1, suggested=None,
          nullable: bool = False, keywords: tuple[str, ...] = ()) -> Param:
    return Param(name, "ints", default, help, minimum=minimum, maximum=MAX_SIZE, arity=arity,
                 suggested=suggested, nullable=nullable, keywords=keywords)


def _prob(name: str, default: float, help: str) -> Param:
    return Param(name, "float", default, help, minimum=0.0, maximum=1.0)


def _eps(default: float) -> Param:
    return Param("eps", "float", default, "added to the variance for numerical stability",
                 minimum=0.0, exclusive_minimum=True)


def _bias() -> Param:
    return Param("bias", "bool", True, "learn an additive bias")


def _conv(name: str, dims: int, help: str, transpose: bool = False) -> Entry:
    params = [
        _inferred("in_channels", "channels", "channels of the input (from the layer before)"),
        _size("out_channels", "number of filters (output channels)", suggested=32),
        _ints("kernel_size", REQUIRED, "size of the filter window", dims, suggested=3),
        _ints("stride", 1, "step of the filter window", dims),
    ]
    if transpose:
        params += [
            _ints("padding", 0, "zero-padding removed from each side of the output", dims, minimum=0),
            _ints("output_padding", 0, "extra size added to one side of the output", dims, minimum=0),
            _size("groups", "blocked connections from input to output channels", default=1),
            _bias(),
            _ints("dilation", 1, "spacing between filter elements", dims),
        ]
    else:
        params += [
            _ints("padding", 0, "padding added to each side; 'same' keeps the size", dims,
                  minimum=0, keywords=("same", "valid")),
            _ints("dilation", 1, "spacing between filter elements", dims),
            _size("groups", "blocked connections from input to output channels", default=1),
            _bias(),
            Param("padding_mode", "str", "zeros", "how the border is padded", choices=PADDING_MODES),
        ]
    return Entry(name, "Convolution", help, tuple(params), {
        "input_ranks": [dims + 1], "input": "float", "spatial": dims,
        "key_params": ["out_channels", "kernel_size"],
    })


def _pool(name: str, dims: int, help: str, average: bool = False) -> Entry:
    params = [
        _ints("kernel_size", REQUIRED, "size of the pooling window", dims, suggested=2),
        _ints("stride", None, "step of the window (default: kernel_size)", dims, nullable=True),
        _ints("padding", 0, "implicit padding on each side", dims, minimum=0),
    ]
    if average:
        params += [
            Param("ceil_mode", "bool", False, "round the output size up instead of down"),
            Param("count_include_pad", "bool", True, "count the padding in the average"),
        ]
    else:
        params += [
            _ints("dilation", 1, "spacing between window elements", dims),
            Param("ceil_mode", "bool", False, "round the output size up instead of down"),
        ]
    return Entry(name, "Pooling", help, tuple(params), {
        "input_ranks": [dims + 1], "input": "float", "spatial": dims, "key_params": ["kernel_size"],
    })


def _batchnorm(name: str, ranks: list[int], help: str) -> Entry:
    return Entry(name, "Normalization", help, (
        _inferred("num_features", "channels", "channels or features of the input"),
        _eps(1e-5),
        Param("momentum", "float", 0.1, "weight of the newest batch in the running statistics",
              minimum=0.0, maximum=1.0, nullable=True),
        Param("affine", "bool", True, "learn a scale and a shift"),
        Param("track_running_stats", "bool", True, "keep running statistics for evaluation"),
    ), {"input_ranks": ranks, "input": "float", "key_params": []})


def _recurrent(name: str, help: str, nonlinearity: bool = False) -> Entry:
    params = [
        _inferred("input_size", "features", "features per time step (from the layer before)"),
        _size("hidden_size", "features of the hidden state", suggested=128),
        Param("num_layers", "int", 1, "recurrent layers stacked inside this layer", minimum=1,
              maximum=100),
    ]
    if nonlinearity:
        params.append(Param("nonlinearity", "str", "tanh", "activation of the hidden state",
                            choices=("tanh", "relu")))
    params += [
        _bias(),
        _prob("dropout", 0.0, "dropout between the stacked recurrent layers (num_layers > 1)"),
        Param("bidirectional", "bool", False, "read the sequence in both directions"),
        Param("return_sequences", "bool", False,
              "give the next layer every time step (true) or only the last one (false)"),
    ]
    return Entry(name, "Sequence", help, tuple(params), {
        "input_ranks": [2], "input": "float", "key_params": ["hidden_size"],
        "guidl_params": ["return_sequences"],
    })


def _activation(name: str, help: str, *params: Param) -> Entry:
    return Entry(name, "Activation", help, params, {
        "input_ranks": None, "input": "float", "key_params": [p.name for p in params][:1],
    })


LAYERS = Catalogue("layer", [
    # -- Core ---------------------------------------------------------------
    Entry("Linear", "Core", "Fully connected layer: every output is a weighted sum of all inputs.", (
        _inferred("in_features", "features", "features of the input (from the layer before)"),
        _size("out_features", "number of outputs", suggested=128),
        _bias(),
    ), {"input_ranks": [1, 2], "input": "float", "key_params": ["out_features"]}),
    Entry("Dropout", "Core", "Zeroes random inputs while training, against overfitting.", (
        _prob("p", 0.5, "probability of zeroing an element"),
    ), {"input_ranks": None, "input": "float", "key_params": ["p"]}),
    Entry("Dropout1d", "Core",
          "Zeroes whole random channels of a (channels, length) sequence while training.", (
        _prob("p", 0.5, "probability of zeroing a channel"),
    ), {"input_ranks": [2], "input": "float", "key_params": ["p"]}),
    Entry("Dropout2d", "Core", "Zeroes whole random channels of an image while training.", (
        _prob("p", 0.5, "probability of zeroing a channel"),
    ), {"input_ranks": [3], "input": "float", "key_params": ["p"]}),
    Entry("Identity", "Core", "Passes its input through unchanged (a placeholder).", (),
          {"input_ranks": None, "input": "float", "key_params": []}),
    # -- Reshape ------------------------------------------------------------
    Entry("Flatten", "Reshape", "Flattens each sample into one vector, e.g. before Linear.", (
        Param("start_dim", "int", 1, "first dimension to flatten (0 is the batch)"),
        Param("end_dim", "int", -1, "last dimension to flatten"),
    ), {"input_ranks": None, "input": "any", "key_params": []}),
    Entry("Unflatten", "Reshape", "Reshapes one dimension into several, e.g. a vector into an image.", (
        Param("dim", "int", REQUIRED, "dimension to unflatten (0 is the batch)", suggested=1),
        Param("unflattened_size", "int_list", REQUIRED, "the shape it becomes", minimum=1,
              suggested=[1, 28, 28]),
    ), {"input_ranks": None, "input": "any", "key_params": ["unflattened_size"]}),
    Entry("Upsample", "Reshape", "Enlarges an image or sequence by a factor or to a size.", (
        _ints("size", None, "output size (give this or scale_factor)", None, nullable=True),
        Param("scale_factor", "floats", None, "multiplier of the size (give this or size)",
              minimum=0.0, exclusive_minimum=True, maximum=1024.0, nullable=True,
              suggested=2.0),
        Param("mode", "str", "nearest", "interpolation",
              choices=("nearest", "nearest-exact", "linear", "bilinear", "bicubic")),
        Param("align_corners", "bool", None, "align corner pixels (linear modes only)", nullable=True),
    ), {"input_ranks": [2, 3], "input": "float", "key_params": ["scale_factor"]}),
    Entry("PixelShuffle", "Reshape",
          "Rearranges channels into space: (C*r*r, H, W) becomes (C, H*r, W*r), for sub-pixel upsampling.", (
              Param("upscale_factor", "int", REQUIRED, "factor r the height and width grow by; the "
                    "channels must be a multiple of r*r", minimum=1, maximum=MAX_SIZE, suggested=2),
          ), {"input_ranks": [3], "input": "float", "key_params": ["upscale_factor"]}),
    Entry("ZeroPad2d", "Reshape", "Pads the borders of an image with zeros.", (
        _ints("padding", REQUIRED, "zeros added on each side: one number for all four, or "
              "[left, right, top, bottom]", 4, minimum=0, suggested=1),
    ), {"input_ranks": [3], "input": "float", "key_params": ["padding"]}),
    # -- Convolution ----------------------------------------------------------
    _conv("Conv1d", 1, "1-D convolution over sequences shaped (channels, length)."),
    _conv("Conv2d", 2, "2-D convolution over images shaped (channels, height, width)."),
    _conv("Conv3d", 3, "3-D convolution over volumes or clips shaped (channels, depth, height, width)."),
    _conv("ConvTranspose1d", 1, "Transposed 1-D convolution: learnable upsampling of sequences.",
          transpose=True),
    _conv("ConvTranspose2d", 2, "Transposed 2-D convolution: learnable upsampling of images.",
          transpose=True),
    # -- Pooling --------------------------------------------------------------
    _pool("MaxPool1d", 1, "Keeps the largest value in each window of a sequence."),
    _pool("MaxPool2d", 2, "Keeps the largest value in each window of an image."),
    _pool("MaxPool3d", 3, "Keeps the largest value in each window of a volume."),
    _pool("AvgPool2d", 2, "Averages each window of an image.", average=True),
    Entry("AdaptiveAvgPool2d", "Pooling", "Averages an image down to a fixed output size.", (
        _ints("output_size", REQUIRED, "height and width of the output", 2, suggested=1),
    ), {"input_ranks": [3], "input": "float", "key_params": ["output_size"]}),
    Entry("AdaptiveMaxPool2d", "Pooling", "Keeps the largest values of an image at a fixed output "
          "size (exported to ONNX only when that size divides the input's).", (
        _ints("output_size", REQUIRED, "height and width of the output", 2, suggested=1),
    ), {"input_ranks": [3], "input": "float", "key_params": ["output_size"]}),
    # -- Normalization --------------------------------------------------------
    _batchnorm("BatchNorm1d", [1, 2], "Normalises each feature over the batch."),
    _batchnorm("BatchNorm2d", [3], "Normalises each channel of an image over the batch."),
    _batchnorm("BatchNorm3d", [4], "Normalises each channel of a volume over the batch."),
    Entry("LayerNorm", "Normalization", "Normalises the last dimension of each sample.", (
        Param("normalized_shape", "int_list", REQUIRED, "trailing shape normalised (from the layer before)",
              minimum=1, inferred="normalized_shape"),
        _eps(1e-5),
        Param("elementwise_affine", "bool", True, "learn a scale (and shift) per element"),
        _bias(),
    ), {"input_ranks": None, "input": "float", "key_params": []}),
    Entry("GroupNorm", "Normalization", "Normalises groups of channels of each sample.", (
        _size("num_groups", "groups the channels are divided into (must divide them)", suggested=1),
        _inferred("num_channels", "channels", "channels of the input (from the layer before)"),
        _eps(1e-5),
        Param("affine", "bool", True, "learn a scale and a shift per channel"),
    ), {"input_ranks": [1, 2, 3], "input": "float", "key_params": ["num_groups"]}),
    Entry("InstanceNorm2d", "Normalization",
          "Normalises each channel of each image on its own (style transfer, small batches).", (
              _inferred("num_features", "channels", "channels of the input (from the layer before)"),
              _eps(1e-5),
              Param("momentum", "float", 0.1, "weight of the newest batch in the running statistics",
                    minimum=0.0, maximum=1.0),
              Param("affine", "bool", False, "learn a scale and a shift per channel"),
              Param("track_running_stats", "bool", False,
                    "keep running statistics for evaluation (else each image's own are used)"),
          ), {"input_ranks": [3], "input": "float", "key_params": []}),
    # -- Activation -----------------------------------------------------------
    _activation("ReLU", "Rectified linear unit, max(0, x): the default activation."),
    _activation("LeakyReLU", "Like ReLU but lets a small slope through below zero.",
                Param("negative_slope", "float", 0.01, "slope below zero", minimum=0.0)),
    _activation("PReLU", "Like LeakyReLU, but the slope below zero is learned.",
                Param("num_parameters", "int", 1, "slopes learned: 1 for all, or one per channel "
                      "(the input's channels or features)", minimum=1, maximum=MAX_SIZE),
                Param("init", "float", 0.25, "initial slope below zero")),
    _activation("ELU", "Smooth exponential curve below zero.",
                Param("alpha", "float", 1.0, "value approached for large negative inputs", minimum=0.0)),
    _activation("GELU", "Gaussian error linear unit, used in transformers.",
                Param("approximate", "str", "none", "tanh approximation", choices=("none", "tanh"))),
    _activation("SiLU", "Sigmoid-weighted linear unit, x * sigmoid(x) (also called swish)."),
    _activation("Mish", "Smooth self-gated activation, x * tanh(softplus(x))."),
    _activation("Hardswish",
                "Piecewise-linear approximation of SiLU, cheap on mobile hardware (MobileNetV3)."),
    _activation("Softplus", "Smooth approximation of ReLU, log(1 + exp(beta * x)) / beta; always positive.",
                Param("beta", "float", 1.0, "sharpness of the curve", minimum=0.0,
                      exclusive_minimum=True),
                Param("threshold", "float", 20.0, "above beta * x > threshold the output is x itself")),
    _activation("Sigmoid", "Squashes to (0, 1); for BCELoss outputs."),
    _activation("Tanh", "Squashes to (-1, 1)."),
    _activation("Softmax", "Turns scores into probabilities that sum to 1 (not before CrossEntropyLoss).",
                Param("dim", "int", -1, "dimension that sums to 1 (guidl's default: the last)")),
    _activation("LogSoftmax", "Log of Softmax; pair it with NLLLoss.",
                Param("dim", "int", -1, "dimension normalised (guidl's default: the last)")),
    # -- Sequence ---------------------------------------------------------------
    Entry("Embedding", "Sequence", "Looks up a learned vector for each integer token id.", (
        _size("num_embeddings", "vocabulary size: token ids run from 0 to this minus 1", suggested=128),
        _size("embedding_dim", "length of each token's vector", suggested=32),
        Param("padding_idx", "int", None, "token id whose vector stays zero", nullable=True),
        Param("max_norm", "float", None, "renormalise vectors longer than this", nullable=True,
              minimum=0.0, exclusive_minimum=True),
    ), {"input_ranks": [1], "input": "index", "key_params": ["num_embeddings", "embedding_dim"]}),
    Entry("PositionalEmbedding", "Sequence",
          "Adds a learned vector for each time step (position) of a (time, features) sequence; put it "
          "after Embedding, before attention, which otherwise ignores the order.", (
              _inferred("num_positions", "time", "time steps of the input (from the layer before)"),
              _inferred("embedding_dim", "features", "features of each time step (from the layer before)"),
          ), {"input_ranks": [2], "input": "float", "key_params": []}),
    _recurrent("RNN", "Simple recurrent layer over (time, features) sequences.", nonlinearity=True),
    _recurrent("LSTM", "Long short-term memory layer over (time, features) sequences."),
    _recurrent("GRU", "Gated recurrent unit layer over (time, features) sequences."),
    Entry("MultiheadAttention", "Sequence",
          "Self-attention over a (time, features) sequence: every time step looks at every other "
          "(query, key and value are the input); gives the attended sequence.", (
              _inferred("embed_dim", "features", "features of each time step (from the layer before)"),
              _size("num_heads", "attention heads, each over embed_dim / num_heads features "
                    "(must divide embed_dim)", suggested=1),
              _prob("dropout", 0.0, "dropout on the attention weights while training"),
              _bias(),
              Param("add_bias_kv", "bool", False, "add a learned bias step to the keys and values"),
              Param("add_zero_attn", "bool", False, "add a step of zeros to the keys and values"),
          ), {"input_ranks": [2], "input": "float", "key_params": ["num_heads"]}),
    Entry("TransformerEncoderLayer", "Sequence",
          "One transformer encoder block over a (time, features) sequence: self-attention and a "
          "feed-forward network, each with a residual connection and LayerNorm.", (
              _inferred("d_model", "features", "features of each time step (from the layer before)"),
              _size("nhead", "attention heads (must divide d_model)", suggested=1),
              _size("dim_feedforward", "features of the feed-forward network's hidden layer",
                    default=2048),
              _prob("dropout", 0.1, "dropout after attention and in the feed-forward network"),
              Param("activation", "str", "relu", "activation of the feed-forward network",
                    choices=("relu", "gelu")),
              Param("layer_norm_eps", "float", 1e-5, "added to the variance in LayerNorm",
                    minimum=0.0, exclusive_minimum=True),
              Param("norm_first", "bool", False,
                    "LayerNorm before attention and feed-forward (pre-LN; often trains more "
                    "stably) instead of after"),
              Param("bias", "bool", True, "learn additive biases in the linear and LayerNorm layers"),
          ), {"input_ranks": [2], "input": "float", "key_params": ["nhead"]}),
    # -- Merge ------------------------------------------------------------------
    # Layers that take two or more inputs (``inputs`` in the project file).
    Entry("Add", "Merge", "Adds its inputs element by element (a residual or skip connection).", (),
          {"input_ranks": None, "input": "float", "key_params": [], "merge": "elementwise"}),
    Entry("Multiply", "Merge", "Multiplies its inputs element by element (gating, attention masks).",
          (), {"input_ranks": None, "input": "float", "key_params": [], "merge": "elementwise"}),
    Entry("Concat", "Merge", "Joins its inputs along one dimension (channels by default), as torch.cat.", (
        Param("dim", "int", 1, "dimension joined, counted with the batch as in torch.cat "
                               "(1: channels of an image, features of a vector; -1: the last)"),
    ), {"input_ranks": None, "input": "float", "key_params": ["dim"], "merge": "concat"}),
    # -- Pretrained ---------------------------------------------------------------
    # torchvision classification models without their head (registry/backbones.py).
    *BACKBONE_LAYERS,
])

#: Parameters whose guidl default differs from torch's, and why. The defaults
#: test reads this; README mentions it.
GUIDL_DEFAULTS = {
    ("Softmax", "dim"): "torch's None picks a dimension implicitly and warns",
    ("LogSoftmax", "dim"): "torch's None picks a dimension implicitly and warns",
    ("TransformerEncoderLayer", "activation"): "torch's default is the function F.relu, named "
                                               "'relu' in a project file",
}
