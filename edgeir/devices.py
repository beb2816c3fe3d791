"""Device budget profiles (recipes/devices/*.yaml): the size, p95 latency budget, memory budget, precision and
TensorRT workspace a product needs on a device. Their budgets are targets; only ``edgeir bench`` on the device
itself turns them into measurements."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from edgeir.configfile import read_yaml
from edgeir.errors import ConfigError, validation_message

PROFILES = Path(__file__).resolve().parent.parent / "recipes" / "devices"


class DeviceProfile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str
    status: Literal["target", "measured"] = "target"
    size: str  # output "HxW"
    p95_budget_ms: float = Field(gt=0)
    precision: Literal["fp32", "fp16", "int8"]
    backend: Literal["tensorrt", "onnxruntime-cuda", "onnxruntime-cpu"]
    workspace_mb: int = Field(ge=0)
    # What one restore may take (host RSS on the CPU, GPU memory on a GPU); the planner picks tile and band size
    # to fit it. None: no memory budget.
    memory_mb: float | None = Field(None, gt=0, allow_inf_nan=False)

    @field_validator("size")
    @classmethod
    def _size(cls, v: str) -> str:
        if not re.fullmatch(r"[1-9]\d*x[1-9]\d*", v):
            raise ValueError(f"size must look like 1080x1920 (height x width), got {v!r}")
        return v

    @property
    def hw(self) -> tuple[int, int]:
        h, w = self.size.split("x")
        return int(h), int(w)

    @property
    def runtime_backend(self) -> str:
        """The backend as ``edgeir.runtime`` names it."""
        return {"tensorrt": "tensorrt", "onnxruntime-cuda": "ort-cuda", "onnxruntime-cpu": "ort-cpu"}[self.backend]


def available() -> list[str]:
    return sorted(p.stem for p in PROFILES.glob("*.yaml"))


def load_profile(name_or_path: str) -> DeviceProfile:
    path = Path(name_or_path)
    if not path.suffix:
        path = PROFILES / f"{name_or_path}.yaml"
    if not path.exists():
        raise ConfigError(f"{name_or_path}: no such device profile (known: {', '.join(available())})")
    raw = read_yaml(path, "device profile")
    try:
        return DeviceProfile.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(f"{path}: {validation_message(e)}") from None


def preferred_variant(bundle: str | Path, profile: DeviceProfile) -> str | None:
    """The bundle's first 8-bit restore graph of the profile's precision, or None (the bundle's default)."""
    from edgeir.bundle import load_bundle

    return next((v.name for v in load_bundle(bundle).manifest.variants
                 if v.kind == "restore" and v.pixels == "uint8" and v.precision == profile.precision), None)
