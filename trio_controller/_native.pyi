"""Typed stubs for the Rust extension module."""

__all__ = ["__version__"]

__version__: str
