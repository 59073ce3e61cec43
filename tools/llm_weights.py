"""Reads a converted bundle's weights back, dequantized, into an HF model.

Every weight of the reference model comes from the bundle's own
.mlpackages: each const is read with coremltools' MIL loader and each
constexpr op (LUT palettization) is decompressed by coremltools itself
(`materialized_val_inference`, the code behind `decompress_weights`).

Which package tensor is which HF parameter: ANEMLL's traced names are not
all usable (`o_proj` becomes `squeeze_0_...`, norms `const_4_...`), so each
HF parameter is matched by value: the original (pre-conversion) weight
picks, among the package tensors of the same size, the one it is nearest to
(exact up to fp16 for unquantized tensors; within the LUT error for
palettized ones), and the match must be clearly better than the runner-up.
The original weight only identifies the tensor; the value loaded is the
package's. The LM head's split parts are joined in program order first.
"""
from __future__ import annotations

import numpy as np
import torch
import coremltools as ct
from coremltools.converters.mil.frontend.milproto.load import load as mil_load


def package_tensors(path) -> dict[str, np.ndarray]:
    """name -> float32 value of every const/constexpr output of >= 16 elements.

    Functions of a multifunction package share weights; all are read and a
    name seen twice must carry the same value.
    """
    model = ct.models.MLModel(str(path), skip_model_load=True)
    spec = model.get_spec()
    prog = mil_load(spec, specification_version=spec.specificationVersion,
                    file_weights_dir=model.weights_dir)
    out: dict[str, np.ndarray] = {}
    for fn_name, fn in prog.functions.items():
        consumed = set()
        for op in fn.operations:
            if op.op_type.startswith("constexpr_"):
                consumed.update(v.name for v in op.inputs.values())
        for op in fn.operations:
            if op.op_type == "const":
                val = op.outputs[0].val
                if op.outputs[0].name in consumed or not isinstance(val, np.ndarray):
                    continue
            elif op.op_type.startswith("constexpr_"):
                val = op.materialized_val_inference()
                val = val[-1] if isinstance(val, (list, tuple)) else val
            else:
                continue
            if val.dtype.kind != "f" or val.size < 16:
                continue
            key = f"{path.name}:{op.outputs[-1].name}"
            val = np.asarray(val, dtype=np.float32)
            if key in out and not np.array_equal(out[key], val):
                raise RuntimeError(f"{key}: functions disagree ({fn_name})")
            out[key] = val
    return out


def lm_head_parts(path, vocab: int) -> np.ndarray:
    """The LM head's weight: its split parts (2D after squeezing) in program order.

    The parts are the last run of equally shaped [rows, hidden, 1, 1] weights
    whose rows add up to `vocab` (in a monolithic file the layers' 1x1-conv
    weights come before them).
    """
    model = ct.models.MLModel(str(path), skip_model_load=True)
    spec = model.get_spec()
    prog = mil_load(spec, specification_version=spec.specificationVersion,
                    file_weights_dir=model.weights_dir)
    fn = prog.functions[next(iter(prog.functions))]
    consumed = set()
    for op in fn.operations:
        if op.op_type.startswith("constexpr_"):
            consumed.update(v.name for v in op.inputs.values())
    parts = []
    for op in fn.operations:
        if op.op_type.startswith("constexpr_"):
            val = op.materialized_val_inference()
        elif op.op_type == "const" and op.outputs[0].name not in consumed:
            val = op.outputs[0].val
        else:
            continue
        val = np.asarray(val)
        if val.dtype.kind == "f" and val.ndim == 4 and val.shape[2:] == (1, 1):
            parts.append(val[:, :, 0, 0].astype(np.float32))
    run = []
    for part in reversed(parts):
        if run and part.shape != run[0].shape:
            break
        run.append(part)
        if sum(p.shape[0] for p in run) == vocab:
            return np.concatenate(run[::-1], axis=0)
    raise RuntimeError(f"{path}: no run of LM-head parts adds up to {vocab} rows")


def _candidates(want: np.ndarray, have: np.ndarray, offset_norm: bool):
    """Views of `have` comparable with `want` (same shape), with their transform names."""
    squeezed = have.reshape([d for d in have.shape if d != 1] or [1])
    if squeezed.size != want.size:
        return
    if squeezed.shape == want.shape:
        yield "as-is", squeezed
    if squeezed.ndim == 2 and squeezed.T.shape == want.shape:
        yield "transposed", squeezed.T
    if want.ndim == 1 and offset_norm:
        yield "1+w", squeezed - 1.0


def assign(original: dict[str, torch.Tensor], tensors: dict[str, np.ndarray],
           offset_norm: bool = False) -> tuple[dict[str, np.ndarray], list[str]]:
    """For each original parameter, the package value matched to it; plus a report."""
    result, report = {}, []
    used = {}
    for name, w in original.items():
        want = w.detach().float().numpy()
        scored = []
        for key, have in tensors.items():
            for how, view in _candidates(want, have, offset_norm):
                err = float(np.linalg.norm(view - want) / (np.linalg.norm(want) + 1e-12))
                scored.append((err, key, how, view))
        if not scored:
            raise RuntimeError(f"no bundle tensor has the size of {name} {tuple(want.shape)}")
        scored.sort(key=lambda s: s[0])
        err, key, how, view = scored[0]
        # The same value under another name (each function of a multifunction
        # file names its consts itself) is the same tensor, not a rival.
        rivals = [s[0] for s in scored[1:] if not np.array_equal(s[3], view)]
        runner_up = rivals[0] if rivals else float("inf")
        # fp16 rounding or LUT error, against ~1x the range for another random tensor.
        if err > 0.3 or runner_up < 5 * err:
            raise RuntimeError(f"{name}: ambiguous match {key} ({how}, rel err {err:.3g}, "
                               f"runner-up {runner_up:.3g})")
        if key in used:
            raise RuntimeError(f"{key} matched twice ({used[key]}, {name})")
        used[key] = name
        result[name] = np.ascontiguousarray(view)
        report.append(f"{name} <- {key} ({how}, rel RMS diff to original {err:.2e})")
    return result, report
