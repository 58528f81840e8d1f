#!/bin/sh
# Relay benchmark: smtp-source → relay → smtp-sink, correo and Postfix side by side in the same run,
# same load, same sink, both with their durable queues (correo: file fsync + dir fsync + SQLite commit
# before 250; Postfix: cleanup fsyncs the queue file before 250).
#
# Throughput = messages / (time from first connection until the sink has counted them all).
# p99 = 99th percentile of each relay's own maillog `delay=` (arrival in the queue → next hop's 250).
#
# usage: bench/relay.sh [MESSAGES] [SESSIONS] [SIZE]      (defaults 10000 20 4096; needs root, postfix)
set -eu
N=${1:-10000}
S=${2:-20}
L=${3:-4096}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$ROOT/target/release/correo
[ -x "$BIN" ] || (cd "$ROOT" && cargo build --release)
W=$(mktemp -d)
chmod 755 "$W"
CP=14025 PP=14026 SINK=14027
PIDS=""
cleanup() {
    postfix -c "$W/postfix/etc" stop >/dev/null 2>&1 || true
    for p in $PIDS; do kill "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

smtp-sink -u nobody -c 127.0.0.1:$SINK 1024 > "$W/sink.out" 2>/dev/null &
PIDS="$PIDS $!"

sink_count() { tr '\r' '\n' < "$W/sink.out" | sed -n 's/.*mesg=\([0-9]*\).*/\1/p' | tail -1 | sed 's/^$/0/'; }
now() { date +%s.%N; }
p99() { sed -n 's/.* delay=\([0-9.]*\),.*status=sent.*/\1/p' "$1" | sort -n | awk '{a[NR]=$1} END {i=int(NR*0.99); if (i<1) i=1; printf "%.3f", a[i]}'; }

# correo
mkdir -p "$W/correo"
cat > "$W/correo/correo.toml" <<CF
[smtp]
listen = ["127.0.0.1:$CP"]
hostname = "correo-bench.localdomain"
trusted_networks = ["127.0.0.0/8"]
max_connections = 1000
[relay]
smarthost = "127.0.0.1:$SINK"
CF
"$BIN" --home "$W/correo" serve 2>/dev/null &
PIDS="$PIDS $!"
# Postfix
"$ROOT/bench/postfix-instance.sh" "$W/postfix" $PP $SINK
sleep 2

run() { # NAME PORT LOG
    before=$(sink_count); before=${before:-0}
    t0=$(now)
    smtp-source -s "$S" -m "$N" -l "$L" -d -f bench@example.org -t sink@example.net 127.0.0.1:"$2"
    t1=$(now)
    while [ "$(sink_count)" -lt $((before + N)) ]; do
        sleep 0.05
        if [ "$(echo "$(now) - $t0 > 600" | bc)" = 1 ]; then echo "$1: timed out at $(sink_count)"; exit 1; fi
    done
    t2=$(now)
    inject=$(echo "$N / ($t1 - $t0)" | bc -l)
    thru=$(echo "$N / ($t2 - $t0)" | bc -l)
    lat=$(p99 "$3")
    printf '%-8s accepted %8.0f msg/s   relayed end to end %8.0f msg/s   p99 delay %ss\n' "$1" "$inject" "$thru" "$lat"
    eval "${1}_thru=$thru ${1}_inject=$inject ${1}_p99=$lat"
}

echo "load: $N messages of $L bytes, $S sessions (smtp-source -d), sink smtp-sink; $(nproc) cores"
run correo $CP "$W/correo/log/maillog"
run postfix $PP "$W/postfix/maillog"
# Time to the 250, one transaction at a time per connection (Python smtplib, 20 connections).
if [ -x /usr/bin/python3 ]; then
    LN=$((N / 5))
    set -- $(/usr/bin/python3 "$ROOT/bench/smtp-latency.py" 127.0.0.1 $CP $LN 20 "$L")
    printf 'correo   250 latency p50 %sms p99 %sms (%s msg/s, %s messages, 20 connections)\n' "$1" "$2" "$3" $LN
    c99=$2
    set -- $(/usr/bin/python3 "$ROOT/bench/smtp-latency.py" 127.0.0.1 $PP $LN 20 "$L")
    printf 'postfix  250 latency p50 %sms p99 %sms (%s msg/s, %s messages, 20 connections)\n' "$1" "$2" "$3" $LN
    printf 'ratio correo/postfix: p99 time to 250 %.2fx (lower is better)\n' "$(echo "$c99 / $2" | bc -l)"
fi
printf 'ratio correo/postfix: accepted %.2fx, relayed %.2fx, p99 delay %.3fx (lower is better)\n' \
    "$(echo "$correo_inject / $postfix_inject" | bc -l)" "$(echo "$correo_thru / $postfix_thru" | bc -l)" \
    "$(echo "$correo_p99 / ($postfix_p99 + 0.0005)" | bc -l)"
