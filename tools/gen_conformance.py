"""Generate the op conformance suite of candle-coreml's portable backend.

Each case is a tiny ML program built with coremltools' MIL builder (one op, or
a few, with every parameter a Python constant so that it becomes a `const` op),
converted with an empty pass pipeline and saved as

    crates/candle-coreml/tests/fixtures/conformance/<op>/<case>/
        model.mlpackage   the program
        case.npz          "input:<name>" arrays fed, "output:<name>" expected arrays
        case.json         {"op", "case", "rtol", "atol", "dtype"}

Expected values come from numpy or torch (never from coremltools), written
from the op formulas of the MIL documentation. The list of every MIL op name of
the iOS15-iOS18 opsets is written to all_ops.txt.

Run with the tools venv:  tools/.venv/bin/python tools/gen_conformance.py
Options: --only <op>[,<op>...] regenerates some ops only (others are kept).
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import sys
import tempfile
import uuid
import zipfile
from pathlib import Path

import numpy as np

import coremltools as ct
from coremltools.converters.mil.mil.ops.registry import SSAOpRegistry
from coremltools.proto import Model_pb2

from gen_conformance_cases import register_all

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "crates/candle-coreml/tests/fixtures/conformance"
MANIFEST = ROOT / "crates/candle-coreml/tests/conformance_manifest.txt"
_UUID_NS = uuid.UUID("0b5d7c57-5d7e-4a8e-9b7a-6c4a3f1de2c9")
# ArrayFeatureType.ArrayDataType values -> numpy dtypes.
_SPEC_TO_NP = {65568: np.float32, 65552: np.float16, 131104: np.int32, 65600: np.float64}


def all_mil_ops() -> list[str]:
    """Distinct public MIL op names registered for any of the iOS15-iOS18 opsets."""
    t = ct.target
    keep = (t.iOS15, t.iOS16, t.iOS17, t.iOS18)
    return sorted(
        name
        for name, versions in SSAOpRegistry.core_ops.items()
        if not name.startswith("_") and any(v in versions for v in keep)
    )


def _write_npz(path: Path, arrays: dict) -> None:
    """Uncompressed npz with fixed timestamps (byte-identical between runs)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for key in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arrays[key]), allow_pickle=False)
            info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())


def _repackage(tmp_pkg: Path, out_pkg: Path, tag: str) -> Model_pb2.Model:
    """Copy a saved package with the volatile metadata dropped and stable ids."""
    data = tmp_pkg / "Data/com.apple.CoreML"
    spec = Model_pb2.Model()
    spec.ParseFromString((data / "model.mlmodel").read_bytes())
    meta = spec.description.metadata.userDefined
    if "com.github.apple.coremltools.conversion_date" in meta:
        del meta["com.github.apple.coremltools.conversion_date"]
    dst = out_pkg / "Data/com.apple.CoreML"
    dst.mkdir(parents=True)
    (dst / "model.mlmodel").write_bytes(spec.SerializeToString(deterministic=True))
    model_id = str(uuid.uuid5(_UUID_NS, tag + "/model"))
    entries = {
        model_id: {
            "author": "com.apple.CoreML",
            "description": "CoreML Model Specification",
            "name": "model.mlmodel",
            "path": "com.apple.CoreML/model.mlmodel",
        }
    }
    weights = data / "weights/weight.bin"
    if weights.exists():
        (dst / "weights").mkdir()
        shutil.copyfile(weights, dst / "weights/weight.bin")
        entries[str(uuid.uuid5(_UUID_NS, tag + "/weights"))] = {
            "author": "com.apple.CoreML",
            "description": "CoreML Model Weights",
            "name": "weights",
            "path": "com.apple.CoreML/weights",
        }
    manifest = {"fileFormatVersion": "1.0.0", "itemInfoEntries": entries, "rootModelIdentifier": model_id}
    (out_pkg / "Manifest.json").write_text(json.dumps(manifest, indent=4, sort_keys=True) + "\n")
    return spec


