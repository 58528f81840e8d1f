#!/usr/bin/env bash
# 10-fold cross-validation of spam classification on the shared corpus, the same folds for every system:
#   correo Bayes alone, correo rules + Bayes (and rules alone, for context), bogofilter, SpamAssassin
#   (sa-learn + spamd/spamc, network tests off, auto-learn off, rules + Bayes).
# Usage: bash bench/bayes-accuracy.sh [CORPUS] [OUT]      env: SA_FOLDS="0 1 ..." (default all 10),
#        SKIP_SA=1, SKIP_BOGO=1, SKIP_CORREO=1 (reuse OUT/folds from an earlier run), SKIP_STOCK=1,
#        SKIP_RESCORE=1 (no rows with scores fitted by `correo spam rescore`),
#        SA_PORT (default 7831). correo also runs with SpamAssassin's stock rules (OUT/stock/) when
#        /usr/share/spamassassin exists: the same rules SpamAssassin runs, with correo's Bayes.
# SpamAssassin's results are replaced fold by fold, so SA_FOLDS="4 5" adds to folds an earlier run finished.
# Folds: a message's index within its class (sorted by file name) modulo 10; ham = ham/ + hard-ham/.
# Each fold: train on the other 9, test on it. Per-message results go to OUT/*.tsv (fold, class, value);
# the summary table is printed at the end (and by bench/bayes-summary.sh OUT).
set -euo pipefail
cd "$(dirname "$0")/.."
CORPUS=${1:-/work/shared/corpus}
OUT=${2:-/tmp/correo-bayes-accuracy}
SA_FOLDS=${SA_FOLDS:-0 1 2 3 4 5 6 7 8 9}
PORT=${SA_PORT:-7831}
mkdir -p "$OUT"

if [ -z "${SKIP_CORREO:-}" ]; then
  echo "== correo (release build)" >&2
  cargo build --release --example bayes_accuracy >&2
  ./target/release/examples/bayes_accuracy "$CORPUS" "$OUT"
  if [ -z "${SKIP_STOCK:-}" ] && [ -d /usr/share/spamassassin ]; then
    echo "== correo with the stock rules" >&2
    ./target/release/examples/bayes_accuracy "$CORPUS" "$OUT/stock" /usr/share/spamassassin
  fi
fi

others() { for j in 0 1 2 3 4 5 6 7 8 9; do if [ "$j" != "$1" ]; then cat "$OUT/folds/$j.$2"; fi; done; }

# Rule weights fitted to the site's mail: for each fold, `correo spam rescore` on the other nine folds
# only (rules + those folds' own Bayes, as a postmaster runs it), then the fold scored by the engine
# with the fitted .cf loaded after the rules and the fold's Bayes (as the rows above score it).
# A fold whose OUT/rescore-RULES/K.cf exists is kept: delete the directory to redo it.
if [ -z "${SKIP_RESCORE:-}" ]; then
  cargo build --release --bin correo --example bayes_accuracy >&2
  for which in stock own; do
    if [ "$which" = stock ]; then rdir=/usr/share/spamassassin; [ -d "$rdir" ] || continue; else rdir=$PWD/rules; fi
    d="$OUT/rescore-$which"; mkdir -p "$d/home"
    for k in 0 1 2 3 4 5 6 7 8 9; do
      [ -s "$d/$k.cf" ] && continue
      echo "== rescore, $which rules, fold $k" >&2
      mapfile -t sp < <(others "$k" spam); mapfile -t hm < <(others "$k" ham)
      /usr/bin/time -f "rescore fold $k: %e s wall, %U+%S s CPU" ./target/release/correo --home "$d/home" \
        spam rescore --quiet --rules "$rdir" --spam "${sp[@]}" --ham "${hm[@]}" --out "$d/$k.cf" > "$d/$k.log"
    done
    echo "== correo, $which rules rescored per fold" >&2
    RESCORED="$d" ./target/release/examples/bayes_accuracy "$CORPUS" "$d" "$rdir"
  done
fi

if [ -z "${SKIP_BOGO:-}" ]; then
  echo "== bogofilter" >&2
  : > "$OUT/bogofilter.tsv"
  for k in 0 1 2 3 4 5 6 7 8 9; do
    d="$OUT/bogo/db$k"; rm -rf "$d"; mkdir -p "$d"
    others $k spam | bogofilter -d "$d" -s -b
    others $k ham | bogofilter -d "$d" -n -b
    for c in spam ham; do
      # -t: "S|H|U spamicity" per file; Unsure is not marked spam.
      # (bogofilter exits 0/1/2 for spam/ham/unsure: not failures.)
      { bogofilter -d "$d" -t -b < "$OUT/folds/$k.$c" || true; } | awk -v k=$k -v c=$c '{print k"\t"c"\t"($1=="S"?1:0)"\t"$2}' >> "$OUT/bogofilter.tsv"
    done
    echo "bogofilter fold $k done" >&2
  done
fi

if [ -z "${SKIP_SA:-}" ]; then
  echo "== SpamAssassin folds: $SA_FOLDS" >&2
  touch "$OUT/spamassassin.tsv"
  for k in $SA_FOLDS; do
    # sa-learn takes minutes per fold: keep the folds other runs finished, redo only this one.
    awk -v k=$k '$1 != k' "$OUT/spamassassin.tsv" > "$OUT/spamassassin.tsv.tmp"
    mv "$OUT/spamassassin.tsv.tmp" "$OUT/spamassassin.tsv"
    sa="$OUT/sa/$k"; rm -rf "$sa"; mkdir -p "$sa/conf" "$sa/bayes" "$sa/home"
    cp /etc/spamassassin/*.pre /etc/spamassassin/*.cf "$sa/conf/"
    cat >> "$sa/conf/local.cf" <<CF
use_bayes 1
bayes_auto_learn 0
bayes_auto_expire 0
bayes_path $sa/bayes/bayes
bayes_file_mode 0777
CF
    t0=$(date +%s.%N)
    others $k spam | xargs sa-learn --siteconfigpath="$sa/conf" -L --spam >&2
    others $k ham | xargs sa-learn --siteconfigpath="$sa/conf" -L --ham >&2
    t1=$(date +%s.%N)
    echo "sa-learn fold $k: $(echo "$t1 - $t0" | bc) s" >&2
    chmod -R a+rwX "$sa"; chown -R nobody:nogroup "$sa/home" "$sa/bayes"
    spamd -L -x -u nobody -H "$sa/home" --siteconfigpath="$sa/conf" -i 127.0.0.1:$PORT -A 127.0.0.1 -m 2 \
      --min-children=2 --min-spare=1 --max-spare=2 -s "$sa/spamd.log" -r "$sa/spamd.pid" -d
    for _ in $(seq 100); do spamc -d 127.0.0.1 -p $PORT -K >/dev/null 2>&1 && break; sleep 0.5; done
    for c in spam ham; do
      # Two clients at a time (spamd has two children).
      xargs -P 2 -I{} sh -c 'printf "%s\t%s\t%s\n" '"$k"' '"$c"' "$(spamc -d 127.0.0.1 -p '"$PORT"' -c < "{}" | cut -d/ -f1)"' \
        < "$OUT/folds/$k.$c" >> "$OUT/spamassassin.tsv"
    done
    kill "$(cat "$sa/spamd.pid")"; sleep 1
    echo "spamassassin fold $k done" >&2
  done
fi

bash bench/bayes-summary.sh "$OUT"
