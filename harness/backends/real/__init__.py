"""The real-engine tier of `--backend local --cni kube-router|calico|none`: a real control plane
(controlplane/), real policy engines in node network namespaces (engines.py, calico.py), pods
emulated as namespaces whose status the harness writes (kubelet.py, nodes.py, podserver.py);
see backend.py."""
