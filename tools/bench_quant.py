"""Benchmark of INT8 post-training quantization, one run on one machine, for the sr4x, deblur and inpaint
students: the FP32 ONNX UNet vs edgeir's INT8 graph (``edgeir.compress.quantize``: NNCF, calibrated on the
student's own sampler) vs onnxruntime's own ``quantize_static`` (QDQ, per-channel weights) on the FP32 ONNX of
the same student with the same calibration samples.

Students are the shipped teachers with a 4-step DDIM schedule set in their sampler config (structurally what a
distilled student is). The quantize stage runs with its default settings; if its quality gate fails, the run is
repeated once with the keep-in-FP list the stage suggested (the workflow a user follows), and the table says so.

Every model restores the same held-out images with the same seeds through onnxruntime on the CPU (the same
``edgeir.graphs.ort.open_session`` for all three), so quality, latency and size compare like for like.

    nice .venv/bin/python tools/bench_quant.py [--tasks sr4x deblur inpaint] [--steps 4] [--size 256]
        [--runs 15] [--threads 1] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from edgeir.compress import quantize
from edgeir.compress.calibration import calibration_set
from edgeir.compress.stage import StageContext
from edgeir.data.builtin import builtin_images
from edgeir.errors import QualityGateError
from edgeir.evaluate import degrade_set
from edgeir.export.unet import INPUTS, export_unet
from edgeir.graphs.cpu_int8 import cpu_encoding
from edgeir.graphs.ort import open_session
from edgeir.load import load_restorer
from edgeir.metrics import measure, psnr_y
from edgeir.metrics.fidelity import rgb_to_y
from edgeir.models.onnx_net import OnnxNet
from edgeir.models.restorer import RestorerModel
from edgeir.timing import median_ms


def student(task: str, steps: int) -> RestorerModel:
    r = load_restorer(task)
    r.config = r.config.model_copy(update={"sampler": r.config.sampler.model_copy(
        update={"steps": steps, "timesteps": r.config.timesteps(steps)})})
    return r


class Samples(CalibrationDataReader):
    def __init__(self, samples):
        self.items = iter([{n: v.numpy() for n, v in zip(INPUTS, s)} for s in samples])

    def get_next(self):
        return next(self.items, None)


def peer_int8(fp32: Path, samples, out: Path) -> Path:
    """onnxruntime's recommended static flow: pre-process (shape inference + optimisation), then QDQ."""
    pre = out.with_name("fp32.pre.onnx")
    quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)  # symbolic inference fails on this UNet
    logging.getLogger().setLevel(logging.ERROR)  # one "axis out of range" warning per GroupNorm constant
    quantize_static(str(pre), str(out), Samples(samples), quant_format=QuantFormat.QDQ, per_channel=True)
    return out


def edgeir_int8(s: RestorerModel, ctx: StageContext) -> tuple[Path, dict, str]:
    settings = quantize.QuantizeSettings()
    how = "defaults"
    try:
        out = quantize.run(settings, ctx)
    except QualityGateError as e:
        report = json.loads((ctx.work_dir / quantize.REPORT).read_text())
        print(f"  default gate failed: {e}")
        settings = quantize.QuantizeSettings(keep_fp=report["suggested_keep_fp"])
        how = "suggested keep_fp: " + ", ".join(report["suggested_keep_fp"][len(quantize.QuantizeSettings().keep_fp):])
        out = quantize.run(settings, ctx)
    return ctx.work_dir / out.artifacts["int8_onnx"], out.info, how


