#!/usr/bin/env bash
# tests/e2e/setup-incus.sh: idempotent setup of the Incus lab used by the e2e suite.
#
# Run as root:  bash tests/e2e/setup-incus.sh   (or: npm run lab:setup)
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
#            this host), root disk + eth0 nic in the "default" profile.
#   image    builds a Debian 12 image with debootstrap (systemd, ifupdown,
#            isc-dhcp-client, haproxy, socat, python3, curl, ...) and imports it
#            as $VEZA_LAB_IMAGE. Containers have no route out, so everything
#            they need must already be in the image.
#
# The fake backend (tests/e2e/fixtures/veza-fake-backend.{py,service}) is NOT
# baked into the image: tests/e2e/lab.ts pushes it into each backend container
# with `incus file push`, so the fixture can change without rebuilding the image.
#
# Environment:
#   VEZA_LAB_IMAGE    image alias           (default veza-debian12)
#   VEZA_LAB_BRIDGE   bridge network name   (default vezabr0)
#   VEZA_LAB_MIRROR   Debian mirror URI     (default: read from the apt sources)
#   VEZA_LAB_REBUILD  1 = delete and rebuild the image even if it exists
#
# Remove the lab containers with tests/e2e/teardown-incus.sh (the image and the
# network are kept for the next run).
set -euo pipefail

IMAGE="${VEZA_LAB_IMAGE:-veza-debian12}"
BRIDGE="${VEZA_LAB_BRIDGE:-vezabr0}"
BRIDGE_ADDR="198.18.0.1/24"
POOL="default"
SUITE="bookworm"
INCUSD="/usr/libexec/incus/incusd"
INCUSD_LOG="/tmp/incusd.log"
LOCK_FILE="/var/lock/veza-lab-setup.lock"
BACKPORTS_FILE="/etc/apt/sources.list.d/veza-lab-bookworm-backports.sources"
IMAGE_PACKAGES="systemd,systemd-sysv,ifupdown,isc-dhcp-client,iproute2,procps,haproxy,socat,python3,curl"

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
# Added by veza-haproxy tests/e2e/setup-incus.sh (Incus 6.0 LTS lives in backports).
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

# -------------------------------------------------------------------- image
PHASE="image"
T0=$(now)
if [[ "${VEZA_LAB_REBUILD:-0}" == 1 ]] && incus image info "$IMAGE" >/dev/null 2>&1; then
  log "image: VEZA_LAB_REBUILD=1, deleting image '$IMAGE'"
  incus image delete "$IMAGE"
fi
if incus image info "$IMAGE" >/dev/null 2>&1; then
  log "image: '$IMAGE' already imported"
else
  mirror=$(debian_mirror)
  WORKDIR=$(mktemp -d /var/tmp/veza-lab-image.XXXXXX)
  rootfs="$WORKDIR/rootfs"
  meta="$WORKDIR/meta"
  mkdir -p "$rootfs" "$meta/templates"
  log "image: debootstrap $SUITE (minbase + $IMAGE_PACKAGES) into $rootfs"
  debootstrap --variant=minbase --include="$IMAGE_PACKAGES" \
    "$SUITE" "$rootfs" "$mirror" >"$WORKDIR/debootstrap.log" 2>&1 \
    || { tail -n 30 "$WORKDIR/debootstrap.log" >&2; die "debootstrap failed (log above)"; }

  cat >"$rootfs/etc/network/interfaces" <<'EOF'
# Written by veza-haproxy tests/e2e/setup-incus.sh
auto lo
iface lo inet loopback

auto eth0
iface eth0 inet dhcp
EOF
  # debootstrap copied this machine's hostname/resolv.conf: drop them. The
  # hostname and /etc/hosts come from the image templates below (instance
  # name); resolv.conf is written by dhclient from the bridge's DHCP.
  rm -f "$rootfs/etc/resolv.conf"
  echo "$IMAGE" >"$rootfs/etc/hostname"
  # Every container must get its own machine-id (generated at first boot).
  : >"$rootfs/etc/machine-id"
  rm -f "$rootfs/var/lib/dbus/machine-id"
  rm -f "$rootfs"/var/cache/apt/archives/*.deb

  cat >"$meta/templates/hostname.tpl" <<'EOF'
{{ instance.name }}
EOF
  cat >"$meta/templates/hosts.tpl" <<'EOF'
127.0.0.1	localhost
127.0.1.1	{{ instance.name }}
::1	localhost ip6-localhost ip6-loopback
ff02::1	ip6-allnodes
ff02::2	ip6-allrouters
EOF
  cat >"$meta/metadata.yaml" <<EOF
architecture: $(uname -m)
creation_date: $(date +%s)
properties:
  description: Debian 12 (bookworm) minbase for the veza-haproxy e2e lab
  os: debian
  release: bookworm
  variant: veza-lab
templates:
  /etc/hostname:
    when: [create, copy, rename]
    template: hostname.tpl
  /etc/hosts:
    when: [create, copy, rename]
    template: hosts.tpl
EOF
  log "image: packing"
  tar -C "$meta" -cf "$WORKDIR/meta.tar" metadata.yaml templates
  tar -C "$rootfs" --numeric-owner -cf - . | gzip -1 >"$WORKDIR/rootfs.tar.gz"
  log "image: importing as '$IMAGE'"
  incus image import "$WORKDIR/meta.tar" "$WORKDIR/rootfs.tar.gz" --alias "$IMAGE"
  cleanup
  WORKDIR=""
fi
T_IMAGE=$(($(now) - T0))

PHASE="done"
T_TOTAL=$(($(now) - T_START))
printf 'setup: install=%ss daemon=%ss network=%ss image=%ss total=%ss\n' \
  "$T_INSTALL" "$T_DAEMON" "$T_NETWORK" "$T_IMAGE" "$T_TOTAL"
