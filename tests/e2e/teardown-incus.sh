#!/usr/bin/env bash
# tests/e2e/teardown-incus.sh: delete the e2e lab containers (idempotent).
#
# Deletes only the containers the e2e suite creates (plus any extra names given
# as arguments). The image ($VEZA_LAB_IMAGE), the bridge, the storage pool and
# the default profile set up by setup-incus.sh are kept for the next run.
#
#   bash tests/e2e/teardown-incus.sh [extra-container ...]
set -euo pipefail

LAB_CONTAINERS=(haproxy haproxy-b backend-api-1 backend-api-2 backend-api-3 stream-srv-1 stream-srv-2)

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
