#!/bin/sh
# Spam scorer benchmark: messages/second on the same messages with the same stock rules
# (/usr/share/spamassassin), network tests off, side by side in one run: correo's daemon, SpamAssassin's
# spamd and (when installed) rspamd. Also p99 latency for a 100 KB message. Prints ratios.
#
#   bench/spam.sh [N_MESSAGES] [CLIENTS]        (defaults: 200 messages, 1 client)
#
# Needs: spamassassin (spamd), python3; rspamd optional. Run as root (spamd drops to nobody).
set -eu
N=${1:-200}
CLIENTS=${2:-1}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CORPUS=${CORPUS:-$ROOT/../shared/corpus}
[ -d "$CORPUS" ] || CORPUS=/work/shared/corpus
W=$(mktemp -d /tmp/spambench.XXXXXX)
chmod 755 $W   # spamd drops to nobody and must reach its home below
trap 'for p in $W/*.pid; do kill $(cat $p) 2>/dev/null; done; sleep 1; rm -rf $W' EXIT
CLIENT="python3 $ROOT/bench/spam_client.py"

# The same sample for every engine: every k-th ham and spam, GTUBE-free.
ls "$CORPUS"/ham/* "$CORPUS"/spam/* | awk -v n="$N" 'BEGIN{srand(7)} {a[NR]=$0} END{step=int(NR/n); if(step<1)step=1; c=0; for(i=1;i<=NR && c<n;i+=step){print a[i]; c++}}' > $W/files
# A 100 KB message: a real ham with its body repeated to ~100 KB.
BIG=$W/big.eml
head -c 100000 /dev/null > $BIG
f=$(sed -n 1p $W/files); awk 'BEGIN{h=1} {print} /^$/{exit}' "$f" > $BIG
while [ $(wc -c < $BIG) -lt 100000 ]; do sed '1,/^$/d' "$f" >> $BIG; done
for i in $(seq 1 100); do echo $BIG; done > $W/big100

cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml"
CORREO=$ROOT/target/release/correo

echo "starting correo spam daemon (stock rules)"
$CORREO --home $W/correo spam daemon --listen 127.0.0.1:7841 --rules /usr/share/spamassassin >$W/correo.log 2>&1 &
echo $! > $W/correo.pid
echo "starting spamd (-L, stock rules, $CLIENTS child)"
mkdir -p $W/sa && chown nobody $W/sa
spamd -L -x -u nobody -H $W/sa -i 127.0.0.1:7842 -A 127.0.0.1 -m $CLIENTS --min-children=$CLIENTS --max-conn-per-child=100000 \
      --min-spare=1 --max-spare=$CLIENTS -s $W/spamd.log -r $W/spamd.pid -d
RSPAMD=no
if command -v rspamd >/dev/null 2>&1; then
  R=$W/rspamd; mkdir -p $R/conf/local.d $R/conf/override.d $R/db $R/run $R/log
  echo 'bind_socket = "127.0.0.1:7843";' > $R/conf/override.d/worker-normal.inc
  echo 'dns { nameserver = ["127.0.0.1:53"]; timeout = 0.05s; }' > $R/conf/local.d/options.inc
  for m in rbl fuzzy_check asn spf dkim dmarc arc mx_check rspamd_update phishing url_redirector dcc reputation neural greylist ratelimit replies history_redis bimi hfilter; do
    echo 'enabled = false;' > $R/conf/local.d/$m.conf
  done
  chown -R _rspamd:_rspamd $R 2>/dev/null || true
  if rspamd -u _rspamd -g _rspamd -c /etc/rspamd/rspamd.conf --var=LOCAL_CONFDIR=$R/conf \
       --var=DBDIR=$R/db --var=RUNDIR=$R/run --var=LOGDIR=$R/log -p $W/rspamd.pid >/dev/null 2>&1; then
    RSPAMD=yes
  fi
fi
# Wait for all to answer.
for i in $(seq 1 120); do
  ok=1
  printf 'PING SPAMC/1.5\r\n\r\n' | timeout 2 python3 -c "import socket,sys;s=socket.create_connection(('127.0.0.1',7841));s.sendall(sys.stdin.buffer.read());print(s.recv(99))" >/dev/null 2>&1 || ok=0
  spamc -d 127.0.0.1 -p 7842 -K >/dev/null 2>&1 || ok=0
  [ $ok = 1 ] && break; sleep 1
done
[ $RSPAMD = yes ] && for i in $(seq 1 60); do curl -s -o /dev/null http://127.0.0.1:7843/ping && break; sleep 1; done

# The client's whole output goes to the terminal; the result is its last JSON line (a pipe through
# `tee /dev/stderr` lost it now and then).
run() { $CLIENT "$@" > $W/client.out 2>&1; cat $W/client.out >&2; grep '^{' $W/client.out | tail -1; }
echo "== throughput: $(wc -l < $W/files) corpus messages, $CLIENTS client(s)"
C=$(run spamd 127.0.0.1 7841 $CLIENTS $(cat $W/files)); echo "correo: $C"
S=$(run spamd 127.0.0.1 7842 $CLIENTS $(cat $W/files)); echo "spamd:  $S"
if [ $RSPAMD = yes ]; then Rr=$(run rspamd 127.0.0.1 7843 $CLIENTS $(cat $W/files)); echo "rspamd: $Rr"; fi
echo "== latency: 100 x $(wc -c < $BIG)-byte message, 1 client"
CB=$(run spamd 127.0.0.1 7841 1 $(cat $W/big100)); echo "correo: $CB"
SB=$(run spamd 127.0.0.1 7842 1 $(head -20 $W/big100)); echo "spamd (20 runs):  $SB"
python3 - "$C" "$S" "${Rr:-}" <<'PY'
import json, sys
c, s = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print("correo/spamd throughput ratio: %.1fx" % (c["msgs_per_s"] / s["msgs_per_s"]))
if sys.argv[3]:
    r = json.loads(sys.argv[3]); print("correo/rspamd throughput ratio: %.1fx" % (c["msgs_per_s"] / r["msgs_per_s"]))
PY
