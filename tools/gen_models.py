"""Container and feature fixtures: tests/fixtures/models/.

Every model is built with coremltools (MIL builder or torch conversion); the
expected outputs in `<name>.npz` come from numpy or torch, never from Core ML.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

import coremltools as ct
from coremltools.converters.mil import Builder as mb
from coremltools.converters.mil.mil import types
from coremltools.libmilstoragepython import _BlobStorageReader
from coremltools.converters.mil.backend.mil import helper as mil_helper

import fixture_io as fio

# Seed for every random tensor in this module.
SEED = 20240611


def _rng(tag: str) -> np.random.Generator:
    return np.random.default_rng([SEED, sum(tag.encode())])


def _convert_prog(prog, target, precision=ct.precision.FLOAT32, passes=None):
    kwargs = {}
    if passes is not None:
        kwargs["pass_pipeline"] = passes
    return ct.convert(
        prog,
        convert_to="mlprogram",
        minimum_deployment_target=target,
        compute_precision=precision,
        **kwargs,
    )


def _save(mlmodel, name: str, out_dir: Path, tmp: Path, npz: dict | None = None,
          extra_json: dict | None = None):
    """Save an mlprogram/pipeline package deterministically with its JSON/NPZ."""
    tmp_pkg = tmp / f"{name}.mlpackage"
    mlmodel.save(str(tmp_pkg))
    spec = fio.resave_package(tmp_pkg, out_dir / f"{name}.mlpackage", name)
    fio.write_description(spec, out_dir / f"{name}.json", name, f"{name}.mlpackage",
                          "mlpackage", extra_json)
    if npz is not None:
        fio.write_npz(out_dir / f"{name}.npz", npz)
    return spec


# --------------------------------------------------------------------------
# MLPs (fp32 and fp16), with blob weights and inline weights
# --------------------------------------------------------------------------


def _mlp_weights():
    r = _rng("mlp")
    w1 = (r.standard_normal((32, 16)) * 0.25).astype(np.float32)
    b1 = (r.standard_normal(32) * 0.1).astype(np.float32)
    w2 = (r.standard_normal((8, 32)) * 0.25).astype(np.float32)
    b2 = (r.standard_normal(8) * 0.1).astype(np.float32)
    x = r.standard_normal((1, 16)).astype(np.float32)
    return w1, b1, w2, b2, x


def _mlp_ref(x, w1, b1, w2, b2):
    h = np.maximum(x @ w1.T + b1, 0.0)
    return h @ w2.T + b2


def build_mlp(dtype: str, target):
    """linear(16->32) + relu + linear(32->8), all in `dtype`."""
    w1, b1, w2, b2, x = _mlp_weights()
    np_t = np.float16 if dtype == "fp16" else np.float32
    mil_t = types.fp16 if dtype == "fp16" else types.fp32

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 16), dtype=mil_t)], opset_version=target)
    def prog(x):
        h = mb.linear(x=x, weight=w1.astype(np_t), bias=b1.astype(np_t), name="fc1")
        h = mb.relu(x=h, name="relu1")
        return mb.linear(x=h, weight=w2.astype(np_t), bias=b2.astype(np_t), name="out")

    model = _convert_prog(prog, target)
    xin = x.astype(np_t)
    if dtype == "fp16":
        ref = _mlp_ref(xin.astype(np.float32), *(a.astype(np_t).astype(np.float32)
                                                 for a in (w1, b1, w2, b2)))
    else:
        ref = _mlp_ref(x, w1, b1, w2, b2)
    return model, {"input:x": xin, "output:out": ref.astype(np.float32)}


def inline_blob_values(spec, weights_dir: Path) -> int:
    """Replace every blobFileValue of an ML Program by an immediate value.

    Values are read with coremltools' own blob reader and re-encoded with its
    own immediate-value helper. Returns how many values were inlined.
    """
    reader = _BlobStorageReader(str(weights_dir / "weight.bin"))
    readers = {
        "FLOAT16": lambda off: reader.read_fp16_data(off).view(np.float16),
        "FLOAT32": reader.read_float_data,
        "INT8": reader.read_int8_data,
        "UINT8": reader.read_uint8_data,
        "INT32": reader.read_int32_data,
    }
    count = 0

    def fix_value(val):
        nonlocal count
        if val.WhichOneof("value") != "blobFileValue":
            return
        tt = val.type.tensorType
        dt = fio.MIL_pb2.DataType.Name(tt.dataType)
        shape = [int(d.constant.size) for d in tt.dimensions]
        data = np.asarray(readers[dt](val.blobFileValue.offset)).reshape(shape)
        imm = mil_helper.create_tensor_value(data)
        val.ClearField("blobFileValue")
        val.immediateValue.tensor.CopyFrom(imm.immediateValue.tensor)
        count += 1

    def walk(block):
        for op in block.operations:
            for v in op.attributes.values():
                fix_value(v)
            for arg in op.inputs.values():
                for b in arg.arguments:
                    if b.WhichOneof("binding") == "value":
                        fix_value(b.value)
            for nested in op.blocks:
                walk(nested)

    for f in spec.mlProgram.functions.values():
        for block in f.block_specializations.values():
            walk(block)
    return count


def save_inline(pkg: Path, name: str, out_dir: Path, npz: dict) -> None:
    """Write the package's program as one .mlmodel with all weights inline."""
    spec = fio.load_spec_from_package(pkg)
    n = inline_blob_values(spec, pkg / "Data" / "com.apple.CoreML" / "weights")
    fio.scrub_metadata(spec, name)
    fio.write_mlmodel(spec, out_dir / f"{name}.mlmodel")
    fio.write_description(spec, out_dir / f"{name}.json", name, f"{name}.mlmodel", "mlmodel",
                          {"inlined_blob_values": n})
    fio.write_npz(out_dir / f"{name}.npz", npz)


