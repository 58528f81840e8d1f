#!/usr/bin/env bash
# Benchmark: correo deliver vs procmail 3.22, one process per message as an MTA runs them, through a
# 30-recipe rcfile, into a Maildir and into a locked mbox. Both run as the unprivileged user pm in the
# same run, on the same message; we print deliveries per second and the ratio.
#
#   bench/recipe.sh [N]        (default N=10000 deliveries per tool and per folder kind, in ROUNDS=10
#                               alternating blocks; run as root)
#   BENCH_DIR=/dev/shm bench/recipe.sh N   (tmpfs: takes the disk's fsync cost out of the picture)
#
# Needs: procmail, user pm (useradd -m -s /bin/sh pm), a release build (cargo build --release).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000}
BIN=${BIN:-target/release/correo}
[ -x "$BIN" ] || { echo "build first: cargo build --release" >&2; exit 1; }
id pm >/dev/null 2>&1 || { echo "needs user pm" >&2; exit 1; }

W=$(mktemp -d "${BENCH_DIR:-/tmp}/correo-bench.XXXX")
[ -n "${KEEP:-}" ] || trap 'rm -rf "$W"' EXIT
chmod 755 "$W"
cp "$BIN" "$W/correo"

# A realistic message: a list post with a dozen Received-style headers and a 3 KB body.
{
  printf 'Return-Path: <owner-dev@lists.example.org>\n'
  for i in 1 2 3 4 5 6; do
    printf 'Received: from mx%d.example.net (mx%d.example.net [192.0.2.%d])\n\tby mail.example.org (Postfix) with ESMTPS id 4Q%dXYZ\n\tfor <pablo@example.org>; Mon, 1 Jan 2024 10:0%d:00 +0000 (UTC)\n' $i $i $i $i $i
  done
  printf 'From: Ana Perez <ana@example.net>\nTo: dev@lists.example.org\nCc: pablo@example.org\n'
  printf 'Subject: [dev] Re: parche para el analizador de recetas\nDate: Mon, 1 Jan 2024 10:00:00 +0000\n'
  printf 'Message-ID: <20240101100000.1234@example.net>\nList-Id: <dev.lists.example.org>\n'
  printf 'MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\nX-Spam-Status: No, score=-1.2 required=5.0\n\n'
  for i in $(seq 1 50); do printf 'Linea %d del cuerpo del mensaje, con algo de texto para que pese unos 3 KB.\n' "$i"; done
} > "$W/msg"

