#!/bin/sh
# Saves HAProxy's server states (drain, maint, DOWN, resolved addresses) so the
# next process loads them through server-state-file. Run before every reload
# and stop by the systemd drop-in; safe to run by hand.
set -eu
. /etc/default/veza-haproxy
[ -S "$ADMIN_SOCKET" ] || exit 0
tmp="$STATE_FILE.tmp.$$"
trap 'rm -f "$tmp"' EXIT
echo "show servers state" | socat -t 5 stdio "UNIX-CONNECT:$ADMIN_SOCKET" > "$tmp"
mv "$tmp" "$STATE_FILE"
trap - EXIT
