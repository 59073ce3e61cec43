"""Render a coremltools ML Program package as a *synthetic* compiled model.

Apple's compiler (`coremlc`) does not run on Linux, so this writes folders
that mimic the layout of Apple's `.mlmodelc` output:

    NAME.mlmodelc/model.mil            MIL text, program(1.3) dialect
    NAME.mlmodelc/weights/weight.bin   copied byte for byte from the package
    NAME.mlmodelc/metadata.json        Apple's metadata layout (schemas, histogram)

The text is rendered straight from the protobuf (`MIL_pb2`) that coremltools
reads; nothing here is Apple's output. `coremldata.bin` and `analytics/` are not
written (undocumented binary files).
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
from coremltools.proto import MIL_pb2, Model_pb2

import fixture_io as fio

_OPSETS = {"CoreML5": "ios15", "CoreML6": "ios16", "CoreML7": "ios17", "CoreML8": "ios18"}

# Sub-byte dtypes: bits per element and signedness.
_SUB_BYTE = {"int4": (4, True), "uint1": (1, False), "uint2": (2, False),
             "uint3": (3, False), "uint4": (4, False), "uint6": (6, False)}
_BYTE_DTYPES = {"fp16": np.float16, "int8": np.int8, "uint8": np.uint8, "bf16": None,
                "int16": np.int16, "uint16": np.uint16, "int32": np.int32,
                "uint32": np.uint32, "int64": np.int64, "uint64": np.uint64}


class RenderError(ValueError):
    """The program uses something this renderer does not write."""


# --------------------------------------------------------------------------
# Literals
# --------------------------------------------------------------------------


def hex_float(x: float) -> str:
    """C99 hex float, Apple style: trailing mantissa zeros dropped (0x1p+0)."""
    x = float(x)
    if np.isnan(x):
        return "nan"
    if np.isinf(x):
        return "inf" if x > 0 else "-inf"
    h = x.hex()  # e.g. '-0x1.8000000000000p+1'
    mant, exp = h.split("p")
    if "." in mant:
        mant = mant.rstrip("0").rstrip(".")
    return f"{mant}p{exp}"


def quote(s: str) -> str:
    """A double-quoted string literal with C escapes."""
    out = s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{out}"'


def render_type(vt) -> str:
    """A MIL text type: tensor<fp16, [1, 2]>, fp32 (rank 0), state<...>, ..."""
    kind = vt.WhichOneof("type")
    if kind == "tensorType":
        t = vt.tensorType
        dt = fio.mil_dtype_name(t.dataType)
        if t.rank == 0 and len(t.dimensions) == 0:
            return dt
        dims = []
        for d in t.dimensions:
            if d.WhichOneof("dimension") == "constant":
                dims.append(str(d.constant.size))
            else:
                dims.append("?")
        return f"tensor<{dt}, [{', '.join(dims)}]>"
    if kind == "stateType":
        return f"state<{render_type(vt.stateType.wrappedType)}>"
    if kind == "listType":
        lt = vt.listType
        n = str(lt.length.constant.size) if lt.length.WhichOneof("dimension") == "constant" else "?"
        return f"list<{render_type(lt.type)}, {n}>"
    if kind == "tupleType":
        return f"tuple<{', '.join(render_type(t) for t in vt.tupleType.types)}>"
    if kind == "dictionaryType":
        d = vt.dictionaryType
        return f"dict<{render_type(d.keyType)}, {render_type(d.valueType)}>"
    raise RenderError(f"unsupported value type {kind}")


def _unpack_bits(raw: bytes, count: int, bits: int, signed: bool) -> np.ndarray:
    """LSB-first bit stream -> integers."""
    stream = np.unpackbits(np.frombuffer(raw, np.uint8), bitorder="little")
    if stream.size < count * bits:
        raise RenderError("sub-byte tensor shorter than its shape")
    vals = stream[: count * bits].reshape(count, bits).astype(np.int64)
    out = (vals << np.arange(bits)).sum(axis=1)
    if signed:
        out = np.where(out >= 1 << (bits - 1), out - (1 << bits), out)
    return out


def decode_tensor(tt, tv) -> np.ndarray:
    """An immediate TensorValue as a numpy array of the tensor type's shape."""
    dt = fio.mil_dtype_name(tt.dataType)
    shape = [int(d.constant.size) for d in tt.dimensions]
    count = int(np.prod(shape)) if shape else 1
    field = tv.WhichOneof("value")
    if field == "floats":
        arr = np.array(tv.floats.values, np.float64)
    elif field == "doubles":
        arr = np.array(tv.doubles.values, np.float64)
    elif field == "ints":
        arr = np.array(tv.ints.values, np.int64)
    elif field == "longInts":
        arr = np.array(tv.longInts.values, np.int64)
    elif field == "bools":
        arr = np.array(tv.bools.values, bool)
    elif field == "strings":
        arr = np.array(list(tv.strings.values), object)
    elif field == "bytes":
        raw = tv.bytes.values
        if dt in _SUB_BYTE:
            arr = _unpack_bits(raw, count, *_SUB_BYTE[dt])
        elif _BYTE_DTYPES.get(dt) is not None:
            arr = np.frombuffer(raw, np.dtype(_BYTE_DTYPES[dt]).newbyteorder("<"))
            arr = arr.astype(np.float64 if dt == "fp16" else np.int64)
        else:
            raise RenderError(f"bytes payload for dtype {dt}")
    elif field is None:
        arr = np.zeros(0)
    else:
        raise RenderError(f"tensor value field {field}")
    if arr.size != count:
        raise RenderError(f"tensor value has {arr.size} elements, shape {shape}")
    return arr.reshape(shape)


