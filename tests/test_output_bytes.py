"""The bytes one small embedding writes: pinned, so that a refactor of the job cannot change them.

``geomfeat embed`` of the ala2 example (every 50th frame, ViSNet, CPU, float32) must write the
same ``.npy`` file, byte for byte, and the same sidecar, key for key, as the code before the
embedding job was split out of ``output.py``/``cluster.py`` (issue 21). The digests below were
computed with that code. Left out of the sidecar comparison: what names the moment or the place
of the run (``created``, the input paths and modification times, the command-line paths), the
geomfeat version and the torch thread count (it follows the machine and ``OMP_NUM_THREADS``).

The ``.npy`` digest pins float32 results of a CPU forward pass: on a CPU with a different vector
unit the last bits may differ, and the digest with them (the sidecar still matches).
"""

from __future__ import annotations

import hashlib
import re

from geomfeat.cli import main

NPY_SHA256 = "2ffb1e56fa2b7e5e357a053af15eff9b86f50e6b933639aa5e3cbe7cb2a06b11"
SIDECAR_SHA256 = "7c3db2817f56bd408afe87506f066c94636750d6ae47e770109c7069dcbe2810"
#: the sidecar's values that name the run's time, place or version, and its thread count
VARYING = re.compile(r'^(\s*"(?:created|trajectory|topology|path|mtime|geomfeat_version)": )"[^"]*"'
                     r'|^(\s*"threads": )\d+', re.MULTILINE)


def _stable_sidecar(text: str) -> str:
    """The sidecar's exact text with the values that vary between runs replaced by ``*``."""
    return VARYING.sub(lambda m: (m.group(1) or m.group(2)) + '"*"', text)


def test_embed_of_the_example_writes_the_pinned_bytes_and_sidecar(example_files, tmp_path,
                                                                  weights_url, capsys):
    """The ``.npy`` bytes and the sidecar (minus time, paths, threads) equal the pinned digests."""
    xtc, pdb = example_files
    out = tmp_path / "emb.npy"
    assert main(["embed", str(xtc), str(pdb), "-o", str(out), "--stride", "50", "-q"]) == 0
    capsys.readouterr()
    stable = _stable_sidecar(out.with_suffix(".json").read_text())
    assert hashlib.sha256(stable.encode()).hexdigest() == SIDECAR_SHA256, stable
    assert hashlib.sha256(out.read_bytes()).hexdigest() == NPY_SHA256
