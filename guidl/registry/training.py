"""Catalogues of losses, optimizers and learning-rate schedulers.

Names and parameters are those of ``torch.nn`` / ``torch.optim`` /
``torch.optim.lr_scheduler``, with torch's defaults (checked by a test).

Loss ``info``: ``targets`` is ``"class_index"`` (integer class per sample) or
``"like_output"`` (a tensor shaped like the model's output); ``output`` says
what the model's last layer must produce (``"logits"``, ``"log_probs"``,
``"probabilities"``, ``"values"``).

Scheduler ``info``: ``step`` is ``"epoch"``, ``"batch"`` or ``"metric"`` (steps once
per epoch with the monitored validation metric).
"""

from __future__ import annotations

from .schema import REQUIRED, Catalogue, Entry, Param



def _loss(name: str, help: str, targets: str, output: str, *params: Param,
          task: str = "classification") -> Entry:
    # No ``reduction``: guidl always averages over the batch, so that losses of
    # batches, epochs and splits stay comparable on the charts.
    return Entry(name, "Loss", help, params,
                 {"targets": targets, "output": output, "task": task})


LOSSES = Catalogue("loss", [
    _loss("CrossEntropyLoss", "Classification from raw scores (logits); the usual choice.",
          "class_index", "logits",
          Param("ignore_index", "int", -100, "target value that is ignored"),
          Param("label_smoothing", "float", 0.0, "spreads this share of the target over all classes",
                minimum=0.0, maximum=1.0)),
    _loss("NLLLoss", "Classification from log-probabilities (after LogSoftmax).",
          "class_index", "log_probs",
          Param("ignore_index", "int", -100, "target value that is ignored")),
    _loss("MSELoss", "Mean squared error, for regression.", "like_output", "values", task="regression"),
    _loss("L1Loss", "Mean absolute error, for regression robust to outliers.", "like_output", "values",
          task="regression"),
    _loss("SmoothL1Loss", "Squared error near zero, absolute error beyond beta.", "like_output", "values",
          Param("beta", "float", 1.0, "where the loss turns from squared to absolute", minimum=0.0),
          task="regression"),
    _loss("HuberLoss", "Squared error near zero, absolute error beyond delta.", "like_output", "values",
          Param("delta", "float", 1.0, "where the loss turns from squared to absolute",
                minimum=0.0, exclusive_minimum=True),
          task="regression"),
    _loss("BCEWithLogitsLoss", "Binary or multi-label classification from raw scores.",
          "like_output", "logits"),
    _loss("BCELoss", "Binary classification from probabilities (after Sigmoid).",
          "like_output", "probabilities"),
])


def _lr(default: float) -> Param:
    return Param("lr", "float", default, "learning rate", minimum=0.0, exclusive_minimum=True)


def _weight_decay(default: float = 0) -> Param:
    return Param("weight_decay", "float", default, "L2 penalty on the weights", minimum=0.0)


def _betas() -> Param:
    return Param("betas", "float_list", [0.9, 0.999], "decay rates of the running averages",
                 minimum=0.0, maximum=1.0, exclusive_maximum=True, arity=2)


def _eps(default: float) -> Param:
    return Param("eps", "float", default, "added to the denominator for numerical stability",
                 minimum=0.0)


def _optimizer(name: str, help: str, *params: Param, state: int = 2,
               state_if: dict[str, int] | None = None, requires: dict | None = None) -> Entry:
    # ``state``: copies of the weights the optimizer keeps (Adam's two moments);
    # ``state_if``: more copies when a parameter is set (SGD's momentum buffer).
    # The engine's memory estimate of training reads them. ``requires``: see
    # Entry.check_params.
    return Entry(name, "Optimizer", help, params,
                 {"state": state, "state_if": state_if or {}, "requires": requires or {}})


