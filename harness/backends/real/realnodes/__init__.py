"""Real nodes: a real kubelet per node over netpol-proof's own CRI runtime (netpol-cri), real
CNI plugins, against the run's real control plane. docs/real-nodes.md says what runs and why."""
