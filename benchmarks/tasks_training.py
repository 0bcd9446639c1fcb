"""The training tasks on the offline ``mnist_sample`` digits: what the examples
reach and how fast.

- GAN (``examples/dcgan_mnist.guidl.json``, and with ``--cgan`` the conditional
  one): samples/s per epoch, D and G losses, D(x), D(G(z)) and the
  classifier-based score after each epoch. The judge is the small MLP the
  trainer fits on the same training digits at set-up; its mean confidence
  and class coverage are printed for the untrained generator, for every
  epoch (on the fixed batch of 64 samples shown in the grid), for the
  trained generator (1,000 samples) and for real validation digits (what a
  perfect generator would score). This is not FID.
- Autoencoders (``conv_autoencoder`` and ``denoising_autoencoder``): samples/s,
  validation MSE per epoch against always answering the training split's
  mean image, and PSNR.

Each project trains as ``guidl train`` runs it (``Trainer.fit()``, CPU, the
example's seed, one torch thread fewer for each core other programs keep busy:
``ThreadTuner``). Set-up (loading, building, the judge's training) and the
final evaluation are timed apart from the epochs. Figures only; it never
fails on time.

    python benchmarks/tasks_training.py [--gan-epochs 10] [--ae-epochs 10] [--cgan]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
from common import ROOT


def trainer_for(name: str, epochs: int):
    """The example's trainer, with the thread tuner ``guidl train`` adds."""
    from guidl.engine.threads import ThreadTuner, can_follow_load, threads_set_by_user
    from guidl.engine.trainer import Trainer

    tuner = [ThreadTuner()] if not threads_set_by_user() and can_follow_load() else []
    return Trainer(load(name, epochs), callbacks=tuner)


def load(name: str, epochs: int):
    from guidl import spec

    project = spec.load(ROOT / "examples" / f"{name}.guidl.json")
    project.training.epochs = epochs
    project.training.device = "cpu"
    return project


def timed_fit(trainer):
    start = time.perf_counter()
    trainer.setup()
    set_up = time.perf_counter() - start
    before = time.perf_counter()
    result = trainer.fit()
    total = time.perf_counter() - before
    epochs = sum(m.epoch_time for m in result.history)
    return result, set_up, epochs, total - epochs


def rate(history) -> str:
    """Samples/s: the median epoch after the first (which warms up), and the range."""
    values = [m.samples_per_s for m in history]
    steady = values[1:] or values
    return f"{statistics.median(steady):,.0f} samples/s (epochs: {min(values):,.0f}-{max(values):,.0f})"


def gan(name: str, epochs: int) -> None:
    trainer = trainer_for(name, epochs)
    start = time.perf_counter()
    trainer.setup()
    set_up = time.perf_counter() - start
    task = trainer.task
    untrained = task.judge_samples(task._fixed_samples(), task.fixed_labels)
    real = task.judge_samples(trainer.data.val.x, None)
    result, _, in_epochs, after = timed_fit(trainer)
    report = result.evaluation
    print(f"\n{name}: {epochs} epochs of {len(trainer.data.train):,} digits, batch "
          f"{trainer.batch_size}; set-up {set_up:.1f} s (the judge: validation accuracy "
          f"{report.judge_accuracy:.1%}), epochs {in_epochs:.1f} s, evaluation {after:.1f} s")
    print(f"  speed: {rate(result.history)}")
    print(f"  {'epoch':>5} {'d_loss':>7} {'g_loss':>7} {'D(x)':>6} {'D(G(z))':>7} "
          f"{'judge conf':>10} {'coverage':>8} {'diversity':>9}")
    print(f"  {0:>5} {'':>7} {'':>7} {'':>6} {'':>7} {untrained['judge_confidence']:>10.1%} "
          f"{untrained['judge_coverage']:>8.0%} {untrained['sample_diversity']:>9.2f}  (untrained)")
    for m in result.history:
        print(f"  {m.epoch:>5} {m.d_loss:>7.3f} {m.g_loss:>7.3f} {m.d_real:>6.3f} {m.d_fake:>7.3f} "
              f"{m.judge_confidence:>10.1%} {m.judge_coverage:>8.0%} {m.sample_diversity:>9.2f}")
    counts = ", ".join(f"{n}:{c}" for n, c in zip(report.class_names or [], report.class_counts or []))
    print(f"  trained generator, {report.samples:,} samples: judge confidence "
          f"{report.judge_confidence:.1%}, coverage {report.judge_coverage:.0%}, diversity "
          f"{report.sample_diversity:.2f}; classes the judge sees: {counts}")
    print(f"  real validation digits ({len(trainer.data.val):,}): judge confidence "
          f"{real['judge_confidence']:.1%}, coverage {real['judge_coverage']:.0%}")
    if task.fixed_labels is not None:
        final = task.judge_samples(task._fixed_samples(), task.fixed_labels)
        print(f"  the judge agrees with the class asked for on {final['judge_agreement']:.0%} of "
              "the 64 fixed samples")


def autoencoder(name: str, epochs: int) -> None:
    trainer = trainer_for(name, epochs)
    result, set_up, in_epochs, after = timed_fit(trainer)
    report = result.evaluation
    print(f"\n{name}: {epochs} epochs, batch {trainer.batch_size}; set-up {set_up:.1f} s, "
          f"epochs {in_epochs:.1f} s, evaluation {after:.1f} s")
    print(f"  speed: {rate(result.history)}")
    print("  epoch  val MSE  / mean image  PSNR (dB)")
    for m in result.history:
        print(f"  {m.epoch:>5}  {m.val_mse:.4f}  {m.val_mse / report.baseline_mse:>11.1%}  {m.val_psnr:>9.2f}")
    print(f"  validation: MSE {report.mse:.4f} against {report.baseline_mse:.4f} for always the "
          f"mean image ({report.mse / report.baseline_mse:.1%} of it), PSNR {report.psnr:.2f} dB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gan-epochs", type=int, default=10)
    parser.add_argument("--ae-epochs", type=int, default=10)
    parser.add_argument("--cgan", action="store_true", help="also the conditional GAN")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # each figure as it is measured, also into a file
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
    autoencoder("conv_autoencoder", args.ae_epochs)
    autoencoder("denoising_autoencoder", args.ae_epochs)
    gan("dcgan_mnist", args.gan_epochs)
    if args.cgan:
        gan("cgan_mnist", args.gan_epochs)


if __name__ == "__main__":
    main()
