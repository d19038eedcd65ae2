"""Training throughput: the device-resident loader against a plain DataLoader loop, same model, same run.

The baseline is what most training scripts do: a TensorDataset behind a DataLoader with per-image
torchvision transforms (random crop with padding, horizontal flip). Prints images/s and the ratio.

    python benchmarks/bench_train.py [--quick] [--device cuda] [--arch resnet18 --width 1.0]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset
from torchvision.transforms import v2

from persist.data import iterate_batches
from persist.models import create_model


def synthetic(n: int, size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 3, size, size, generator=g).to(device), torch.randint(0, 50, (n,), generator=g).to(device)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def step(model, opt, xb, yb) -> None:
    loss = F.cross_entropy(model(xb), yb)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def epoch_resident(model, opt, x, y, batch, device) -> float:
    g = torch.Generator().manual_seed(1)
    sync(device)
    start = time.perf_counter()
    for xb, yb in iterate_batches(x, y, batch, g, shuffle=True, augment_padding=4):
        step(model, opt, xb, yb)
    sync(device)
    return len(x) / (time.perf_counter() - start)


def epoch_dataloader(model, opt, x, y, batch, device) -> float:
    aug = v2.Compose([v2.RandomCrop(x.shape[-1], padding=4, padding_mode="reflect"), v2.RandomHorizontalFlip()])

    class Augmented(TensorDataset):
        def __getitem__(self, i):
            xi, yi = super().__getitem__(i)
            return aug(xi), yi

    loader = DataLoader(Augmented(x.cpu(), y.cpu()), batch_size=batch, shuffle=True,
                        pin_memory=device.type == "cuda", num_workers=0)
    sync(device)
    start = time.perf_counter()
    for xb, yb in loader:
        step(model, opt, xb.to(device, non_blocking=True), yb.to(device, non_blocking=True))
    sync(device)
    return len(x) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer images and repeats")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--arch", default="cnn")
    parser.add_argument("--width", type=float, default=0.5)
    parser.add_argument("--images", type=int, default=0, help="images per epoch (default: 2048, quick: 512)")
    parser.add_argument("--repeats", type=int, default=0)
    args = parser.parse_args()
    device = torch.device(args.device)
    n = args.images or (512 if args.quick else 2048)
    repeats = args.repeats or (2 if args.quick else 3)
    x, y = synthetic(n, 32, device)
    model = create_model(args.arch, 50, 3, 32, args.width).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    epoch_resident(model, opt, x[:256], y[:256], 128, device)  # warm-up
    results = {}
    for name, fn in (("dataloader", epoch_dataloader), ("resident", epoch_resident)):
        results[name] = statistics.median(fn(model, opt, x, y, 128, device) for _ in range(repeats))
    print(f"{args.arch} width {args.width} on {device}, {n} images of 3x32x32, batch 128, median of {repeats}")
    for name, rate in results.items():
        print(f"  {name:<11} {rate:10.0f} images/s")
    print(f"  ratio resident / dataloader: {results['resident'] / results['dataloader']:.2f}x")


if __name__ == "__main__":
    main()
