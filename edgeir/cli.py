"""The ``edgeir`` command: a thin layer over library functions. User errors become one line and exit 2."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import click

from edgeir.errors import EdgeirError


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

    return wrapper


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
@click.option("--trust-pickle", is_flag=True, help="Allow loading a .pt/.pth state dict you made yourself.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@user_errors
def eval_cmd(model, data, steps, sampler, size, seed, trust_pickle, as_json):
    """Metrics of MODEL and of its task's naive baseline on held-out images."""
    from edgeir.commands.evaluate import run_eval

    result = run_eval(model, data, steps, sampler, size, seed, trust_pickle)
    if as_json:
        print_json({k: result[k] for k in ("model", "baseline")})
        return
    from edgeir.report.tables import metrics_table

    metrics_table(result)


@main.command("train")
@click.argument("preset", type=click.Choice(["sr4x", "deblur", "inpaint"]))
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
@user_errors
def train_cmd(preset, out, work, iters, batch, patch, lr, device, workers, max_minutes, seed, fresh, init):
    """Train a teacher for PRESET (resumes from OUT.train when interrupted)."""
    from edgeir.train.presets import PRESETS
    from edgeir.train.teacher import train_teacher

    train_teacher(PRESETS[preset], out, work or out.with_name(out.name + ".train"), iters, batch, patch, lr,
                  device, workers, seed, max_minutes, resume=not fresh, command=" ".join(sys.argv), init=init)
    click.echo(f"wrote {out}")
