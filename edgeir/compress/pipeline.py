"""``edgeir compress``: a recipe's stages in order; every stage's output measured the same way and gated;
resumable stage by stage.

The output folder::

    OUT/report.json          the run's record, rewritten atomically after every stage (and on failure)
    OUT/teacher/             the teacher's outputs and metrics on the held-out cases: the reference
    OUT/stages/NN-kind/      a finished stage: its model (config.json + model.safetensors, loadable like a
                             teacher), stage.json (settings fingerprint, metrics, info) and its artifacts.
                             It appears in one rename when the stage is done, so it is never half-written.
    OUT/work/NN-kind/        a running stage's checkpoints; removed once the stage is done
    OUT/work/shared/         what several stages reuse (the teacher's outputs); removed once the run completes

With ``resume`` a finished stage whose settings are unchanged is loaded instead of rerun, and a running one
continues from its last checkpoint. Gates are not part of a stage's fingerprint: after a gate stops the run,
relaxing the gate and resuming re-judges the stored metrics without retraining.

Latency is not part of a stage's metrics when it finishes: the teacher and every stage are timed together, by
one engine (``edgeir.compress.latency``), when the run completes or a gate stops it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgeir.compress import decoder, distill, prune, quantize
from edgeir.compress.gates import Cases, judge, measure_model
from edgeir.compress.latency import backend, onnxruntime_restore_latency_ms
from edgeir.compress.recipe import Recipe
from edgeir.compress.stage import StageContext, StageOutput
from edgeir.data.builtin import BUILTIN_TRAIN, builtin_images
from edgeir.data.images import list_images, read_rgb
from edgeir.errors import ConfigError, ImageError, QualityGateError
from edgeir.evaluate import degrade_set, ground_truth
from edgeir.files import atomic_dir, replace_dir, write_atomic
from edgeir.load import load_restorer, save_restorer
from edgeir.models.restorer import RestorerModel
from edgeir.progress import console, progress_bar
from edgeir.train import ddp

FORMAT = "edgeir.compress-report/1"
STAGES = {"distill": distill, "prune": prune, "quantize": quantize, "decoder": decoder}
DEPLOYABLE = (".safetensors", ".onnx", ".engine", ".plan")
SHARED = "shared"  # the folder in OUT/work that every stage may reuse files from


def compress(recipe: Recipe, out: str | Path, model: str | Path | None = None, resume: bool = False,
             device: str | None = None, recipe_file: str | None = None, trust_pickle: bool = False) -> dict:
    """Run ``recipe`` on ``model`` (default: the recipe's teacher); returns the report (also in
    OUT/report.json). Raises QualityGateError when a stage fails its gates."""
    out = Path(out)
    device = ddp.init(device)
    teacher = load_restorer(model or recipe.teacher, trust_pickle=trust_pickle, device=device)
    if teacher.config.task.name != recipe.task:
        raise ConfigError(f"task: the recipe is for {recipe.task} but {model or recipe.teacher} is a "
                          f"{teacher.config.task.name} model")
    _preflight(recipe, teacher)
    train_images, cases = _data(recipe, teacher)  # before the output folder exists: bad data leaves none
    problem = ddp.broadcast(_out_problem(out, resume) if ddp.is_main() else None)
    if problem:
        raise ConfigError(problem)
    base_key = _digest({"teacher": teacher.digest(), "seed": recipe.seed,
                        "data": recipe.data.model_dump(mode="json")})
    reference, teacher_metrics = _reference(teacher, cases, recipe.seed, out / "teacher", base_key)
    report: dict[str, Any] = {
        "format": FORMAT, "recipe": recipe.model_dump(mode="json"), "recipe_file": recipe_file,
        "model": str(model or recipe.teacher), "device": device, "world_size": ddp.world_size(),
        "status": "running", "failure": None, "teacher": teacher_metrics, "stages": [], "final": None,
        "targets": {}}
    _write_report(out, report)
    student = teacher
    try:
        for index, stage in enumerate(recipe.stages, 1):
            name = f"{index:02d}-{stage.kind}"
            key = _digest({"base": base_key, "stages": [s.model_dump(mode="json", exclude={"gates"})
                                                         for s in recipe.stages[:index]]})
            record = _finished(out / "stages" / name, key) if resume else None
            resumed = record is not None
            if record is None:
                record = _run_stage(stage, name, key, teacher, student, train_images, cases, reference, out,
                                    recipe.seed, device)
            student = load_restorer(out / "stages" / name, device=device)
            verdicts = judge(stage.gates, record["metrics"], teacher_metrics)
            report["stages"].append({
                "stage": name, "kind": stage.kind, "folder": f"stages/{name}", "resumed": resumed,
                "seconds": record["seconds"], "metrics": record["metrics"], "info": record["info"],
                "artifacts": record["artifacts"], "gates": [vars(v) for v in verdicts]})
            failed = [v.line() for v in verdicts if not v.passed]
            if failed:
                raise QualityGateError(f"stage {name} failed its quality gates: {'; '.join(failed)} "
                                       f"(report: {out / 'report.json'})")
            report["final"] = f"stages/{name}"
            _write_report(out, report)
    except BaseException as e:
        report["status"] = "interrupted" if isinstance(e, KeyboardInterrupt) else "failed"
        report["failure"] = " ".join(str(e).split()) or type(e).__name__
        _write_report(out, report)
        if isinstance(e, QualityGateError):  # a stopped run's table compares what a completed one's would
            _time_all(report, teacher, out, cases, device)
            _write_report(out, report)
        raise
    report["status"] = "completed"
    if ddp.is_main():
        shutil.rmtree(out / "work" / SHARED, ignore_errors=True)
    if ddp.is_main():  # only the main process times the stages (_time_all)
        _time_all(report, teacher, out, cases, device)
        report["targets"] = _targets(recipe, report["stages"][-1]["metrics"], out / report["final"])
    _write_report(out, report)
    return report


def _preflight(recipe: Recipe, teacher: RestorerModel) -> None:
    """Every stage's own check against the model it will start from, before any work: a recipe whose last stage
    cannot run stops now, in one line, not after the others have run. No stage changes what the checks read
    (the kind of network and autoencoder, the size multiple) except quantize, which leaves graphs that no later
    stage trains or quantizes again."""
    quantized: dict[str, int] = {}
    for i, stage in enumerate(recipe.stages):
        if stage.kind in ("distill", "prune") and "unet" in quantized:
            raise ConfigError(f"stages.{i}: {stage.kind} trains the UNet, which stage {quantized['unet']} makes an "
                              "INT8 graph; put quantize after it")
        try:
            STAGES[stage.kind].check(stage, teacher.config)
        except ConfigError as e:
            raise ConfigError(f"stages.{i}.{e}") from None
        if stage.kind == "quantize":
            again = [p for p in stage.parts if p in quantized]
            if again:
                raise ConfigError(f"stages.{i}.quantize.parts: {again[0]} is INT8 from stage {quantized[again[0]]} "
                                  "already")
            quantized.update(dict.fromkeys(stage.parts, i))


def _time_all(report: dict, teacher: RestorerModel, out: Path, cases: Cases, device: str) -> None:
    """The table compares the teacher and every stage and the latency target is judged on them, so they are
    timed together (each timed as it finished would carry whatever else the machine was doing then), with the
    engine named beside every figure."""
    if not ddp.is_main():
        return
    models = [teacher] + [load_restorer(out / s["folder"], device=device) for s in report["stages"]]
    ms = onnxruntime_restore_latency_ms(models, cases[0][2], seed=report["recipe"]["seed"])
    for metrics, latency in zip([report["teacher"]] + [s["metrics"] for s in report["stages"]], ms):
        metrics.update(latency_ms=latency, latency_backend=backend())


def _run_stage(stage, name: str, key: str, teacher: RestorerModel, student: RestorerModel, train_images: list,
               cases: Cases, reference: list[np.ndarray] | None, out: Path, seed: int, device: str) -> dict:
    """Run one stage (on every torchrun process if it is data-parallel, else on the main one), then measure
    and save its output on the main process; every process gets the stage's record."""
    module = STAGES[stage.kind]
    work = out / "work" / name
    if ddp.is_main():
        _claim_work(work, key)
        (out / "work" / SHARED).mkdir(exist_ok=True)
    ddp.barrier()
    record = None
    if ddp.is_main() or getattr(module, "DISTRIBUTED", False):
        start = time.time()
        ctx = StageContext(teacher=teacher, student=student, train_images=train_images, eval_cases=cases,
                           work_dir=work, shared_dir=out / "work" / SHARED, seed=seed, device=device,
                           progress=progress_bar)
        output = module.run(stage, ctx)
        if ddp.is_main():
            metrics, _ = measure_model(output.model.to(device), cases, seed, reference, label=f"eval {name}")
            record = {"fingerprint": key, "kind": stage.kind, "seconds": round(time.time() - start, 1),
                      "settings": stage.model_dump(mode="json", exclude={"gates"}), "metrics": metrics,
                      "info": _jsonable(output.info), "artifacts": dict(output.artifacts)}
            _save_stage(out / "stages" / name, output, work, record)
    ddp.barrier()
    return ddp.broadcast(record)


