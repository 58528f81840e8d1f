#!/bin/sh
# The SIGKILL soak at full size: 10,000 messages from 8 clients into `correo serve`, SIGKILL halfway,
# restart, and check every acknowledged message reached smtp-sink (phase A: exactly once, the smarthost
# being down during the load; phase B: delivering during the kill, duplicates counted).
# usage: bench/relay-soak.sh [MESSAGES] [extra cargo args, e.g. --release]
set -eu
N=${1:-10000}
shift || true
cd "$(dirname "$0")/.."
CORREO_SOAK_MESSAGES=$N cargo test "$@" --test relay_crash -- --nocapture --test-threads 1 2>&1 | grep -E "phase|test result|panicked|delivered"
