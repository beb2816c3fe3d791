"""Where device apps live: a Jetson on JetPack 6 has Python 3.10 and often numpy 1.x. The runtime's sources must
parse as Python 3.10, and the shipped bundles must restore the same images under numpy 1.x as under numpy 2.x."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import venv
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]

# Restores a fixed image with every shipped bundle and saves the outputs; run by both numpy majors.
RESTORE = """
import sys, numpy as np
from pathlib import Path
from edgeir.runtime import Restorer
out = {"numpy": np.__version__}
rng = np.random.default_rng(0)
image = (rng.uniform(0, 1, (40, 48, 3)) * 255).astype(np.uint8)
mask = np.zeros((40, 48), bool)
mask[10:20, 5:30] = True
for bundle in sorted(Path(sys.argv[1]).glob("*/manifest.json")):
    r = Restorer.load(bundle.parent, backend="ort-cpu")
    out[bundle.parent.name] = r.restore(image, seed=3, mask=mask if r.task.name == "inpaint" else None)
np.savez(sys.argv[2], **out)
"""


def _runtime_modules() -> list[str]:
    # edgeir.graphs.readiness: imported lazily when the CPU provider re-encodes an INT8 graph (runtime.cpu_int8)
    code = ("import sys, edgeir.runtime, edgeir.runtime.trt, edgeir.graphs.readiness; "
            "print(sorted(m for m in sys.modules if m.startswith('edgeir')))")
    return ast.literal_eval(subprocess.check_output([sys.executable, "-c", code], cwd=ROOT, text=True))


def test_runtime_sources_parse_as_python_3_10():
    modules = _runtime_modules()
    assert "edgeir.runtime.restorer" in modules and "torch" not in modules
    for name in modules:
        path = ROOT / Path(*name.split("."))
        path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        ast.parse(path.read_text(), filename=str(path), feature_version=(3, 10))


@pytest.fixture(scope="module")
def numpy1_python(tmp_path_factory) -> Path:
    """A venv with numpy 1.x and the runtime's other dependencies (from the package index; skipped without)."""
    env = tmp_path_factory.mktemp("numpy1")
    venv.create(env, with_pip=True)
    python = env / "bin" / "python"
    deps = ["numpy<2", "onnxruntime", "onnx", "pillow", "pydantic"]
    done = subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", *deps],
                          check=False, capture_output=True, text=True, timeout=600)
    if done.returncode:
        pytest.skip(f"cannot install numpy 1.x from the package index: {done.stderr.strip().splitlines()[-1:]}")
    return python


@pytest.mark.slow
def test_shipped_bundles_restore_alike_under_numpy_1_and_2(numpy1_python, tmp_path):
    script = tmp_path / "restore.py"
    script.write_text(RESTORE)
    results = {}
    for label, python in (("numpy1", numpy1_python), ("numpy2", Path(sys.executable))):
        dest = tmp_path / f"{label}.npz"
        subprocess.run([python, script, ROOT / "exported", dest], check=True, cwd=tmp_path,
                       env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=300)
        results[label] = dict(np.load(dest))
    assert str(results["numpy1"]["numpy"]).startswith("1.") and str(results["numpy2"]["numpy"]).startswith("2.")
    bundles = sorted(set(results["numpy1"]) - {"numpy"})
    assert bundles == ["deblur", "inpaint", "sr4x"], json.dumps(bundles)
    for name in bundles:
        a, b = results["numpy1"][name].astype(int), results["numpy2"][name].astype(int)
        assert a.shape == b.shape
        assert np.abs(a - b).max() <= 1, name  # one uint8 step: float rounding may differ between numpy builds
