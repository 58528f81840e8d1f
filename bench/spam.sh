#!/bin/sh
# Spam scorer benchmark: messages/second on the same messages with the same stock rules
# (/usr/share/spamassassin), network tests off, side by side in one run: correo's daemon, SpamAssassin's
# spamd and (when installed) rspamd, once with its own rules and once with the same stock rules through
# its `spamassassin` module (see start_rspamd). Also p99 latency for a 100 KB message. Prints ratios.
#
#   bench/spam.sh [N_MESSAGES] [CLIENTS]        (defaults: 200 messages, 1 client)
#
# Each daemon starts fresh and gets one warm-up message, then the sample once ("cold": what the first
# clients of a just-started daemon see). Beside messages/second each line has the daemon's own CPU
# time per message (cpu_ms_per_msg: utime+stime of the daemon and every process it forked, from /proc,
# around the timed messages), which the load of other jobs on a shared machine disturbs far less than
# wall time. Then, unless WARM=0, the same sample goes through every daemon once more ("warm": each
# daemon has now seen every message once, as a long-running one has seen mail like it).
#
# Needs: spamassassin (spamd), python3; rspamd optional. Run as root (spamd drops to nobody).
set -eu
N=${1:-200}
CLIENTS=${2:-1}
# Ports: correo PORT_BASE, spamd +1, rspamd +2 (its proxy and controller +3, +4), rspamd with the
# stock rules +5 (+6, +7). Another run, or a
# daemon left over from one, on the same host holds the default ones: set PORT_BASE to get around it.
PC=${PORT_BASE:-7841}; PS=$((PC + 1)); PR=$((PC + 2)); PRS=$((PC + 5))
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CORPUS=${CORPUS:-$ROOT/../shared/corpus}
[ -d "$CORPUS" ] || CORPUS=/work/shared/corpus
W=$(mktemp -d /tmp/spambench.XXXXXX)
chmod 755 $W   # spamd drops to nobody and must reach its home below
# A daemon already gone must not make the script fail (errexit applies inside the trap).
trap 'for p in $W/*.pid; do kill $(cat $p) 2>/dev/null || true; done; sleep 1; rm -rf $W' EXIT
CLIENT="python3 $ROOT/bench/spam_client.py"

