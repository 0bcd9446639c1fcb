"""describe_error says "out of memory" for real allocation failures only:
an error that merely mentions memory (bad data can) keeps its own words."""

import pytest
import torch

from guidl.engine.trainer import describe_error, is_out_of_memory

REAL = [
    torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"),
    MemoryError(),
    RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: "
                 "you tried to allocate 81604378624 bytes. Error code 12 (Cannot allocate memory)"),
    RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 7.79 GiB total capacity)"),
    RuntimeError("MPS backend out of memory (MPS allocated: 17.00 GB, other allocations: 1.00 GB)"),
]

NOT_MEMORY = [
    ValueError("could not convert string to float: 'out of memory'"),
    RuntimeError("CUDA error: an illegal memory access was encountered"),
    RuntimeError("failed to allocate token 'x' in the vocabulary: id 300 is out of range"),
    KeyError("out of memory"),
    RuntimeError("Expected all tensors on the same device\nCUDA out of memory text in a second line"),
    IndexError("index 9 is out of bounds for dimension 0 with size 3 (memory layout: contiguous)"),
]


@pytest.mark.parametrize("error", REAL, ids=lambda e: type(e).__name__)
def test_allocation_failures_are_out_of_memory(error):
    assert is_out_of_memory(error)
    assert describe_error(error).startswith("out of memory: lower data.batch_size")


@pytest.mark.parametrize("error", NOT_MEMORY, ids=lambda e: str(e)[:30])
def test_errors_that_only_mention_memory_keep_their_own_message(error):
    assert not is_out_of_memory(error)
    text = describe_error(error)
    assert not text.startswith("out of memory")
    assert text.startswith(type(error).__name__ + ": ")
    assert str(error).split("\n")[0].strip("'") in text
