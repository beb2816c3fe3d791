"""Step 2 of the pipeline: make a restorer cheaper (fewer steps, fewer channels, a small decoder, INT8) without
losing the quality a diffusion restorer exists for. ``edgeir compress`` runs a recipe's stages in order."""

import os

# NNCF compiles its C++ extension on first use and gives up after 60 s; on 2 busy cores that first build can
# take longer, so allow it 10 minutes (a user's own setting wins). Read when the extension loads, not at import.
os.environ.setdefault("NNCF_EXTENSION_LOAD_TIMEOUT", "600")
