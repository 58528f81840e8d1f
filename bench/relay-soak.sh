#!/bin/sh
# The SIGKILL soak at full size: MESSAGES from 8 clients into `correo serve`, SIGKILL halfway, restart,
# and check every acknowledged message reached smtp-sink (phase A: exactly once, the smarthost being
# down during the load; phase B: delivering during the kill, duplicates counted). Phase B is repeated
# RUNS times (default 1) and the duplicates per kill are summed up at the end.
# usage: [RUNS=10] bench/relay-soak.sh [MESSAGES] [extra cargo args, e.g. --release]
set -eu
N=${1:-10000}
RUNS=${RUNS:-1}
shift || true
cd "$(dirname "$0")/.."
OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT
CORREO_SOAK_MESSAGES=$N cargo test "$@" --test relay_crash -- --nocapture --test-threads 1 2>&1 |
    grep -v '^serve:' | grep -E "phase|test result|panicked" | tee "$OUT"
i=1
while [ "$i" -lt "$RUNS" ]; do
    CORREO_SOAK_MESSAGES=$N cargo test "$@" --test relay_crash sigkill_while_delivering -- --nocapture 2>&1 |
        grep -v '^serve:' | grep -E "phase B|panicked|FAILED" | tee -a "$OUT"
    i=$((i + 1))
done
sed -n 's/^phase B:.*; \([0-9]*\) delivered twice.*/\1/p' "$OUT" | sort -n |
    awk '{a[NR]=$1; s+=$1} END {if (NR) printf "phase B summary: %d kills, duplicates per kill min %d median %d max %d, total %d\n", NR, a[1], a[int((NR+1)/2)], a[NR], s}'
if grep -q -E "panicked|FAILED" "$OUT"; then exit 1; fi