# ---- data and reference --------------------------------------------------------------------------------

def _data(recipe: Recipe, teacher: RestorerModel) -> tuple[list[np.ndarray], Cases]:
    d = recipe.data
    if d.train in BUILTIN_TRAIN:
        train = [im for _, im in builtin_images(BUILTIN_TRAIN[d.train])]
    elif not Path(d.train).is_dir():
        raise ConfigError(f"data.train: {d.train} is neither a built-in set ({', '.join(BUILTIN_TRAIN)}) "
                          "nor a folder")
    else:
        train = [read_rgb(p) for p in list_images(d.train)]
    images = ground_truth(None if d.eval == "builtin" else Path(d.eval))[: d.eval_images]
    cfg = teacher.config
    smallest = max(cfg.multiple_of, cfg.task.scale)
    for name, img in images:
        if min(img.shape[:2]) < smallest:
            raise ImageError(f"{name}: {img.shape[1]}x{img.shape[0]} is smaller than the model's minimum "
                             f"{smallest}x{smallest}")
    return train, degrade_set(cfg.task, images, d.eval_size, recipe.seed)


def _reference(teacher: RestorerModel, cases: Cases, seed: int, folder: Path, key: str
               ) -> tuple[list[np.ndarray] | None, dict]:
    """The teacher's outputs (default sampler, noise seed ``seed + i`` for image i) and metrics; computed
    once per output folder. Only the main process measures: the others get the metrics alone."""
    result = None
    if ddp.is_main():
        meta = folder / "metrics.json"
        if meta.exists() and json.loads(meta.read_text()).get("fingerprint") == key:
            with np.load(folder / "outputs.npz", allow_pickle=False) as z:
                outputs = [z[f"image{i}"] for i in range(len(cases))]
            metrics = json.loads(meta.read_text())["metrics"]
        else:
            metrics, outputs = measure_model(teacher, cases, seed, label="eval teacher")
            with atomic_dir(folder) as tmp:
                arrays = {f"image{i}": o for i, o in enumerate(outputs)}
                np.savez(tmp / "outputs.npz", **arrays)  # type: ignore[arg-type]  # numpy's stub reads ** as flags
                (tmp / "metrics.json").write_text(json.dumps({"fingerprint": key, "metrics": metrics}, indent=2))
        result = (outputs, metrics)
    metrics = ddp.broadcast(result[1] if result else None)
    return (result[0] if result else None), metrics


