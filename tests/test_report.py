"""edgeir report: report.md, grid.png and pareto.png from a (tiny) compression run."""

import json
import re

import numpy as np
from click.testing import CliRunner
from PIL import Image
from test_compress_pipeline import setup_run

from edgeir.cli import main
from edgeir.compress.pipeline import compress
from edgeir.compress.recipe import parse_recipe
from edgeir.report.build import build_report


def test_report_tables_every_stage_with_the_run_s_own_numbers(tmp_path):
    _, raw = setup_run(tmp_path)
    compress(parse_recipe(raw), tmp_path / "out")
    paths = build_report(tmp_path / "out")
    assert [p.name for p in paths] == ["grid.png", "pareto.png", "report.md"]
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    md = (tmp_path / "out" / "report.md").read_text()
    table = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
             for line in md.splitlines() if line.startswith("| ") and "---" not in line}
    assert list(table)[1:] == ["naive baseline", "teacher", "01-distill", "02-distill"]
    psnr_col = table["stage"].index("PSNR")
    for stage in report["stages"]:
        assert table[stage["stage"]][psnr_col] == f"{stage['metrics']['psnr']:.2f}"
        assert table[stage["stage"]][0] == str(stage["metrics"]["steps"])
    assert table["teacher"][psnr_col] == f"{report['teacher']['psnr']:.2f}"
    ms_col = table["stage"].index("latency ms (onnxruntime CPU, 2 threads)")  # the engine every row was timed on
    ms = report["stages"][1]["metrics"]["latency_ms"]
    assert table["02-distill"][ms_col] == (f"{ms:.1f}" if ms >= 1 else f"{ms:.2f}")
    assert re.search(r"01-distill gates: max_psnr_drop .* pass", md)
    assert "![grid](grid.png)" in md and "![pareto](pareto.png)" in md

    grid = np.asarray(Image.open(tmp_path / "out" / "grid.png"))
    pareto = Image.open(tmp_path / "out" / "pareto.png")
    # degraded | baseline | teacher | 2 stages | ground truth: six panels across, one row per eval image
    assert grid.shape[1] > 5 * grid.shape[0] and pareto.size[0] > 300
    assert grid.std() > 10  # real pictures, not a blank canvas
    assert not list((tmp_path / "out").glob(".tmp.*"))


def test_report_command_on_a_folder_without_a_run(tmp_path):
    res = CliRunner().invoke(main, ["report", str(tmp_path)])
    assert res.exit_code == 2 and "no report.json" in res.stderr


def test_compress_command_writes_the_report_too(tmp_path):
    import yaml

    _, raw = setup_run(tmp_path, stages=[{"kind": "distill", "method": "direct", "steps": 1, "iterations": 2,
                                          "batch": 2, "patch": 16, "pairs": 4, "lr": 1e-3}])
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(raw))
    res = CliRunner().invoke(main, ["compress", "--recipe", str(tmp_path / "r.yaml"), "-o", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    for name in ("report.md", "grid.png", "pareto.png"):
        assert (tmp_path / "o" / name).stat().st_size > 0
