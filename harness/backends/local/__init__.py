"""The local backend: an emulated cluster in Linux network namespaces (see backend.py)."""

from harness.backends.local.backend import LocalBackend

__all__ = ["LocalBackend"]
