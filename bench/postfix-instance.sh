#!/bin/sh
# Sets up and starts a throwaway Postfix (Debian's, 3.7) in DIR, listening on 127.0.0.1:PORT and relaying
# everything to [127.0.0.1]:SINKPORT, with its own queue and maillog. Same durability as stock Postfix
# (queue files fsynced by cleanup before the 250). Needs root. Stop with: postfix -c DIR/etc stop
# usage: bench/postfix-instance.sh DIR PORT SINKPORT
set -eu
DIR=$1 PORT=$2 SINK=$3
mkdir -p "$DIR/etc" "$DIR/queue" "$DIR/data"
chmod 755 "$DIR"
chown postfix "$DIR/data"
# Debian's master.cf with no chroot (the chroot would lack /etc files) and smtpd on our port.
awk -v port="$PORT" '
  /^#/ || /^[ \t]/ || NF < 8 { print; next }
  $1 == "smtp" && $2 == "inet" { $1 = "127.0.0.1:" port }
  { $5 = "n"; print }' /etc/postfix/master.cf > "$DIR/etc/master.cf"
cat > "$DIR/etc/main.cf" <<CF
compatibility_level = 3.6
queue_directory = $DIR/queue
data_directory = $DIR/data
meta_directory = /etc/postfix
shlib_directory = /usr/lib/postfix
myhostname = postfix-bench.localdomain
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
relayhost = [127.0.0.1]:$SINK
alias_maps =
alias_database =
local_recipient_maps =
maillog_file = $DIR/maillog
maillog_file_prefixes = $DIR
smtp_tls_security_level = none
smtpd_tls_security_level = none
default_process_limit = 200
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
CF
postfix -c "$DIR/etc" check
postfix -c "$DIR/etc" start
