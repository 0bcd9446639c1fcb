"""The few modules guidl adds to ``torch.nn``.

Recurrent layers in ``torch.nn`` return a tuple ``(output, state)`` and take
``batch_first`` as an option; in a stack the next layer needs one tensor, so
``Recurrent`` wraps them: batch first, and either every time step or only the
last one goes on (``return_sequences``). ``SelfAttention`` is
``nn.MultiheadAttention`` taking one input (query, key and value) and giving
one output; ``PositionalEmbedding`` adds a learned vector per time step.
The Python export copies these classes into the module it writes.
"""

from __future__ import annotations

from functools import partial
from typing import Callable

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


class SelfAttention(nn.MultiheadAttention):
    """Multi-head self-attention over ``(batch, time, features)``: the input is
    the query, the key and the value, and only the attended output goes on
    (not the attention weights). Its weights are ``nn.MultiheadAttention``'s,
    under the same names."""

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 add_bias_kv: bool = False, add_zero_attn: bool = False):
        super().__init__(embed_dim, num_heads, dropout=dropout, bias=bias, add_bias_kv=add_bias_kv,
                         add_zero_attn=add_zero_attn, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x, x, x, need_weights=False)[0]


class PositionalEmbedding(nn.Module):
    """Adds a learned vector to each time step of ``(batch, time, features)``
    inputs: ``num_positions`` is the number of time steps, ``embedding_dim``
    the features. The vectors start small (normal, std 0.02, as in BERT and
    GPT-2), so the token embeddings dominate at first."""

    def __init__(self, num_positions: int, embedding_dim: int):
        super().__init__()
        self.num_positions = num_positions
        self.embedding_dim = embedding_dim
        self.weight = nn.Parameter(torch.empty(num_positions, embedding_dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.weight, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.weight

    def extra_repr(self) -> str:
        return f"{self.num_positions}, {self.embedding_dim}"


#: Constructor arguments guidl always gives a ``torch.nn`` layer, whatever
#: the project says: guidl's sequences are ``(batch, time, features)``.
FIXED_ARGUMENTS: dict[str, dict[str, object]] = {"TransformerEncoderLayer": {"batch_first": True}}

#: Catalogue layers built by guidl's own module, or by torch's with fixed arguments.
OWN_LAYERS: dict[str, Callable[..., nn.Module]] = {
    "MultiheadAttention": SelfAttention,
    "PositionalEmbedding": PositionalEmbedding,
    "TransformerEncoderLayer": partial(nn.TransformerEncoderLayer,
                                       **FIXED_ARGUMENTS["TransformerEncoderLayer"]),
}


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
