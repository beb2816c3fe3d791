"""What every compression stage receives and returns.

A stage is a module with a function ``run(settings, ctx) -> StageOutput``. ``settings`` is the stage's own
pydantic model (declared in the stage's module and listed in the recipe schema); ``ctx`` carries everything the
pipeline already has. Its ``check(settings, config)`` raises the one-line error ``run`` would stop with on a
model of that config, so the pipeline can refuse a recipe before any stage runs. Stages never evaluate
themselves: the pipeline measures every stage's output the same way and applies the recipe's quality gates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeir.models.restorer import RestorerModel
from edgeir.tasks import Degraded


@dataclass
class StageContext:
    teacher: RestorerModel  # the original model, never modified
    student: RestorerModel  # the previous stage's output (the teacher for the first stage)
    train_images: list[np.ndarray]  # HxWx3 float32 in [0, 1], for distillation, recovery and calibration
    eval_cases: list[tuple[str, np.ndarray, Degraded]]  # held-out (name, ground truth, degraded)
    work_dir: Path  # this stage's folder; write checkpoints here (atomically) so a rerun can resume
    # Files later stages of the same run may reuse (the teacher's outputs), each named by everything that
    # makes it; kept until the run completes. None: keep them in work_dir.
    shared_dir: Path | None = None
    seed: int = 0
    device: str = "cpu"
    progress: Callable[[str, int], Any] | None = None  # edgeir.progress.progress_bar-compatible


@dataclass
class StageOutput:
    model: RestorerModel  # what the next stage starts from and what the pipeline evaluates
    # Extra files the stage produced (e.g. an INT8 ONNX graph), by role, relative to work_dir.
    artifacts: dict[str, str] = field(default_factory=dict)
    # Stage-specific facts for the report (e.g. pruned channel counts, calibration samples).
    info: dict[str, Any] = field(default_factory=dict)
