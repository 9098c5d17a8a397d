"""Wheels the GPU run needs that the GPU machine's image lacks: packed here, installed there.

The machine has no package registry; its working tree (64 MiB at most, carried ignored paths
included) is all that travels. :func:`pack` downloads, on the development machine, the few
wheels of :data:`WHEELS` for the machine's Python (3.12, manylinux x86_64) into a git-ignored
folder (:data:`DEFAULT_DIR`, named in the device call's ``carry``); :func:`install` installs
them on the machine with ``pip install --no-index --no-deps --target``.

Why each wheel travels (the image has everything else the stages import, KINDS.md):

* ``typer`` 0.28.0: the CLI's parser, a version that parses with click alone (0.29 and later
  also need pydantic, which the image may lack); the image's typer is of unknown version.
  Pure Python, 0.1 MB; its needs (rich, shellingham, annotated-doc) are in the image.
* ``diffusers`` and ``importlib-metadata``: only for the optional DDPM UNet stage (the image
  has no diffusers; its other needs, huggingface-hub >= 1.32, safetensors, Pillow, regex,
  requests, filelock, numpy, zipp, are in the image). 6.5 MB.

Stages 1-4 need none of them but typer: they run ``greentrain bench ssprop --no-record``
(no store, so no codecarbon, zeus, psycopg or submitit) and pytest.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_DIR = Path(".gpu-wheels")
MANIFEST = "MANIFEST.json"
MAX_BYTES = 48 * 2**20  # of the 64 MiB that travel; the tracked tree takes about 4 MiB
PYTHON_VERSION = "3.12"
PLATFORMS = (
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux1_x86_64",
)
# (requirement, why it travels); one version of each
WHEELS = (
    ("typer==0.28.0", "greentrain's CLI parser, a version that needs no pydantic"),
    ("diffusers==0.42.1", "the DDPM UNet stage (optional); absent from the image"),
    ("importlib-metadata==9.1.0", "needed by diffusers; absent from the image"),
)


def download_command(requirement: str, dest: Path, index_args: tuple[str, ...] = ()) -> list[str]:
    """``pip download`` of one wheel for the GPU machine's Python and platform, no deps;
    ``index_args`` are passed to pip (e.g. ``--no-index --find-links DIR`` offline)."""
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--python-version",
        PYTHON_VERSION,
        "--implementation",
        "cp",
        "-d",
        str(dest),
    ]
    for platform in PLATFORMS:
        cmd += ["--platform", platform]
    return [*cmd, *index_args, requirement]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def pack(
    dest: Path = DEFAULT_DIR,
    wheels=WHEELS,
    max_bytes: int = MAX_BYTES,
    index_args: tuple[str, ...] = (),
) -> dict:
    """Download ``wheels`` into ``dest`` and write its manifest; returns the manifest.

    Raises RuntimeError when pip fails or the wheels exceed ``max_bytes``.
    """
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.glob("*.whl"):  # one version of each: two would stop the install there
        old.unlink()
    for requirement, _ in wheels:
        cmd = download_command(requirement, dest, index_args)
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise RuntimeError(f"pip download {requirement} failed: {tail}")
    files = sorted(dest.glob("*.whl"))
    total = sum(f.stat().st_size for f in files)
    if total > max_bytes:
        raise RuntimeError(f"wheels take {total / 2**20:.1f} MiB, over {max_bytes / 2**20:.0f}")
    manifest = {
        "python": PYTHON_VERSION,
        "platforms": list(PLATFORMS),
        "bytes": total,
        "wheels": [
            {"file": f.name, "bytes": f.stat().st_size, "sha256": _sha256(f)} for f in files
        ],
        "why": {req: why for req, why in wheels},
    }
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def install(source: Path, target: Path) -> dict:
    """Install every wheel in ``source`` into ``target`` (offline, no deps); a record of it.

    No wheels is not an error (the record says so): stages 1-4 run on the image alone.
    """
    files = sorted(source.glob("*.whl")) if source.is_dir() else []
    record = {"source": str(source), "target": str(target), "wheels": [f.name for f in files]}
    if not files:
        return {**record, "status": "no wheels", "seconds": 0.0}
    t0 = time.monotonic()
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "-q",
        "--no-index",
        "--no-deps",
        "--no-compile",
        "--no-cache-dir",
        "--upgrade",
        "--target",
        str(target),
        *map(str, files),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    status = "ok" if proc.returncode == 0 else f"exit {proc.returncode}"
    return {
        **record,
        "status": status,
        "seconds": time.monotonic() - t0,
        "output": (proc.stdout + proc.stderr)[-2000:],
    }
