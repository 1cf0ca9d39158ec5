#!/usr/bin/env bash
# lab/setup-incus.sh: idempotent setup of the Incus lab used by the e2e suite.
#
# Run as root:  bash lab/setup-incus.sh   (or: npm run lab:setup)
#
# Phases (each one skips itself when its work is already done):
#   install  Incus 6.0 LTS from bookworm-backports + debootstrap. The apt source
#            for bookworm-backports reuses the mirror URI this machine already
#            uses for "bookworm" (read at run time from
#            /etc/apt/sources.list.d/debian.sources, or /etc/apt/sources.list);
#            no mirror host name is written in this repository.
#   daemon   starts incusd when it is not answering (there is no systemd on the
#            VM): setsid /usr/libexec/incus/incusd --group root, log /tmp/incusd.log,
#            with INCUS_SKIP_INSTANCE_TYPES=1 so it never fetches instance types
#            from the internet.
#   network  storage pool "default" (dir), bridge $VEZA_LAB_BRIDGE on
#            198.18.0.1/24 with NAT off (containers reach only each other and
#            this host), DHCP on .2-.199 (.200-.254 free for VIPs), root disk
#            + eth0 nic in the "default" profile.
#   rootfs   debootstraps Debian 13 (trixie; VEZA_LAB_SUITE=bookworm for 12)
#            into $VEZA_LAB_ROOTS/rootfs-<suite>: a booting minbase plus what
#            the component itself installs (haproxy, socat; keepalived for a
#            pair) and nothing else.
#            Kept: it is also the HAProxy of that release for the tests
#            (tests/support/run-with-haproxy-root.sh runs its haproxy).
#   image    imports that root as $VEZA_LAB_IMAGE, the load balancer's image:
#            as bare as the public images:debian/13 plus haproxy, socat and
#            keepalived (no curl, python3 or sshd), so operations that need more fail
#            here first. Then $VEZA_LAB_IMAGE-backend, the same root plus
#            python3 for the fake backend. Containers have no route out, so
#            everything they need must already be in the image.
#   testing-root  debootstraps Debian testing (minbase + haproxy: 3.2 today)
#            into $VEZA_LAB_ROOTS/rootfs-testing, for the haproxy-facing
#            suites on the next HAProxy (npm run test:haproxy-3.2); no image.
#
# The fake backend (lab/fixtures/veza-fake-backend.{py,service}) is NOT
# baked into the image: lab/lab.ts pushes it into each backend container
# with `incus file push`, so the fixture can change without rebuilding the image.
#
# Environment:
#   VEZA_LAB_SUITE    Debian suite of the images   (default trixie; or bookworm)
#   VEZA_LAB_IMAGE    load balancer image alias    (default veza-debian13, veza-debian12 for bookworm)
#   VEZA_LAB_ROOTS    where the roots are kept     (default /var/lib/veza-lab)
#   VEZA_LAB_BRIDGE   bridge network name          (default vezabr0)
#   VEZA_LAB_MIRROR   Debian mirror URI            (default: read from the apt sources)
#   VEZA_LAB_REBUILD  1 = delete and rebuild the root and images even if they exist
#
# Remove the lab containers with lab/teardown-incus.sh (the image and the
# network are kept for the next run).
set -euo pipefail

LAB_SUITE="${VEZA_LAB_SUITE:-trixie}"
case "$LAB_SUITE" in
  trixie) LAB_RELEASE=13 ;;
  bookworm) LAB_RELEASE=12 ;;
  *) printf 'setup-incus: ERROR: VEZA_LAB_SUITE must be trixie or bookworm (got %s)\n' "$LAB_SUITE" >&2; exit 1 ;;
