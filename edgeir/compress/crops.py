"""Training crop sizes a stage may name: one size, or several that alternate batch by batch.

GroupNorm's statistics and the middle attention span the whole input, so a restorer computes a somewhat
different function on a 256 px image than on a 128 px one, and a student learns its teacher only at the sizes
it trains on. Stages that train therefore accept a list: the teacher's training size and the runtime's tile size.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Discriminator, Field, Tag

Patch = Annotated[int, Field(ge=16)]
# Tagged, so a mistake is reported against the form the recipe used ("patch.sizes.0: ... >= 16").
Patches = Annotated[Annotated[Patch, Tag("size")] | Annotated[list[Patch], Tag("sizes")],
                    Discriminator(lambda v: "sizes" if isinstance(v, list) else "size")]


def crop_sizes(patch: int | list[int]) -> list[int]:
    """``patch`` as a list of distinct sizes; a ValueError (a recipe's one-line message) otherwise."""
    sizes = [patch] if isinstance(patch, int) else list(patch)
    if not sizes:
        raise ValueError("patch: name at least one size")
    if len(set(sizes)) < len(sizes):
        raise ValueError(f"patch: {patch} names a size twice")
    return sizes
