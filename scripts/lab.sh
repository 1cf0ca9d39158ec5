#!/usr/bin/env bash
# scripts/lab.sh: the README's first command. On a Debian 12 machine, as
# root, it installs whatever is missing (scripts/install.sh), then brings up
# the lab stack on this machine's Incus (npm run lab:up: the load balancer
# and four backends, on the lab bridge) and says where it serves. A second
# run changes nothing and takes seconds.
#
#   bash scripts/lab.sh [--pair] [--acme]     (options go to npm run lab:up)
#
# Its last line is lab:up's JSON ({"httpUrl": ..., "vip": ..., "nodes": [...]}),
# for scripts; the line before it is for people.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install.sh
json=$(npm run --silent lab:up -- "$@" | tail -n 1)
url=$(node -e 'process.stdout.write(JSON.parse(process.argv[1]).httpUrl)' "$json")
echo "lab: serving at ${url} (from this machine; try: curl ${url}api/v1/health). npm run lab:down removes it." >&2
printf '%s\n' "$json"