OPTIMIZERS = Catalogue("optimizer", [
    _optimizer("SGD", "Stochastic gradient descent, optionally with momentum.",
               _lr(0.001),
               Param("momentum", "float", 0, "momentum factor", minimum=0.0),
               Param("dampening", "float", 0, "dampening of the momentum", minimum=0.0),
               _weight_decay(),
               Param("nesterov", "bool", False, "Nesterov momentum (needs momentum > 0)"),
               state=0, state_if={"momentum": 1},
               requires={"nesterov": [["momentum", ">", 0], ["dampening", "==", 0]]}),
    _optimizer("Adam", "Adaptive moments: a good default for most models.",
               _lr(0.001), _betas(), _eps(1e-8), _weight_decay(),
               Param("amsgrad", "bool", False, "use the AMSGrad variant"), state_if={"amsgrad": 1}),
    _optimizer("AdamW", "Adam with decoupled weight decay.",
               _lr(0.001), _betas(), _eps(1e-8), _weight_decay(0.01),
               Param("amsgrad", "bool", False, "use the AMSGrad variant"), state_if={"amsgrad": 1}),
    _optimizer("RMSprop", "Divides the gradient by a running average of its magnitude.",
               _lr(0.01),
               Param("alpha", "float", 0.99, "smoothing constant", minimum=0.0, maximum=1.0),
               _eps(1e-8), _weight_decay(),
               Param("momentum", "float", 0, "momentum factor", minimum=0.0),
               Param("centered", "bool", False, "normalise by the estimated variance"),
               state=1, state_if={"momentum": 1, "centered": 1}),
    _optimizer("Adagrad", "Per-parameter rates that shrink with accumulated gradients.",
               _lr(0.01),
               Param("lr_decay", "float", 0, "learning-rate decay", minimum=0.0),
               _weight_decay(),
               Param("initial_accumulator_value", "float", 0, "starting accumulator", minimum=0.0),
               _eps(1e-10), state=1),
    _optimizer("Adadelta", "Adagrad variant with a window of past gradients.",
               _lr(1.0),
               Param("rho", "float", 0.9, "decay of the running averages", minimum=0.0, maximum=1.0),
               _eps(1e-6), _weight_decay()),
    _optimizer("Adamax", "Adam variant based on the infinity norm.",
               _lr(0.002), _betas(), _eps(1e-8), _weight_decay()),
    _optimizer("NAdam", "Adam with Nesterov momentum.",
               _lr(0.002), _betas(), _eps(1e-8), _weight_decay(),
               Param("momentum_decay", "float", 0.004, "momentum decay", minimum=0.0)),
    _optimizer("RAdam", "Rectified Adam: steadier start without warm-up.",
               _lr(0.001), _betas(), _eps(1e-8), _weight_decay()),
])


def _scheduler(name: str, help: str, step: str, *params: Param) -> Entry:
    return Entry(name, "Scheduler", help, params, {"step": step})


def _gamma(default=0.1, suggested=None) -> Param:
    return Param("gamma", "float", default, "multiplier of the learning rate at each decay",
                 minimum=0.0, exclusive_minimum=True, suggested=suggested)


