"""What a project trains its model to do, beyond the dataset's own labels.

A project without ``task`` learns the dataset's labels: classification or
regression, as the dataset says. The tasks here learn otherwise: to give back
their input (reconstruction), to make samples like the data (gan), or to
write text one character at a time (text_generation). Each is an ``Entry``
whose parameters are checked like a layer's; ``info`` says which losses fit
it and which networks it holds.
"""

from __future__ import annotations

from .schema import Catalogue, Entry, Param

#: How images are scaled for the tasks that produce images: the generator's
#: or decoder's last activation must be able to reach this range.
PIXEL_RANGES = ("unit", "symmetric", "standardized")

_PIXEL_RANGE_HELP = ("the range images are scaled to: 'unit' 0..1 (end with Sigmoid), 'symmetric' "
                     "-1..1 (end with Tanh), 'standardized' mean 0 and deviation 1 per channel")

TASKS = Catalogue("task", [
    Entry("reconstruction", "Task",
          "Autoencoder: the model learns to give back its input, through a narrow code. With noise "
          "it learns to remove it (denoising).", (
              Param("noise", "str", "none", "noise added to the input only (the target stays clean)",
                    choices=("none", "gaussian", "masking")),
              Param("noise_strength", "float", 0.3,
                    "gaussian: the noise's deviation in the scaled range; masking: the share of "
                    "values set to black (a 0 pixel)", minimum=0.0, maximum=1.0),
              Param("code_layer", "str", None, "id of the layer whose output is the code (the "
                    "bottleneck): the encoder ends there, the decoder starts after it",
                    nullable=True),
              Param("pixel_range", "str", "unit", _PIXEL_RANGE_HELP, choices=PIXEL_RANGES),
          ), info={"losses": ["MSELoss", "L1Loss", "SmoothL1Loss", "HuberLoss", "BCELoss",
                              "BCEWithLogitsLoss"],
                   "networks": ["model"], "title": "Reconstruction (autoencoder)"}),
    Entry("gan", "Task",
          "Generative adversarial network: a generator (the model) turns noise into samples and a "
          "discriminator learns to tell them from real ones; each trains against the other.", (
              Param("noise_dim", "int", 64, "size of the noise vector the generator starts from",
                    minimum=1, maximum=4096),
              Param("conditional", "bool", False, "also give both networks the class label (one-hot "
                    "after the noise; as extra input channels of the discriminator), so the "
                    "generator makes the class asked for"),
              Param("label_smoothing", "float", 0.1, "real samples are labelled 1 minus this for the "
                    "discriminator (one-sided label smoothing)", minimum=0.0, maximum=0.5,
                    exclusive_maximum=True),
              Param("d_steps", "int", 1, "discriminator steps per generator step", minimum=1,
                    maximum=10),
              Param("pixel_range", "str", "symmetric", _PIXEL_RANGE_HELP, choices=PIXEL_RANGES),
              Param("samples", "int", 64, "samples drawn from a fixed noise batch after every epoch",
                    minimum=1, maximum=256),
          ), info={"losses": ["BCEWithLogitsLoss"], "networks": ["model", "discriminator"],
                   "title": "GAN (generator and discriminator)"}),
    Entry("text_generation", "Task",
          "A next-character model that writes: after every epoch it continues the prompt, one "
          "character at a time, drawn with the temperature.", (
              Param("prompt", "str", "The ", "the text the model continues"),
              Param("length", "int", 200, "characters written", minimum=1, maximum=10_000),
              Param("temperature", "float", 0.8, "below 1: safer, more repetitive; above 1: more "
                    "surprising", minimum=0.0, exclusive_minimum=True, maximum=10.0),
          ), info={"losses": ["CrossEntropyLoss", "NLLLoss"], "networks": ["model"],
                   "title": "Text generation"}),
])

#: ``training.discriminator_optimizer`` when a GAN project leaves it out (the
#: DCGAN paper's settings).
DEFAULT_DISCRIMINATOR_OPTIMIZER = {"type": "Adam", "params": {"lr": 0.0002, "betas": [0.5, 0.999]}}
