"""Runs ANEMLL's own converter script on a Hugging Face folder, on Linux.

`anemll/utils/convert_model.sh` (or `convert_monolith.sh`) from an ANEMLL
checkout given by path: steps 1-5 (convert the parts, palettize, combine into
multifunction files) run on Linux; step 6 compiles with Apple's `xcrun`, which is
missing here (compile_models.py reports it and goes on), step 7 writes
meta.yaml and step 8 runs ANEMLL's chat.py, which cannot predict on Linux
and ends the script with an error. Then step 7 alone (`--only
7`: copy tokenizer files, write config.json and meta.yaml through ANEMLL's
`generate_meta_yaml.py`) runs with empty `<name>.mlmodelc` placeholder
folders beside the packages, because generate_meta_yaml.py decides the
`_lutN` names of the embeddings and LM head by looking for compiled
`.mlmodelc` files (without them it falls back to `lut_...: none`). The
placeholders are removed afterwards; the bundle keeps its `.mlpackage`s and
the meta.yaml names `.mlmodelc` files, as a bundle converted on Linux does.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path


def _env(anemll: Path) -> dict:
    env = dict(os.environ)
    venv_bin = str(Path(sys.executable).parent)
    env.update({
        "PATH": f"{venv_bin}:{env.get('PATH', '')}",
        "VIRTUAL_ENV": str(Path(sys.executable).parent.parent),
        "ANEMLL_AUTO_VENV": "0",
        # ANEMLL's k-means palettizer forks a pool that dead-locks with live OpenMP threads.
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(anemll),
        "PYTHONHASHSEED": "0",
    })
    return env


def _run(cmd: list[str], env: dict, log: Path) -> int:
    with open(log, "a") as fh:
        fh.write("$ " + " ".join(cmd) + "\n")
        fh.flush()
        return subprocess.run(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT).returncode


def convert(anemll: Path, hf_dir: Path, out: Path, *, context: int, batch: int, chunks: int,
            lut: tuple, extra: list[str] = (), monolithic: bool = False,
            restart: int = 1) -> Path:
    """Converts hf_dir into the bundle folder `out`; returns the log path.

    lut = (embeddings, ffn, lm_head) bits or None; for monolithic bundles
    (ffn bits, embeddings override, lm_head override). restart > 1 resumes an
    interrupted conversion at that step of ANEMLL's script, keeping `out` and
    appending to the log.
    """
    log = out.parent / f"{out.name}.convert.log"
    if restart <= 1:
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        log.unlink(missing_ok=True)
    elif not out.is_dir():
        raise RuntimeError(f"cannot resume: {out} does not exist")
    env = _env(anemll)
    if monolithic:
        script = anemll / "anemll/utils/convert_monolith.sh"
        args = ["--model", str(hf_dir), "--output", str(out), "--context", str(context),
                "--batch", str(batch), "--skip-check"]
        if lut[0] is not None:
            args += ["--lut", str(lut[0])]
        if lut[1] is not None:
            args += ["--lut-embeddings", str(lut[1])]
        if lut[2] is not None:
            args += ["--lut-lmhead", str(lut[2])]
        test_step, meta_step = "6", "5"
    else:
        script = anemll / "anemll/utils/convert_model.sh"
        args = ["--model", str(hf_dir), "--output", str(out), "--context", str(context),
                "--batch", str(batch), "--chunk", str(chunks), "--skip-check"]
        for flag, bits in zip(("--lut1", "--lut2", "--lut3"), lut):
            if bits is not None:
                args += [flag, str(bits)]
        test_step, meta_step = "8", "7"
    args += list(extra)
    resume = ["--restart", str(restart)] if restart > 1 else []
    rc = _run(["bash", str(script), *args, *resume], env, log)
    text = log.read_text()
    if rc != 0 and f"Error in step {test_step}" not in text:
        raise RuntimeError(f"ANEMLL conversion failed before its test step (rc {rc}); see {log}")
    packages = sorted(out.glob("*.mlpackage"))
    if not packages:
        raise RuntimeError(f"ANEMLL conversion wrote no .mlpackage; see {log}")
    placeholders = [p.with_suffix(".mlmodelc") for p in packages]
    for p in placeholders:
        p.mkdir()
    try:
        rc = _run(["bash", str(script), *args, "--only", meta_step], env, log)
    finally:
        for p in placeholders:
            p.rmdir()
    if rc != 0 or not (out / "meta.yaml").exists():
        raise RuntimeError(f"ANEMLL's meta.yaml step failed (rc {rc}); see {log}")
    (out / "meta_progress.yaml").unlink(missing_ok=True)
    _keep_bundle_files(out)
    return log


def _keep_bundle_files(out: Path) -> None:
    """Drops the per-function packages that the combine step merged.

    What stays: the embeddings and LM head that meta.yaml names (.mlpackage
    for its .mlmodelc), every combined `FFN_PF` chunk (with `_rot` files) or
    the monolithic file, and the tokenizer/config files.
    """
    import yaml
    params = yaml.safe_load((out / "meta.yaml").read_text())["model_info"]["parameters"]
    named = {Path(params[k]).stem for k in ("embeddings", "lm_head") if params.get(k)}
    for pkg in out.glob("*.mlpackage"):
        if not (pkg.stem in named or "_FFN_PF" in pkg.stem or "_monolithic_full" in pkg.stem):
            shutil.rmtree(pkg)
