#!/bin/sh
# keepalived's track script on a pair node: HAProxy itself must answer its
# admin socket (a process that exists but hangs does not count), running a
# config of ours. Exit 0 alive.
# The socket is where the container step said (/etc/default/veza-haproxy).
ADMIN_SOCKET=/run/haproxy/admin.sock
# shellcheck disable=SC1091 # written by the container step
[ -r /etc/default/veza-haproxy ] && . /etc/default/veza-haproxy
# And it runs a config the config step applied: its stamp (CONFIG_PATH's
# .veza-stamp, components/container-paths.ts) is written once a reload of that
# config is proven. A node rebuilt from its image runs Debian's default
# haproxy.cfg, which answers the admin socket with no frontend at all: it must
# not take the VIP before its own config is applied.
[ -s /etc/haproxy/haproxy.cfg.veza-stamp ] || exit 1
echo "show info" | timeout 0.5 socat -t 0.5 stdio "UNIX-CONNECT:$ADMIN_SOCKET" 2>/dev/null | grep -q '^Pid: '