def masked_psnr(out: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> float:
    mse = np.mean((rgb_to_y(out)[mask] - rgb_to_y(gt)[mask]) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def quality(path: Path, s: RestorerModel, cases, seed: int, threads: int, encoding: str | None = None
            ) -> tuple[dict, list[np.ndarray]]:
    r = RestorerModel(s.config, net=OnnxNet(path, threads, encoding)).eval()
    outs, rows = [], []
    with torch.no_grad():
        for i, (_, gt, d) in enumerate(cases):
            out = r.restore(d, seed=seed + i)
            outs.append(out)
            row = measure(out, gt, crop=s.task.scale)
            if d.mask is not None:
                row["masked_psnr"] = masked_psnr(out, gt, d.mask)
            rows.append(row)
    return {k: float(np.mean([r[k] for r in rows])) if k != "masked_psnr" else min(r[k] for r in rows)
            for k in rows[0]}, outs


def latencies(paths: dict[str, tuple[Path, str | None]], channels: int, size: int, runs: int, threads: int
              ) -> dict[str, float]:
    """Median ms of one denoiser call at size x size, timed together (``edgeir.timing``)."""
    sessions = {k: open_session(p, threads=threads, int8_encoding=enc) for k, (p, enc) in paths.items()}
    rng = np.random.default_rng(0)
    feed = {"x_t": rng.standard_normal((1, 3, size, size), dtype=np.float32), "t": np.array([500.0], np.float32),
            "condition": rng.uniform(-1, 1, (1, channels, size, size)).astype(np.float32)}
    return dict(zip(sessions, median_ms([lambda s=s: s.run(None, feed) for s in sessions.values()], runs, 3)))


def bench_task(task: str, args, work: Path) -> list[dict]:
    s = student(task, args.steps)
    ctx = StageContext(teacher=s, student=s, train_images=[im for _, im in builtin_images("train")],
                       eval_cases=degrade_set(s.task, builtin_images("heldout"), args.size, args.seed),
                       work_dir=work / task, seed=args.seed)
    t0 = time.perf_counter()
    int8, info, how = edgeir_int8(s, ctx)
    stage_s = time.perf_counter() - t0
    fp32 = export_unet(s, work / task / "fp32.onnx")
    defaults = quantize.QuantizeSettings()
    samples = calibration_set(s, ctx.train_images, defaults.subset_size, defaults.crop, args.seed)
    peer = peer_int8(fp32, samples, work / task / "ort_quantize_static.int8.onnx")
    # The INT8 graphs run in the encoding onnxruntime computes exactly on this CPU (edgeir.graphs.cpu_int8);
    # edgeir's graph once more in u8u8, the encoding of x86 CPUs without VNNI, timed here on this CPU.
    paths = {"FP32 ONNX": (fp32, None), f"edgeir INT8 (NNCF), {cpu_encoding()}": (int8, None),
             "onnxruntime quantize_static INT8": (peer, None)}
    if cpu_encoding() != "u8u8":
        paths["edgeir INT8 (NNCF), u8u8"] = (int8, "u8u8")
    lat = latencies(paths, s.task.cond_channels, args.size, args.runs, args.threads)
    rows, ref_outs = [], None
    for name, (path, encoding) in paths.items():
        q, outs = quality(path, s, ctx.eval_cases, args.seed, args.threads, encoding)
        ref_outs = ref_outs or outs
        vs_fp32 = float(np.mean([psnr_y(o, r) for o, r in zip(outs, ref_outs)])) if outs is not ref_outs else None
        rows.append({"task": task, "model": name, **q, "psnr_vs_fp32": vs_fp32, "latency_ms": lat[name],
                     "mb": path.stat().st_size / 1e6})
    fp = rows[0]
    for r in rows:
        r["speedup"] = fp["latency_ms"] / r["latency_ms"]
        r["size_share"] = r["mb"] / fp["mb"]
        r["detail_kept"] = r["detail"] / fp["detail"]
    rows[1]["how"] = how
    rows[1]["stage_seconds"] = stage_s
    rows[1]["calibration"] = f"{info['calibration_samples']} samples at t={info['calibration_timesteps']}"
    return rows


def table(rows: list[dict]) -> str:
    head = ("| task | model | PSNR | SSIM | detail (kept) | PSNR vs FP32 | worst masked PSNR | ms | speed-up | MB "
            "(share) |\n| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    lines = [head]
    for r in rows:
        vs = "-" if r["psnr_vs_fp32"] is None else f"{r['psnr_vs_fp32']:.2f}"
        masked = f"{r['masked_psnr']:.2f}" if "masked_psnr" in r else "-"
        lines.append(f"| {r['task']} | {r['model']} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['detail']:.4f} "
                     f"({r['detail_kept']:.1%}) | {vs} | {masked} | {r['latency_ms']:.1f} | {r['speedup']:.2f}x | "
                     f"{r['mb']:.2f} ({r['size_share']:.0%}) |")
    return "\n".join(lines)


def goals(rows: list[dict]) -> str:
    out = []
    for task in dict.fromkeys(r["task"] for r in rows):
        fp, ours, peer = [r for r in rows if r["task"] == task][:3]
        checks = {
            "PSNR at most 0.2 dB below FP32": fp["psnr"] - ours["psnr"] <= 0.2,
            ">= 95% of FP32 detail": ours["detail_kept"] >= 0.95,
            "PSNR/SSIM vs ground truth and PSNR vs FP32 at least the peer's": ours["psnr"] >= peer["psnr"]
            and ours["ssim"] >= peer["ssim"] and ours["psnr_vs_fp32"] >= peer["psnr_vs_fp32"],
            ">= 1.5x faster than FP32": ours["speedup"] >= 1.5,
            "file <= 35% of FP32": ours["size_share"] <= 0.35,
        }
        if "masked_psnr" in ours:
            checks["worst masked-region PSNR at least the peer's"] = ours["masked_psnr"] >= peer["masked_psnr"]
        met = ", ".join(f"{k}: {'met' if v else 'NOT met'}" for k, v in checks.items())
        out.append(f"- {task} ({ours['how']}; calibration {ours['calibration']}; stage {ours['stage_seconds']:.0f} s): "
                   f"{met}")
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tasks", nargs="+", default=["sr4x", "deblur", "inpaint"])
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--size", type=int, default=256, help="held-out crop and latency input size")
    p.add_argument("--runs", type=int, default=15)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", type=Path, help="keep the graphs here (default: a temporary folder)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        rows = [r for task in args.tasks for r in bench_task(task, args, work)]
    flags = np.__dict__.get("_core", np.core)._multiarray_umath.__cpu_features__  # numpy's own CPU detection
    shown = ", ".join(f for f in ("AVX2", "AVX512F", "AVX512BW", "AVX512VNNI") if flags.get(f)) or "none of AVX2+"
    print(f"{platform.machine()} ({shown}); INT8 encoding onnxruntime computes exactly here: {cpu_encoding()}; "
          f"{args.threads} thread(s), torch {torch.__version__}, onnxruntime {ort.__version__}; {args.steps}-step "
          f"DDIM students; held-out {args.size}x{args.size}; latency: median of {args.runs} interleaved runs of one "
          f"denoiser call at {args.size}x{args.size}\n")
    print(table(rows))
    print()
    print(goals(rows))


if __name__ == "__main__":
    main()