SCHEDULERS = Catalogue("scheduler", [
    _scheduler("StepLR", "Multiplies the rate by gamma every step_size epochs.", "epoch",
               Param("step_size", "int", REQUIRED, "epochs between decays", minimum=1, suggested=10),
               _gamma()),
    _scheduler("MultiStepLR", "Multiplies the rate by gamma at the given epochs.", "epoch",
               Param("milestones", "int_list", REQUIRED, "epochs at which to decay", minimum=0,
                     suggested=[30, 60]),
               _gamma()),
    _scheduler("ExponentialLR", "Multiplies the rate by gamma every epoch.", "epoch",
               _gamma(REQUIRED, suggested=0.95)),
    _scheduler("CosineAnnealingLR", "Follows a cosine from the rate down to eta_min over T_max epochs.",
               "epoch",
               Param("T_max", "int", REQUIRED, "epochs of the half cosine", minimum=1, suggested=10),
               Param("eta_min", "float", 0.0, "lowest learning rate", minimum=0.0)),
    _scheduler("OneCycleLR", "Warms up to max_lr, then anneals; steps every batch.", "batch",
               Param("max_lr", "float", REQUIRED, "peak learning rate", minimum=0.0,
                     exclusive_minimum=True, suggested=0.01),
               Param("total_steps", "int", None, "batches in the cycle (default: the whole run)",
                     minimum=1, nullable=True),
               Param("pct_start", "float", 0.3, "share of the cycle spent warming up",
                     minimum=0.0, exclusive_minimum=True, maximum=1.0, exclusive_maximum=True),
               Param("anneal_strategy", "str", "cos", "shape of the anneal", choices=("cos", "linear")),
               Param("cycle_momentum", "bool", True, "cycle the momentum inversely to the rate"),
               Param("base_momentum", "float", 0.85, "lowest momentum", minimum=0.0),
               Param("max_momentum", "float", 0.95, "highest momentum", minimum=0.0),
               Param("div_factor", "float", 25.0, "initial rate is max_lr / div_factor",
                     minimum=0.0, exclusive_minimum=True),
               Param("final_div_factor", "float", 10000.0, "final rate is initial / final_div_factor",
                     minimum=0.0, exclusive_minimum=True),
               Param("three_phase", "bool", False, "add a third phase that annihilates the rate")),
    _scheduler("ReduceLROnPlateau", "Lowers the rate when the validation loss stops improving.", "metric",
               Param("mode", "str", "min", "whether the monitored value should go down or up",
                     choices=("min", "max")),
               Param("factor", "float", 0.1, "multiplier of the rate at each reduction",
                     minimum=0.0, exclusive_minimum=True, maximum=1.0, exclusive_maximum=True),
               Param("patience", "int", 10, "epochs without improvement before reducing", minimum=0),
               Param("threshold", "float", 0.0001, "smallest change that counts as improvement",
                     minimum=0.0),
               Param("threshold_mode", "str", "rel", "threshold relative or absolute",
                     choices=("rel", "abs")),
               Param("cooldown", "int", 0, "epochs to wait after a reduction", minimum=0),
               Param("min_lr", "float", 0, "lowest learning rate", minimum=0.0),
               Param("eps", "float", 1e-8, "smallest change of the rate that is applied", minimum=0.0)),
    _scheduler("LinearLR", "Scales the rate linearly from start_factor to end_factor.", "epoch",
               Param("start_factor", "float", 1.0 / 3, "multiplier at the start",
                     minimum=0.0, exclusive_minimum=True, maximum=1.0),
               Param("end_factor", "float", 1.0, "multiplier at the end", minimum=0.0, maximum=1.0),
               Param("total_iters", "int", 5, "epochs until end_factor is reached", minimum=0)),
])


#: ``training.early_stopping``: stop when the monitored metric stops improving.
EARLY_STOPPING = Entry("early_stopping", "Training", "Stops training when a validation metric "
                       "stops improving.", (
    Param("monitor", "str", "val_loss", "the metric watched",
          choices=("val_loss", "val_accuracy", "val_mae")),
    Param("patience", "int", 5, "epochs without improvement before stopping", minimum=0),
    Param("min_delta", "float", 0.0, "smallest change that counts as improvement", minimum=0.0),
    Param("restore_best", "bool", True, "end with the weights of the best epoch"),
))

#: ``training.precision``: floating-point format of the forward pass. The
#: 16-bit ones use autocast on CUDA (fp16 with a gradient scaler).
PRECISIONS = ("fp32", "bf16", "fp16")

#: ``training.fine_tune``: train the head with the frozen layers frozen, then
#: unfreeze them (the last ``unfreeze`` units, or all) at a lower rate.
FINE_TUNE = Entry("fine_tune", "Training", "Trains the new head first with the frozen layers frozen, "
                  "then unfreezes them and trains on at a lower learning rate.", (
    Param("head_epochs", "int", 3, "epochs that train only the unfrozen layers before unfreezing",
          minimum=1),
    Param("unfreeze", "int", "all", "how many units to unfreeze, counted from the end (a "
          "backbone's stages, other frozen layers), or 'all'", minimum=1,
          keywords=("all",)),
    Param("lr_factor", "float", 0.1, "the unfrozen layers learn at the optimizer's rate times this",
          minimum=0.0, exclusive_minimum=True, maximum=1.0),
))
