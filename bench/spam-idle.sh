#!/bin/sh
# Spam daemon latency after idle time: the same message, first back to back, then each after IDLE seconds
# with no request (tokio's blocking threads retire after 10 s idle; scoring threads must not start cold).
# Prints the daemon's own scoring time (the maillog's secs=) for each request.
#
#   bench/spam-idle.sh [CORREO_BINARY] [IDLE_SECONDS] [MESSAGE]
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${1:-$ROOT/target/release/correo}
IDLE=${2:-11}
CORPUS=${CORPUS:-/work/shared/corpus}
MSG=${3:-$(ls "$CORPUS"/ham/* | sed -n 5p)}
W=$(mktemp -d /tmp/spamidle.XXXXXX)
PORT=${PORT:-7861}
$BIN --home $W/home spam daemon --listen 127.0.0.1:$PORT --rules /usr/share/spamassassin >$W/log 2>&1 &
DP=$!
trap 'kill $DP 2>/dev/null; sleep 1; rm -rf $W' EXIT
for i in $(seq 1 120); do
  python3 -c "import socket;socket.create_connection(('127.0.0.1',$PORT))" 2>/dev/null && break; sleep 0.5
done
send() { python3 "$ROOT/bench/spam_client.py" spamd 127.0.0.1 $PORT 1 "$@" >/dev/null; }
secs() { grep -o 'secs=[0-9.]*' $W/home/log/maillog | tail -"$1" | cut -d= -f2 | tr '\n' ' '; }
for i in 1 2 3 4 5; do send "$MSG" "$MSG" "$MSG"; done
echo "back to back (last 5): $(secs 5)"
for i in 1 2 3 4; do
  sleep "$IDLE"; send "$MSG"
  echo "after ${IDLE} s idle (first, then second): $(secs 2)"
done
