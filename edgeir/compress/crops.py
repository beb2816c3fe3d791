"""Training crop sizes a stage may name: one size, or several that alternate batch by batch.

GroupNorm's statistics and the middle attention span the whole input, so a restorer computes a somewhat
different function on a 256 px image than on a 128 px one, and a student learns its teacher only at the sizes
it trains on. Stages that train therefore accept a list: the teacher's training size and the runtime's tile size.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Discriminator, Field, Tag, model_validator

Patch = Annotated[int, Field(ge=16)]
# Tagged, so a mistake is reported against the form the recipe used ("patch.sizes.0: ... >= 16").
Patches = Annotated[Annotated[Patch, Tag("size")] | Annotated[list[Patch], Tag("sizes")],
                    Discriminator(lambda v: "sizes" if isinstance(v, list) else "size")]


class CropSized(BaseModel):
    """Settings with a ``patch: Patches`` field (each declares its own default): its sizes as a list, checked
    to be distinct when the settings are made."""

    patch: Patches

    @property
    def sizes(self) -> list[int]:
        return [self.patch] if isinstance(self.patch, int) else list(self.patch)

    @model_validator(mode="after")
    def _check_sizes(self) -> CropSized:
        if not self.sizes:
            raise ValueError("patch: name at least one size")
        if len(set(self.sizes)) < len(self.sizes):
            raise ValueError(f"patch: {self.patch} names a size twice")
        return self