esac
IMAGE="${VEZA_LAB_IMAGE:-veza-debian$LAB_RELEASE}"
BACKEND_IMAGE="$IMAGE-backend"
ROOTS="${VEZA_LAB_ROOTS:-/var/lib/veza-lab}"
ROOTFS="$ROOTS/rootfs-$LAB_SUITE"
BRIDGE="${VEZA_LAB_BRIDGE:-vezabr0}"
BRIDGE_ADDR="198.18.0.1/24"
DHCP_RANGES="198.18.0.2-198.18.0.199"
POOL="default"
# This machine's own suite: Incus comes from its backports, and its apt
# sources name the mirror the images are built from.
SUITE="bookworm"
INCUSD="/usr/libexec/incus/incusd"
INCUSD_LOG="/tmp/incusd.log"
LOCK_FILE="/var/lock/veza-lab-setup.lock"
BACKPORTS_FILE="/etc/apt/sources.list.d/veza-lab-bookworm-backports.sources"
# procps: without /bin/kill Debian's `systemctl reload haproxy` fails.
# keepalived: what the component installs on the nodes of a pair.
# lego, openssl: what the ACME step installs (tls.acme).
IMAGE_PACKAGES="systemd,systemd-sysv,ifupdown,isc-dhcp-client,iproute2,procps,haproxy,socat,keepalived,lego,openssl"
BACKEND_PACKAGES="python3"

PHASE="init"
WORKDIR=""
export DEBIAN_FRONTEND=noninteractive

log() { printf 'setup-incus: %s\n' "$*" >&2; }
die() { printf 'setup-incus: ERROR (phase %s): %s\n' "$PHASE" "$*" >&2; exit 1; }

on_error() {
  local rc=$? line=$1 cmd=$2
  printf 'setup-incus: ERROR (phase %s): line %s: [%s] exited with status %s\n' \
    "$PHASE" "$line" "$cmd" "$rc" >&2
  if [[ "$PHASE" == daemon ]] && [[ -f "$INCUSD_LOG" ]]; then
    printf 'setup-incus: last lines of %s:\n' "$INCUSD_LOG" >&2
    tail -n 20 "$INCUSD_LOG" >&2 || true
  fi
}
cleanup() {
  if [[ -n "$WORKDIR" && -d "$WORKDIR" ]]; then
    rm -rf --one-file-system "$WORKDIR"
  fi
}
trap 'on_error "$LINENO" "$BASH_COMMAND"' ERR
trap cleanup EXIT

now() { date +%s; }

# remove_root DIR: deletes a debootstrapped root, never what is mounted
# inside it. tests/support/run-with-haproxy-root.sh bind-mounts this
# machine's /tmp at ROOT/tmp while a suite runs there: a bind mount of the
# same file system is not another file system for rm --one-file-system, so
# deleting the root then would delete /tmp's contents.
remove_root() {
  local dir=$1 mounted
  [[ -e "$dir" ]] || return 0
  mounted=$(findmnt -rn -o TARGET | awk -v d="$dir" 'index($0, d "/") == 1 || $0 == d')
  [[ -z "$mounted" ]] || die "not removing $dir: $mounted is mounted inside it (a suite running with this HAProxy root?); wait for it to end"
  rm -rf --one-file-system "$dir"
}

