"""The few modules guidl adds to ``torch.nn``.

Recurrent layers in ``torch.nn`` return a tuple ``(output, state)`` and take
``batch_first`` as an option; in a stack the next layer needs one tensor, so
``Recurrent`` wraps them: batch first, and either every time step or only the
last one goes on (``return_sequences``).
"""

from __future__ import annotations

import torch
from torch import nn

RECURRENT_CLASSES: dict[str, type[nn.RNNBase]] = {"RNN": nn.RNN, "LSTM": nn.LSTM, "GRU": nn.GRU}


class Recurrent(nn.Module):
    """An RNN, LSTM or GRU over ``(batch, time, features)`` inputs.

    With ``return_sequences`` the output is ``(batch, time, hidden * directions)``;
    without, it is the last step, ``(batch, hidden * directions)``, where the
    backward direction's "last" step is the first time step (the one it ends on).
    """

    def __init__(self, kind: str, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, dropout: float = 0.0, bidirectional: bool = False,
                 return_sequences: bool = False, **extra):
        super().__init__()
        self.kind = kind
        self.return_sequences = return_sequences
        self.rnn = RECURRENT_CLASSES[kind](
            input_size, hidden_size, num_layers=num_layers, bias=bias, batch_first=True,
            dropout=dropout, bidirectional=bidirectional, **extra,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        if self.return_sequences:
            return out
        if not self.rnn.bidirectional:
            return out[:, -1]
        hidden = self.rnn.hidden_size
        return torch.cat((out[:, -1, :hidden], out[:, 0, hidden:]), dim=-1)

    def extra_repr(self) -> str:
        return f"return_sequences={self.return_sequences}"


class Add(nn.Module):
    """The element-wise sum of two or more inputs of one shape (a residual or
    skip connection)."""

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        out = inputs[0]
        for other in inputs[1:]:
            out = out + other
        return out


class Multiply(nn.Module):
    """The element-wise product of two or more inputs of one shape."""

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        out = inputs[0]
        for other in inputs[1:]:
            out = out * other
        return out


class Concat(nn.Module):
    """Two or more inputs joined along ``dim`` (counted with the batch, as
    ``torch.cat``)."""

    def __init__(self, dim: int = 1):
        super().__init__()
        self.dim = dim

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return torch.cat(inputs, dim=self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


MERGE_CLASSES: dict[str, type[nn.Module]] = {"Add": Add, "Multiply": Multiply, "Concat": Concat}