def _scalar(dt: str, v) -> str:
    if dt == "string":
        return quote(str(v))
    if dt == "bool":
        return "true" if bool(v) else "false"
    if dt.startswith("fp") or dt == "bf16":
        return hex_float(float(v))
    return str(int(v))


def _nested(dt: str, arr: np.ndarray) -> str:
    if arr.ndim == 0:
        return _scalar(dt, arr.item())
    return "[" + ", ".join(_nested(dt, a) for a in arr) + "]"


def render_value(val) -> str:
    """A literal `TYPE(value)`, a BLOBFILE reference, or a dict literal."""
    ty = render_type(val.type)
    kind = val.WhichOneof("value")
    if kind == "blobFileValue":
        b = val.blobFileValue
        return (f"{ty}(BLOBFILE(path = string({quote(b.fileName)}), "
                f"offset = uint64({int(b.offset)})))")
    if kind != "immediateValue":
        raise RenderError(f"value without payload ({kind})")
    imm = val.immediateValue
    which = imm.WhichOneof("value")
    if which == "tensor":
        arr = decode_tensor(val.type.tensorType, imm.tensor)
        return f"{ty}({_nested(fio.mil_dtype_name(val.type.tensorType.dataType), arr)})"
    if which == "dictionary":
        pairs = []
        for kv in imm.dictionary.values:
            k = decode_tensor(kv.key.type.tensorType, kv.key.immediateValue.tensor).item()
            v = decode_tensor(kv.value.type.tensorType, kv.value.immediateValue.tensor).item()
            kdt = fio.mil_dtype_name(kv.key.type.tensorType.dataType)
            vdt = fio.mil_dtype_name(kv.value.type.tensorType.dataType)
            pairs.append(f"{{{_scalar(kdt, k)}, {_scalar(vdt, v)}}}")
        return f"{ty}({{{', '.join(pairs)}}})"
    if which == "tuple":
        return f"{ty}(({', '.join(render_value(v) for v in imm.tuple.values)}))"
    raise RenderError(f"immediate value kind {which}")


# --------------------------------------------------------------------------
# Program
# --------------------------------------------------------------------------


def _render_argument(arg) -> str:
    parts = []
    for b in arg.arguments:
        parts.append(b.name if b.WhichOneof("binding") == "name" else render_value(b.value))
    if len(parts) == 1:
        return parts[0]
    return "(" + ", ".join(parts) + ")"


def _render_attrs(attrs) -> str:
    return ", ".join(f"{k} = {render_value(attrs[k])}" for k in sorted(attrs))


def render_op(op) -> str:
    """One statement: `TYPE NAME, ... = op(arg = x, ...)[attr = v, ...];`."""
    if len(op.blocks) > 0:
        raise RenderError(f"op {op.type} has nested blocks; not rendered")
    lhs = ", ".join(f"{render_type(o.type)} {o.name}" for o in op.outputs)
    args = ", ".join(f"{k} = {_render_argument(op.inputs[k])}" for k in sorted(op.inputs))
    call = f"{op.type}({args})[{_render_attrs(op.attributes)}];"
    return f"{lhs} = {call}" if lhs else call


def render_function(name: str, fn) -> str:
    """`func NAME<iosNN>(params) [attrs] { ... } -> (outputs);`."""
    opset = _OPSETS.get(fn.opset)
    if opset is None:
        raise RenderError(f"unknown opset {fn.opset}")
    block = fn.block_specializations[fn.opset]
    params = ", ".join(f"{render_type(i.type)} {i.name}" for i in fn.inputs)
    attrs = f" [{_render_attrs(fn.attributes)}]" if len(fn.attributes) else ""
    lines = [f"    func {name}<{opset}>({params}){attrs} {{"]
    for op in block.operations:
        lines.append("            " + render_op(op))
    lines.append(f"        }} -> ({', '.join(block.outputs)});")
    return "\n".join(lines)


def render_program(prog, default_function: str) -> str:
    """The whole model.mil text. The default function comes first."""
    head = ["program(1.3)"]
    if "buildInfo" in prog.attributes:
        head.append(f"[buildInfo = {render_value(prog.attributes['buildInfo'])}]")
    names = sorted(prog.functions, key=lambda n: (n != default_function, n))
    body = "\n".join(render_function(n, prog.functions[n]) for n in names)
    return "\n".join(head) + "\n{\n" + body + "\n}\n"


# --------------------------------------------------------------------------
# metadata.json
# --------------------------------------------------------------------------

_DT_NAMES = {"fp16": "Float16", "fp32": "Float32", "fp64": "Double", "int32": "Int32",
             "int8": "Int8"}
