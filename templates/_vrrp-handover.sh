#!/bin/sh
# haproxy's stop and start hooks on a pair node (systemd drop-in veza-vrrp.conf:
# ExecStop= commands run before systemd signals haproxy, ExecStartPost= after
# it started).
#   leave: before a planned stop (systemctl stop or restart, a container
#          shutdown), tell keepalived to give up the VIP (its track file
#          reads 1: FAULT), wait until this node is no longer MASTER, then
#          a moment for the other node to take over and announce it. Clients
#          keep being served by this haproxy meanwhile: a planned stop moves
#          the VIP before a single connection is refused. A crash does not
#          run this; keepalived's track script catches that.
#   join:  after a start, the node may hold the VIP again (as BACKUP:
#          nopreempt).
# Never fails the unit: it only ever delays a stop by up to 4 s.
# Directly in /run: keepalived ignores a track file whose directory is missing,
# as a subdirectory of the tmpfs would be at boot. Its init_file makes it 0.
stopping=/run/veza-haproxy-stopping
state_file=/run/veza-vrrp.state
case ${1:-} in
    leave)
        # Whether this node holds the VIP, read before keepalived is told:
        # it answers within milliseconds.
        was=$(cat "$state_file" 2>/dev/null) || was=""
        echo 1 > "$stopping"
        systemctl is-active --quiet keepalived || exit 0
        [ "$was" = MASTER ] || exit 0
        for _ in $(seq 30); do
            [ "$(cat "$state_file" 2>/dev/null)" = MASTER ] || break
            sleep 0.1
        done
        # The backup takes over after its skew time (under 0.5 s), then sends gratuitous ARPs.
        sleep 1
        ;;
    join) echo 0 > "$stopping" ;;
esac
exit 0
