"""The ``edgeir`` command: a thin layer over library functions. User errors become one line and exit 2."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import click

from edgeir.errors import EdgeirError

TOOLKIT_MODULES = {"torch", "onnx", "onnxslim", "onnxscript", "safetensors", "scipy", "skimage", "yaml",
                   "matplotlib", "nncf", "torch_pruning"}


def user_errors(fn):
    """One clear line and a non-zero exit for anything the user caused; never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except EdgeirError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except ModuleNotFoundError as e:
            if e.name and e.name.split(".")[0] in TOOLKIT_MODULES:
                # a torch-free runtime install (edgeir[runtime]) running a toolkit command
                click.echo(f"error: this command needs the full toolkit (pip install 'edgeir[full]'): "
                           f"no module named {e.name}", err=True)
                sys.exit(2)
            raise

    return wrapper


json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
backend_option = click.option("--backend", default="auto", show_default=True,
                              help="auto, tensorrt, ort-trt, ort-cuda or ort-cpu.")
trusted_key_option = click.option("--trusted-key", "trusted_keys", multiple=True, type=click.Path(path_type=Path),
                                  help="An ed25519 public key (edgeir keygen); repeatable. Only a bundle signed "
                                  "by one of them is used.")


def print_json(obj) -> None:
    click.echo(json.dumps(obj, indent=2, default=float))


@click.group()
@click.version_option(package_name="edgeir")
def main() -> None:
    """Compress trained diffusion image restorers and ship them to edge GPUs."""


@main.command("eval")
@click.option("--model", "model", required=True, help="Shipped teacher name (sr4x, deblur, inpaint) or folder.")
@click.option("--data", type=click.Path(path_type=Path), help="Folder of ground-truth images (default: built-in "
              "held-out photographs).")
@click.option("--steps", type=click.IntRange(1, 1000), help="Sampler steps (default: the model's own).")
@click.option("--sampler", type=click.Choice(["ddim", "ddpm"]), help="Sampler (default: the model's own).")
@click.option("--size", type=click.IntRange(16, 4096), default=256, show_default=True,
              help="Centre-crop each image to at most SIZE x SIZE.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--degradation", help="How the images are degraded: clean, real (super-resolution only; "
              "edgeir.tasks.degradations). Default: the one the model was trained for.")
@click.option("--trust-pickle", is_flag=True, help="Allow loading a .pt/.pth state dict you made yourself.")
@json_option
@user_errors
def eval_cmd(model, data, steps, sampler, size, seed, degradation, trust_pickle, as_json):
    """Metrics of MODEL and of its task's classical baselines on held-out images."""
    from edgeir.commands.evaluate import run_eval

    result = run_eval(model, data, steps, sampler, size, seed, trust_pickle, degradation)
    if as_json:
        # "baseline" is the strongest classical restoration; "baselines" has it and the weaker ones by name
        print_json({k: result[k] for k in ("model", "baseline", "baselines", "degradation")})
        return
    from edgeir.report.tables import metrics_table

    metrics_table(result)


@main.command("train")
@click.argument("preset", type=click.Choice(["sr4x", "sr4x-real", "deblur", "inpaint", "sr4x-latent"]))
@click.option("-o", "--out", type=click.Path(path_type=Path), required=True, help="Model folder to write.")
@click.option("--work", type=click.Path(path_type=Path), help="Training-state folder (default: OUT.train).")
@click.option("--iters", type=click.IntRange(1), default=6000, show_default=True)
@click.option("--batch", type=click.IntRange(1), default=16, show_default=True)
@click.option("--patch", type=click.IntRange(16), default=128, show_default=True)
@click.option("--lr", type=float, default=3e-4, show_default=True)
@click.option("--device", help="cuda or cpu (default: cuda when available).")
@click.option("--workers", type=click.IntRange(0), help="Data worker processes.")
@click.option("--max-minutes", type=float, help="Stop (and save) after this long.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--fresh", is_flag=True, help="Ignore an existing training state instead of resuming it.")
@click.option("--init", type=click.Path(path_type=Path), help="Fine-tune this model folder instead of starting "
              "from scratch.")
@click.option("--ae-iters", type=click.IntRange(1), default=4000, show_default=True,
              help="A latent preset's autoencoder iterations, trained before its UNet.")
@user_errors
def train_cmd(preset, out, work, iters, batch, patch, lr, device, workers, max_minutes, seed, fresh, init, ae_iters):
    """Train a teacher for PRESET (resumes from OUT.train when interrupted)."""
    from edgeir.train.presets import PRESETS
    from edgeir.train.teacher import train_teacher

    train_teacher(PRESETS[preset], out, work or out.with_name(out.name + ".train"), iters, batch, patch, lr,
                  device, workers, seed, max_minutes, resume=not fresh, command=" ".join(sys.argv), init=init,
                  ae_iters=ae_iters)
    click.echo(f"wrote {out}")