def emit(c, tmp: Path) -> str | None:
    """Build, convert and save one case; returns an error string if skipped."""
    target = c.target
    if c.error:
        return c.error
    try:
        prog = c.program
        prec = ct.precision.FLOAT16 if c.dtype == "fp16" else ct.precision.FLOAT32
        mlmodel = ct.convert(
            prog,
            convert_to="mlprogram",
            pass_pipeline=ct.PassPipeline.EMPTY,
            minimum_deployment_target=target,
            compute_precision=prec,
        )
        tmp_pkg = tmp / f"{c.op}__{c.name}.mlpackage"
        mlmodel.save(str(tmp_pkg))
    except Exception as e:  # a case coremltools rejects is skipped
        return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:300]
    case_dir = OUT / c.op / c.name
    if case_dir.exists():
        shutil.rmtree(case_dir)
    case_dir.mkdir(parents=True)
    spec = _repackage(tmp_pkg, case_dir / "model.mlpackage", f"{c.op}/{c.name}")
    arrays = {}
    spec_inputs = {i.name: i for i in spec.description.input}
    for name, arr in c.inputs.items():
        fed = arr
        si = spec_inputs.get(name)
        if si is not None and si.type.multiArrayType.dataType in _SPEC_TO_NP:
            fed = arr.astype(_SPEC_TO_NP[si.type.multiArrayType.dataType])
        arrays[f"input:{name}"] = fed
    outs = list(spec.description.output)
    if len(outs) != len(c.expected):
        shutil.rmtree(case_dir)
        return f"expected {len(c.expected)} outputs, the model has {len(outs)}"
    for o, exp in zip(outs, c.expected):
        dt = _SPEC_TO_NP.get(o.type.multiArrayType.dataType, np.float32)
        arrays[f"output:{o.name}"] = np.asarray(exp).astype(dt)
    _write_npz(case_dir / "case.npz", arrays)
    meta = {"op": c.op, "case": c.name, "rtol": c.rtol, "atol": c.atol, "dtype": c.dtype}
    if getattr(c, "check", None):  # e.g. "shape_only" for random ops
        meta["check"] = c.check
    (case_dir / "case.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help="comma-separated op names to regenerate")
    args = ap.parse_args()
    only = {s for s in args.only.split(",") if s}
    cases = register_all()
    names = [f"{c.op}/{c.name}" for c in cases]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        print("duplicate case names:", sorted(dup))
        return 1
    OUT.mkdir(parents=True, exist_ok=True)
    if not only:
        for d in OUT.iterdir():
            if d.is_dir():
                shutil.rmtree(d)
    (OUT / "all_ops.txt").write_text("\n".join(all_mil_ops()) + "\n")
    made, skipped = [], []
    with tempfile.TemporaryDirectory() as t:
        for c in cases:
            if only and c.op not in only:
                continue
            err = emit(c, Path(t))
            tag = f"{c.op}/{c.name}"
            if err:
                skipped.append(tag)
                print(f"SKIP {tag}: {err}")
            else:
                made.append(tag)
    on_disk = sorted(f"{p.parent.parent.name}/{p.parent.name}" for p in OUT.glob("*/*/case.json"))
    _write_manifest(on_disk)
    print(f"{len(made)} cases written, {len(skipped)} skipped")
    return 0


def _write_manifest(tags: list[str]) -> None:
    """Keeps the status of known cases; new cases start as `pass`."""
    old = {}
    if MANIFEST.exists():
        for line in MANIFEST.read_text().splitlines():
            body = line.split("#", 1)[0].split()
            if len(body) >= 2:
                old[body[0]] = line
    lines = [
        "# Op conformance cases of the portable backend: <op>/<case> pass|fail|skip  # reason",
        "# Generated by tools/gen_conformance.py; statuses are set by running",
        "# `cargo test -p candle-coreml --test conformance`. Coverage only goes up.",
    ]
    lines += [old.get(t, f"{t} pass") for t in tags]
    # NeuralNetwork cases (gen_conformance_neuralnetwork.py) are kept as they are.
    lines += [line for tag, line in old.items() if tag.startswith("nn/")]
    MANIFEST.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
