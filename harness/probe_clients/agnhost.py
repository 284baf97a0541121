"""The "agnhost" toolkit's in-pod programs (bash in the agnhost image of the kind and
kubeconfig backends' pods): the UDP client, the SCTP dial, the TCP batch and the
one-exec-per-source driver, as the source text handed to bash (see the package docstring)."""

from __future__ import annotations

#: The UDP client of the "agnhost" toolkit (the kind and kubeconfig backends' pods run the
#: agnhost image: bash, curl, nslookup, OpenBSD nc, no python; docs/sources.md §5.1):
#: `bash -c KUBE_UDP_CLIENT np-udp TIMEOUT_US GRACE_US HOST:PORT...` does what UDP_CLIENT does
#: (late: a reply after the timeout, within the grace) and prints the same `__np_udp` lines, so
#: split_udp and classify read both alike. SECONDS is when bash printed the reply, not when the
#: kernel stamped it (bash cannot ask); ok or late is decided by when bash saw the reply waiting
#: (`read -t 0`), before reading it: a reply seen late by a busy client is late, a probe error,
#: never a pass or a block.
#: Why not `/agnhost connect --protocol=udp`: it sends `hostname` and reads the reply but prints
#: nothing on success, so a delivered probe could not name the pod that answered, and the judge
#: (verdicts.answered_by_target) wants that name. Why not `nc -u`: see UDP_CLIENT.
#: How, in bash alone: each target gets its own connected socket (`/dev/udp/HOST/PORT`, a new
#: source port); `read -t 0` says whether a reply (or an ICMP error) is waiting without taking
#: it; `read -N 4096 -t 0.05` then takes the whole datagram in one read(2) and stops 50 ms later
#: with what it got (bash's byte-by-byte reads would keep one byte of a datagram). Why 50 ms:
#: bash hands the bytes it read on one at a time and its timer can end the read between two of
#: them; with 1 ms a busy node cut replies (`y-` for `y-b`, seen live on real nodes). A cut
#: reply names no pod, so the judge makes it a probe error, never a pass; the cost is 50 ms per
#: answered target, one after the other, inside the probe's own wait. An error
#: comes back as `read error: N: Connection refused`. Between passes it waits 5 ms on a socket
#: that is never sent to (no traffic, no process started). Bytes of a reply are printed as hex.
#: Each pass first notes which sockets have something waiting, and when (`seen`, builtins only),
#: then reads them: a reply's ok or late is decided by when it was seen, not after the reads of
#: the targets before it (50 ms each, and a fork each on a busy node).
#: `x=` before each read: a failed `read` leaves its variable as it was, here the reply of the
#: target read before, so a refused target read as `ok` with that reply hex-encoded again
#: (seen live on real nodes; tests/test_source_batch.py).
KUBE_UDP_CLIENT = r"""export LC_ALL=C
t=$1 g=$2; shift 2; declare -A fd t0
say() { local e=$(( ${EPOCHREALTIME/./} - $3 ))
  printf '__np_udp %s %s %d.%06d %s\n' "$1" "$2" $((e / 1000000)) $((e % 1000000)) "$4"; }
for k; do
  s=${EPOCHREALTIME/./}; h=${k%:*}; p=${k##*:}; f=
  if ! { exec {f}<>"/dev/udp/$h/$p"; } 2>/dev/null; then
    m=$( { exec {g}<>"/dev/udp/$h/$p"; } 2>&1 ); m=${m%%$'\n'*}; m=${m#"$0: "}
    if [[ $h == *[!0-9.]* && $m != connect:* ]]; then say "$k" dns "$s" "${m#line *: }"
    else say "$k" other "$s" "$m"; fi
    continue
  fi
  if ! printf 'hostname\n' >&"$f" 2>/dev/null; then
    say "$k" other "$s" "sending failed"; exec {f}>&-; continue
  fi
  fd[$k]=$f; t0[$k]=$s
done
{ exec {tick}<>/dev/udp/127.0.0.1/9; } 2>/dev/null || tick=
declare -A seen
while ((${#fd[@]})); do
  for k in "${!fd[@]}"; do
    [[ -z ${seen[$k]} ]] && read -t 0 -u "${fd[$k]}" && seen[$k]=${EPOCHREALTIME/./}
  done
  for k in "${!seen[@]}"; do
    f=${fd[$k]} a=${seen[$k]}; unset "seen[$k]"
    r=$(x=; read -r -N 4096 -t 0.05 -u "$f" x 2>&1; c=$?; printf '\n%d ' "$c"
        for ((i = 0; i < ${#x}; i++)); do printf '%02x' "'${x:i:1}"; done)
    c=${r##*$'\n'}; x=${c#* }; c=${c%% *}; m=${r%%$'\n'*}; m=${m##*read error: }; m=${m#*: }
    if [[ -n $x ]]; then
      if ((a - t0[$k] <= t)); then say "$k" ok "${t0[$k]}" "$x"
      else say "$k" late "${t0[$k]}" "$x"; fi
    elif ((c > 128)); then continue
    elif [[ $m == "Connection refused" ]]; then say "$k" refused "${t0[$k]}" "$m"
    else say "$k" other "${t0[$k]}" "${m:-an empty reply}"; fi
    exec {f}>&-; unset "fd[$k]"
  done
  n=${EPOCHREALTIME/./}
  for k in "${!fd[@]}"; do
    if ((n - t0[$k] >= t + g)); then
      say "$k" timeout "${t0[$k]}" "no reply in $((t / 1000)) ms + $((g / 1000)) ms of grace"
      f=${fd[$k]}; exec {f}>&-; unset "fd[$k]"
    fi
  done
  if ((${#fd[@]})); then
    if [[ -n $tick ]]; then read -t 0.005 -u "$tick"; else sleep 0.005; fi
  fi
done
"""