# --------------------------------------------------------------------------
# Stateful (iOS18)
# --------------------------------------------------------------------------


def build_stateful_accumulator():
    """acc <- acc + x; out = 2 * acc (fp16 state [1, 8])."""

    @mb.program(
        input_specs=[
            mb.TensorSpec(shape=(1, 8), dtype=types.fp16),
            mb.StateTensorSpec(shape=(1, 8), dtype=types.fp16),
        ],
        opset_version=ct.target.iOS18,
    )
    def prog(x, acc):
        cur = mb.read_state(input=acc, name="acc_read")
        new = mb.add(x=cur, y=x, name="acc_new")
        upd = mb.coreml_update_state(state=acc, value=new, name="acc_update")
        return mb.mul(x=upd, y=np.float16(2.0), name="out")

    model = ct.convert(
        prog,
        convert_to="mlprogram",
        minimum_deployment_target=ct.target.iOS18,
        compute_precision=ct.precision.FLOAT32,
    )
    r = _rng("acc")
    xs = [r.standard_normal((1, 8)).astype(np.float16) for _ in range(3)]
    state = np.zeros((1, 8), np.float16)
    npz = {"state_in:acc": state.copy()}
    for i, xv in enumerate(xs):
        state = (state + xv).astype(np.float16)
        npz[f"step{i}/input:x"] = xv
        npz[f"step{i}/output:out"] = (state * np.float16(2)).astype(np.float16)
        npz[f"step{i}/state_out:acc"] = state.copy()
    return model, npz


def build_stateful_kv_cache():
    """A KV-cache-like write: cache[:, pos, :] = x via slice_update."""
    ctx, dim = 8, 4

    @mb.program(
        input_specs=[
            mb.TensorSpec(shape=(1, 1, dim), dtype=types.fp16),
            mb.TensorSpec(shape=(1,), dtype=types.int32),
            mb.StateTensorSpec(shape=(1, ctx, dim), dtype=types.fp16),
        ],
        opset_version=ct.target.iOS18,
    )
    def prog(x, pos, cache):
        zero = np.array([0], dtype=np.int32)
        begin = mb.concat(values=[zero, pos, zero], axis=0, name="begin")
        end = mb.add(x=begin, y=np.array([1, 1, dim], dtype=np.int32), name="end")
        cur = mb.read_state(input=cache, name="cache_read")
        new = mb.slice_update(x=cur, update=x, begin=begin, end=end, name="cache_new")
        upd = mb.coreml_update_state(state=cache, value=new, name="cache_update")
        return mb.reduce_sum(x=upd, axes=[1], keep_dims=False, name="out")

    model = ct.convert(
        prog,
        convert_to="mlprogram",
        minimum_deployment_target=ct.target.iOS18,
        compute_precision=ct.precision.FLOAT32,
    )
    r = _rng("kv")
    cache = np.zeros((1, ctx, dim), np.float16)
    npz = {"state_in:cache": cache.copy()}
    for i, p in enumerate([0, 1, 5]):
        xv = r.standard_normal((1, 1, dim)).astype(np.float16)
        cache[:, p : p + 1, :] = xv
        npz[f"step{i}/input:x"] = xv
        npz[f"step{i}/input:pos"] = np.array([p], np.int32)
        npz[f"step{i}/output:out"] = cache.astype(np.float32).sum(axis=1).astype(np.float16)
        npz[f"step{i}/state_out:cache"] = cache.copy()
    return model, npz