# The same sample for every engine: every k-th ham and spam, GTUBE-free.
ls "$CORPUS"/ham/* "$CORPUS"/spam/* | awk -v n="$N" 'BEGIN{srand(7)} {a[NR]=$0} END{step=int(NR/n); if(step<1)step=1; c=0; for(i=1;i<=NR && c<n;i+=step){print a[i]; c++}}' > $W/files
# A 100 KB message: a real ham with its body repeated to ~100 KB.
BIG=$W/big.eml
head -c 100000 /dev/null > $BIG
f=$(sed -n 1p $W/files); awk 'BEGIN{h=1} {print} /^$/{exit}' "$f" > $BIG
while [ $(wc -c < $BIG) -lt 100000 ]; do sed '1,/^$/d' "$f" >> $BIG; done
for i in $(seq 1 100); do echo $BIG; done > $W/big100

# CORREO_BIN=PATH measures that build of correo instead of building this tree (to compare two builds
# in alternating runs on a noisy machine).
if [ -n "${CORREO_BIN:-}" ]; then
  CORREO=$CORREO_BIN
else
  cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml"
  CORREO=$ROOT/target/release/correo
fi

echo "starting correo spam daemon (stock rules)"
$CORREO --home $W/correo spam daemon --listen 127.0.0.1:$PC --rules /usr/share/spamassassin >$W/correo.log 2>&1 &
echo $! > $W/correo.pid
echo "starting spamd (-L, stock rules, $CLIENTS child)"
mkdir -p $W/sa && chown nobody $W/sa
spamd -L -x -u nobody -H $W/sa -i 127.0.0.1:$PS -A 127.0.0.1 -m $CLIENTS --min-children=$CLIENTS --max-conn-per-child=100000 \
      --min-spare=1 --max-spare=$CLIENTS -s $W/spamd.log -r $W/spamd.pid -d
# rspamd twice when installed: with its own rules (its default configuration, network modules off),
# and with SpamAssassin's stock rules loaded through its `spamassassin` module (the same rules correo
# and spamd run; rspamd's own rules stay on beside them). RSPAMD_SA=0 leaves the second out. Both keep
# their compiled Hyperscan databases in one cache directory (RSPAMD_HS_CACHE) across runs: compiling
# the stock rules takes rspamd's hs_helper several minutes, and until it has, rspamd matches with PCRE.
HS_CACHE=${RSPAMD_HS_CACHE:-/var/tmp/correo-bench-rspamd-hs}
start_rspamd() {  # NAME PORT SA(0|1); the proxy and controller take PORT+1 and PORT+2
  R=$W/$1; mkdir -p $R/conf/local.d $R/conf/override.d $R/db $R/run $R/log $HS_CACHE
  echo "bind_socket = \"127.0.0.1:$2\";" > $R/conf/override.d/worker-normal.inc
  # The proxy and controller on bench ports too: on their default ones (11332, 11334) another rspamd
  # on the host makes this one shut down at start.
  echo "bind_socket = \"127.0.0.1:$(($2 + 1))\";" > $R/conf/override.d/worker-proxy.inc
  echo "bind_socket = \"127.0.0.1:$(($2 + 2))\";" > $R/conf/override.d/worker-controller.inc
  printf 'dns { nameserver = ["127.0.0.1:53"]; timeout = 0.05s; }\nhs_cache_dir = "%s/";\n' $HS_CACHE \
    > $R/conf/local.d/options.inc
  for m in rbl fuzzy_check asn spf dkim dmarc arc mx_check rspamd_update phishing url_redirector dcc reputation neural greylist ratelimit replies history_redis bimi hfilter; do
    echo 'enabled = false;' > $R/conf/local.d/$m.conf
  done
  [ "$3" = 1 ] && echo 'ruleset = "/usr/share/spamassassin/*.cf";' > $R/conf/local.d/spamassassin.conf
  chown -R _rspamd:_rspamd $R $HS_CACHE 2>/dev/null || true
  rspamd -u _rspamd -g _rspamd -c /etc/rspamd/rspamd.conf --var=LOCAL_CONFDIR=$R/conf \
       --var=DBDIR=$R/db --var=RUNDIR=$R/run --var=LOGDIR=$R/log -p $W/$1.pid >/dev/null 2>&1
}
# Waits until rspamd NAME on PORT answers and its scanning worker has loaded the Hyperscan databases
# (before that it runs every regex with PCRE, which is not how it runs for long). With every database
# already in the cache, the main process loads them all before it forks the worker, hs_helper then
# compiles nothing and the worker logs no load of its own: that counts as loaded too.
wait_rspamd() {  # NAME PORT TIMEOUT_SECONDS
  for i in $(seq 1 60); do curl -s -o /dev/null http://127.0.0.1:$2/ping && break; sleep 1; done
  L=$W/$1/log/rspamd.log
  for i in $(seq 1 $3); do
    grep -q '(normal).*hyperscan database.*has been loaded' $L 2>/dev/null && return 0
    grep -q '(main).*full hyperscan database.*has been loaded' $L 2>/dev/null &&
      grep -q '(hs_helper).*compiled 0 regular expressions' $L 2>/dev/null && return 0
    [ $((i % 60)) = 0 ] && echo "waiting for $1 to load its Hyperscan databases (${i}s)" >&2
    sleep 1
  done
  echo "$1: no Hyperscan databases after $3 s; measuring it as it is" >&2
}
RSPAMD=no; RSPAMD_SA=${RSPAMD_SA:-1}
if command -v rspamd >/dev/null 2>&1; then
  start_rspamd rspamd $PR 0 && RSPAMD=yes
  if [ "$RSPAMD_SA" = 1 ]; then start_rspamd rspamd_sa $PRS 1 || RSPAMD_SA=0; fi
else
  RSPAMD_SA=0
fi
# Wait for all to answer.
for i in $(seq 1 120); do
  ok=1
  printf 'PING SPAMC/1.5\r\n\r\n' | timeout 2 python3 -c "import socket,sys;s=socket.create_connection(('127.0.0.1',$PC));s.sendall(sys.stdin.buffer.read());print(s.recv(99))" >/dev/null 2>&1 || ok=0
  spamc -d 127.0.0.1 -p $PS -K >/dev/null 2>&1 || ok=0
  [ $ok = 1 ] && break; sleep 1
done
[ $RSPAMD = yes ] && wait_rspamd rspamd $PR 300
[ $RSPAMD_SA = 1 ] && wait_rspamd rspamd_sa $PRS 1200

# PIN=1: "on one core" taken literally: every process and thread of every daemon is bound to CPU 1
# (children forked later inherit it), and the client to CPU 0.
if [ "${PIN:-0}" = 1 ]; then
  tree() { echo $1; for c in $(pgrep -P $1); do tree $c; done; }
  for pf in $W/*.pid; do
    for p in $(tree $(cat $pf)); do taskset -a -p -c 1 $p >/dev/null 2>&1 || true; done
  done
  CLIENT="taskset -c 0 $CLIENT"
  echo "pinned: daemons to CPU 1, client to CPU 0"
fi
# The client's whole output goes to the terminal; the result is its last JSON line (a pipe through
# `tee /dev/stderr` lost it now and then).
# The first argument names the daemon whose process tree's CPU the client reads (its pid file).
run() {
  pidf=$W/$1.pid; shift
  CPU_PID=$(cat $pidf 2>/dev/null || true) $CLIENT "$@" > $W/client.out 2>&1
  cat $W/client.out >&2; grep '^{' $W/client.out | tail -1
}
# Ratios from the three JSON lines: throughput correo/peer (higher: correo faster) and CPU per message
# peer/correo (higher: correo cheaper), so both read the same way.
ratios() {
  python3 - "$@" <<'PY'
import json, sys
label, c, s = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
peers = [("spamd", s)]
for name, arg in zip(("rspamd", "rspamd+SA rules"), sys.argv[4:6]):
    if arg:
        peers.append((name, json.loads(arg)))
for name, p in peers:
    line = "%scorreo/%s throughput ratio: %.1fx" % (label, name, c["msgs_per_s"] / p["msgs_per_s"])
    if c.get("cpu_ms_per_msg") and p.get("cpu_ms_per_msg"):
        line += "; %s/correo CPU-per-message ratio: %.1fx (%.2f vs %.2f ms)" % (
            name, p["cpu_ms_per_msg"] / c["cpu_ms_per_msg"], p["cpu_ms_per_msg"], c["cpu_ms_per_msg"])
    print(line)
PY
}
echo "== throughput (cold: fresh daemons, one warm-up message): $(wc -l < $W/files) corpus messages, $CLIENTS client(s)"
C=$(run correo spamd 127.0.0.1 $PC $CLIENTS $(cat $W/files)); echo "correo: $C"
S=$(run spamd spamd 127.0.0.1 $PS $CLIENTS $(cat $W/files)); echo "spamd:  $S"
if [ $RSPAMD = yes ]; then Rr=$(run rspamd rspamd 127.0.0.1 $PR $CLIENTS $(cat $W/files)); echo "rspamd: $Rr"; fi
if [ $RSPAMD_SA = 1 ]; then RS=$(run rspamd_sa rspamd 127.0.0.1 $PRS $CLIENTS $(cat $W/files)); echo "rspamd+SA rules: $RS"; fi
echo "== latency: 100 x $(wc -c < $BIG)-byte message, 1 client"
CB=$(run correo spamd 127.0.0.1 $PC 1 $(cat $W/big100)); echo "correo: $CB"
SB=$(run spamd spamd 127.0.0.1 $PS 1 $(head -20 $W/big100)); echo "spamd (20 runs):  $SB"
if [ "${WARM:-1}" != 0 ]; then
  echo "== throughput (warm: the same sample again, every daemon has scored it once above): $CLIENTS client(s)"
  CW=$(run correo spamd 127.0.0.1 $PC $CLIENTS $(cat $W/files)); echo "correo: $CW"
  SW=$(run spamd spamd 127.0.0.1 $PS $CLIENTS $(cat $W/files)); echo "spamd:  $SW"
  if [ $RSPAMD = yes ]; then RW=$(run rspamd rspamd 127.0.0.1 $PR $CLIENTS $(cat $W/files)); echo "rspamd: $RW"; fi
  if [ $RSPAMD_SA = 1 ]; then RSW=$(run rspamd_sa rspamd 127.0.0.1 $PRS $CLIENTS $(cat $W/files)); echo "rspamd+SA rules: $RSW"; fi
fi
ratios "" "$C" "$S" "${Rr:-}" "${RS:-}"
if [ "${WARM:-1}" != 0 ]; then ratios "warm: " "$CW" "$SW" "${RW:-}" "${RSW:-}"; fi
