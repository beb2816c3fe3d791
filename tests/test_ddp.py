import json
import os
import subprocess
import sys

import pytest
import torch
from test_compress_pipeline import setup_run

from edgeir.compress.pipeline import compress
from edgeir.compress.recipe import parse_recipe
from edgeir.load import load_restorer

RUN = """
import json, sys
import torch
from edgeir.compress.pipeline import compress
from edgeir.compress.recipe import parse_recipe
torch.set_num_threads(1)
compress(parse_recipe(json.loads(sys.argv[1])), sys.argv[2])
"""


@pytest.mark.slow
def test_torchrun_with_two_gloo_processes_takes_the_steps_one_process_takes(tmp_path):
    """Each process trains on half of every batch and DDP averages the gradients: the same steps as one
    process on the whole batch, for both distillation methods."""
    _, raw = setup_run(tmp_path)
    (tmp_path / "run.py").write_text(RUN)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                           "2", str(tmp_path / "run.py"), json.dumps(raw), str(tmp_path / "ddp")],
                          env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "ddp" / "report.json").read_text())
    assert report["status"] == "completed" and report["world_size"] == 2

    compress(parse_recipe(raw), tmp_path / "one")
    start = flat(raw["teacher"])
    for stage in ("01-distill", "02-distill"):
        one, two = flat(tmp_path / "one" / "stages" / stage), flat(tmp_path / "ddp" / "stages" / stage)
        update = (one - start).norm()
        assert update > 0
        # Equal up to float rounding (summation order differs), far below what training moved.
        assert (one - two).norm() < 1e-3 * update, float((one - two).norm() / update)


def flat(folder) -> torch.Tensor:
    return torch.cat([v.flatten() for v in load_restorer(folder).denoiser.net.state_dict().values()])
