"""trio-controller: a Kubernetes controller runtime for Python on Trio, with a Rust core."""

from trio_controller._native import __version__

__all__ = ["__version__"]
