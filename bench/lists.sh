#!/usr/bin/env bash
# Fan-out benchmark: one post to N members handed to Postfix's smtp-sink, correo vs mlmmj in the same run.
# Usage: bench/lists.sh [SIZES...]   (default: 1000 10000 100000; mlmmj runs at 1000 only unless MLMMJ_ALL=1,
# since in its default per-recipient VERP mode it needs ~44 s per 1,000 members here).
# Needs: smtp-sink (postfix), mlmmj, /usr/bin/time; run as root (mlmmj runs as a throwaway user).
set -euo pipefail
SIZES=${*:-"1000 10000 100000"}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cargo build --release --manifest-path "$ROOT/Cargo.toml" -q
C="$ROOT/target/release/correo"
W=$(mktemp -d /tmp/correo-bench-lists.XXXX)
PORT=2526
smtp-sink -u nobody 127.0.0.1:$PORT 1000 & SINK=$!
trap 'kill $SINK 2>/dev/null; rm -rf "$W"' EXIT
sleep 0.5
body=$(head -c 2000 /dev/zero | tr '\0' 'x' | fold -w 70)
printf 'From: user1@sub1.example.net\nTo: bench@lists.example.org\nSubject: bench\nMessage-ID: <b1@example.net>\n\n%s\n' "$body" > "$W/post.eml"

measure() { # label, command...; prints "label wall_s rss_kb"
    local label=$1; shift
    /usr/bin/time -f "%e %M" -o "$W/t" "$@" > /dev/null 2>&1 || { echo "$label FAILED"; return; }
    echo "$label $(cat "$W/t")"
}

printf '%-26s %8s %10s\n' "run" "wall_s" "rss_MB"
declare -A CORREO MLMMJ
for n in $SIZES; do
    python3 -c "
for i in range($n): print(f'user{i}@sub{i%100}.example.net')" > "$W/members-$n.txt"
    # correo: fresh home per size
    H="$W/correo-$n"; mkdir -p "$H"
    printf '[outbound]\nsmtp = "127.0.0.1:%s"\nconnections = 4\n' $PORT > "$H/correo.toml"
    "$C" --home "$H" list create bench@lists.example.org --owner o@example.org > /dev/null
    "$C" --home "$H" list add bench - --no-welcome < "$W/members-$n.txt" > /dev/null
    read -r _ wall rss < <(measure correo "$C" --home "$H" mail post bench@lists.example.org < "$W/post.eml")
    grep -q "sent=$n, deferred=0" "$H/log/maillog" || { echo "correo did not hand all $n to the sink"; exit 1; }
    CORREO[$n]=$wall
    printf '%-26s %8s %10.1f\n' "correo verp n=$n" "$wall" "$(echo "$rss/1024" | bc -l)"

    if [ "$n" -le 1000 ] || [ "${MLMMJ_ALL:-0}" = 1 ]; then
        id mltest >/dev/null 2>&1 || useradd -M -d /tmp/ml -s /usr/sbin/nologin mltest
        S="$W/ml-$n"; mkdir -p "$S"
        printf 'lists.example.org\nowner@example.org\nen\n' | mlmmj-make-ml -L bench -s "$S" > /dev/null
        L="$S/bench"; echo $PORT > "$L/control/smtpport"; echo 127.0.0.1 > "$L/control/relayhost"
        while read -r a; do mkdir -p "$L/subscribers.d"; echo "$a" >> "$L/subscribers.d/${a:0:1}"; done < "$W/members-$n.txt"
        chown -R mltest: "$S"; chmod -R a+rX "$W"
        read -r _ wall rss < <(measure mlmmj setpriv --reuid=mltest --regid=mltest --init-groups /usr/bin/mlmmj-receive -F -L "$L" -s user1@sub1.example.net < "$W/post.eml")
        MLMMJ[$n]=$wall
        printf '%-26s %8s %10.1f\n' "mlmmj verp n=$n" "$wall" "$(echo "$rss/1024" | bc -l)"
    fi
done
for n in $SIZES; do
    if [ -n "${MLMMJ[$n]:-}" ]; then
        printf 'ratio n=%s: mlmmj/correo = %.1fx\n' "$n" "$(echo "${MLMMJ[$n]}/${CORREO[$n]}" | bc -l)"
    fi
done
