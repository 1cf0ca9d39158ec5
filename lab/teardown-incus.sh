#!/usr/bin/env bash
# lab/teardown-incus.sh: delete the e2e lab containers (idempotent).
#
# Deletes only the containers the e2e suite creates (plus any extra names given
# as arguments), and stops lab:up --acme's Pebble. The image ($VEZA_LAB_IMAGE), the bridge, the storage pool and
# the default profile set up by setup-incus.sh are kept for the next run.
#
#   bash lab/teardown-incus.sh [extra-container ...]
set -euo pipefail

LAB_CONTAINERS=(haproxy haproxy-b backend-api-1 backend-api-2 backend-api-3 stream-srv-1 stream-srv-2)

# lab:up --acme's Pebble (lab/lab-up.ts), by its pid files; a pid is
# only signalled while it is still Pebble's (not a recycled number).
PEBBLE_DIR=/var/lib/veza-lab/pebble
for pidfile in "$PEBBLE_DIR/pebble-challtestsrv.pid" "$PEBBLE_DIR/pebble.pid"; do
  [[ -f "$pidfile" ]] || continue
  pid=$(cat "$pidfile")
  if [[ "$pid" =~ ^[0-9]+$ ]] && [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == pebble* ]]; then
    kill "$pid" && echo "teardown-incus: stopped $(basename "$pidfile" .pid) (pid $pid)" >&2
  fi
  rm -f "$pidfile"
done

if ! command -v incus >/dev/null 2>&1; then
  echo "teardown-incus: incus is not installed; nothing to do" >&2
  exit 0
fi
if ! incus info >/dev/null 2>&1; then
  echo "teardown-incus: incusd is not answering; nothing to do" >&2
  exit 0
fi

rc=0
for name in "${LAB_CONTAINERS[@]}" "$@"; do
  if incus info "$name" >/dev/null 2>&1; then
    if incus delete --force "$name"; then
      echo "teardown-incus: deleted $name" >&2
    else
      echo "teardown-incus: ERROR: could not delete $name" >&2
      rc=1
    fi
  fi
done
exit "$rc"
