"""Bottom layer: errors, configuration dataclasses, file writing, figures and the run-folder format."""
