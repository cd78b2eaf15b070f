"""Bottom layer: errors, shipped files, the registry helper, architectures and modes by name, configuration
dataclasses, file writing, figures and the run-folder format. No torch at import."""
