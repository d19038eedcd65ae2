"""Turn a model's layers into the bipartite weight graphs that neural persistence is defined on.

A layer is a stratified-graph slice (Rieck et al. 2019): its input and output neurons are the vertices
and |w| of each connection is the edge weight. Three kinds of module give such slices:

- ``nn.Linear``: one complete bipartite graph (in x out); the bias is not an edge and is ignored.
- ``nn.MultiheadAttention``: the query, key and value projections are three linear layers; with
  ``per_head`` each projection is split into one graph per head (head_dim outputs x embed inputs) and the
  output projection into one graph per head (head_dim inputs x embed outputs), since heads do not share
  neurons before the output sum.
- convolutions: the unrolled graph has a neuron per channel *and position*, and every kernel weight is
  repeated at every position. Two graphs are offered:

  * exact (``UnrolledConvGraph``): the unrolled graph for a given input size, zero padding, any stride,
    dilation and groups; sparse, solved with compiled Kruskal. Its size grows with the feature map, so it
    is for small layers and for validation.
  * per-filter approximation (``DenseGraph`` of channel maxima, the default): each filter w[o, i] becomes
    one edge between input channel i and output channel o weighted by its strongest tap max|w[o, i]|.
    Because every weight value adds one edge per position, Kruskal on the unrolled graph merges whole
    translated copies of components; as the input grows, the unrolled diagram becomes H x W copies of the
    diagram of this channel graph (up to one event per component and O(perimeter) boundary merges), so the
    normalized value converges to the channel graph's. Measured (tests, docs/benchmarks/np.md): the exact
    value approaches it like 1/size, and a two-size extrapolation of the exact value agrees with it to
    about 1% for 8+ channels. It is poor for depthwise layers (one edge per group), where the second
    strongest tap would also die in the limit.

Graphs are computed lazily from the live parameters, so a graph list can be reused across training steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Protocol, Sequence

import numpy as np
import torch
import torch.nn as nn

from persist.errors import ConfigError, ModelError
from persist.neural_persistence.graph import spanning_forest_weights, sparse_spanning_forest_weights

LayerFilter = Callable[[str, nn.Module], bool]


class WeightGraph(Protocol):
    """A layer's weight graph: its name, the raw weights it is built from, and its diagram's deaths."""

    @property
    def name(self) -> str: ...  # read-only, so frozen dataclasses satisfy it

    def params(self) -> torch.Tensor: ...

    def deaths(self, w_max: torch.Tensor, method: str) -> torch.Tensor: ...


def _as_float(t: torch.Tensor) -> torch.Tensor:
    """Half-precision weights are promoted so normalized weights and their ordering stay exact."""
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


@dataclass(frozen=True)
class DenseGraph:
    """Disjoint union of complete bipartite blocks; ``source`` returns (raw weights, blocks of edge weights)."""

    name: str
    source: Callable[[], tuple[torch.Tensor, Sequence[torch.Tensor]]]

    def params(self) -> torch.Tensor:
        return self.source()[0]

    def deaths(self, w_max: torch.Tensor, method: str) -> torch.Tensor:
        """Deaths of all blocks; there are sum(rows + cols - 1) of them, known without a host sync."""
        blocks = [_as_float(b.detach()).abs() for b in self.source()[1]]
        return torch.cat([spanning_forest_weights(b.div_(w_max.to(b.dtype)), method) for b in blocks])


@dataclass(frozen=True)
class UnrolledConvGraph:
    """The exact unrolled graph of a 2-D convolution (zero padding) for one input spatial size."""

    name: str
    conv: nn.Conv2d
    input_size: tuple[int, int]

    def params(self) -> torch.Tensor:
        return self.conv.weight

    def deaths(self, w_max: torch.Tensor, method: str) -> torch.Tensor:
        """Deaths of the unrolled graph: (#vertices - #components) of them; ``method`` is always Kruskal."""
        weights, heads, tails, n_vertices = unrolled_conv_edges(self.conv, self.input_size)
        scale = float(w_max.detach())
        deaths = sparse_spanning_forest_weights(np.abs(weights) / scale, heads, tails, n_vertices)
        return torch.from_numpy(deaths).to(self.conv.weight.device)


def _same_padding(conv: nn.Conv2d) -> tuple[int, int]:
    """Left/top padding PyTorch uses for padding='same' (the extra pixel goes right/bottom)."""
    pads = tuple(d * (k - 1) // 2 for d, k in zip(conv.dilation, conv.kernel_size, strict=True))
    return pads  # type: ignore[return-value]


def _conv_padding(conv: nn.Conv2d) -> tuple[tuple[int, int], tuple[int, int]]:
    """(before, after) zero padding per spatial axis."""
    if conv.padding == "valid":
        return (0, 0), (0, 0)
    if conv.padding == "same":
        before = _same_padding(conv)
        after = tuple(d * (k - 1) - b for d, k, b in zip(conv.dilation, conv.kernel_size, before, strict=True))
        return before, after  # type: ignore[return-value]
    return tuple(conv.padding), tuple(conv.padding)  # type: ignore[return-value]


def unrolled_conv_edges(
    conv: nn.Conv2d, input_size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Edge list (weights, input-vertex ids, output-vertex ids, #vertices) of a conv unrolled on an input.

    Vertices are the input neurons (channel x position) followed by the output neurons; padded positions
    are constants, not neurons, so taps that fall on them are no edges.
    """
    if conv.padding_mode != "zeros":
        raise ConfigError(f"conv_input_sizes: exact unrolling needs padding_mode 'zeros', got '{conv.padding_mode}'")
    h, w = input_size
    (pad_h, pad_w), (after_h, after_w) = _conv_padding(conv)
    (kh, kw), (sh, sw), (dh, dw) = conv.kernel_size, conv.stride, conv.dilation
    out_h = (h + pad_h + after_h - dh * (kh - 1) - 1) // sh + 1
    out_w = (w + pad_w + after_w - dw * (kw - 1) - 1) // sw + 1
    if out_h < 1 or out_w < 1:
        raise ConfigError(f"conv_input_sizes: input {input_size} is smaller than the kernel of '{conv}'")
    weight = conv.weight.detach().cpu().to(torch.float64).numpy()
    n_out, in_per_group = weight.shape[:2]
    out_per_group = n_out // conv.groups
    o, i, ky, kx, y, x = np.meshgrid(
        np.arange(n_out), np.arange(in_per_group), np.arange(kh), np.arange(kw),
        np.arange(out_h), np.arange(out_w), indexing="ij", sparse=True,
    )
    iy, ix = y * sh - pad_h + ky * dh, x * sw - pad_w + kx * dw
    inside = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w)
    shape = np.broadcast_shapes(o.shape, i.shape, ky.shape, kx.shape, y.shape, x.shape)
    inside = np.broadcast_to(inside, shape)
    in_channel = (o // out_per_group) * in_per_group + i
    heads = np.broadcast_to((in_channel * h + iy) * w + ix, shape)[inside]
    n_in = conv.in_channels * h * w
    tails = np.broadcast_to(n_in + (o * out_h + y) * out_w + x, shape)[inside]
    weights = np.broadcast_to(weight[o, i, ky, kx], shape)[inside]
    return weights, heads, tails, n_in + n_out * out_h * out_w


def _linear_graph(name: str, module: nn.Module, attr: str, rows: slice | None = None,
                  cols: slice | None = None) -> DenseGraph:
    def source() -> tuple[torch.Tensor, list[torch.Tensor]]:
        w = getattr(module, attr)
        w = w[rows] if rows is not None else w
        w = w[:, cols] if cols is not None else w
        return w, [w]

    return DenseGraph(name, source)


def _conv_channel_graph(name: str, conv: nn.modules.conv._ConvNd) -> DenseGraph:
    def source() -> tuple[torch.Tensor, list[torch.Tensor]]:
        w = conv.weight
        strongest = w.detach().abs().flatten(2).amax(dim=2)  # (out, in/groups) or (in, out/groups) transposed
        return w, list(strongest.chunk(conv.groups, dim=0))

    return DenseGraph(name, source)


def _attention_graphs(name: str, mha: nn.MultiheadAttention, per_head: bool) -> list[DenseGraph]:
    e, heads = mha.embed_dim, mha.num_heads
    head_dim = e // heads
    graphs = []
    for index, proj in enumerate("qkv"):
        attr, offset = ("in_proj_weight", index * e) if mha._qkv_same_embed_dim else (f"{proj}_proj_weight", 0)
        if not per_head:
            graphs.append(_linear_graph(f"{name}.{proj}", mha, attr, rows=slice(offset, offset + e)))
            continue
        for h in range(heads):
            rows = slice(offset + h * head_dim, offset + (h + 1) * head_dim)
            graphs.append(_linear_graph(f"{name}.{proj}.head{h}", mha, attr, rows=rows))
    return graphs


def _out_proj_graphs(name: str, linear: nn.Linear, heads: int) -> list[DenseGraph]:
    head_dim = linear.in_features // heads
    return [_linear_graph(f"{name}.head{h}", linear, "weight", cols=slice(h * head_dim, (h + 1) * head_dim))
            for h in range(heads)]


def extract_graphs(
    model: nn.Module,
    layer_filter: LayerFilter | None = None,
    per_head: bool = False,
    conv_input_sizes: Mapping[str, tuple[int, int]] | None = None,
) -> list[WeightGraph]:
    """One weight graph per Linear, convolution and attention projection (per head if asked).

    ``layer_filter(name, module)`` keeps a module when true. Convolutions named in ``conv_input_sizes``
    use the exact unrolled graph for that input size; all others use the per-filter approximation.
    """
    keep = layer_filter or (lambda name, module: True)
    sizes = dict(conv_input_sizes or {})
    attention = {name: m for name, m in model.named_modules() if isinstance(m, nn.MultiheadAttention)}
    graphs: list[WeightGraph] = []
    for name, module in model.named_modules():
        if not keep(name, module):
            continue
        parent = name.rpartition(".")[0]
        if isinstance(module, nn.MultiheadAttention):
            graphs.extend(_attention_graphs(name, module, per_head))
        elif isinstance(module, nn.Linear) and module.weight.numel() > 0:
            if per_head and name.endswith(".out_proj") and parent in attention:
                graphs.extend(_out_proj_graphs(name, module, attention[parent].num_heads))
            else:
                graphs.append(_linear_graph(name, module, "weight"))
        elif isinstance(module, nn.modules.conv._ConvNd) and module.weight.numel() > 0:
            if name in sizes:
                graphs.append(_exact_conv(name, module, sizes.pop(name)))
            else:
                graphs.append(_conv_channel_graph(name, module))
    if sizes:
        raise ConfigError(f"conv_input_sizes: no selected convolution named {', '.join(sorted(sizes))}")
    if not graphs:
        raise ModelError("model: no Linear, convolution or MultiheadAttention layer passed layer_filter")
    return graphs


def _exact_conv(name: str, conv: nn.Module, size: tuple[int, int]) -> UnrolledConvGraph:
    if not isinstance(conv, nn.Conv2d):
        raise ConfigError(f"conv_input_sizes: exact unrolling needs nn.Conv2d, '{name}' is {type(conv).__name__}")
    if len(size) != 2 or min(size) < 1:
        raise ConfigError(f"conv_input_sizes: '{name}' needs a (height, width) of positive ints, got {size}")
    return UnrolledConvGraph(name, conv, (int(size[0]), int(size[1])))


def conv_input_sizes(model: nn.Module, example_input: torch.Tensor) -> dict[str, tuple[int, int]]:
    """Spatial input size of every Conv2d, recorded from one forward pass in eval mode (no grad).

    The exact unrolled graph of a convolution depends on its feature-map size, which only a forward pass
    reveals. Eval mode keeps BatchNorm statistics untouched; the previous mode is restored.
    """
    sizes: dict[str, tuple[int, int]] = {}
    handles = [
        m.register_forward_pre_hook(lambda mod, args, n=name: sizes.__setitem__(n, tuple(args[0].shape[-2:])))
        for name, m in model.named_modules() if isinstance(m, nn.Conv2d)
    ]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(example_input)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return sizes

