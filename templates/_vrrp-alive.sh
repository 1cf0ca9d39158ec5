#!/bin/sh
# keepalived's track script on a pair node: HAProxy itself must answer its
# admin socket (a process that exists but hangs does not count). Exit 0 alive.
# The socket is where the container step said (/etc/default/veza-haproxy).
ADMIN_SOCKET=/run/haproxy/admin.sock
# shellcheck disable=SC1091 # written by the container step
[ -r /etc/default/veza-haproxy ] && . /etc/default/veza-haproxy
echo "show info" | timeout 0.5 socat -t 0.5 stdio "UNIX-CONNECT:$ADMIN_SOCKET" 2>/dev/null | grep -q '^Pid: '
