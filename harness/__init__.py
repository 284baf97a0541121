"""netpol-proof: prove what a Kubernetes cluster actually enforces of NetworkPolicy.

The library works without pytest; the pytest plugin (harness.plugin) and the CLI (harness.cli)
are thin layers over it.
"""

__version__ = "0.1.0"
