#!/bin/sh
# The correo half of bench/spam.sh, for before/after runs of one binary against another: a fresh
# `correo spam daemon` with the stock rules, the same 200 corpus messages cold, then N x the same
# 100 KB message, one client. Prints the client's JSON lines, the daemon's CPU time for each phase and
# the maillog's own `secs=` percentiles. Alternate two binaries in a loop to compare them on a busy host.
#
#   bench/spam-big.sh CORREO_BINARY [PORT] [N]      (defaults: port 7941, N = 100)
set -eu
B=$1; P=${2:-7941}; N=${3:-100}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CORPUS=${CORPUS:-$ROOT/../shared/corpus}
[ -d "$CORPUS" ] || CORPUS=/work/shared/corpus
W=$(mktemp -d /tmp/spambig.XXXXXX)
trap 'kill $PID 2>/dev/null; rm -rf $W' EXIT
# Same sample and same big message as bench/spam.sh.
ls "$CORPUS"/ham/* "$CORPUS"/spam/* | awk -v n=200 'BEGIN{srand(7)} {a[NR]=$0} END{step=int(NR/n); if(step<1)step=1; c=0; for(i=1;i<=NR && c<n;i+=step){print a[i]; c++}}' > $W/files
BIG=$W/big.eml
f=$(sed -n 1p $W/files); awk '{print} /^$/{exit}' "$f" > $BIG
while [ $(wc -c < $BIG) -lt 100000 ]; do sed '1,/^$/d' "$f" >> $BIG; done
for i in $(seq 1 $N); do echo $BIG; done > $W/big
$B --home $W/home spam daemon --listen 127.0.0.1:$P --rules /usr/share/spamassassin >$W/log 2>&1 &
PID=$!
for i in $(seq 1 240); do
  python3 -c "import socket;s=socket.create_connection(('127.0.0.1',$P));s.sendall(b'PING SPAMC/1.5\r\n\r\n');print(s.recv(99))" >/dev/null 2>&1 && break
  sleep 0.5
done
cpu() { awk '{print $14+$15}' /proc/$PID/stat; }
HZ=$(getconf CLK_TCK)
c0=$(cpu)
T=$(python3 $ROOT/bench/spam_client.py spamd 127.0.0.1 $P 1 $(cat $W/files))
c1=$(cpu)
BIGR=$(python3 $ROOT/bench/spam_client.py spamd 127.0.0.1 $P 1 $(cat $W/big))
c2=$(cpu)
echo "$B load=$(cut -d' ' -f1 /proc/loadavg)"
echo "  corpus: $T daemon_cpu_s=$(echo "($c1 - $c0) / $HZ" | bc -l | cut -c1-5)"
echo "  100KB:  $BIGR daemon_cpu_ms_per_msg=$(echo "($c2 - $c1) * 1000 / $HZ / ($N + 1)" | bc -l | cut -c1-5)"
grep -o 'secs=[0-9.]*' $W/home/log/maillog | tail -$N | sed 's/secs=//' | sort -n |
  awk '{a[NR]=$1} END{print "  maillog secs, 100KB: p50", a[int(NR*0.5)+1], "p99", a[int(NR*0.99)+1]}'
