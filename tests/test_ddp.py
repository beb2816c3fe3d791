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
        moved, diff = (one - start).abs(), (one - two).abs()
        assert moved.max() > 0
        # Summing a batch in halves sums it in another order: float32 rounding, about 1e-7 of a value per
        # operation, leaves the bulk of the weights equal to far below 1e-3 of how far training moved them. A
        # weight whose gradient is itself rounding-sized is another matter: AdamW normalises its update, so the
        # rounding can turn it into a full step either way. Such weights are a few in a million; they are held
        # only to AdamW's own bound, a step no larger than the largest any weight took. A DDP that dropped,
        # doubled or failed to average a half of each batch moves the bulk by a sizeable fraction instead.
        assert diff.quantile(0.99) < 1e-3 * moved.quantile(0.99), float(diff.quantile(0.99) / moved.quantile(0.99))
        assert diff.max() <= 2 * moved.max()


def flat(folder) -> torch.Tensor:
    return torch.cat([v.flatten() for v in load_restorer(folder).denoiser.net.state_dict().values()])
