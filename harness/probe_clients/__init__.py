"""The programs that perform probes inside a pod, as the source text handed to their
interpreter: the "debian" toolkit's UDP client (this machine's python3: debian.py), and the
"agnhost" toolkit's UDP client, SCTP dial, TCP batch and one-exec-per-source driver (bash in
the agnhost image: agnhost.py). harness.probes builds their argv (udp_argv_for, argv_for,
batch_argv_for, source_batch_argv) and reads their lines (split_udp, split_batch,
split_source_batch, classify); the grace they listen through is probes.late_grace. Why a
package of their own: they are programs of other languages kept as data, not the probes'
rules; one module per toolkit, whose image decides what they may use.
"""

from harness.probe_clients.agnhost import (
    BATCH_END_MARK,
    DIAL_MARK,
    JOB_MARK,
    KUBE_BATCH_DRIVER,
    KUBE_DIAL_CLIENT,
    KUBE_TCP_BATCH,
    KUBE_UDP_CLIENT,
)
from harness.probe_clients.debian import UDP_CLIENT, UDP_CLIENT_ARGV, UDP_MARK

__all__ = ["BATCH_END_MARK", "DIAL_MARK", "JOB_MARK", "KUBE_BATCH_DRIVER", "KUBE_DIAL_CLIENT",
           "KUBE_TCP_BATCH", "KUBE_UDP_CLIENT", "UDP_CLIENT", "UDP_CLIENT_ARGV", "UDP_MARK"]
