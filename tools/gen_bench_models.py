"""Benchmark models for `cargo bench` (not committed: written to target/bench-models/).

  kv_update.mlpackage      a stateful KV-cache write: state `cache` fp16
                           [16, 8, CTX, 64] (32 MiB, like 8 layers of K and V),
                           inputs `x` fp16 [16, 8, 1, 64] and `pos` int32 [1];
                           writes x at position pos and returns 2x.
  shared_weights.mlpackage a multifunction model whose functions `infer`
                           ([1, 1, 2048] input) and `prefill` ([1, 64, 2048])
                           share one 2048x2048 fp16 weight (8 MiB).

Run: tools/.venv/bin/python tools/gen_bench_models.py [OUT_DIR]
"""
import sys
from pathlib import Path

import coremltools as ct
import numpy as np
from coremltools.converters.mil import Builder as mb
from coremltools.converters.mil.mil import types

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


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "target/bench-models")
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "tmp"
    tmp.mkdir(exist_ok=True)
    kv_update(out)
    shared_weights(out, tmp)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