# 30 recipes: 29 that look at the header or body and do not match this message, then the delivery.
gen_rc() { # $1: final folder line, $2: lock suffix (":" for a locked mbox)
  cat <<RC
MAILDIR=\$BASE
LOGFILE=\$BASE/log
:0:
* ^From:.*(boss|jefe)@example\.com
boss
:0:
* ^Subject:.*(viagra|casino|lottery)
spam
:0:
* ^X-Spam-Status: Yes
spam
:0:
* ^X-Spam-Level: \*\*\*\*\*\*\*\*
spam
:0:
* ^FROM_DAEMON
daemon
:0:
* ^FROM_MAILER
bounces
:0:
* ^TO_security@example\.org
security
:0:
* ^TO_root@
root
:0:
* ^List-Id:.*<users\.lists
users
:0:
* ^List-Id:.*<announce\.
announce
:0:
* ^Subject:.*\[cvs\]
cvs
:0:
* ^From:.*github\.com
github
:0:
* ^From:.*@(facebook|twitter|linkedin)\.com
social
:0:
* ^Subject:.*(invoice|factura)
invoices
:0:
* ^To:.*hr@
hr
:0:
* ^Subject: *\[jira\]
jira
:0:
* ^X-Mailer:.*Outlook Express
oldclients
:0:
* ^Content-Type:.*multipart/report
reports
:0 B:
* unsubscribe from this (list|newsletter)
newsletters
:0:
* ^Subject:.*(urgent|urgente)!
urgent
:0:
* ^Received:.*\[10\.
internal
:0:
* > 1000000
huge
:0:
* ^From:.*no-?reply
noreply
:0:
* ^Precedence: (junk|bulk)
bulk
:0:
* ^Auto-Submitted: auto-
auto
:0:
* ^X-Loop: pablo@example\.org
/dev/null
:0:
* ^Subject:.*\<(sale|oferta)\>
offers
:0 B:
* ^begin [0-7]+ 
uuencoded
:0:
* ^Subject:.*calendar
calendar
:0$2
$1
RC
}
gen_rc 'Maildir/' '' > "$W/rc-maildir"
gen_rc 'inbox' ':' > "$W/rc-mbox"
echo "recipes in rcfile: $(grep -c '^:0' "$W/rc-maildir")"

run() { # tool kind count -> prints elapsed seconds
  local tool=$1 kind=$2 n=$3 d="$W/$1-$2"
  mkdir -p "$d"
  # procmail 3.22 sleeps one second after the first write into a new, empty mailbox (strace:
  # clock_nanosleep 1 s), which would count against it: both tools start from a mailbox that exists.
  [ "$kind" = mbox ] && [ ! -e "$d/inbox" ] && printf 'From seed\n\n' > "$d/inbox"
  chown -R pm:pm "$d"
  local cmd
  case $tool in
    procmail) cmd="/usr/bin/procmail -m" ;;
    correo) cmd="$W/correo deliver -m" ;;
    floor) cmd="/bin/true" ;; # the loop's own fork+exec+wait, with nothing delivered
  esac
  local t0 t1
  t0=$(date +%s.%N)
  setpriv --reuid=pm --regid=pm --init-groups env -i PATH=/usr/bin:/bin N="$n" D="$d" RC="$W/rc-$kind" M="$W/msg" CMD="$cmd" \
    sh -c 'i=0; while [ $i -lt $N ]; do $CMD BASE=$D $RC < $M || exit 1; i=$((i+1)); done'
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc -l
}

# The tools take turns in ROUNDS blocks of N/ROUNDS deliveries, so a burst of load from other users of
# the machine falls on all of them alike instead of on whichever ran at that moment. The third "tool" is
# the same loop running /bin/true (fork, exec of a small dynamic C program, wait): no delivery agent
# started this way can beat it, so its rate over procmail's bounds any ratio.
chown pm:pm "$W"
ROUNDS=${ROUNDS:-10}
B=$((N / ROUNDS))
N=$((B * ROUNDS))
printf '%-10s %-8s %8s %10s %12s\n' tool folder N seconds deliveries/s
declare -A rate secs
for kind in maildir mbox; do
  for tool in procmail correo floor; do secs[$tool-$kind]=0; done
  for r in $(seq 1 "$ROUNDS"); do
    for tool in procmail correo floor; do
      s=$(run $tool $kind $B)
      secs[$tool-$kind]=$(echo "${secs[$tool-$kind]} + $s" | bc -l)
    done
  done
  for tool in procmail correo floor; do
    s=${secs[$tool-$kind]}
    r=$(echo "$N / $s" | bc -l)
    rate[$tool-$kind]=$r
    printf '%-10s %-8s %8d %10.2f %12.0f\n' "$([ $tool = floor ] && echo /bin/true || echo $tool)" $kind "$N" "$s" "$r"
  done
  # Check both delivered every message.
  if [ "$kind" = maildir ]; then
    for tool in procmail correo; do echo "  $tool: $(ls "$W/$tool-$kind/Maildir/new" | wc -l) files in Maildir/new"; done
  else
    for tool in procmail correo; do echo "  $tool: $(grep -c '^Return-Path: ' "$W/$tool-$kind/inbox") messages in inbox"; done
  fi
done
for kind in maildir mbox; do
  printf 'ratio correo/procmail (%s): %.2fx   (ceiling, /bin/true/procmail: %.2fx)\n' "$kind" \
    "$(echo "${rate[correo-$kind]} / ${rate[procmail-$kind]}" | bc -l)" \
    "$(echo "${rate[floor-$kind]} / ${rate[procmail-$kind]}" | bc -l)"
done
