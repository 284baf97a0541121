"""Kubernetes API work shared by the kind and kubeconfig backends: api.py (the client), topology.py
(a run's objects), exec.py, manifests.py, waits.py. Nothing is imported here, so that importing
one part does not load the others."""
