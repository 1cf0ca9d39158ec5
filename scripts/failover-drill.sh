#!/bin/sh
# The seed's failover smoke test (test_backend_failover.sh) for a real
# deployment, run on the Incus host:
#   1. api_pool is healthy (every server UP);
#   2. stop the backend service in one backend container;
#   3. poll HAProxy until it marks that server DOWN (seconds vs inter x fall);
#   4. a request through the LB still gets 200, served by another backend;
#   5. start the service again and wait until the server rejoins UP.
# Suitable for a game-day drill. Exit 0 only when every step held.
# Needs on the host only `incus`; in the container only what the component
# installs (haproxy, socat): requests go through socat, not curl.
#
# Settings (environment):
#   VEZA_LB         HAProxy container            (default haproxy)
#   VEZA_BACKEND    backend container/server     (default backend-api-1)
#   VEZA_UNIT       systemd unit of the backend  (default veza-backend-api)
#   VEZA_POOL       HAProxy backend              (default api_pool)
#   VEZA_PATH       request path through the LB  (default /api/v1/health)
#   VEZA_PORT       LB HTTP port                 (default 80)
#   VEZA_TIMEOUT    seconds to wait per phase    (default 120)
#
# failover-drill.sh --lb: the load balancer pair's drill instead
# (scripts/vip-failover-drill.sh: kills the node holding the VIP).
set -eu
if [ "${1:-}" = "--lb" ]; then
    shift
    exec sh "$(dirname "$0")/vip-failover-drill.sh" "$@"
fi
drill="failover-drill"
# shellcheck source=scripts/_drill-lib.sh
. "$(dirname "$0")/_drill-lib.sh"
lb=${VEZA_LB:-haproxy}
backend=${VEZA_BACKEND:-backend-api-1}
unit=${VEZA_UNIT:-veza-backend-api}
pool=${VEZA_POOL:-api_pool}
request_path=${VEZA_PATH:-/api/v1/health}
port=${VEZA_PORT:-80}
timeout=${VEZA_TIMEOUT:-120}

check_name "$lb" "$backend" "$unit" "$pool"
check_request "$request_path" "$port" "$timeout"

admin() { printf '%s\n' "$1" | incus exec "$lb" -- socat stdio UNIX-CONNECT:/run/haproxy/admin.sock; }
# One HTTP/1.0 request through the load balancer from inside its container;
# prints the response's status code (empty when nothing answered).
request_status() {
    printf 'GET %s HTTP/1.0\r\nHost: localhost\r\nUser-Agent: veza-failover-drill\r\n\r\n' "$request_path" \
        | incus exec "$lb" -- socat -t 5 stdio "TCP:127.0.0.1:$port" | awk 'NR == 1 {print $2; exit}'
}
# "show stat" fields: 1 pxname, 2 svname, 8 stot, 18 status
status_of() { admin "show stat" | awk -F, -v p="$pool" -v s="$1" '$1 == p && $2 == s {print $18}'; }
total_of() { admin "show stat" | awk -F, -v p="$pool" -v s="$1" '$1 == p && $2 == s {print $8}'; }
servers() { admin "show stat" | awk -F, -v p="$pool" '$1 == p && $2 != "FRONTEND" && $2 != "BACKEND" {print $2}'; }
wait_status() { # server wanted-prefix -> prints elapsed seconds ("1.63")
    start=$(now_ms)
    while :; do
        now_status=$(status_of "$1")
        case $now_status in "$2"*) secs $(( $(now_ms) - start )); return 0 ;; esac
        [ $(( $(now_ms) - start )) -lt $(( timeout * 1000 )) ] || die "$pool/$1 still '$now_status' after ${timeout}s (wanted $2)"
        sleep 0.2
    done
}

# shellcheck disable=SC2016 # the awk program is meant literally
check_line=$(incus exec "$lb" -- awk -v p="backend $pool" '$0 == p {on=1; next} /^[^ ]/ {on=0} on && /default-server/ {print; exit}' /etc/haproxy/haproxy.cfg)
inter_ms=$(printf '%s\n' "$check_line" | sed -n 's/.* inter \([0-9]*\)ms.*/\1/p')
fall=$(printf '%s\n' "$check_line" | sed -n 's/.* fall \([0-9]*\).*/\1/p')

# The stamp holds the sha256 of the config the last apply proved live.
applied=$(incus exec "$lb" -- cat /etc/haproxy/haproxy.cfg.veza-stamp 2>/dev/null | cut -d' ' -f1) || applied=""
live=$(incus exec "$lb" -- sha256sum /etc/haproxy/haproxy.cfg | cut -d' ' -f1)
if [ -z "$applied" ]; then
    say "config drift: unknown (no apply recorded in $lb)"
elif [ "$live" = "$applied" ]; then
    say "config drift: none (haproxy.cfg is the last apply's)"
else
    say "config drift: haproxy.cfg was changed on the box since the last apply (sha256 $live, applied $applied)"
fi

say "1/5 $pool must be healthy"
all=$(servers)
[ -n "$all" ] || die "no servers in $pool (is $lb serving?)"
for server in $all; do
    s=$(status_of "$server")
    case $s in UP*) ;; *) die "$pool/$server is '$s' before the drill" ;; esac
done
[ "$(printf '%s\n' "$all" | wc -l)" -ge 2 ] || die "$pool needs at least 2 servers for a failover drill"

say "2/5 stopping $unit in $backend"
incus exec "$backend" -- systemctl stop "$unit"
trap 'incus exec "$backend" -- systemctl start "$unit" >/dev/null 2>&1 || true' EXIT

say "3/5 waiting for HAProxy to mark $pool/$backend DOWN"
down_after=$(wait_status "$backend" DOWN)
if [ -n "$inter_ms" ] && [ -n "$fall" ]; then
    # The first failed check comes within one interval of the stop, then fall-1 more.
    expected="inter ${inter_ms}ms x fall $fall = $(secs $(( inter_ms * fall )))s; expected $(secs $(( inter_ms * (fall - 1) )))-$(secs $(( inter_ms * fall )))s + polling"
else
    expected="inter/fall not found in $lb's haproxy.cfg"
fi
say "marked DOWN after ${down_after}s ($expected)"

say "4/5 a request through the LB must still succeed"
before=$(for server in $all; do printf '%s=%s\n' "$server" "$(total_of "$server")"; done)
code=$(request_status)
[ "$code" = "200" ] || die "request through the LB got $code, not 200"
served_by=""
for server in $all; do
    old=$(printf '%s\n' "$before" | sed -n "s/^$server=//p")
    [ "$(total_of "$server")" -gt "$old" ] && served_by="$served_by $server"
done
case " $served_by " in *" $backend "*) die "the request reached the DOWN server $backend" ;; esac
say "200, served by:${served_by:- (unknown)}"

say "5/5 starting $unit in $backend and waiting for it to rejoin"
incus exec "$backend" -- systemctl start "$unit"
trap - EXIT
up_after=$(wait_status "$backend" UP)
say "rejoined UP after ${up_after}s"
say "PASSED down_after_s=$down_after up_after_s=$up_after"
