"""The 1-D families for MNIST-1D: shapes, measured vs hand-computed parameter counts, the skip/depth series,
the GRU against torch's own, torch.func curvature, and the registry's metadata."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from click.testing import CliRunner
from torch.func import functional_call, grad, jvp

from persist.errors import ModelError
from persist.models import (
    CATALOG,
    arch_info,
    count_parameters,
    create_model,
    family_of,
    get_classifier,
    list_models,
    measured_parameters,
    set_classifier,
    study_architectures,
)
from persist.models.signal1d import Block1d

SIGNAL_MODELS = [name for name in list_models() if arch_info(name).input == "1d"]
K = 5  # classes of an MNIST-1D task


def signals(n: int = 3, length: int = 40) -> torch.Tensor:
    return torch.randn(n, 1, length, generator=torch.Generator().manual_seed(1))


def build(name: str, width: float = 1.0, length: int = 40) -> nn.Module:
    torch.manual_seed(0)
    return create_model(name, K, in_channels=1, image_size=length, width=width)


def test_the_mnist1d_series_is_registered():
    assert {f"{kind}_{d}" for kind in ("resnet1d", "plain1d") for d in (8, 20, 32)} <= set(SIGNAL_MODELS)
    assert {"mlp1d", "mlp1d_bn", "cnn1d", "cnn1d_bn", "gru1d", "transformer1d"} <= set(SIGNAL_MODELS)
    assert set(study_architectures("mnist1d")) == set(SIGNAL_MODELS)
    assert {family_of(n) for n in SIGNAL_MODELS} == {"MLP", "CNN", "RNN", "Transformer"}


def test_catalog_and_builders_name_the_same_architectures():
    assert sorted(CATALOG) == list_models()


@pytest.mark.parametrize("width", [0.25, 1.0])
@pytest.mark.parametrize("name", SIGNAL_MODELS)
def test_forward_backward_reaches_every_parameter(name, width):
    model = build(name, width).train()
    logits = model(signals())
    assert logits.shape == (3, K) and torch.isfinite(logits).all()
    F.cross_entropy(logits, torch.arange(3) % K).backward()
    assert [n for n, p in model.named_parameters() if p.grad is None] == []
    assert sum(float(p.grad.abs().sum()) for p in model.parameters()) > 0
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(signals()), model(signals()))  # no dropout anywhere


def test_mlp_and_cnn_parameter_counts_by_hand():
    # mlp1d: 40 -> 100 -> 100 -> 5, weights and biases
    assert count_parameters(build("mlp1d")) == (40 * 100 + 100) + (100 * 100 + 100) + (100 * K + K) == 14_705
    # mlp1d_bn adds a scale and shift per hidden unit
    assert count_parameters(build("mlp1d_bn")) == 14_705 + 2 * (2 * 100)
    # cnn1d: three k5 stride-2 convs of 32 channels with bias (40 -> 20 -> 10 -> 5), head on 32 x 5 features
    conv = (1 * 5 * 32 + 32) + 2 * (32 * 5 * 32 + 32)
    assert count_parameters(build("cnn1d")) == conv + (32 * 5 * K + K) == 11_301
    # cnn1d_bn: no conv bias, BN scale and shift instead
    assert count_parameters(build("cnn1d_bn")) == conv - 3 * 32 + 3 * 2 * 32 + (32 * 5 * K + K)
    # the width multiplier scales every hidden size (to multiples of 4)
    assert count_parameters(build("mlp1d", 2.0)) == (40 * 200 + 200) + (200 * 200 + 200) + (200 * K + K)
    assert count_parameters(build("cnn1d", 0.5)) == (5 * 16 + 16) + 2 * (16 * 5 * 16 + 16) + (16 * 5 * K + K)


def test_gru_and_transformer_parameter_counts_by_hand():
    h = 64
    assert count_parameters(build("gru1d")) == 3 * (1 * h + h) + 3 * (h * h + h) + (h * K + K)
    d, f, tokens = 32, 64, 10
    layer = 4 * (d * d + d) + (d * f + f) + (f * d + d) + 2 * 2 * d  # attention in/out, FFN, two LayerNorms
    expected = (4 * d + d) + d + (tokens + 1) * d + 2 * layer + 2 * d + (d * K + K)
    assert count_parameters(build("transformer1d")) == expected


def test_gru_matches_torch_gru():
    """Our unrolled GRU (written for torch.func) computes what nn.GRU computes with the same weights."""
    model = build("gru1d").eval()
    reference = nn.GRU(1, 64, batch_first=True)
    with torch.no_grad():
        reference.weight_ih_l0.copy_(model.input_gates.weight)
        reference.bias_ih_l0.copy_(model.input_gates.bias)
        reference.weight_hh_l0.copy_(model.hidden_gates.weight)
        reference.bias_hh_l0.copy_(model.hidden_gates.bias)
        x = signals()
        _, h = reference(x.transpose(1, 2))
        torch.testing.assert_close(model(x), model.fc(h[0]))


@pytest.mark.parametrize("depth", [8, 20, 32])
def test_series_depth_counts_weighted_layers_and_skip_adds_only_shortcuts(depth):
    resnet, plain = build(f"resnet1d_{depth}"), build(f"plain1d_{depth}")

    def weighted(model: nn.Module) -> int:  # 3-tap convs and the head; 1x1 shortcut projections excluded
        return sum(isinstance(m, nn.Linear) or (isinstance(m, nn.Conv1d) and m.kernel_size == (3,))
                   for m in model.modules())

    assert weighted(resnet) == weighted(plain) == depth
    shortcuts = sum(count_parameters(m) for m in resnet.modules() if isinstance(m, nn.Conv1d) and m.kernel_size == (1,))
    shortcut_bn = 2 * (32 + 64)  # BN after the two projections (16->32, 32->64)
    assert count_parameters(resnet) - count_parameters(plain) == shortcuts + shortcut_bn
    assert measured_parameters(f"resnet1d_{depth}") == count_parameters(resnet)


def test_skip_connection_passes_the_input_when_the_residual_branch_is_zero():
    x = torch.rand(2, 8, 10)  # non-negative, so the final ReLU keeps it
    for skip, expected in ((True, x), (False, torch.zeros_like(x))):
        block = Block1d(8, 8, 1, skip=skip, batchnorm=True).eval()
        nn.init.zeros_(block.conv2.weight)
        with torch.no_grad():
            torch.testing.assert_close(block(x), expected)


@pytest.mark.parametrize("name", SIGNAL_MODELS)
def test_widened_head_keeps_old_logits(name):
    model = build(name, 0.25).eval()
    x = signals()
    with torch.no_grad():
        before = model(x)
        old = get_classifier(model)
        wider = nn.Linear(old.in_features, K + 5)
        wider.weight[:K], wider.bias[:K] = old.weight, old.bias
        set_classifier(model, wider)
        torch.testing.assert_close(model(x)[:, :K], before)


@pytest.mark.parametrize("name", SIGNAL_MODELS)
def test_torch_func_hessian_vector_product_agrees_with_double_backward(name):
    model = build(name, 0.25).double().eval()
    x, y = signals().double(), torch.arange(3) % K
    params = {n: p.detach() for n, p in model.named_parameters()}
    buffers = dict(model.named_buffers())

    def loss(p):
        return F.cross_entropy(functional_call(model, (p, buffers), (x,)), y)

    g = torch.Generator().manual_seed(2)
    v = {n: torch.randn(p.shape, generator=g, dtype=p.dtype) for n, p in params.items()}
    _, hv = jvp(grad(loss), (params,), (v,))
    leaves = {n: p.clone().requires_grad_() for n, p in params.items()}
    grads = torch.autograd.grad(loss(leaves), tuple(leaves.values()), create_graph=True)
    reference = torch.autograd.grad(grads, tuple(leaves.values()), grad_outputs=tuple(v.values()))
    a = torch.cat([hv[n].flatten() for n in params])
    b = torch.cat([r.flatten() for r in reference])
    assert a.abs().max() > 0
    assert float((a - b).norm() / b.norm()) < 1e-10


def test_unknown_architecture_suggests_the_closest_name():
    with pytest.raises(ModelError, match=r"unknown architecture 'resnt1d_20' \(did you mean 'resnet1d_20'\?\)"):
        create_model("resnt1d_20", K)
    with pytest.raises(ModelError, match=r"did you mean 'transformer1d'"):
        family_of("transfomer1d@0.5")


def test_family_of_strips_the_width_and_matches_the_cifar_grouping():
    assert family_of("resnet1d_20@0.5") == "CNN"
    assert family_of("gru1d") == "RNN"
    assert family_of("vit_tiny") == "Transformer" and family_of("mlp_mixer") == "MLP"
    assert family_of("efficientnet_b0") == "CNN+SE" and family_of("convnext_tiny") == "Modern CNN"
    assert family_of("wrn28_10") == family_of("vgg16_bn") == "CNN"


def test_cli_lists_1d_models_with_measured_counts():
    from persist.cli import cli

    result = CliRunner().invoke(cli, ["models"])
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split() for line in result.output.splitlines()}
    assert rows["mlp1d"][1:] == ["MLP", "1d", "14,705"]
    assert rows["cnn1d"][1:] == ["CNN", "1d", "11,301"]
    assert rows["resnet18"][1:] == ["CNN", "2d", "11,194,482"]