#: The SCTP client of the "agnhost" toolkit: `bash -c KUBE_DIAL_CLIENT np-dial /agnhost sctp
#: TIMEOUT WAIT HOST:PORT` (WAIT: the timeout and its grace, late_grace) starts `/agnhost
#: netexec` on a free local port for the probe's duration and asks its
#: `/dial?request=hostname&protocol=sctp` (the upstream e2e way of reaching a server from
#: inside a pod), which sends `hostname`, reads the reply and returns it as JSON:
#: `{"responses":["<hostname>"]}` or `{"errors":["sctp dial failed. err:connection refused"]}`.
#: It prints one line `__np_dial HOST:PORT STATUS SECONDS TEXT`: STATUS `exit=N` (curl's exit
#: status; TEXT the JSON or curl's error) or `setup` (no netexec came up).
#: Why: the agnhost image has no other SCTP client that prints the reply (`agnhost connect`
#: prints nothing on success; bash and nc have no SCTP). Why started per probe rather than kept
#: running in the client container: netexec's HTTP port also serves /shell on the pod's address,
#: so it lives only as long as the probe, and its pending SCTP connects end with it. The port is
#: checked to be netexec's own (an /echo of a random token) before the dial. `curl --max-time
#: WAIT` bounds the dial: no answer by then is a timeout (netexec's own SCTP connect has none);
#: an answer after TIMEOUT (SECONDS, from the dial's start) is a late reply.
KUBE_DIAL_CLIENT = r"""export LC_ALL=C
a=$1 proto=$2 w=$4 k=$5; h=${5%:*} p=${5##*:}; s=${EPOCHREALTIME/./} n=
say() { local e=$(( ${EPOCHREALTIME/./} - s ))
  printf '__np_dial %s %s %d.%06d %s\n' "$k" "$1" $((e / 1000000)) $((e % 1000000)) "$2"; }
for try in 1 2 3; do
  port=$((49152 + RANDOM % 16000)) tok=np$RANDOM$RANDOM
  "$a" netexec --http-port="$port" --udp-port=-1 >/dev/null 2>&1 & n=$!
  for ((i = 0; i < 100; i++)); do
    kill -0 "$n" 2>/dev/null || break
    [[ $(curl -s --max-time 1 "http://127.0.0.1:$port/echo?msg=$tok") == "$tok" ]] && break 2
    sleep 0.02
  done
  kill "$n" 2>/dev/null; wait "$n" 2>/dev/null; n=
done
if [[ -z $n ]]; then say setup "no netexec served a local port"; exit 0; fi
s=${EPOCHREALTIME/./}
b=$(curl -sS --max-time "$w" \
  "http://127.0.0.1:$port/dial?request=hostname&protocol=$proto&host=$h&port=$p&tries=1" 2>&1)
c=$?
kill "$n" 2>/dev/null; wait "$n" 2>/dev/null
say "exit=$c" "${b//$'\n'/ }"
"""
DIAL_MARK = "__np_dial "