# --------------------------------------------------------------------------
# Multifunction (prefill / infer sharing weights)
# --------------------------------------------------------------------------


def build_multifunction(out_dir: Path, tmp: Path) -> None:
    """Two functions, `prefill` (T=4) and `infer` (T=1), sharing one linear."""
    r = _rng("multifunction")
    w = (r.standard_normal((16, 16)) * 0.25).astype(np.float16)
    b = (r.standard_normal(16) * 0.1).astype(np.float16)

    def make(t: int):
        @mb.program(input_specs=[mb.TensorSpec(shape=(1, t, 16), dtype=types.fp16)],
                    opset_version=ct.target.iOS18)
        def prog(hidden_states):
            h = mb.linear(x=hidden_states, weight=w, bias=b, name="proj")
            return mb.silu(x=h, name="output_hidden_states")

        return _convert_prog(prog, ct.target.iOS18)

    paths = {}
    for fname, t in (("prefill", 4), ("infer", 1)):
        p = tmp / f"mf_{fname}.mlpackage"
        make(t).save(str(p))
        paths[fname] = p
    desc = ct.utils.MultiFunctionDescriptor()
    for fname, p in paths.items():
        desc.add_function(str(p), src_function_name="main", target_function_name=fname)
    desc.default_function_name = "infer"
    merged = tmp / "multifunction.mlpackage"
    ct.utils.save_multifunction(desc, str(merged))
    spec = fio.resave_package(merged, out_dir / "multifunction.mlpackage", "multifunction")
    fio.write_description(spec, out_dir / "multifunction.json", "multifunction",
                          "multifunction.mlpackage", "mlpackage")
    npz = {}
    for fname, t in (("prefill", 4), ("infer", 1)):
        x = r.standard_normal((1, t, 16)).astype(np.float16)
        h = x.astype(np.float32) @ w.astype(np.float32).T + b.astype(np.float32)
        npz[f"{fname}/input:hidden_states"] = x
        npz[f"{fname}/output:output_hidden_states"] = (h / (1.0 + np.exp(-h))).astype(np.float32)
    fio.write_npz(out_dir / "multifunction.npz", npz)


# --------------------------------------------------------------------------
# Control flow (nested blocks)
# --------------------------------------------------------------------------


def build_control_flow():
    """out = cond(sum(x) > 0, x * 2, x - 1): a program with nested blocks."""

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 4))], opset_version=ct.target.iOS17)
    def prog(x):
        s = mb.reduce_sum(x=x, axes=[0, 1], keep_dims=False, name="total")
        pred = mb.greater(x=s, y=np.float32(0.0), name="positive")
        return mb.cond(
            pred=pred,
            _true_fn=lambda: mb.mul(x=x, y=np.float32(2.0), name="doubled"),
            _false_fn=lambda: mb.sub(x=x, y=np.float32(1.0), name="decremented"),
            name="out",
        )

    model = _convert_prog(prog, ct.target.iOS17, passes=ct.PassPipeline.EMPTY)
    r = _rng("cond")
    pos = np.abs(r.standard_normal((1, 4))).astype(np.float32)
    neg = -pos
    npz = {
        "case0/input:x": pos,
        "case0/output:out": pos * 2,
        "case1/input:x": neg,
        "case1/output:out": neg - 1,
    }
    return model, npz
