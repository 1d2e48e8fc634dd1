"""pfx: small Unix-style commands for preference-alignment data and training."""

__version__ = "0.1.0"
