#!/bin/sh
# veza-haproxy-node-metrics: the node's state HAProxy does not export, in
# Prometheus text, computed afresh for each request. systemd runs it once per
# connection (veza-haproxy-metrics.socket, Accept=yes): stdin and stdout are
# the connection HAProxy's stats listener opens for /veza-metrics. Every
# series (docs/observability.md) carries node="<host name>": the Incus
# instance name. A series whose source is absent (no TLS, no ACME run yet, not
# a pair) is left out, never reported as 0.
# Where things are: the constants of components/container-paths.ts; the
# VEZA_* variables override them for a test outside a container.
ADMIN_SOCKET=/run/haproxy/admin.sock
# shellcheck disable=SC1091 # written by the container step
[ -r /etc/default/veza-haproxy ] && . /etc/default/veza-haproxy
admin=${VEZA_ADMIN_SOCKET:-$ADMIN_SOCKET}
master=${VEZA_MASTER_SOCKET:-/run/haproxy-master.sock}
config=${VEZA_CONFIG_PATH:-/etc/haproxy/haproxy.cfg}
config_result=${VEZA_CONFIG_RESULT:-/etc/haproxy/haproxy.cfg.veza-result}
acme_result=${VEZA_ACME_RESULT:-/var/lib/veza-haproxy/acme/veza-last-run}
keepalived_conf=${VEZA_KEEPALIVED_CONF:-/etc/keepalived/keepalived.conf}
node=${VEZA_NODE_NAME:-$(hostname)}

# The request: read to its blank line, so that closing never resets a
# connection with unread bytes in it.
cr=$(printf '\r')
while IFS= read -r line; do
    line=${line%"$cr"}
    [ -z "$line" ] && break
done

cli() { printf '%s\n' "$2" | timeout 3 socat -t 2 stdio "UNIX-CONNECT:$1" 2>/dev/null; }

# metric NAME HELP [LABELS VALUE]...: one metric family, one line per series.
metric() {
    name=$1
    printf '# HELP %s %s\n# TYPE %s gauge\n' "$name" "$2" "$name"
    shift 2
    while [ $# -ge 2 ]; do
        printf '%s{node="%s"%s} %s\n' "$name" "$node" "$1" "$2"
        shift 2
    done
}

# result_metrics FILE PREFIX WHAT: a step's last result file ("<exit code> <unix time>").
result_metrics() {
    [ -r "$1" ] || return 0
    read -r code at < "$1" || return 0
    case "$code$at" in '' | *[!0-9]*) return 0 ;; esac
    metric "${2}_last_result" "exit code of the last $3 (0 = success)" "" "$code"
    metric "${2}_last_run_timestamp_seconds" "when the last $3 ended (unix time)" "" "$at"
}

# The certificate the frontend serves: the crt of its first ssl bind line, as
# HAProxy holds it in memory (its runtime API), not the file on disk.
served_certificate() {
    path=$(awk '$1 == "bind" { for (i = 2; i < NF; i++) if ($i == "crt") { print $(i + 1); exit } }' "$config" 2>/dev/null)
    [ -n "$path" ] || return 0
    not_after=$(cli "$admin" "show ssl cert $path" | sed -n -E 's/^[Nn]ot ?[Aa]fter: //p' | head -n 1)
    [ -n "$not_after" ] || return 0
    at=$(date -d "$not_after" +%s 2>/dev/null) || return 0
    metric veza_haproxy_certificate_expiry_timestamp_seconds "end of validity of the served certificate (unix time)" "" "$at"
}

# A pair node: whether it holds the VIP its keepalived manages.
vip_held() {
    [ -r "$keepalived_conf" ] || return 0
    vip=$(awk 'found { sub("/.*", "", $1); print $1; exit } /virtual_ipaddress *\{/ { found = 1 }' "$keepalived_conf")
    case $vip in '' | *[!0-9.]*) return 0 ;; esac
    holds=0
    ip -4 -o addr show 2>/dev/null | grep -q " inet $vip/" && holds=1
    metric veza_haproxy_vrrp_holds_vip "1 when this pair node holds the VIP" ",vip=\"$vip\"" "$holds"
}

# Every HAProxy worker the master knows of, old ones still draining included.
workers() {
    count=$(cli "$master" "show proc" | awk '$2 == "worker" { n++ } END { print n + 0 }')
    [ "$count" -gt 0 ] || return 0
    metric veza_haproxy_workers "HAProxy worker processes, old ones still draining included" "" "$count"
}

body=$(
    served_certificate
    result_metrics "$acme_result" veza_haproxy_acme_renew "ACME renew run (timer or issue step)"
    result_metrics "$config_result" veza_haproxy_config_apply "config apply"
    vip_held
    workers
)
printf 'HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: %s\r\nConnection: close\r\n\r\n%s\n' \
    "$(($(printf '%s\n' "$body" | wc -c)))" "$body"
