"""Step 2 of the pipeline: make a restorer cheaper (fewer steps, fewer channels, INT8) without losing the
quality a diffusion restorer exists for. ``edgeir compress`` runs a recipe's stages in order."""
