#!/usr/bin/env python3
"""(Re)generate candle-coreml's format-reader fixtures, deterministically.

    tools/.venv/bin/python tools/gen_format_fixtures.py [--out DIR] [--only PART ...]

PART is one of `models`, `compression`, `mlmodelc_synth` (default: all).
Writes into crates/candle-coreml/tests/fixtures/{models,compression,mlmodelc_synth}/.
See tools/README.md for what each file holds.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

TOOLS = Path(__file__).resolve().parent
sys.path.insert(0, str(TOOLS))
DEFAULT_OUT = TOOLS.parent / "crates" / "candle-coreml" / "tests" / "fixtures"

PARTS = ("models", "compression", "mlmodelc_synth")


def _quiet() -> None:
    os.environ.setdefault("TQDM_DISABLE", "1")
    warnings.filterwarnings("ignore")
    logging.getLogger("coremltools").setLevel(logging.ERROR)


def gen_models(out: Path, tmp: Path) -> None:
    """Write tests/fixtures/models/."""
    import coremltools as ct

    import gen_models as gm
    import gen_torch_models as gt

    for dtype, target in (("fp32", ct.target.iOS17), ("fp16", ct.target.iOS18)):
        name = f"mlp_{dtype}"
        model, npz = gm.build_mlp(dtype, target)
        gm._save(model, name, out, tmp, npz)
        gm.save_inline(out / f"{name}.mlpackage", f"{name}_inline", out, npz)
    for name, build in (
        ("stateful_accumulator", gm.build_stateful_accumulator),
        ("stateful_kv_cache", gm.build_stateful_kv_cache),
        ("control_flow", gm.build_control_flow),
        ("flexible_range", gt.build_flexible_range),
        ("flexible_enumerated", gt.build_flexible_enumerated),
        ("image_input", gt.build_image_input),
    ):
        model, npz = build()
        gm._save(model, name, out, tmp, npz)
    gm.build_multifunction(out, tmp)
    gt.build_neural_network(out, tmp)
    gt.build_pipeline(out, tmp)


def gen_compression(out: Path, tmp: Path) -> None:
    """Write tests/fixtures/compression/."""
    import gen_compression as gc

    gc.generate(out, tmp)


def gen_mlmodelc(out: Path, fixtures: Path) -> None:
    """Write tests/fixtures/mlmodelc_synth/ from packages already generated."""
    import mlmodelc_writer as mw

    sources = [
        ("mlp_fp16", fixtures / "models" / "mlp_fp16.mlpackage"),
        ("stateful_accumulator", fixtures / "models" / "stateful_accumulator.mlpackage"),
        ("stateful_kv_cache", fixtures / "models" / "stateful_kv_cache.mlpackage"),
        ("multifunction", fixtures / "models" / "multifunction.mlpackage"),
        ("lut4_grouped", fixtures / "compression" / "lut4_grouped.mlpackage"),
        ("ios16_lut_affine", fixtures / "compression" / "ios16_lut_affine.mlpackage"),
    ]
    for name, pkg in sources:
        mw.render_package(pkg, out / f"{name}.mlmodelc", name)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--only", nargs="*", choices=PARTS, default=list(PARTS))
    args = ap.parse_args()
    _quiet()
    for part in args.only:
        dest = args.out / part
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        with tempfile.TemporaryDirectory() as td:
            if part == "models":
                gen_models(dest, Path(td))
            elif part == "compression":
                gen_compression(dest, Path(td))
            else:
                gen_mlmodelc(dest, args.out)
        print(f"wrote {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
