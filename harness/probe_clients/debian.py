"""The "debian" toolkit's in-pod UDP client (the local backend's pods see this machine's
python3), as the source text handed to its interpreter (see the package docstring)."""

from __future__ import annotations

import sys

#: The UDP client of the "debian" toolkit: `UDP_CLIENT_ARGV TIMEOUT GRACE HOST:PORT...` sends
#: `hostname\n` from a fresh socket to every target at once (like `/agnhost connect
#: --protocol=udp`, which sends the same), and prints one line per target: `__np_udp HOST:PORT
#: STATUS SECONDS TEXT`, STATUS one of ok (TEXT: the reply, hex), late (a reply after TIMEOUT
#: and within GRACE more; TEXT: the reply), timeout (nothing within TIMEOUT + GRACE), refused
#: (an ICMP port unreachable came back), dns, other. SECONDS is from the send to the reply's
#: arrival as the kernel stamped it (SO_TIMESTAMPNS: docs/sources.md §15), so a reply that
#: arrived in time but was read late by a busy client is still ok.
#: Why not netcat: OpenBSD `nc -u -w T` exits 0 with empty output both when an ICMP port
#: unreachable came back (after 3 ms) and when nothing came back (after T seconds), so its
#: result cannot tell a reject from a drop (measured with nc 1.219 on this machine).
#: Why several targets per process: starting the interpreter is most of a probe's CPU (25 ms
#: against well under 1 ms for the exchange, bench/bench_library.py); each target still gets
#: its own socket (a new source port, a new conntrack entry), as curl --parallel does for TCP.
UDP_MARK = "__np_udp "
UDP_CLIENT = (
    "import select,socket,struct,sys,time\n"
    "t,g=float(sys.argv[1]),float(sys.argv[2]);live={};TS=getattr(socket,'SO_TIMESTAMPNS',35)\n"
    "def say(k,st,dt,x):sys.stdout.write('__np_udp %s %s %.4f %s\\n'%(k,st,dt,x))\n"
    "for k in sys.argv[3:]:\n"
    " t0=time.time();h,_,p=k.rpartition(':')\n"
    " try:a=socket.getaddrinfo(h,int(p),socket.AF_INET,socket.SOCK_DGRAM)[0][4]\n"
    " except OSError as e:say(k,'dns',time.time()-t0,e);continue\n"
    " s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.setsockopt(socket.SOL_SOCKET,TS,1)\n"
    " try:s.connect(a);s.send(b'hostname\\n');t0=time.time()\n"
    " except ConnectionRefusedError as e:say(k,'refused',time.time()-t0,e);s.close();continue\n"
    " except OSError as e:say(k,'other',time.time()-t0,e);s.close();continue\n"
    " live[s]=(k,t0)\n"
    "while live:\n"
    " for s in select.select(list(live),[],[],max(0,min(v[1] for v in live.values())+t+g-time.time()))[0]:\n"
    "  k,t0=live.pop(s)\n"
    "  try:\n"
    "   d,anc,_,_=s.recvmsg(4096,64);at=[struct.unpack('qq',v[:16]) for _,y,v in anc if y==TS]\n"
    "   dt=(at[0][0]+at[0][1]/1e9 if at else time.time())-t0;say(k,'ok' if dt<=t else 'late',dt,d.hex())\n"
    "  except ConnectionRefusedError as e:say(k,'refused',time.time()-t0,e)\n"
    "  except OSError as e:say(k,'other',time.time()-t0,e)\n"
    "  s.close()\n"
    " now=time.time()\n"
    " for s,(k,t0) in list(live.items()):\n"
    "  if now>=t0+t+g:say(k,'timeout',now-t0,'no reply in %gs+%gs of grace'%(t,g));del live[s];s.close()\n"
)
#: the interpreter that runs it: this machine's own, isolated from the environment and without
#: site-packages (`python3` on PATH may be a version-manager shim costing dozens of processes)
UDP_CLIENT_ARGV = (sys.executable or "python3", "-I", "-S", "-c", UDP_CLIENT)
