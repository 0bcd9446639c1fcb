"""Evaluation metrics computed with torch on whole splits.

Classification: accuracy, precision, recall and F1 (per class and their
macro average), the confusion matrix and the worst-classified samples.
Regression: MAE, MSE and R^2.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch


def confusion_matrix(predicted: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``matrix[true, predicted]`` counts, as int64 on the CPU."""
    index = target.to(torch.int64).cpu() * num_classes + predicted.to(torch.int64).cpu()
    return torch.bincount(index, minlength=num_classes * num_classes).view(num_classes, num_classes)


@dataclass
class ClassificationReport:
    accuracy: float
    precision: list[float]
    recall: list[float]
    f1: list[float]
    support: list[int]
    confusion: list[list[int]]
    loss: float | None = None
    #: Indices (into the evaluated split) of the samples the model was most
    #: confidently wrong about, with the true and predicted class and the
    #: probability it gave the true class.
    worst: list[dict[str, Any]] = field(default_factory=list)
    class_names: list[str] | None = None

    @property
    def macro_precision(self) -> float:
        return _mean(self.precision)

    @property
    def macro_recall(self) -> float:
        return _mean(self.recall)

    @property
    def macro_f1(self) -> float:
        return _mean(self.f1)

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": "classification", "loss": self.loss, "accuracy": self.accuracy,
            "macro_precision": self.macro_precision, "macro_recall": self.macro_recall,
            "macro_f1": self.macro_f1, "precision": self.precision, "recall": self.recall,
            "f1": self.f1, "support": self.support, "confusion": self.confusion,
            "class_names": self.class_names, "worst": self.worst,
        }


@dataclass
class RegressionReport:
    mae: float
    mse: float
    r2: float
    loss: float | None = None
    worst: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"task": "regression", "loss": self.loss, "mae": self.mae, "mse": self.mse,
                "r2": self.r2, "worst": self.worst}


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def to_probabilities(scores: torch.Tensor, output: str = "logits") -> torch.Tensor:
    """Class probabilities from a model's outputs. ``output`` is what the loss
    expects the model to produce: ``logits``, ``log_probs`` or
    ``probabilities``; a single column is the positive class of a binary task."""
    scores = scores.detach().float()
    if scores.ndim == 2 and scores.shape[1] == 1:
        positive = scores[:, 0].sigmoid() if output == "logits" else scores[:, 0].clamp(0, 1)
        return torch.stack([1 - positive, positive], dim=1)
    if output == "probabilities":
        return scores
    if output == "log_probs":
        return scores.exp()
    return scores.softmax(dim=1)


def classification_report(scores: torch.Tensor, target: torch.Tensor, num_classes: int, *,
                          output: str = "logits", class_names: list[str] | None = None,
                          loss: float | None = None, worst: int = 16) -> ClassificationReport:
    """From the model's outputs on a split and the true classes."""
    probabilities = to_probabilities(scores.cpu(), output)
    target = target.detach().cpu().to(torch.int64).view(-1)
    predicted = probabilities.argmax(dim=1)
    matrix = confusion_matrix(predicted, target, num_classes)
    true_positive = matrix.diag().double()
    predicted_count = matrix.sum(dim=0).double()
    support = matrix.sum(dim=1)
    precision = torch.where(predicted_count > 0, true_positive / predicted_count.clamp(min=1),
                            torch.zeros_like(true_positive))
    recall = torch.where(support > 0, true_positive / support.double().clamp(min=1),
                         torch.zeros_like(true_positive))
    denominator = precision + recall
    f1 = torch.where(denominator > 0, 2 * precision * recall / denominator.clamp(min=1e-12),
                     torch.zeros_like(denominator))
    accuracy = float((predicted == target).double().mean()) if len(target) else 0.0
    wrong = (predicted != target).nonzero().view(-1)
    true_probability = probabilities.gather(1, target.clamp(max=probabilities.shape[1] - 1)[:, None])[:, 0]
    order = wrong[true_probability[wrong].argsort()][:worst]
    worst_samples = [{"index": int(i), "true": int(target[i]), "predicted": int(predicted[i]),
                      "true_probability": float(true_probability[i])} for i in order]
    return ClassificationReport(accuracy, precision.tolist(), recall.tolist(), f1.tolist(),
                                support.tolist(), matrix.tolist(), loss, worst_samples, class_names)


def regression_report(output: torch.Tensor, target: torch.Tensor, *, loss: float | None = None,
                      worst: int = 16) -> RegressionReport:
    output = output.detach().double().cpu().reshape(target.shape)
    target = target.detach().double().cpu()
    error = output - target
    mae = float(error.abs().mean())
    mse = float((error ** 2).mean())
    variance = float(((target - target.mean(dim=0)) ** 2).mean())
    r2 = 1 - mse / variance if variance > 0 else 0.0
    per_sample = error.abs().reshape(len(error), -1).mean(dim=1)
    order = per_sample.argsort(descending=True)[:worst]
    worst_samples = [{"index": int(i), "true": target[i].flatten().tolist(),
                      "predicted": output[i].flatten().tolist(), "error": float(per_sample[i])}
                     for i in order]
    return RegressionReport(mae, mse, r2, loss, worst_samples)


@dataclass
class ReconstructionReport:
    """How well an autoencoder gives back its input: MSE and PSNR in the
    scaled range, against always answering the training split's mean sample
    (``baseline_mse``), each sample's error (the worst first) and, for a
    two-value code, the codes of the evaluated samples with their classes."""

    mse: float
    psnr: float
    baseline_mse: float
    loss: float | None = None
    #: ``{"index": i, "error": mse}`` of the worst reconstructed samples, worst first.
    worst: list[dict[str, Any]] = field(default_factory=list)
    codes: list[list[float]] | None = None
    code_labels: list[int] | None = None
    class_names: list[str] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"task": "reconstruction", "kind": "reconstruction", "loss": self.loss,
                "mse": self.mse, "psnr": self.psnr, "baseline_mse": self.baseline_mse,
                "worst": self.worst, "codes": self.codes, "code_labels": self.code_labels,
                "class_names": self.class_names}


@dataclass
class GanReport:
    """A GAN's figures after training. The judge is a small classifier trained
    on the same data: its mean confidence on generated samples and the share
    of classes it sees among them are a classifier-based score (not FID,
    which needs an Inception network and a large sample)."""

    samples: int
    judge_confidence: float | None
    judge_coverage: float | None
    judge_accuracy: float | None
    sample_diversity: float
    d_real: float | None
    d_fake: float | None
    class_counts: list[int] | None = None
    class_names: list[str] | None = None
    #: The epoch d_real and d_fake were measured over (the last one finished:
    #: a run stopped mid-epoch is judged with later weights).
    d_epoch: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"task": "gan", "kind": "gan", "samples": self.samples, "d_epoch": self.d_epoch,
                "judge_confidence": self.judge_confidence, "judge_coverage": self.judge_coverage,
                "judge_accuracy": self.judge_accuracy, "sample_diversity": self.sample_diversity,
                "d_real": self.d_real, "d_fake": self.d_fake, "class_counts": self.class_counts,
                "class_names": self.class_names}


def psnr(mse: float, peak_to_peak: float) -> float:
    """Peak signal-to-noise ratio in dB of a mean squared error over values
    spanning ``peak_to_peak`` (capped at 100 dB for a perfect copy)."""
    import math

    if mse <= 0:
        return 100.0
    return min(100.0, 10 * math.log10(peak_to_peak ** 2 / mse))
