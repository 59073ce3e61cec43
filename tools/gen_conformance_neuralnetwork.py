"""Generate the NeuralNetwork conformance suite of candle-coreml's portable backend.

Each case is a tiny NeuralNetwork model (the layer list of NeuralNetwork.proto,
spec versions 1-5) built with coremltools' NeuralNetworkBuilder, one layer type
and mode per case, saved as

    crates/candle-coreml/tests/fixtures/conformance_nn/<layerType>/<case>/
        model.mlmodel   the protobuf (serialized deterministically)
        case.npz        "input:<name>" arrays fed, "output:<name>" expected arrays
        case.json       {"op": "nn/<layerType>", "case", "rtol", "atol", "dtype"}

<layerType> is the name of the layer's field in the NeuralNetworkLayer oneof
(`convolution`, `innerProduct`, `uniDirectionalLSTM`...). Expected values come
from numpy or torch following NeuralNetwork.proto, never from coremltools or our
code. Cases of "legacy" layers mostly use the rank-5 input mapping (inputs of rank
1 or 3 seen as [1, 1, C, H, W]) with declared output shapes; cases of the ND layers
of spec 4+ use the exact mapping and outputs without declared shapes.

The list of every NeuralNetwork layer type is written to all_layers.txt; new cases
are added to crates/candle-coreml/tests/conformance_manifest.txt as
`nn/<layerType>/<case> pass`, keeping the status of existing lines.

Run with the tools venv:  tools/.venv/bin/python tools/gen_conformance_neuralnetwork.py
Options: --only <layerType>[,...] regenerates some layer types only.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

from coremltools.proto import NeuralNetwork_pb2

from gen_conformance import _write_npz
from gen_nn_common import CASES, NP_OF_ARRAY_TYPE

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "crates/candle-coreml/tests/fixtures/conformance_nn"
MANIFEST = ROOT / "crates/candle-coreml/tests/conformance_manifest.txt"
PREFIX = "nn/"


def all_layer_types() -> list[str]:
    """Every field of the NeuralNetworkLayer `layer` oneof (the layer types)."""
    oneof = NeuralNetwork_pb2.NeuralNetworkLayer.DESCRIPTOR.oneofs_by_name["layer"]
    return sorted(f.name for f in oneof.fields)


def layer_kinds(layers) -> list[str]:
    """Layer types of `layers`, nested networks of branches and loops included."""
    kinds = []
    for layer in layers:
        kind = layer.WhichOneof("layer")
        kinds.append(kind)
        if kind == "branch":
            kinds += layer_kinds(layer.branch.ifBranch.layers) + layer_kinds(layer.branch.elseBranch.layers)
        elif kind == "loop":
            kinds += layer_kinds(layer.loop.conditionNetwork.layers) + layer_kinds(layer.loop.bodyNetwork.layers)
    return kinds


def register_all():
    CASES.clear()
    import gen_nn_cases_control
    import gen_nn_cases_elementwise
    import gen_nn_cases_spatial
    import gen_nn_cases_tensor
    import gen_nn_cases_rnn

    gen_nn_cases_elementwise.cases()
    gen_nn_cases_spatial.cases()
    gen_nn_cases_tensor.cases()
    gen_nn_cases_rnn.cases()
    gen_nn_cases_control.cases()
    return list(CASES)


def emit(c) -> str | None:
    """Writes one case; returns an error string when it is skipped."""
    if c.error:
        return c.error
    spec = c.spec
    kinds = layer_kinds(spec.neuralNetwork.layers)
    if c.layer not in kinds:
        return f"the model has no {c.layer} layer (it has {kinds})"
    case_dir = OUT / c.layer / c.name
    if case_dir.exists():
        shutil.rmtree(case_dir)
    case_dir.mkdir(parents=True)
    (case_dir / "model.mlmodel").write_bytes(spec.SerializeToString(deterministic=True))
    arrays = {}
    spec_inputs = {i.name: i for i in spec.description.input}
    for name, arr in c.inputs.items():
        si = spec_inputs[name]
        dt = NP_OF_ARRAY_TYPE.get(si.type.multiArrayType.dataType, np.float32)
        arrays[f"input:{name}"] = np.asarray(arr).astype(dt)
    outs = [o.name for o in spec.description.output]
    for name, exp in c.expected.items():
        if name not in outs:
            shutil.rmtree(case_dir)
            return f"expected output {name} is not an output of the model ({outs})"
        arrays[f"output:{name}"] = np.asarray(exp).astype(np.float32)
    _write_npz(case_dir / "case.npz", arrays)
    meta = {"op": PREFIX + c.layer, "case": c.name, "rtol": c.rtol, "atol": c.atol, "dtype": "fp32"}
    if c.check:
        meta["check"] = c.check
    (case_dir / "case.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return None


def write_manifest(tags: list[str]) -> None:
    """Rewrites the `nn/` lines of the manifest: known statuses kept, new cases `pass`."""
    lines = MANIFEST.read_text().splitlines() if MANIFEST.exists() else []
    old = {}
    kept = []
    for line in lines:
        body = line.split("#", 1)[0].split()
        if body and body[0].startswith(PREFIX):
            old[body[0]] = line
        else:
            kept.append(line)
    kept += [old.get(t, f"{t} pass") for t in tags]
    MANIFEST.write_text("\n".join(kept) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help="comma-separated layer types to regenerate")
    args = ap.parse_args()
    only = {s for s in args.only.split(",") if s}
    cases = register_all()
    names = [f"{c.layer}/{c.name}" for c in cases]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        print("duplicate case names:", sorted(dup))
        return 1
    known = set(all_layer_types())
    unknown = sorted({c.layer for c in cases} - known)
    if unknown:
        print("cases name unknown layer types:", unknown)
        return 1
    OUT.mkdir(parents=True, exist_ok=True)
    if not only:
        for d in OUT.iterdir():
            if d.is_dir():
                shutil.rmtree(d)
    (OUT / "all_layers.txt").write_text("\n".join(all_layer_types()) + "\n")
    made, skipped = 0, 0
    for c in cases:
        if only and c.layer not in only:
            continue
        err = emit(c)
        if err:
            skipped += 1
            print(f"SKIP {c.layer}/{c.name}: {err}")
        else:
            made += 1
    on_disk = sorted(f"{PREFIX}{p.parent.parent.name}/{p.parent.name}" for p in OUT.glob("*/*/case.json"))
    write_manifest(on_disk)
    covered = {c.layer for c in cases if not c.error}
    print(f"{made} cases written, {skipped} skipped; {len(covered)} of {len(known)} layer types have a case")
    print("layer types without a case:", " ".join(sorted(known - covered)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