# Print the first URI of the apt source that serves suite "bookworm" (not
# bookworm-security / -updates: the suite must match the word exactly).
debian_mirror() {
  if [[ -n "${VEZA_LAB_MIRROR:-}" ]]; then
    printf '%s\n' "$VEZA_LAB_MIRROR"
    return 0
  fi
  local uri=""
  if [[ -r /etc/apt/sources.list.d/debian.sources ]]; then
    # deb822: stanzas separated by blank lines.
    uri=$(awk -v suite="$SUITE" '
      function flush() {
        if (found) exit
        if (types ~ /(^|[ \t])deb([ \t]|$)/ && enabled != "no" && uris != "") {
          n = split(suites, s, /[ \t]+/)
          for (i = 1; i <= n; i++) if (s[i] == suite) { split(uris, u, /[ \t]+/); print u[1]; found = 1; exit }
        }
        types = ""; uris = ""; suites = ""; enabled = ""
      }
      /^[ \t]*#/ { next }
      /^[ \t]*$/ { flush(); next }
      {
        key = tolower($1); sub(/:$/, "", key)
        val = $0; sub(/^[^:]*:[ \t]*/, "", val); sub(/[ \t]+$/, "", val)
        if (key == "types") types = val
        else if (key == "uris") uris = val
        else if (key == "suites") suites = val
        else if (key == "enabled") enabled = tolower(val)
      }
      END { flush() }
    ' /etc/apt/sources.list.d/debian.sources)
  fi
  if [[ -z "$uri" && -r /etc/apt/sources.list ]]; then
    # one-line format: deb [options] URI SUITE COMPONENT...
    uri=$(awk -v suite="$SUITE" '
      $1 == "deb" {
        i = 2
        if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
        if ($(i + 1) == suite) { print $i; exit }
      }
    ' /etc/apt/sources.list)
  fi
  [[ -n "$uri" ]] || die "no apt source for suite '$SUITE' found in /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list (set VEZA_LAB_MIRROR)"
  printf '%s\n' "${uri%/}"
}

backports_configured() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [[ -r "$f" ]] || continue
    if grep -Eq "^[^#]*[[:space:]]${SUITE}-backports([[:space:]]|$)" "$f"; then
      return 0
    fi
  done
  return 1
}

# ----------------------------------------------------------------- preflight
[[ $EUID -eq 0 ]] || die "must run as root (try: sudo bash $0)"
[[ "$BRIDGE" =~ ^[a-zA-Z0-9_-]{1,15}$ ]] || die "invalid VEZA_LAB_BRIDGE '$BRIDGE'"
[[ "$IMAGE" =~ ^[a-zA-Z0-9._-]+$ ]] || die "invalid VEZA_LAB_IMAGE '$IMAGE'"
[[ "$ROOTS" =~ ^/[a-zA-Z0-9._/-]+$ ]] || die "invalid VEZA_LAB_ROOTS '$ROOTS' (an absolute path of A-Z a-z 0-9 . _ - /)"

# Serialize concurrent runs on the same machine.
exec 9>"$LOCK_FILE"
if ! flock -n 9; then
  log "another setup-incus.sh is running; waiting for it"
  flock 9
fi

T_START=$(now)

# ------------------------------------------------------------------ install
PHASE="install"
T0=$(now)
missing=()
if ! command -v incus >/dev/null 2>&1 || [[ ! -x "$INCUSD" ]]; then
  missing+=(incus)
fi
if ! command -v debootstrap >/dev/null 2>&1; then
  missing+=(debootstrap)
fi
if ((${#missing[@]} == 0)); then
  log "install: incus and debootstrap already present"
else
  log "install: need ${missing[*]}"
  if [[ " ${missing[*]} " == *" incus "* ]] && ! backports_configured; then
    mirror=$(debian_mirror)
    log "install: adding ${SUITE}-backports source (mirror read from the apt sources) -> $BACKPORTS_FILE"
    cat >"$BACKPORTS_FILE" <<EOF
# Added by veza-haproxy lab/setup-incus.sh (Incus 6.0 LTS lives in backports).
Types: deb
URIs: ${mirror}
Suites: ${SUITE}-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  fi
  apt-get update -q || die "apt-get update failed"
  if [[ " ${missing[*]} " == *" incus "* ]]; then
    apt-get install -y -q -t "${SUITE}-backports" incus \
      || die "apt-get install -t ${SUITE}-backports incus failed"
  fi
  if [[ " ${missing[*]} " == *" debootstrap "* ]]; then
    apt-get install -y -q debootstrap || die "apt-get install debootstrap failed"
  fi
  command -v incus >/dev/null 2>&1 || die "incus still not on PATH after install"
fi
T_INSTALL=$(($(now) - T0))

# ------------------------------------------------------------------- daemon
PHASE="daemon"
T0=$(now)
if incus info >/dev/null 2>&1; then
  log "daemon: incusd already answering"
else
  [[ -x "$INCUSD" ]] || die "$INCUSD not found (is the incus package installed?)"
  log "daemon: starting incusd (log: $INCUSD_LOG)"
  # 9>&-: the daemon must not inherit (and hold forever) the setup lock.
  # INCUS_SKIP_INSTANCE_TYPES=1: no daily download of instance-type lists from
  # the internet (this lab only talks to loopback and its own bridge).
  INCUS_SKIP_INSTANCE_TYPES=1 setsid "$INCUSD" --group root >"$INCUSD_LOG" 2>&1 </dev/null 9>&- &
  incus admin waitready --timeout 60 || die "incusd did not become ready in 60 s (see $INCUSD_LOG)"
  incus info >/dev/null || die "incusd is ready but 'incus info' fails"
fi
T_DAEMON=$(($(now) - T0))

# ------------------------------------------------------------------ network
PHASE="network"
T0=$(now)
if incus storage show "$POOL" >/dev/null 2>&1; then
  log "network: storage pool '$POOL' exists"
else
  log "network: creating storage pool '$POOL' (dir)"
  incus storage create "$POOL" dir
fi

if incus network show "$BRIDGE" >/dev/null 2>&1; then
  addr=$(incus network get "$BRIDGE" ipv4.address)
  [[ "$addr" == "$BRIDGE_ADDR" ]] \
    || die "network '$BRIDGE' exists with ipv4.address=$addr, expected $BRIDGE_ADDR (delete it or set VEZA_LAB_BRIDGE)"
  log "network: bridge '$BRIDGE' exists ($addr)"
else
  log "network: creating bridge '$BRIDGE' ($BRIDGE_ADDR, NAT off)"
  incus network create "$BRIDGE" \
    ipv4.address="$BRIDGE_ADDR" ipv4.nat=false ipv6.address=none dns.domain=lxd
fi

# DHCP hands out .2-.199 only: .200-.254 stay free for the pairs' floating
# addresses (VIPs), which no container may get as a lease.
if [[ "$(incus network get "$BRIDGE" ipv4.dhcp.ranges)" != "$DHCP_RANGES" ]]; then
  log "network: DHCP range of '$BRIDGE' -> $DHCP_RANGES (.200-.254 kept for VIPs)"
  incus network set "$BRIDGE" ipv4.dhcp.ranges="$DHCP_RANGES"
fi

devices=$(incus profile device list default)
if grep -qx 'root' <<<"$devices"; then
  log "network: profile default already has a root disk"
else
  log "network: adding root disk (pool $POOL) to profile default"
  incus profile device add default root disk path=/ pool="$POOL"
fi
if grep -qx 'eth0' <<<"$devices"; then
  nic_net=$(incus profile device get default eth0 network)
  [[ "$nic_net" == "$BRIDGE" ]] \
    || die "profile default has eth0 on network '$nic_net', expected '$BRIDGE' (fix with: incus profile device set default eth0 network=$BRIDGE)"
  log "network: profile default already has eth0 on '$BRIDGE'"
else
  log "network: adding eth0 (network $BRIDGE) to profile default"
  incus profile device add default eth0 nic network="$BRIDGE" name=eth0
fi
T_NETWORK=$(($(now) - T0))

# ------------------------------------------------------------------- rootfs
PHASE="rootfs"
T0=$(now)
if [[ "${VEZA_LAB_REBUILD:-0}" == 1 ]]; then
  log "rootfs: VEZA_LAB_REBUILD=1, deleting $ROOTFS and the images $IMAGE, $BACKEND_IMAGE"
  remove_root "$ROOTFS"
  for alias in "$IMAGE" "$BACKEND_IMAGE"; do
    if incus image info "$alias" >/dev/null 2>&1; then incus image delete "$alias"; fi
  done
fi
# A root built from another package list is built again, with its images.
if [[ -f "$ROOTFS/.veza-complete" ]] && [[ "$(sed -n 2p "$ROOTFS/.veza-complete")" != "packages: $IMAGE_PACKAGES" ]]; then
  log "rootfs: $ROOTFS was built with other packages; rebuilding it and the images $IMAGE, $BACKEND_IMAGE"
  remove_root "$ROOTFS"
  for alias in "$IMAGE" "$BACKEND_IMAGE"; do
    if incus image info "$alias" >/dev/null 2>&1; then incus image delete "$alias"; fi
  done
fi
if [[ -f "$ROOTFS/.veza-complete" ]]; then
  log "rootfs: $ROOTFS is complete ($(head -n 1 "$ROOTFS/.veza-complete"))"
else
  mirror=$(debian_mirror)
  mkdir -p "$ROOTS"
  partial="$ROOTFS.partial"
  remove_root "$partial"
  log "rootfs: debootstrap $LAB_SUITE (minbase + $IMAGE_PACKAGES) into $partial"
  debootstrap --variant=minbase --include="$IMAGE_PACKAGES" \
    "$LAB_SUITE" "$partial" "$mirror" >"$ROOTS/debootstrap-$LAB_SUITE.log" 2>&1 \
    || { tail -n 30 "$ROOTS/debootstrap-$LAB_SUITE.log" >&2; die "debootstrap failed (log above)"; }

  cat >"$partial/etc/network/interfaces" <<'INTERFACES'
# Written by veza-haproxy lab/setup-incus.sh
auto lo
iface lo inet loopback

auto eth0
iface eth0 inet dhcp
INTERFACES
  # debootstrap copied this machine's hostname/resolv.conf: drop them. The
  # hostname and /etc/hosts come from the image templates (instance name);
  # resolv.conf is written by dhclient from the bridge's DHCP.
  rm -f "$partial/etc/resolv.conf"
  echo "$IMAGE" >"$partial/etc/hostname"
  # Every container must get its own machine-id (generated at first boot).
  : >"$partial/etc/machine-id"
  rm -f "$partial/var/lib/dbus/machine-id"
  rm -f "$partial"/var/cache/apt/archives/*.deb
  mv "$partial" "$ROOTFS"
  printf 'Debian %s (%s), %s\npackages: %s\n' "$LAB_RELEASE" "$LAB_SUITE" \
    "$(chroot "$ROOTFS" /usr/sbin/haproxy -v | head -n 1)" "$IMAGE_PACKAGES" >"$ROOTFS/.veza-complete"
  log "rootfs: $(head -n 1 "$ROOTFS/.veza-complete")"
fi
T_ROOTFS=$(($(now) - T0))

# -------------------------------------------------------------------- image
PHASE="image"
T0=$(now)

# import_root ROOT ALIAS DESCRIPTION: packs ROOT as the Incus image ALIAS.
import_root() {
  local root=$1 alias=$2 description=$3 meta="$WORKDIR/meta-$2"
  mkdir -p "$meta/templates"
  printf '%s\n' '{{ instance.name }}' >"$meta/templates/hostname.tpl"
  printf '127.0.0.1\tlocalhost\n127.0.1.1\t{{ instance.name }}\n::1\tlocalhost ip6-localhost ip6-loopback\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n' \
    >"$meta/templates/hosts.tpl"
  cat >"$meta/metadata.yaml" <<METADATA
architecture: $(uname -m)
creation_date: $(date +%s)
properties:
  description: "$description"
  os: debian
  release: $LAB_SUITE
  variant: veza-lab
templates:
  /etc/hostname:
    when: [create, copy, rename]
    template: hostname.tpl
  /etc/hosts:
    when: [create, copy, rename]
    template: hosts.tpl
METADATA
  log "image: packing $root as '$alias'"
  tar -C "$meta" -cf "$WORKDIR/meta.tar" metadata.yaml templates
  # ./tmp/*: a test run may have this machine's /tmp bind-mounted there
  # (tests/support/run-with-haproxy-root.sh).
  tar -C "$root" --numeric-owner --exclude=./.veza-complete --exclude='./tmp/*' -cf - . | gzip -1 >"$WORKDIR/rootfs.tar.gz"
  incus image import "$WORKDIR/meta.tar" "$WORKDIR/rootfs.tar.gz" --alias "$alias"
  rm -f "$WORKDIR/meta.tar" "$WORKDIR/rootfs.tar.gz"
}

WORKDIR=$(mktemp -d /var/tmp/veza-lab-image.XXXXXX)
if incus image info "$IMAGE" >/dev/null 2>&1; then
  log "image: '$IMAGE' already imported"
else
  import_root "$ROOTFS" "$IMAGE" "Debian $LAB_RELEASE ($LAB_SUITE) minbase + haproxy, socat: the veza-haproxy lab's load balancer"
fi
if incus image info "$BACKEND_IMAGE" >/dev/null 2>&1; then
  log "image: '$BACKEND_IMAGE' already imported"
else
  backend="$WORKDIR/backend-rootfs"
  log "image: $BACKEND_IMAGE = $IMAGE + $BACKEND_PACKAGES (apt in a chroot of a copy of the root)"
  cp -a "$ROOTFS" "$backend"
  cp /etc/resolv.conf "$backend/etc/resolv.conf"
  { chroot "$backend" apt-get update -q && chroot "$backend" apt-get install -y -q --no-install-recommends "$BACKEND_PACKAGES"; } \
    >"$WORKDIR/apt.log" 2>&1 \
    || { tail -n 30 "$WORKDIR/apt.log" >&2; die "installing $BACKEND_PACKAGES into the backend root failed (log above)"; }
  rm -f "$backend/etc/resolv.conf" "$backend"/var/cache/apt/archives/*.deb
  rm -rf "$backend"/var/lib/apt/lists/*
  import_root "$backend" "$BACKEND_IMAGE" "Debian $LAB_RELEASE ($LAB_SUITE) minbase + $BACKEND_PACKAGES: the veza-haproxy lab's fake backends"
fi
cleanup
WORKDIR=""
T_IMAGE=$(($(now) - T0))

# ------------------------------------------------------------ testing root
# Debian testing's HAProxy (3.2 today, the next LTS after 3.0), for the
# haproxy-facing suites only (npm run test:haproxy-3.2): minbase + haproxy,
# no image, never booted. Built once; VEZA_LAB_REBUILD=1 builds it again
# (testing moves: the suite then says which HAProxy it found).
PHASE="testing-root"
T0=$(now)
TESTING_ROOT="$ROOTS/rootfs-testing"
if [[ "${VEZA_LAB_REBUILD:-0}" == 1 ]]; then remove_root "$TESTING_ROOT"; fi
if [[ -f "$TESTING_ROOT/.veza-complete" ]]; then
  log "testing-root: $TESTING_ROOT is complete ($(head -n 1 "$TESTING_ROOT/.veza-complete"))"
else
  mirror=$(debian_mirror)
  partial="$TESTING_ROOT.partial"
  remove_root "$partial"
  log "testing-root: debootstrap testing (minbase + haproxy) into $partial"
  debootstrap --variant=minbase --include=haproxy testing "$partial" "$mirror" >"$ROOTS/debootstrap-testing.log" 2>&1 \
    || { tail -n 30 "$ROOTS/debootstrap-testing.log" >&2; die "debootstrap of testing failed (log above)"; }
  rm -f "$partial"/var/cache/apt/archives/*.deb
  mv "$partial" "$TESTING_ROOT"
  printf 'Debian testing (%s), %s\n' "$(sed -n 's/^VERSION_CODENAME=//p' "$TESTING_ROOT/etc/os-release")" \
    "$(chroot "$TESTING_ROOT" /usr/sbin/haproxy -v | head -n 1)" >"$TESTING_ROOT/.veza-complete"
  log "testing-root: $(head -n 1 "$TESTING_ROOT/.veza-complete")"
fi
T_TESTING=$(($(now) - T0))

PHASE="done"
T_TOTAL=$(($(now) - T_START))
printf 'setup: install=%ss daemon=%ss network=%ss rootfs=%ss image=%ss testing-root=%ss total=%ss\n' \
  "$T_INSTALL" "$T_DAEMON" "$T_NETWORK" "$T_ROOTFS" "$T_IMAGE" "$T_TESTING" "$T_TOTAL"
printf 'setup: images %s and %s; the HAProxy roots %s and %s\n' "$IMAGE" "$BACKEND_IMAGE" "$ROOTFS" "$TESTING_ROOT"
