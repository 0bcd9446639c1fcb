"""The graph examples are the networks they say they are: each equals the
same network written by hand in PyTorch, in parameters (the summary's totals
too) and in what it computes."""

import pytest
import torch
from torch import nn

from guidl import spec
from guidl.engine.build import build
from guidl.engine.summary import summary_text
from guidl.examples import example_path


def conv(c_in, c_out, kernel, stride=1):
    return nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2)


class ResidualBlock(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv1, self.bn1 = conv(channels, channels, 3), nn.BatchNorm2d(channels)
        self.conv2, self.bn2 = conv(channels, channels, 3), nn.BatchNorm2d(channels)

    def forward(self, x):
        return torch.relu(self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))) + x)


class DownsampleBlock(nn.Module):
    def __init__(self, c_in, channels, stride):
        super().__init__()
        self.conv1, self.bn1 = conv(c_in, channels, 3, stride), nn.BatchNorm2d(channels)
        self.conv2, self.bn2 = conv(channels, channels, 3), nn.BatchNorm2d(channels)
        self.shortcut, self.shortcut_bn = nn.Conv2d(c_in, channels, 1, stride=stride), nn.BatchNorm2d(channels)

    def forward(self, x):
        y = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        return torch.relu(y + self.shortcut_bn(self.shortcut(x)))


class ResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem, self.bn = conv(1, 16, 3), nn.BatchNorm2d(16)
        self.stage1 = nn.Sequential(ResidualBlock(16), ResidualBlock(16))
        self.stage2, self.stage2b = DownsampleBlock(16, 32, 2), ResidualBlock(32)
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        x = nn.functional.max_pool2d(torch.relu(self.bn(self.stem(x))), 2)
        x = self.stage2b(self.stage2(self.stage1(x)))
        return self.head(nn.functional.adaptive_avg_pool2d(x, 1).flatten(1))


class InceptionBlock(nn.Module):
    def __init__(self, c_in, branch):
        super().__init__()
        self.b1 = nn.Conv2d(c_in, branch, 1)
        self.b3_reduce, self.b3 = nn.Conv2d(c_in, branch, 1), conv(branch, branch, 3)
        self.b5_reduce, self.b5 = nn.Conv2d(c_in, branch, 1), conv(branch, branch, 5)
        self.pool_proj = nn.Conv2d(c_in, branch, 1)
        self.bn = nn.BatchNorm2d(4 * branch)

    def forward(self, x):
        pooled = nn.functional.max_pool2d(x, 3, stride=1, padding=1)
        joined = torch.cat([self.b1(x), self.b3(self.b3_reduce(x)), self.b5(self.b5_reduce(x)),
                            self.pool_proj(pooled)], dim=1)
        return torch.relu(self.bn(joined))


class Inception(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = conv(1, 16, 3)
        self.inception1, self.inception2 = InceptionBlock(16, 8), InceptionBlock(32, 16)
        self.head = nn.Linear(64, 10)

    def forward(self, x):
        x = nn.functional.max_pool2d(torch.relu(self.stem(x)), 2)
        x = self.inception2(nn.functional.max_pool2d(self.inception1(x), 2))
        return self.head(nn.functional.adaptive_avg_pool2d(x, 1).flatten(1))


class TransformerBlock(nn.Module):
    def __init__(self, width, heads, hidden):
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.attention = nn.MultiheadAttention(width, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(width)
        self.ff1, self.ff2 = nn.Linear(width, hidden), nn.Linear(hidden, width)

    def forward(self, x):
        y = self.norm1(x)
        x = self.attention(y, y, y, need_weights=False)[0] + x
        return self.ff2(nn.functional.gelu(self.ff1(self.norm2(x)))) + x


class Positions(nn.Module):
    """A learned vector added to each time step."""

    def __init__(self, steps, width):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(steps, width))

    def forward(self, x):
        return x + self.weight


class CharTransformer(nn.Module):
    def __init__(self):
        super().__init__()
        self.chars = nn.Embedding(96, 32)
        self.positions = Positions(32, 32)
        self.block = TransformerBlock(32, 4, 64)
        self.encoder = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, activation="gelu",
                                                  batch_first=True, norm_first=True)
        self.norm = nn.LayerNorm(32)
        self.head = nn.Linear(32 * 32, 96)

    def forward(self, x):
        x = self.encoder(self.block(self.positions(self.chars(x))))
        return self.head(self.norm(x).flatten(1))


EXAMPLES = {
    "resnet_mnist": (ResNet, lambda: torch.randn(4, 1, 28, 28)),
    "inception_mnist": (Inception, lambda: torch.randn(4, 1, 28, 28)),
    "char_transformer": (CharTransformer, lambda: torch.randint(0, 96, (4, 32))),
}


@pytest.mark.parametrize("name", EXAMPLES)
def test_a_graph_example_is_the_network_written_by_hand(name):
    make_hand, make_input = EXAMPLES[name]
    project = spec.load(example_path(name))
    built = build(project)
    graph, hand = built.module, make_hand()
    count = sum(p.numel() for p in hand.parameters())
    assert built.report.total_params == count == sum(p.numel() for p in graph.parameters())
    assert f"Total params: {count:,} " in summary_text(built.report)
    # The same weights, in the same order (the project's), compute the same outputs.
    graph_state, hand_state = graph.state_dict(), hand.state_dict()
    assert [t.shape for t in graph_state.values()] == [t.shape for t in hand_state.values()]
    hand.load_state_dict(dict(zip(hand_state, graph_state.values())))
    graph.eval(), hand.eval()
    x = make_input()
    with torch.no_grad():
        torch.testing.assert_close(graph(x), hand(x), rtol=1e-5, atol=1e-5)
