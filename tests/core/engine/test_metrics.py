import numpy as np
import pytest
import torch
from sklearn import metrics as sk

from guidl.engine.metrics import classification_report, regression_report, to_probabilities


def test_classification_report_agrees_with_scikit_learn():
    torch.manual_seed(0)
    scores = torch.randn(300, 4)
    target = torch.randint(0, 4, (300,))
    target[:100] = scores[:100].argmax(1)  # some right, some wrong
    report = classification_report(scores, target, 4)
    predicted = scores.argmax(1).numpy()
    precision, recall, f1, support = sk.precision_recall_fscore_support(target.numpy(), predicted,
                                                                        zero_division=0)
    assert report.accuracy == pytest.approx(sk.accuracy_score(target.numpy(), predicted))
    assert report.precision == pytest.approx(precision.tolist())
    assert report.recall == pytest.approx(recall.tolist())
    assert report.f1 == pytest.approx(f1.tolist())
    assert report.support == support.tolist()
    assert report.macro_f1 == pytest.approx(sk.f1_score(target.numpy(), predicted, average="macro"))
    assert report.confusion == sk.confusion_matrix(target.numpy(), predicted).tolist()
    probabilities = scores.softmax(1)
    worst = report.worst[0]
    assert worst["predicted"] != worst["true"]
    wrong = predicted != target.numpy()
    assert worst["true_probability"] == pytest.approx(
        probabilities[torch.arange(300), target].numpy()[wrong].min())


def test_binary_single_column_and_log_probabilities():
    logits = torch.tensor([[2.0], [-1.0], [0.5], [-3.0]])
    target = torch.tensor([1, 0, 0, 0])
    report = classification_report(logits, target, 2)
    assert report.accuracy == 0.75 and report.confusion == [[2, 1], [0, 1]]
    assert torch.allclose(to_probabilities(torch.log(torch.tensor([[0.2, 0.8]])), "log_probs"),
                          torch.tensor([[0.2, 0.8]]))


def test_a_class_never_predicted_has_zero_precision_not_nan():
    report = classification_report(torch.tensor([[1.0, 0.0, 0.0]] * 3), torch.tensor([0, 1, 2]), 3)
    assert report.precision == [pytest.approx(1 / 3), 0.0, 0.0]
    assert report.recall == [1.0, 0.0, 0.0]


def test_regression_report_agrees_with_scikit_learn():
    rng = np.random.default_rng(0)
    target = rng.normal(size=(50, 1))
    output = target + rng.normal(scale=0.3, size=(50, 1))
    report = regression_report(torch.tensor(output), torch.tensor(target))
    assert report.mae == pytest.approx(sk.mean_absolute_error(target, output))
    assert report.mse == pytest.approx(sk.mean_squared_error(target, output))
    assert report.r2 == pytest.approx(sk.r2_score(target, output))
    assert report.worst[0]["error"] == pytest.approx(np.abs(output - target).max())
