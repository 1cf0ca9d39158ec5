#!/usr/bin/env bash
# tests/support/run-with-haproxy-root.sh ROOT COMMAND [ARG...]
#
# Runs COMMAND with another Debian release's HAProxy first on PATH: the
# haproxy of ROOT, a debootstrapped root such as the lab's Debian 13
# (/var/lib/veza-lab/rootfs-trixie, made by lab/setup-incus.sh), run
# through chroot. The test kit finds `haproxy` on PATH first, so the unit and
# behaviour suites run unchanged against that release (CI: 2.6 from this
# machine, then 3.0 from Debian 13's root).
#
# The tests keep configs, sockets and certificates under /tmp: for the run,
# this machine's /tmp is bind-mounted at ROOT/tmp, so the chrooted haproxy
# sees the same paths; it is unmounted afterwards, also on failure. chroot
# execs haproxy in place: the pid the tests see is haproxy's own.
# Root only (chroot, mount). Exits with COMMAND's status.
set -euo pipefail

die() { printf 'run-with-haproxy-root: %s\n' "$*" >&2; exit 2; }

[[ $# -ge 2 ]] || die "usage: $0 ROOT COMMAND [ARG...]"
root=$1
shift
[[ $EUID -eq 0 ]] || die "must run as root (chroot, mount --bind)"
[[ "$root" =~ ^/[A-Za-z0-9._/-]+$ ]] || die "ROOT must be an absolute path of A-Z a-z 0-9 . _ - / (got '$root')"
[[ -x "$root/usr/sbin/haproxy" ]] || die "no haproxy in $root: build the root with lab/setup-incus.sh (npm run lab:setup)"

bin=$(mktemp -d /tmp/veza-haproxy-root.XXXXXX)
mounted=0
# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
  if ((mounted)); then umount "$root/tmp" || umount -l "$root/tmp" || true; fi
  rm -rf "$bin"
}
trap cleanup EXIT

if ! mountpoint -q "$root/tmp"; then
  mount --bind /tmp "$root/tmp"
  mounted=1
fi
# The root path is checked above (no quote or space can reach this line).
printf '#!/bin/sh\nexec chroot %s /usr/sbin/haproxy "$@"\n' "$root" >"$bin/haproxy"
chmod 755 "$bin/haproxy"
printf 'run-with-haproxy-root: %s\n' "$("$bin/haproxy" -v | head -n 1)"

status=0
TMPDIR=/tmp PATH="$bin:$PATH" "$@" || status=$?
exit "$status"