@main.command("restore")
@click.argument("bundle", type=click.Path(path_type=Path))
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--out", "outdir", type=click.Path(path_type=Path), required=True,
              help="Folder for the restored images (same names and formats as the inputs).")
@click.option("--variant", help="Restore graph to run (default: the bundle's first).")
@click.option("--seed", type=int, default=0, show_default=True)
@backend_option
@click.option("--plan", type=click.Path(path_type=Path), help="Use the configuration chosen by "
              "'edgeir bench --budget-ms' (its plan file).")
@trusted_key_option
@json_option
@user_errors
def restore_cmd(bundle, inputs, outdir, variant, seed, backend, plan, trusted_keys, as_json):
    """Restore image files, folders or globs INPUTS with BUNDLE.

    Each input that fails prints one line 'error: FILE: problem' on stderr and the rest are restored.
    Exit 0 when every input was restored, 1 when any failed, 2 when nothing could start (a bad bundle or
    plan, -o naming a file)."""
    from edgeir.commands.restore import run_restore

    result = run_restore(bundle, list(inputs), outdir, variant, seed, backend, plan, list(trusted_keys) or None)
    if as_json:
        print_json(result)
    else:
        skipped = ", ".join(note.split(":")[0] for note in result["notes"])
        click.echo(f"backend {result['backend']}" + (f" (unavailable: {skipped}; --json says why)" if skipped else "")
                   + f", variant {result['variant']}, tile {result['tile']}", err=True)
        for item in result["restored"]:
            click.echo(f"{item['input']} -> {item['output']} ({item['ms']:.0f} ms)")
    for item in result["failed"]:
        click.echo(f"error: {item['error']}", err=True)
    sys.exit(1 if result["failed"] else 0)


@main.command("bench")
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--size", help="Output size HxW, e.g. 512x512.")
@click.option("--budget-ms", type=click.FloatRange(min=0, min_open=True),
              help="Latency budget: choose the variant that meets it at p95; exit 1 if none does.")
@click.option("--memory-mb", type=click.FloatRange(min=0, min_open=True),
              help="Memory budget for a restore (host RSS on the CPU, GPU memory on a GPU): run each variant with "
              "the first tile and band size whose measured peak fits; exit 2 if nothing fits.")
@click.option("--device", "profile", help="Device profile (recipes/devices/NAME.yaml, or a file): its size, "
              "p95 budget, memory budget, backend, precision and TensorRT workspace, unless given explicitly.")
@click.option("--runs", type=click.IntRange(1), default=20, show_default=True)
@click.option("--variant", help="Measure this restore graph (with a budget: plan its tiles and bands only).")
@click.option("--stream", is_flag=True, help="Restore RUNS same-size frames as a stream (Restorer.stream): "
              "frames per second and per-frame percentiles.")
@backend_option
@click.option("--plan-out", type=click.Path(path_type=Path), help="Where to record the chosen configuration "
              "(default: the edgeir cache).")
@trusted_key_option
@json_option
@user_errors
def bench_cmd(bundle, size, budget_ms, memory_mb, profile, runs, variant, stream, backend, plan_out, trusted_keys,
              as_json):
    """Latency (p50/p95/p99, graph and host time apart) and peak memory of whole restores at output SIZE."""
    from edgeir.commands.bench import run_bench, table

    workspace_mb = 1024
    if profile:
        from edgeir.devices import load_profile, preferred_variant

        p = load_profile(profile)
        size = size or p.size
        budget_ms = budget_ms if budget_ms is not None else p.p95_budget_ms
        memory_mb = memory_mb if memory_mb is not None else p.memory_mb
        backend = p.runtime_backend if backend == "auto" else backend
        variant = variant or preferred_variant(bundle, p)
        workspace_mb = p.workspace_mb
    if not size:
        raise click.UsageError("give --size HxW or --device PROFILE")
    result = run_bench(bundle, size, budget_ms, runs, backend, variant, plan_out, stream, workspace_mb, memory_mb,
                       list(trusted_keys) or None)
    if profile:
        result["device_profile"] = {"name": p.name, "status": p.status, "p95_budget_ms": p.p95_budget_ms,
                                    "memory_mb": p.memory_mb}
    if as_json:
        print_json(result)
    else:
        rate = f", {result['fps']:.1f} frames/s" if stream else ""
        memory = ("not measured (no cuda-python)" if result["peak_mb"] is None else
                  f"{result['peak_mb']:.0f} MB {'RSS' if result['backend'] == 'ort-cpu' else 'on the GPU'}")
        click.echo(table(result))
        click.echo(f"{result['size']} on {result['backend']} (variant {result['variant']}, tile {result['tile']}): "
                   f"p50 {result['p50_ms']:.1f} ms, p95 {result['p95_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms"
                   f"{rate}; per frame {result['graph_ms']:.1f} ms in the graph, {result['host_ms']:.1f} ms on the "
                   f"host; peak memory {memory}")
        if budget_ms is not None or memory_mb is not None:
            verdicts = [] if budget_ms is None else [
                f"{'within' if result['within_budget'] else 'OVER'} the {budget_ms:g} ms budget"]
            verdicts += [] if memory_mb is None else [f"within the {memory_mb:g} MB memory budget"]
            click.echo(f"{', '.join(verdicts)}; plan recorded in {result['plan_file']}")
    sys.exit(0 if result["within_budget"] is not False else 1)