_AVAILABILITY = {
    7: {"macOS": "13.0", "iOS": "16.0", "tvOS": "16.0", "watchOS": "9.0", "visionOS": "1.0",
        "macCatalyst": "16.0"},
    8: {"macOS": "14.0", "iOS": "17.0", "tvOS": "17.0", "watchOS": "10.0", "visionOS": "1.0",
        "macCatalyst": "17.0"},
    9: {"macOS": "15.0", "iOS": "18.0", "tvOS": "18.0", "watchOS": "11.0", "visionOS": "2.0",
        "macCatalyst": "18.0"},
}


def _camel(op_type: str) -> str:
    head, *rest = op_type.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def _histogram(fn) -> dict:
    """Apple-style keys `Ios18.sliceUpdate`; const ops are not counted."""
    prefix = _OPSETS[fn.opset].capitalize()
    hist = Counter()

    def walk(block):
        for op in block.operations:
            if op.type != "const":
                hist[f"{prefix}.{_camel(op.type)}"] += 1
            for b in op.blocks:
                walk(b)

    walk(fn.block_specializations[fn.opset])
    return dict(sorted(hist.items()))


def _schema_entry(fd, kind: str) -> dict:
    ma = fd.type.stateType.arrayType if kind == "State" else fd.type.multiArrayType
    dt = _DT_NAMES.get(fio._ARRAY_DTYPES[Model_pb2.ArrayFeatureType.ArrayDataType.Name(
        ma.dataType)], "Invalid")
    shape = [int(d) for d in ma.shape]
    flex = ma.WhichOneof("ShapeFlexibility") is not None
    return {
        "hasShapeFlexibility": "1" if flex else "0",
        "isOptional": "1" if fd.type.isOptional else "0",
        "dataType": dt,
        "formattedType": f"{kind} ({dt} {' × '.join(str(s) for s in shape)})",
        "shortDescription": fd.shortDescription,
        "shape": "[" + ", ".join(str(s) for s in shape) + "]",
        "name": fd.name,
        "type": kind,
    }


def _schemas(inputs, outputs, states) -> dict:
    for fd in list(inputs) + list(outputs):
        if fd.type.WhichOneof("Type") != "multiArrayType":
            raise RenderError(f"feature {fd.name}: only multi-array features are rendered")
    return {
        "inputSchema": [_schema_entry(f, "MultiArray") for f in inputs],
        "outputSchema": [_schema_entry(f, "MultiArray") for f in outputs],
        "stateSchema": [_schema_entry(f, "State") for f in states],
    }


def render_metadata(spec, name: str) -> list:
    """Apple's metadata.json layout: a one-element list of one object."""
    desc, prog = spec.description, spec.mlProgram
    default = desc.defaultFunctionName or "main"
    md = desc.metadata
    obj = {
        "metadataOutputVersion": "3.0",
        "modelParameters": [],
        "specificationVersion": int(spec.specificationVersion),
        "isUpdatable": "1" if spec.isUpdatable else "0",
        "availability": _AVAILABILITY.get(int(spec.specificationVersion), {}),
        "modelType": {"name": "MLModelType_mlProgram"},
        "userDefinedMetadata": dict(sorted(md.userDefined.items())),
        "generatedClassName": name,
        "method": "predict",
        "mlProgramOperationTypeHistogram": _histogram(prog.functions[default]),
    }
    for key, val in (("shortDescription", md.shortDescription), ("author", md.author),
                     ("license", md.license), ("version", md.versionString)):
        if val:
            obj[key] = val
    if len(desc.functions) > 0:
        funcs = {f.name: f for f in desc.functions}
        obj.update(_schemas(funcs[default].input, funcs[default].output, funcs[default].state))
        obj["defaultFunctionName"] = default
        obj["functions"] = []
        for f in desc.functions:
            entry = {"name": f.name, "mlProgramOperationTypeHistogram": _histogram(
                prog.functions[f.name])}
            entry.update(_schemas(f.input, f.output, f.state))
            obj["functions"].append(entry)
    else:
        obj.update(_schemas(desc.input, desc.output, desc.state))
    return [obj]


def render_package(pkg: Path, out: Path, name: str) -> None:
    """Write `out` (a NAME.mlmodelc folder) and `NAME.json` beside it."""
    spec = fio.load_spec_from_package(pkg)
    if spec.WhichOneof("Type") != "mlProgram":
        raise RenderError(f"{pkg}: not an ML Program")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    default = spec.description.defaultFunctionName or "main"
    (out / "model.mil").write_text(render_program(spec.mlProgram, default))
    weights = pkg / "Data" / "com.apple.CoreML" / "weights"
    if weights.exists() and any(weights.iterdir()):
        shutil.copytree(weights, out / "weights")
    text = json.dumps(render_metadata(spec, name), indent=2, separators=(",", " : "),
                      ensure_ascii=False)
    (out / "metadata.json").write_text(text + "\n")
    rel = Path("..") / pkg.parent.name / pkg.name
    fio.write_description(spec, out.parent / f"{name}.json", name, out.name, "mlmodelc",
                          {"synthetic": True, "rendered_from": str(rel)})
