#!/usr/bin/env bash
# Learning speed and database size after the whole corpus, in one run, for correo, SpamAssassin's
# sa-learn (Bayes DBM store, network tests off, no auto-expire) and bogofilter (-s / -n).
# Usage: [SKIP_SA=1] [ROUNDS=N] bash bench/bayes-speed.sh [CORPUS] [OUT]. Release build of correo.
# Each learns CORPUS/spam as spam, then CORPUS/ham and CORPUS/hard-ham as ham, into an empty database;
# the time is wall clock for both steps; msg/s = messages / time.
# ROUNDS (default 1) alternates correo and bogofilter that many times, each from an empty database, and
# reports the median wall and the median CPU of each (on a shared machine one run says little);
# sa-learn (minutes) runs once, in the first round, unless SKIP_SA=1.
set -euo pipefail
cd "$(dirname "$0")/.."
CORPUS=${1:-/work/shared/corpus}
OUT=${2:-/tmp/correo-bayes-speed}
rm -rf "$OUT"; mkdir -p "$OUT"
cargo build --release >&2
BIN=$PWD/target/release/correo
N=$(find "$CORPUS/spam" "$CORPUS/ham" "$CORPUS/hard-ham" -type f | wc -l)
# Wall and CPU (user+sys, children included) seconds of a command group: "REAL CPU".
TIMEFORMAT='%R %U %S'
measure() { local f=$1; shift; { time "$@" 2>&1 >/dev/null | cat >&2 ; } 2> "$f.t"; awk '{print $1, $2+$3}' "$f.t" | tail -1 > "$f"; }
row() { read -r real cpu < "$2"; printf "| %s | %d | %.2f | %.0f | %.2f | %.0f | %s |\n" "$1" "$N" "$real" "$(echo "$N / $real" | bc -l)" "$cpu" "$(echo "$N / $cpu" | bc -l)" "$3"; }

learn_correo() {
  "$BIN" --home "$OUT/correo" spam learn -q --spam "$CORPUS/spam"
  "$BIN" --home "$OUT/correo" spam learn -q --ham "$CORPUS/ham" "$CORPUS/hard-ham"
}
ROUNDS=${ROUNDS:-1}
learn_bogo() {
  find "$CORPUS/spam" -type f | sort | bogofilter -d "$OUT/bogo" -s -b
  find "$CORPUS/ham" "$CORPUS/hard-ham" -type f | sort | bogofilter -d "$OUT/bogo" -n -b
}
learn_sa() {
  if [ ! -d "$OUT/sa/conf" ]; then
    mkdir -p "$OUT/sa/conf" "$OUT/sa/bayes"
    cp /etc/spamassassin/*.pre /etc/spamassassin/*.cf "$OUT/sa/conf/"
    printf 'use_bayes 1\nbayes_auto_learn 0\nbayes_auto_expire 0\nbayes_path %s/sa/bayes/bayes\n' "$OUT" >> "$OUT/sa/conf/local.cf"
  fi
  sa-learn --siteconfigpath="$OUT/sa/conf" -L --spam "$CORPUS/spam"
  sa-learn --siteconfigpath="$OUT/sa/conf" -L --ham "$CORPUS/ham" "$CORPUS/hard-ham"
}
for r in $(seq 1 "$ROUNDS"); do
  rm -rf "$OUT/correo" "$OUT/bogo"; mkdir -p "$OUT/bogo"
  measure "$OUT/t.correo.r$r" learn_correo
  if [ "$r" = 1 ] && [ "${SKIP_SA:-0}" != 1 ]; then measure "$OUT/t.sa" learn_sa; fi
  measure "$OUT/t.bogo.r$r" learn_bogo
  echo "round $r: correo $(cat "$OUT/t.correo.r$r"), bogofilter $(cat "$OUT/t.bogo.r$r") (wall, CPU s)" >&2
done
# Median wall and median CPU (taken separately) over the rounds: "REAL CPU".
median() { sort -n | awk '{v[NR]=$1} END {print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }
for l in correo bogo; do
  all=$(for r in $(seq 1 "$ROUNDS"); do cat "$OUT/t.$l.r$r"; done)
  echo "$(echo "$all" | cut -d' ' -f1 | median) $(echo "$all" | cut -d' ' -f2 | median)" > "$OUT/t.$l"
done
"$BIN" --home "$OUT/correo" spam learn --dump >&2
sc=$(du -ch "$OUT"/correo/correo.db* | tail -1 | cut -f1)
sb=$(du -ch "$OUT"/bogo/* | tail -1 | cut -f1)
if [ -f "$OUT/t.sa" ]; then
  sa-learn --siteconfigpath="$OUT/sa/conf" --dump magic 2>/dev/null | grep -E 'nspam|nham|ntokens' >&2 || true
  ss=$(du -ch "$OUT"/sa/bayes/bayes_* | tail -1 | cut -f1)
fi

echo "| learner | messages | wall s | msg/s (wall) | CPU s | msg/s per CPU s | database size |"
echo "|---|---|---|---|---|---|---|"
row "correo spam learn" "$OUT/t.correo" "$sc"
[ -f "$OUT/t.sa" ] && row "sa-learn (SpamAssassin 4.0, DBM)" "$OUT/t.sa" "$ss"
row "bogofilter 1.2.5 -s/-n" "$OUT/t.bogo" "$sb"
read -r rc cc < "$OUT/t.correo"; read -r rb cb < "$OUT/t.bogo"
if [ -f "$OUT/t.sa" ]; then
  read -r rs cs < "$OUT/t.sa"
  printf "\nwall: correo is %.1fx sa-learn and %.2fx bogofilter; CPU: %.1fx sa-learn and %.2fx bogofilter\n" \
    "$(echo "$rs / $rc" | bc -l)" "$(echo "$rb / $rc" | bc -l)" "$(echo "$cs / $cc" | bc -l)" "$(echo "$cb / $cc" | bc -l)"
else
  printf "\nwall: correo is %.2fx bogofilter's speed; CPU: %.2fx (medians of %d rounds)\n" \
    "$(echo "$rb / $rc" | bc -l)" "$(echo "$cb / $cc" | bc -l)" "$ROUNDS"
fi