@main.command("compress")
@click.argument("model", required=False)
@click.option("--recipe", type=click.Path(path_type=Path), required=True, help="Recipe YAML (see recipes/).")
@click.option("-o", "--out", type=click.Path(path_type=Path), required=True, help="Output folder.")
@click.option("--resume", is_flag=True, help="Continue an interrupted run in OUT from its last finished stage.")
@click.option("--device", help="cuda or cpu (default: cuda when available).")
@click.option("--trust-pickle", is_flag=True, help="Allow loading a .pt/.pth state dict you made yourself.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
@user_errors
def compress_cmd(model, recipe, out, resume, device, trust_pickle, as_json):
    """Compress MODEL (default: the recipe's teacher) by the recipe's stages; writes OUT/report.json and one
    model folder per stage. Under torchrun, distillation trains with DistributedDataParallel."""
    from edgeir.commands.compress import read_report, report_table, run_compress
    from edgeir.errors import QualityGateError
    from edgeir.train import ddp

    try:
        report = run_compress(model, recipe, out, resume, device, trust_pickle)
    except QualityGateError:
        report = read_report(out)
        if report is not None and ddp.is_main():
            print_json(report) if as_json else report_table(report, out)
        raise
    if ddp.is_main():
        from edgeir.report.build import build_report

        build_report(out, trust_pickle)  # report.md, grid.png, pareto.png beside report.json
        print_json(report) if as_json else report_table(report, out)


@main.command("export")
@click.argument("model")
@click.option("-o", "--out", type=click.Path(path_type=Path), required=True,
              help="Bundle to write: a folder, or one file ending in .edgeir.")
@click.option("--format", "fmt", type=click.Choice(["onnx", "trt"]), default="onnx", show_default=True,
              help="trt also builds TensorRT engines for this machine's GPU (MODEL may then be an ONNX bundle).")
@click.option("--precision", type=click.Choice(["fp32", "fp16", "int8"]), default="fp32", show_default=True,
              help="int8 needs a model quantized by 'edgeir compress'.")
@click.option("--graph", type=click.Choice(["restore", "unet", "sampler", "all"]), default="restore",
              show_default=True, help="restore: the graphs the runtime runs (and the UNet graph they are composed "
              "around); unet or sampler alone; all.")
@click.option("--tile", type=click.IntRange(16), help="Output tile side baked into restore graphs (default: "
              "--size's OPT, or a bundle's own).")
@click.option("--overlap", type=click.IntRange(0), help="Overlap of neighbouring tiles (default: an eighth of "
              "the tile).")
@click.option("--opset", type=click.IntRange(17, 20), default=17, show_default=True)
@click.option("--batch", default="1:1:4", show_default=True, help="Batch range MIN:OPT:MAX of the UNet and "
              "sampler graphs' TensorRT optimisation profile.")
@click.option("--size", default="64:256:512", show_default=True, help="Height/width range MIN:OPT:MAX of the "
              "UNet and sampler graphs' TensorRT optimisation profile.")
@click.option("--frame", default="64:1080:2160", show_default=True, help="Output frame side range MIN:OPT:MAX "
              "that restore graphs' TensorRT engines are built for.")
@click.option("--steps", type=click.IntRange(1, 1000), help="Sampler steps to export (default: the model's own, "
              "e.g. a distilled student's timesteps); evenly spaced when given.")
@click.option("--fp16-io", is_flag=True, help="With --precision fp16: FP16 inputs and outputs of the UNet and "
              "sampler graphs too (default: FP32 I/O).")
@click.option("--workspace-mb", type=click.IntRange(16), default=1024, show_default=True,
              help="TensorRT builder workspace limit.")
@click.option("--timing-cache", type=click.Path(path_type=Path), help="TensorRT timing cache, reused across "
              "builds (default: in the edgeir cache folder).")
@click.option("--trust-pickle", is_flag=True, help="Allow loading a .pt/.pth state dict you made yourself.")
@click.option("--step-scales", is_flag=True, help="For a bundle with an INT8 UNet graph and two or more steps: "
              "give each step's copy in the restore graph activation scales calibrated at its own timestep, kept "
              "if that brings the graph closer to its float twin on the held-out photographs.")
@click.option("--calibration", type=click.IntRange(1), default=64, show_default=True,
              help="With --step-scales: calibration crops of the training photographs.")
@click.option("--sign", "sign_key", type=click.Path(path_type=Path), help="Sign the bundle with this ed25519 "
              "private key (edgeir keygen), for devices that run only bundles signed by keys they trust.")
@json_option
@user_errors
def export_cmd(model, out, fmt, precision, graph, tile, overlap, opset, batch, size, frame, steps, fp16_io,
               workspace_mb, timing_cache, trust_pickle, step_scales, calibration, sign_key, as_json):
    """Export MODEL (or compose restore graphs or build TensorRT engines for a bundle) into a checked bundle."""
    from edgeir.commands.export import print_summary
    from edgeir.commands.export import step_scales as calibrate_steps
    from edgeir.export.bundle import export_bundle
    from edgeir.runtime.backends import cache_root

    if sign_key is not None:  # a key that cannot sign is refused before minutes of export, not after
        from edgeir.bundle.signing import key_fingerprint

        key_fingerprint(sign_key, private=True)

    per_step = calibrate_steps(model, calibration) if step_scales else None
    result = export_bundle(model, out, fmt, precision, graph, opset, batch, size, frame, steps, tile, overlap,
                           not fp16_io, workspace_mb, timing_cache or cache_root() / "tensorrt.timing-cache",
                           trust_pickle, " ".join(sys.argv), per_step, sign_key)
    if as_json:
        print_json(result)
    else:
        print_summary(result)


@main.command("keygen")
@click.argument("key", type=click.Path(path_type=Path))
@user_errors
def keygen_cmd(key):
    """Make an ed25519 key pair for signing bundles: KEY (private, owner-only) and KEY.pub (for devices)."""
    from edgeir.bundle.signing import generate_key, key_fingerprint

    private, public = generate_key(key)
    click.echo(f"wrote {private} (keep it private: 'edgeir export --sign {private}') and {public} (key "
               f"{key_fingerprint(public, private=False)}: 'edgeir restore --trusted-key {public}')")


@main.command("report")
@click.argument("run", type=click.Path(path_type=Path))
@click.option("--trust-pickle", is_flag=True, help="The run's model is a .pt/.pth state dict you made yourself.")
@user_errors
def report_cmd(run, trust_pickle):
    """report.md, grid.png and pareto.png for a compression RUN folder."""
    from edgeir.report.build import build_report

    for path in build_report(run, trust_pickle):
        click.echo(f"wrote {path}")


@main.command("quickstart")
@click.option("-o", "--out", type=click.Path(path_type=Path), default=Path("runs/quickstart"), show_default=True)
@click.option("--recipe", type=click.Path(path_type=Path), help="Recipe (default: recipes/sr4x-quick.yaml).")
@click.option("--device", default="cpu", show_default=True, help="Device profile for the budget check.")
@json_option
@user_errors
def quickstart_cmd(out, recipe, device, as_json):
    """The main job on the shipped sr4x teacher: compress -> report -> export -> bench -> restore."""
    from edgeir.commands.quickstart import RECIPE, run_quickstart

    result = run_quickstart(out, recipe or RECIPE, device)
    if as_json:
        print_json(result)
        return
    f, t = result["final_metrics"], result["teacher_metrics"]
    b = result["bench"]
    click.echo(f"final stage {result['final_stage']}: {f['steps']} step(s), PSNR {f['psnr']:.2f} dB "
               f"(teacher {t['psnr']:.2f}), detail {f['detail']:.3f} (teacher {t['detail']:.3f})")
    click.echo(f"bench {b['size']} on {b['backend']}: p50 {b['p50_ms']} ms, p95 {b['p95_ms']} ms, budget "
               f"{b['budget_ms']} ms: {'within' if b['within_budget'] else 'OVER'} budget")
    click.echo(f"report: {result['report']}\nbundle: {result['bundle']}\nrestored: "
               + ", ".join(r["output"] for r in result["restored"]))
