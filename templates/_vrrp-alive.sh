#!/bin/sh
# keepalived's track script on a pair node: HAProxy itself must answer its
# admin socket (a process that exists but hangs does not count). Exit 0 alive.
echo "show info" | timeout 1 socat -t 1 stdio UNIX-CONNECT:/run/haproxy/admin.sock 2>/dev/null | grep -q '^Pid: '