#: The TCP batch of the "agnhost" toolkit (probes.batch_argv_for, toolkit "agnhost"): `bash -c
#: KUBE_TCP_BATCH np-tcp CONNECT_TIMEOUT MAX_TIME URL...` runs one `curl --parallel` for every
#: URL (each a new connection, --no-keepalive, as a single probe's curl), each body written to a
#: file of its own in a fresh directory under $TMPDIR (or /tmp), then prints curl's line per
#: transfer with the body added: `__np_probe exit=N code=HTTP time=SECONDS url=URL body=BODY
#: err=MESSAGE`, BODY escaped (`\` `\\`, space `\s`, newline `\n`, tab `\t`, CR `\r`; `\0`
#: for none: curl makes no file for an empty body), and removes the directory. Why files: the
#: agnhost servers name the pod in the body (serve-hostname), and `curl --parallel` writing
#: every body to stdout interleaves them with no way to tell whose is whose. Why one curl:
#: a start of curl costs about 7 ms of CPU here (20 starts: 0.14 s of CPU, measured), a
#: 6-pod matrix round had 60 of them. A directory that cannot be made (a read-only root) gives
#: curl's exit 23 for every transfer: a tool error each, never a policy outcome.
KUBE_TCP_BATCH = r"""export LC_ALL=C
shopt -u patsub_replacement 2>/dev/null
t=$1 m=$2; shift 2
d=${TMPDIR:-/tmp}/np-tcp-$$-$RANDOM$RANDOM args=() i=0
for u; do args+=(-o "$d/$i" "$u"); i=$((i + 1)); done
w='__np_probe exit=%{exitcode} code=%{http_code} time=%{time_total} url=%{url} '
w+='file=%{filename_effective} err=%{errormsg}\n'
r=$(curl --parallel --parallel-immediate --parallel-max "$#" -sS --no-progress-meter \
  --create-dirs --connect-timeout "$t" --max-time "$m" --no-keepalive -w "$w" "${args[@]}" \
  2>/dev/null)
while IFS= read -r l; do
  [[ $l == "__np_probe "*" file="*" err="* ]] || continue
  e=${l#* file=} f=${e%% err=*} b=
  [[ -f $f ]] && IFS= read -r -d '' b <"$f"
  b=${b//\\/\\\\}; b=${b// /\\s}; b=${b//$'\n'/\\n}; b=${b//$'\t'/\\t}; b=${b//$'\r'/\\r}
  printf '%s body=%s err=%s\n' "${l%% file=*}" "${b:-\\0}" "${e#* err=}"
done <<<"$r"
rm -rf -- "$d"
"""

#: The one-exec-per-source driver of the "agnhost" toolkit (probes.source_batch_argv):
#: `bash -c KUBE_BATCH_DRIVER np-batch KEY N WORD1..WORDN KEY N ...` runs every job (an argv
#: of N words: the very argv a probe, or a UDP batch, would otherwise get an exec of its own
#: for) at once, each in the background with its own pipe, and when all have ended prints one
#: line per job, in the order given: `__np_job KEY EXIT SECONDS STDOUT STDERR` (SECONDS from
#: the job's start to its end; STDOUT and STDERR with `\` `\\`, space `\s`, newline `\n`, tab
#: `\t`, CR `\r`), then `__np_batch_end COUNT`. The parent alone prints, one job after another,
#: so lines of two jobs never interleave. A job's pipe carries its stdout, a NUL, then its exit
#: status, its duration in microseconds and its stderr (captured by a command substitution
#: while stdout goes straight to the pipe); a NUL in a tool's output would break that framing,
#: which then reads as no result for the job (none of the probe tools prints one). Why: on the
#: kube backends every exec goes API server -> kubelet -> runtime; a round of a 6-pod matrix
#: was 66 execs (bench/bench_kube_exec.py), and execs through the API, not packets, are what a
#: busy two-core machine runs out of. Each job's tool is started as before (curl, nslookup, the
#: UDP and SCTP clients): every probe still opens its own connection or socket.
#: `shopt -u patsub_replacement`: bash 5.2 reads `&` in a ${x//a/b} replacement as the match.
JOB_MARK = "__np_job "
BATCH_END_MARK = "__np_batch_end "
KUBE_BATCH_DRIVER = r"""export LC_ALL=C
shopt -u patsub_replacement 2>/dev/null
keys=() fds=()
while (($# >= 2)); do
  k=$1 n=$2; shift 2
  exec {f}< <(s=${EPOCHREALTIME/./}
    { e=$("${@:1:n}" 2>&1 >&3 3>&-); c=$?; } 3>&1
    printf '\0%d %d %s' "$c" $((${EPOCHREALTIME/./} - s)) "$e")
  keys+=("$k") fds+=("$f"); shift "$n"
done
esc() { REPLY=${1//\\/\\\\}; REPLY=${REPLY// /\\s}; REPLY=${REPLY//$'\n'/\\n}
  REPLY=${REPLY//$'\t'/\\t}; REPLY=${REPLY//$'\r'/\\r}; }
for i in "${!keys[@]}"; do
  f=${fds[i]} o= r=
  IFS= read -r -d '' o <&"$f"; IFS= read -r -d '' r <&"$f"; exec {f}<&-
  c=${r%% *} r=${r#* }; u=${r%% *} r=${r#"$u"}; r=${r# }
  esc "$o"; o=$REPLY; esc "$r"
  printf '__np_job %s %s %d.%06d %s %s\n' "${keys[i]}" "$c" $((u / 1000000)) $((u % 1000000)) \
    "${o:-\\0}" "${REPLY:-\\0}"
done
printf '__np_batch_end %d\n' "${#keys[@]}"
"""
