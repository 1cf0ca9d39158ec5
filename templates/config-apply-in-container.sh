# Runs inside the container (POSIX sh). $1 config path, $2 its expected sha256,
# $3 the certificate's sha256 ("none" without TLS), $4 master CLI socket,
# $5 seconds to wait for the new worker. stdin: the new config.
set -eu
cfg=$1 want=$2 cert=$3 master=$4 wait_seconds=$5
new="$cfg.veza-new" prev="$cfg.veza-prev" stamp="$cfg.veza-stamp"
say() { printf 'veza-haproxy[config]: %s\n' "$*" >&2; }

# pid of the current (not old) worker, from the master CLI
current_worker() {
    echo "show proc" | socat -t 2 stdio "UNIX-CONNECT:$master" 2>/dev/null \
        | awk '/^# old workers/ {exit} $2 == "worker" {print $1; exit}'
}

umask 027
cat > "$new"
got=$(sha256sum "$new" | cut -d' ' -f1)
if [ "$got" != "$want" ]; then
    rm -f "$new"
    say "config arrived damaged (sha256 $got, expected $want); running config untouched"
    exit 1
fi
chgrp haproxy "$new" 2>/dev/null || true
if ! report=$(haproxy -c -f "$new" 2>&1); then
    rm -f "$new"
    printf '%s\n' "$report" >&2
    say "haproxy -c rejected the new config; running config and process untouched"
    exit 2
fi
if cmp -s "$new" "$cfg" && [ "$(cat "$stamp" 2>/dev/null)" = "$want $cert" ] && systemctl is-active --quiet haproxy; then
    rm -f "$new"
    say "config and certificate unchanged, haproxy running: nothing to do"
    exit 0
fi
if [ -f "$cfg" ]; then cp -p "$cfg" "$prev"; fi
mv "$new" "$cfg"

if systemctl is-active --quiet haproxy; then
    before=$(current_worker)
    if systemctl reload haproxy; then
        i=0
        while [ "$i" -lt $((wait_seconds * 10)) ]; do
            now=$(current_worker)
            if [ -n "$now" ] && [ "$now" != "$before" ]; then
                echo "$want $cert" > "$stamp"
                say "reloaded: worker $before -> $now"
                exit 0
            fi
            sleep 0.1
            i=$((i + 1))
        done
    fi
    say "reload did not bring up a new worker within ${wait_seconds}s; restoring the previous config"
else
    if systemctl restart haproxy && systemctl is-active --quiet haproxy; then
        echo "$want $cert" > "$stamp"
        say "started haproxy"
        exit 0
    fi
    say "haproxy did not start with the new config; restoring the previous config"
fi
rm -f "$stamp"
if [ -f "$prev" ]; then
    mv "$prev" "$cfg"
    systemctl reload haproxy 2>/dev/null || systemctl restart haproxy || true
fi
journalctl -u haproxy -n 20 --no-pager >&2 2>/dev/null || true
exit 3
