"""Image files and datasets. numpy + Pillow only (the runtime reads images through here too)."""
