"""Every registered architecture builds at any size, trains, swaps its head and supports torch.func curvature."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call, grad, jvp
from torchvision.ops import StochasticDepth

import persist.models.zoo  # noqa: F401  (registers the study's architectures)
from persist.models import arch_info, count_parameters, create_model, get_classifier, list_models, set_classifier
from persist.models.torchvision_zoo import Hardsigmoid
from persist.models.vit import token_layout, vit_token_layout

TINY = 0.125
NUM_CLASSES = 7
INPUTS = {"rgb32": (3, 32), "gray8": (1, 8)}  # (in_channels, image_size): CIFAR and the embedded 8x8 digits
IMAGE_MODELS = [name for name in list_models() if arch_info(name).input == "2d"]  # 1-D nets: test_models_1d.py

# Measured from the study's own models with a 50-class head (anchor-persist.md §2).
STUDY_PARAMETERS = {
    "resnet18": 11_194_482,
    "resnet50": 23_602_802,
    "resnet18_wide": 44_703_922,
    "wrn28_1": 372_098,
    "wrn28_2": 1_472_770,
    "wrn28_4": 5_859_330,
    "wrn28_6": 13_160_194,
    "wrn28_8": 23_375_362,
    "wrn28_10": 36_504_834,
    "densenet121": 6_997_426,
    "efficientnet_b0": 4_071_598,
    "vgg16_bn": 14_748_786,
    "convnext_tiny": 27_855_026,
    "mobilenet_v3_small": 1_087_570,
    "shufflenet_v2": 1_304_854,
    "regnet_y_400mf": 3_925_194,
    "vit_small": 2_151_218,
    "vit_tiny": 286_386,
    "mlp_mixer": 2_270_002,
}

# Largest dropout / stochastic-depth probability in each stochastic model of the study; all others have none.
STOCHASTIC = {
    **{f"wrn28_{k}": 0.3 for k in (1, 2, 4, 6, 8, 10)},
    "efficientnet_b0": 0.2,
    "convnext_tiny": 0.1,
    "vit_small": 0.1,
    "vit_tiny": 0.1,
}


def tiny_model(name: str, in_channels: int = 3, image_size: int = 32) -> nn.Module:
    torch.manual_seed(0)
    return create_model(name, NUM_CLASSES, in_channels=in_channels, image_size=image_size, width=TINY)


def batch(in_channels: int, image_size: int, size: int = 2) -> torch.Tensor:
    return torch.randn(size, in_channels, image_size, image_size, generator=torch.Generator().manual_seed(1))


def labels(size: int = 2) -> torch.Tensor:
    return torch.arange(size) % NUM_CLASSES


def max_drop_probability(model: nn.Module) -> float:
    probabilities = [m.p for m in model.modules() if isinstance(m, (nn.Dropout, StochasticDepth))]
    return max(probabilities, default=0.0)


def test_all_study_architectures_are_registered():
    assert set(STUDY_PARAMETERS) <= set(list_models())
    assert {"mlp", "cnn"} <= set(list_models())


@pytest.mark.parametrize("name", sorted(STUDY_PARAMETERS))
def test_width_one_matches_the_study_parameter_count(name):
    with torch.device("meta"):
        model = create_model(name, 50)
    assert count_parameters(model) == STUDY_PARAMETERS[name]


@pytest.mark.parametrize("shape", INPUTS.values(), ids=INPUTS.keys())
@pytest.mark.parametrize("name", IMAGE_MODELS)
def test_forward_backward_reaches_every_parameter(name, shape):
    in_channels, image_size = shape
    model = tiny_model(name, in_channels, image_size).train()
    logits = model(batch(in_channels, image_size))
    assert logits.shape == (2, NUM_CLASSES)
    assert torch.isfinite(logits).all()
    F.cross_entropy(logits, labels()).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert missing == []
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    assert sum(p.grad.abs().sum() for p in model.parameters()) > 0


@pytest.mark.parametrize("name", IMAGE_MODELS)
def test_eval_is_deterministic_and_train_is_stochastic_as_in_the_study(name):
    model = tiny_model(name)
    assert max_drop_probability(model) == pytest.approx(STOCHASTIC.get(name, 0.0))
    x = batch(3, 32, size=4)
    with torch.no_grad():
        train_differs = not torch.equal(model(x), model(x))
        model.eval()
        assert torch.equal(model(x), model(x))
    assert train_differs == (name in STOCHASTIC)


@pytest.mark.parametrize("name", IMAGE_MODELS)
def test_widened_head_keeps_old_logits(name):
    model = tiny_model(name, 1, 8).eval()
    x = batch(1, 8)
    with torch.no_grad():
        before = model(x)
        old = get_classifier(model)
        wider = nn.Linear(old.in_features, NUM_CLASSES + 3)
        wider.weight[:NUM_CLASSES] = old.weight
        wider.bias[:NUM_CLASSES] = old.bias
        parameters = count_parameters(model)
        set_classifier(model, wider)
        after = model(x)
    assert get_classifier(model) is wider
    assert count_parameters(model) == parameters + 3 * (old.in_features + 1)
    assert after.shape == (2, NUM_CLASSES + 3)
    torch.testing.assert_close(after[:, :NUM_CLASSES], before)


def hessian_vector_products(name: str) -> tuple[torch.Tensor, torch.Tensor, Callable]:
    """H v by torch.func (jvp over grad, what the curvature code uses) and by autograd double backward."""
    model = tiny_model(name, 1, 8).double().eval()
    x, y = batch(1, 8).double(), labels()
    params = {n: p.detach() for n, p in model.named_parameters()}
    buffers = dict(model.named_buffers())

    def loss(p: dict[str, torch.Tensor]) -> torch.Tensor:
        return F.cross_entropy(functional_call(model, (p, buffers), (x,)), y)

    generator = torch.Generator().manual_seed(2)
    v = {n: torch.randn(p.shape, generator=generator, dtype=p.dtype) for n, p in params.items()}
    _, forward_over_reverse = jvp(grad(loss), (params,), (v,))
    leaves = {n: p.clone().requires_grad_() for n, p in params.items()}
    grads = torch.autograd.grad(loss(leaves), tuple(leaves.values()), create_graph=True)
    reverse_over_reverse = torch.autograd.grad(grads, tuple(leaves.values()), grad_outputs=tuple(v.values()))

    def finite_difference(eps: float) -> torch.Tensor:
        plus = grad(loss)({n: p + eps * v[n] for n, p in params.items()})
        minus = grad(loss)({n: p - eps * v[n] for n, p in params.items()})
        return torch.cat([((plus[n] - minus[n]) / (2 * eps)).flatten() for n in params])

    exact = torch.cat([forward_over_reverse[n].flatten() for n in params])
    return exact, torch.cat([h.flatten() for h in reverse_over_reverse]), finite_difference


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b))


@pytest.mark.parametrize("name", IMAGE_MODELS)
def test_torch_func_hessian_vector_product_runs_and_agrees_with_double_backward(name):
    """The anchor lost its curvature baselines on attention and hardsigmoid models; none may fail here."""
    forward_over_reverse, reverse_over_reverse, _ = hessian_vector_products(name)
    assert torch.isfinite(forward_over_reverse).all()
    assert forward_over_reverse.abs().max() > 0
    assert relative_error(forward_over_reverse, reverse_over_reverse) < 1e-10


def test_vit_hessian_vector_product_matches_finite_differences():
    """A non-AD check where the loss is smooth (GELU, softmax, LayerNorm; no ReLU kinks for eps to cross)."""
    exact, _, finite_difference = hessian_vector_products("vit_tiny")
    assert relative_error(exact, finite_difference(1e-6)) < 1e-7


def test_token_grids_at_both_input_sizes():
    """The study's 8x8 token grid at 32 px; on 8 px digits the Mixer keeps it and the ViT uses 2x2 patches."""
    assert token_layout(32) == (4, 64)
    assert token_layout(8) == (1, 64)
    assert vit_token_layout(32) == (4, 64) and vit_token_layout(8) == (4, 4)
    for (in_channels, image_size), (patch, tokens) in zip(INPUTS.values(), ((4, 64), (4, 4)), strict=True):
        vit = create_model("vit_tiny", NUM_CLASSES, in_channels, image_size, width=TINY)
        assert vit.patch_embed.kernel_size == (patch, patch)
        assert vit.pos_embed.shape == (1, tokens + 1, 16)
        mixer = create_model("mlp_mixer", NUM_CLASSES, in_channels, image_size, width=TINY)
        assert mixer.blocks[0].token_mlp[0].in_features == 64


