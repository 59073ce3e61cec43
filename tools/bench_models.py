"""The torchvision CNNs of the benchmarks (issue 14), built the same way by
gen_bench_models.py (which converts them) and bench_reference.py (which times
them in PyTorch): random weights from a fixed seed, eval mode."""
from __future__ import annotations

CNNS = ("resnet18", "efficientnet_b0", "mobilenet_v3_small", "squeezenet1_1")
SEED = 0


def cnn_module(name: str):
    """The torchvision architecture `name` with seeded random weights, in eval mode."""
    import torch
    import torchvision

    if name not in CNNS:
        raise ValueError(f"unknown CNN {name!r}; one of {', '.join(CNNS)}")
    torch.manual_seed(SEED)
    return getattr(torchvision.models, name)(weights=None).eval()


def cnn_input():
    """The benchmark input: fixed-seed standard normal values, [1, 3, 224, 224]."""
    import torch

    g = torch.Generator().manual_seed(SEED)
    return torch.randn((1, 3, 224, 224), generator=g)
