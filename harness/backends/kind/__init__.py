"""The kind backend: a kind cluster per CNI (backend.py), its config (config.py), the kind, kubectl
and helm command lines (commands.py), pinned binaries (binaries.py) and its cleaner (cleanup.py).
Nothing is imported here, so that `python -m harness cleanup` loads only what cleanup.py needs."""
