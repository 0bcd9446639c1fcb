"""Text written by a next-character model, one character at a time."""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import nn

from .data import VOCAB, decode_text, encode_text


@torch.no_grad()
def write(module: nn.Module, prompt: str, length: int, temperature: float, seq_len: int,
          seed: int = 0) -> str:
    """The ``length`` characters ``module`` writes after ``prompt``.

    The model sees the last ``seq_len`` characters (the prompt padded on the
    left with spaces while it is shorter), and each next character is drawn
    from its scores divided by ``temperature``, from a seeded generator of its
    own (the same seed writes the same text). Only characters of the
    vocabulary are drawn, whatever the width of the model's last layer."""
    if temperature <= 0:
        raise ValueError("temperature must be above 0")
    if seq_len < 1:
        raise ValueError("seq_len must be at least 1")
    generator = torch.Generator().manual_seed(seed)
    device = next((p.device for p in module.parameters()), torch.device("cpu"))
    space = int(encode_text(" ")[0])
    ids = [int(i) for i in encode_text(prompt)]
    window = ([space] * max(0, seq_len - len(ids)) + ids)[-seq_len:]
    was_training = module.training
    module.eval()
    written: list[int] = []
    try:
        for _ in range(length):
            scores = module(torch.tensor([window], dtype=torch.int64, device=device)).float().cpu()
            if scores.ndim == 3:  # one score vector per position: the last one predicts
                scores = scores[:, -1]
            scores = scores.reshape(-1)[: len(VOCAB)]
            probabilities = torch.softmax(scores / temperature, dim=0)
            next_id = int(torch.multinomial(probabilities, 1, generator=generator))
            written.append(next_id)
            window = window[1:] + [next_id]
    finally:
        module.train(was_training)
    return decode_text(written)


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Writing is one tiny forward pass per character: on a busy machine,
    torch's threads wait for each other longer than they compute (300
    characters took 22 s with 2 threads on 2 busy cores, 0.2 s with one)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