# ---- the output folder -----------------------------------------------------------------------------------

def _out_problem(out: Path, resume: bool) -> str | None:
    """Why ``out`` cannot take this run, or None (then it exists)."""
    if out.exists() and not out.is_dir():
        return f"{out}: exists and is not a folder"
    used = out.exists() and any(out.iterdir())
    if used and not resume:
        return f"{out}: not empty; pass --resume to continue the run in it, or choose a new folder"
    if used and not (out / "report.json").exists():
        return f"{out}: not an edgeir compress output folder (no report.json)"
    out.mkdir(parents=True, exist_ok=True)
    return None


def _finished(folder: Path, key: str) -> dict | None:
    """The record of a finished stage made with the same settings, else None (it will be rerun)."""
    try:
        record = json.loads((folder / "stage.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    if record.get("fingerprint") != key:
        if ddp.is_main():
            console.print(f"{folder.name}: settings changed since it ran; running it again")
        return None
    return record


def _claim_work(work: Path, key: str) -> None:
    """A stage's work folder, emptied if it holds checkpoints of other settings."""
    stamp = work / "fingerprint"
    if work.exists() and (not stamp.exists() or stamp.read_text() != key):
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    stamp.write_text(key)


def _save_stage(folder: Path, output: StageOutput, work: Path, record: dict) -> None:
    """Model, artifacts and stage.json into a hidden sibling, renamed into place in one step."""
    staging = save_restorer(output.model, folder.with_name(f".{folder.name}.partial"))
    for rel in output.artifacts.values():
        (staging / rel).parent.mkdir(parents=True, exist_ok=True)
        if (work / rel).is_dir():
            shutil.copytree(work / rel, staging / rel, dirs_exist_ok=True)
        else:
            shutil.copy2(work / rel, staging / rel)
    (staging / "stage.json").write_text(json.dumps(record, indent=2) + "\n")
    replace_dir(staging, folder)
    shutil.rmtree(work, ignore_errors=True)


def _write_report(out: Path, report: dict) -> None:
    if not ddp.is_main():
        return
    write_atomic(out / "report.json", json.dumps(report, indent=2, default=_plain) + "\n")


def _targets(recipe: Recipe, metrics: dict, folder: Path) -> dict:
    files = [p for p in folder.rglob("*") if p.suffix in DEPLOYABLE]
    measured = {"latency_ms": metrics["latency_ms"],
                "size_mb": min(p.stat().st_size for p in files) / 1e6 if files else None}
    return {k: {"target": v, "measured": measured[k], "met": measured[k] is not None and measured[k] <= v}
            for k, v in recipe.targets.model_dump(exclude_none=True).items()}


# ---- fingerprints and JSON ---------------------------------------------------------------------------

def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=_plain).encode()).hexdigest()[:16]


def _plain(x: Any) -> Any:
    if isinstance(x, (np.generic, torch.Tensor)) and x.ndim == 0:
        return x.item()
    if isinstance(x, (np.ndarray, torch.Tensor)):
        return x.tolist()
    if isinstance(x, Path):
        return str(x)
    return repr(x)


def _jsonable(x: Any) -> Any:
    return json.loads(json.dumps(x, default=_plain))
