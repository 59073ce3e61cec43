"""Fixtures converted from torch: flexible shapes, image input, NeuralNetwork,
and a pipeline. Expected outputs come from torch itself."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

import coremltools as ct
from coremltools.converters.mil import Builder as mb

import fixture_io as fio
from gen_models import SEED, _rng, _save

torch.manual_seed(SEED)


class _Linear(torch.nn.Module):
    def __init__(self, fin: int, fout: int):
        super().__init__()
        self.fc = torch.nn.Linear(fin, fout)

    def forward(self, x):
        return torch.relu(self.fc(x))


def _seeded(module: torch.nn.Module, tag: str) -> torch.nn.Module:
    r = _rng(tag)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.from_numpy((r.standard_normal(p.shape) * 0.3).astype(np.float32)))
    return module.eval()


def _trace(module, example):
    with torch.no_grad():
        return torch.jit.trace(module, example)


def build_flexible_range():
    """linear over [1, seq, 16] with seq a RangeDim(1..16, default 4)."""
    m = _seeded(_Linear(16, 8), "flex_range")
    traced = _trace(m, torch.zeros(1, 4, 16))
    seq = ct.RangeDim(lower_bound=1, upper_bound=16, default=4, symbol="seq")
    model = ct.convert(
        traced,
        convert_to="mlprogram",
        minimum_deployment_target=ct.target.iOS17,
        compute_precision=ct.precision.FLOAT32,
        inputs=[ct.TensorType(name="x", shape=(1, seq, 16), dtype=np.float32)],
        outputs=[ct.TensorType(name="y")],
    )
    r = _rng("flex_range_x")
    npz = {}
    for t in (1, 4, 16):
        x = r.standard_normal((1, t, 16)).astype(np.float32)
        with torch.no_grad():
            y = m(torch.from_numpy(x)).numpy()
        npz[f"seq{t}/input:x"], npz[f"seq{t}/output:y"] = x, y
    return model, npz


def build_flexible_enumerated():
    """linear over x of shape (1,16), (2,16) or (4,16)."""
    m = _seeded(_Linear(16, 8), "flex_enum")
    traced = _trace(m, torch.zeros(1, 16))
    shapes = ct.EnumeratedShapes(shapes=[(1, 16), (2, 16), (4, 16)], default=(1, 16))
    model = ct.convert(
        traced,
        convert_to="mlprogram",
        minimum_deployment_target=ct.target.iOS17,
        compute_precision=ct.precision.FLOAT32,
        inputs=[ct.TensorType(name="x", shape=shapes, dtype=np.float32)],
        outputs=[ct.TensorType(name="y")],
    )
    r = _rng("flex_enum_x")
    npz = {}
    for b in (1, 2, 4):
        x = r.standard_normal((b, 16)).astype(np.float32)
        with torch.no_grad():
            y = m(torch.from_numpy(x)).numpy()
        npz[f"batch{b}/input:x"], npz[f"batch{b}/output:y"] = x, y
    return model, npz


class _Conv(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        return torch.relu(self.conv(x))


IMAGE_SCALE = 1.0 / 255.0
IMAGE_BIAS = [-0.5, -0.25, 0.0]


def build_image_input():
    """RGB 8x8 image input with scale/bias preprocessing, then conv + relu."""
    m = _seeded(_Conv(), "image")
    traced = _trace(m, torch.zeros(1, 3, 8, 8))
    model = ct.convert(
        traced,
        convert_to="mlprogram",
        minimum_deployment_target=ct.target.iOS17,
        compute_precision=ct.precision.FLOAT32,
        inputs=[ct.ImageType(name="image", shape=(1, 3, 8, 8), scale=IMAGE_SCALE,
                             bias=IMAGE_BIAS, color_layout=ct.colorlayout.RGB)],
        outputs=[ct.TensorType(name="features")],
    )
    r = _rng("image_x")
    img = r.integers(0, 256, size=(1, 3, 8, 8), dtype=np.uint8)
    pre = img.astype(np.float32) * np.float32(IMAGE_SCALE) + np.array(
        IMAGE_BIAS, np.float32).reshape(1, 3, 1, 1)
    with torch.no_grad():
        y = m(torch.from_numpy(pre)).numpy()
    return model, {"input:image": img, "preprocessed:image": pre, "output:features": y}


class _Mlp(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(16, 32)
        self.fc2 = torch.nn.Linear(32, 8)

    def forward(self, x):
        return torch.softmax(self.fc2(torch.relu(self.fc1(x))), dim=-1)


def build_neural_network(out_dir: Path, tmp: Path) -> None:
    """An old-style NeuralNetwork .mlmodel (linear, relu, linear, softmax)."""
    m = _seeded(_Mlp(), "nn")
    traced = _trace(m, torch.zeros(1, 16))
    model = ct.convert(
        traced,
        convert_to="neuralnetwork",
        inputs=[ct.TensorType(name="x", shape=(1, 16), dtype=np.float32)],
        outputs=[ct.TensorType(name="probs")],
    )
    name = "neural_network"
    spec = model.get_spec()
    fio.scrub_metadata(spec, name)
    fio.write_mlmodel(spec, out_dir / f"{name}.mlmodel")
    fio.write_description(spec, out_dir / f"{name}.json", name, f"{name}.mlmodel", "mlmodel")
    x = _rng("nn_x").standard_normal((1, 16)).astype(np.float32)
    with torch.no_grad():
        y = m(torch.from_numpy(x)).numpy()
    fio.write_npz(out_dir / f"{name}.npz", {"input:x": x, "output:probs": y})


def build_pipeline(out_dir: Path, tmp: Path) -> None:
    """Pipeline of two ML Programs: scale (x -> h) then softmax (h -> probs)."""
    r = _rng("pipeline")
    w = (r.standard_normal((8, 8)) * 0.5).astype(np.float32)

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 8))], opset_version=ct.target.iOS17)
    def first(x):
        return mb.linear(x=x, weight=w, name="h")

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 8))], opset_version=ct.target.iOS17)
    def second(h):
        return mb.softmax(x=h, axis=-1, name="probs")

    kw = dict(convert_to="mlprogram", minimum_deployment_target=ct.target.iOS17,
              compute_precision=ct.precision.FLOAT32)
    m1 = ct.convert(first, **kw)
    m2 = ct.convert(second, **kw)
    pipe = ct.utils.make_pipeline(m1, m2)
    x = r.standard_normal((1, 8)).astype(np.float32)
    h = x @ w.T
    e = np.exp(h - h.max(axis=-1, keepdims=True))
    npz = {"input:x": x, "output:probs": e / e.sum(axis=-1, keepdims=True)}
    _save(pipe, "pipeline", out_dir, tmp, npz)