@pytest.mark.parametrize("image_size, pools", [(32, 5), (8, 3)])
def test_vgg_skips_only_the_pools_that_would_shrink_below_1x1(image_size, pools):
    model = create_model("vgg16_bn", NUM_CLASSES, 3, image_size, width=TINY)
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.modules()) == pools
    assert sum(isinstance(m, nn.Conv2d) for m in model.modules()) == 13


def test_mobilenet_hardsigmoid_is_replaced_by_the_same_function():
    model = create_model("mobilenet_v3_small", NUM_CLASSES, width=TINY)
    assert not any(isinstance(m, nn.Hardsigmoid) for m in model.modules())
    assert sum(isinstance(m, Hardsigmoid) for m in model.modules()) == 9
    x = torch.linspace(-5, 5, 1001)
    torch.testing.assert_close(Hardsigmoid()(x), F.hardsigmoid(x), rtol=0, atol=1e-7)


@pytest.mark.parametrize(
    "name, width, stem, head_in",
    [
        ("resnet18", 0.5, 32, 256),
        ("resnet18_wide", 0.5, 64, 512),
        ("wrn28_10", 0.1, 4, 64),
        ("vit_small", 0.5, None, 128),
    ],
)
def test_width_scales_channels(name, width, stem, head_in):
    model = create_model(name, NUM_CLASSES, width=width)
    assert get_classifier(model).in_features == head_in
    if stem is not None:
        assert model.conv1.out_channels == stem
