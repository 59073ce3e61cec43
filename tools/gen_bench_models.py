"""Benchmark models for `cargo bench` (not committed: written to target/bench-models/).

  kv_update.mlpackage      a stateful KV-cache write: state `cache` fp16
                           [16, 8, CTX, 64] (32 MiB, like 8 layers of K and V),
                           inputs `x` fp16 [16, 8, 1, 64] and `pos` int32 [1];
                           writes x at position pos and returns 2x.
  shared_weights.mlpackage a multifunction model whose functions `infer`
                           ([1, 1, 2048] input) and `prefill` ([1, 64, 2048])
                           share one 2048x2048 fp16 weight (8 MiB).
  <cnn>_fp32.mlpackage,    the torchvision CNNs of issue 14 (resnet18,
  <cnn>_fp16.mlpackage     efficientnet_b0, mobilenet_v3_small, squeezenet1_1)
                           with random weights (torch.manual_seed(SEED) before
                           the constructor, eval mode), traced at [1, 3, 224, 224]
                           and converted by coremltools (fp32, and fp16
                           weights and compute); input `x`, output `y`.
  <cnn>.npz                `input:x` (fixed-seed normal values) and `output:y`
                           (torch fp32 eager on it), for `bench --inputs-npz`
                           and for checking our outputs against torch.

tools/bench_models.py builds them (and bench_reference.py times them the same way).

Run: tools/.venv/bin/python tools/gen_bench_models.py [OUT_DIR] [--only cnn|kv|shared ...]
"""
import argparse
import sys
from pathlib import Path

import coremltools as ct
import numpy as np
from coremltools.converters.mil import Builder as mb
from coremltools.converters.mil.mil import types

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_models import CNNS, cnn_input, cnn_module  # noqa: E402

CTX = 2048
CACHE = (16, 8, CTX, 64)


def kv_update(out: Path) -> None:
    @mb.program(
        input_specs=[
            mb.TensorSpec(shape=(16, 8, 1, 64), dtype=types.fp16),
            mb.TensorSpec(shape=(1,), dtype=types.int32),
            mb.StateTensorSpec(shape=CACHE, dtype=types.fp16),
        ],
        opset_version=ct.target.iOS18,
    )
    def prog(x, pos, cache):
        zero = np.array([0], dtype=np.int32)
        begin = mb.concat(values=[zero, zero, pos, zero], axis=0)
        end = mb.concat(values=[np.array([16, 8], dtype=np.int32), mb.add(x=pos, y=1), np.array([64], dtype=np.int32)], axis=0)
        old = mb.read_state(input=cache)
        new = mb.slice_update(x=old, update=x, begin=begin, end=end)
        mb.coreml_update_state(state=cache, value=new)
        # The output does not read the cache back: coremltools would fold a
        # second read_state into the first (see the fusion notes in
        # crates/candle-coreml/src/portable/fuse.rs).
        return mb.mul(x=x, y=np.float16(2.0), name="row")

    m = ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS18,
                   compute_precision=ct.precision.FLOAT16)
    m.save(str(out / "kv_update.mlpackage"))


def shared_weights(out: Path, tmp: Path) -> None:
    rng = np.random.default_rng(0)
    w = (rng.standard_normal((2048, 2048)) * 0.02).astype(np.float16)
    paths = {}
    for name, t in [("infer", 1), ("prefill", 64)]:
        @mb.program(input_specs=[mb.TensorSpec(shape=(1, t, 2048), dtype=types.fp16)],
                    opset_version=ct.target.iOS18)
        def prog(x):
            return mb.linear(x=x, weight=w, name="y")

        m = ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS18,
                       compute_precision=ct.precision.FLOAT16)
        paths[name] = tmp / f"{name}.mlpackage"
        m.save(str(paths[name]))
    desc = ct.utils.MultiFunctionDescriptor()
    for name, p in paths.items():
        desc.add_function(str(p), src_function_name="main", target_function_name=name)
    desc.default_function_name = "infer"
    ct.utils.save_multifunction(desc, str(out / "shared_weights.mlpackage"))


def cnns(out: Path) -> None:
    import torch

    x = cnn_input()
    for name in CNNS:
        model = cnn_module(name)
        with torch.no_grad():
            y = model(x)
            traced = torch.jit.trace(model, x)
        np.savez(out / f"{name}.npz", **{"input:x": x.numpy(), "output:y": y.numpy()})
        for suffix, precision in [("fp32", ct.precision.FLOAT32), ("fp16", ct.precision.FLOAT16)]:
            m = ct.convert(traced, convert_to="mlprogram",
                           inputs=[ct.TensorType(name="x", shape=tuple(x.shape), dtype=np.float32)],
                           outputs=[ct.TensorType(name="y", dtype=np.float32)],
                           minimum_deployment_target=ct.target.iOS16,
                           compute_precision=precision)
            m.save(str(out / f"{name}_{suffix}.mlpackage"))
        print(f"{name}: done", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", nargs="?", default="target/bench-models")
    ap.add_argument("--only", nargs="*", choices=["cnn", "kv", "shared"])
    args = ap.parse_args()
    only = set(args.only or ["cnn", "kv", "shared"])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "tmp"
    tmp.mkdir(exist_ok=True)
    if "kv" in only:
        kv_update(out)
    if "shared" in only:
        shared_weights(out, tmp)
    if "cnn" in only:
        cnns(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
