"""The ``coreclean`` command (``python -m coreclean``): one subcommand per verb of the pipeline."""
from .main import main

__all__ = ["main"]
