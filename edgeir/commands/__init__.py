"""Library functions behind CLI commands that glue several pipeline steps together; tests call them directly."""
