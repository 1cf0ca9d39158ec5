#!/bin/bash
# veza-acme-renew [--force] ENV_FILE: obtains the load balancer's certificate
# from its ACME CA (HTTP-01, through HAProxy's route to lego's responder on
# loopback), or renews it when it has less than 30 days left, and installs a
# new one into the running HAProxy without a reload (runtime API: set ssl
# cert + commit ssl cert), then on disk for the next start. Run by the
# veza-acme-renew timer, and once by the component at deploy.
#
# ENV_FILE holds ACME_* lines (renderAcmeEnv, components/acme.ts). Keys never
# leave ACME_STATE_DIR and the certificate file (both mode 600); they go to
# HAProxy on the admin socket's stdin, never on a command line.
#
# Steps, in order: readSettings, waitTurn, obtain, checkNew, installRuntime,
# installDisk. Exit codes (docs/certificates.md), with the step that exits:
#   0  EXIT_OK        installed, or the served certificate is lego's and
#                     valid for more than 30 days: nothing to do
#   20 EXIT_SETTINGS  readSettings: the env file is missing or malformed
#   21 EXIT_LEGO      obtain: lego failed (CA refused, unreachable, challenge
#                     failed): the old certificate keeps serving; the timer
#                     retries
#   22 EXIT_REFUSED   installRuntime: HAProxy refused the new certificate
#                     (runtime API)
#   23 EXIT_UNUSABLE  checkNew: lego's certificate or key is unusable
#   24 EXIT_DISK      installDisk: the certificate file could not be replaced
#   25 EXIT_LOCKED    waitTurn: another run (the timer's or the component's)
#                     held the lock for 10 minutes: lego binds the challenge
#                     port, so runs take turns
# Any other code: a command that was not expected to fail (set -e) ended the
# run with its own.
# --force renews whatever the expiry (the lab's rotation test).
EXIT_OK=0 EXIT_SETTINGS=20 EXIT_LEGO=21 EXIT_REFUSED=22 EXIT_UNUSABLE=23 EXIT_DISK=24 EXIT_LOCKED=25
set -euo pipefail
step=start
log() { printf 'veza-acme[%s]: %s\n' "$step" "$*" >&2; }
die() { local code=$1; shift; log "ERROR: $*"; exit "$code"; }
umask 077

force=no
if [ "${1:-}" = --force ]; then force=yes; shift; fi
env_file=${1:-/etc/veza-haproxy/acme.env}

step=readSettings
[ -r "$env_file" ] || die "$EXIT_SETTINGS" "$env_file is missing: the component writes it (tls.acme)"
declare -A acme=()
while IFS= read -r line; do
    case $line in '' | '#'*) continue ;; esac
    key=${line%%=*}
    value=${line#*=}
    case $key in ACME_[A-Z_]*) ;; *) die "$EXIT_SETTINGS" "unexpected line in $env_file (expected ACME_*=value)" ;; esac
    case $value in *[!A-Za-z0-9._:/,@%+=-]*) die "$EXIT_SETTINGS" "$key holds a character outside A-Z a-z 0-9 . _ : / , @ % + = -" ;; esac
    acme[$key]=$value
done < "$env_file"
for key in ACME_DOMAINS ACME_EMAIL ACME_DIRECTORY ACME_CHALLENGE_ADDRESS ACME_STATE_DIR ACME_CERT_PATH ACME_ADMIN_SOCKET; do
    [ -n "${acme[$key]:-}" ] || die "$EXIT_SETTINGS" "$key is missing from $env_file"
done
IFS=, read -r -a domains <<< "${acme[ACME_DOMAINS]}"
first=${domains[0]}
state=${acme[ACME_STATE_DIR]}
cert_path=${acme[ACME_CERT_PATH]}
socket=${acme[ACME_ADMIN_SOCKET]}
lego_args=(--accept-tos --email "${acme[ACME_EMAIL]}" --server "${acme[ACME_DIRECTORY]}" --path "$state"
    --key-type ec256 --http --http.port "${acme[ACME_CHALLENGE_ADDRESS]}")
for domain in "${domains[@]}"; do lego_args+=(--domains "$domain"); done
# The directory's own HTTPS certificate, when a private CA signed it.
if [ -n "${acme[ACME_CA_BUNDLE]:-}" ]; then export LEGO_CA_CERTIFICATES=${acme[ACME_CA_BUNDLE]}; fi
crt=$state/certificates/$first.crt
key=$state/certificates/$first.key

step=waitTurn
# The timer and the component's issue step both run this script, and lego binds the challenge port: one run at a time.
mkdir -p "$state"
# On every exit from here on: the run's outcome for the node metrics
# (veza_haproxy_acme_renew_last_result), "<exit code> <unix time>"; and a
# bundle made but not moved into place is removed.
bundle=""
# shellcheck disable=SC2317 # called by the EXIT trap
on_exit() {
    local code=$?
    if [ -n "$bundle" ]; then rm -f "$bundle"; fi
    printf '%s %s\n' "$code" "$(date +%s)" > "$state/veza-last-run" 2>/dev/null || true
}
trap on_exit EXIT
exec 9>> "$state/veza-lock"
if ! flock -n 9; then
    log "another run holds $state/veza-lock: waiting for it"
    flock -w 600 9 || die "$EXIT_LOCKED" "another run held $state/veza-lock for 10 minutes; the current certificate keeps serving"
fi

step=obtain
# What the current certificate was ordered with. lego keeps one account per CA
# and email, and its renew refuses an account it has not registered: a change
# of any of these is a new order under the new account, not a renewal.
order="domains=${acme[ACME_DOMAINS]} ca=${acme[ACME_DIRECTORY]} email=${acme[ACME_EMAIL]}"
ordered_with=$(cat "$state/veza-order" 2>/dev/null || true)
if [ ! -s "$crt" ] || [ "$ordered_with" != "$order" ]; then
    if [ -s "$crt" ]; then
        log "the domains, CA or email changed since the last order: ordering a new certificate for ${acme[ACME_DOMAINS]} from ${acme[ACME_DIRECTORY]}"
    else
        log "no certificate yet for ${acme[ACME_DOMAINS]}: ordering one from ${acme[ACME_DIRECTORY]}"
    fi
    lego "${lego_args[@]}" run >&2 || die "$EXIT_LEGO" "lego could not obtain a certificate; what serves now keeps serving"
    printf '%s\n' "$order" > "$state/veza-order"
else
    days=30
    [ "$force" = yes ] && days=100000
    # The timer adds the jitter (RandomizedDelaySec): no sleep of lego's own on top.
    lego "${lego_args[@]}" renew --days "$days" --no-random-sleep >&2 || die "$EXIT_LEGO" "lego could not renew; the current certificate keeps serving"
fi

step=checkNew
if [ ! -s "$crt" ] || [ ! -s "$key" ]; then die "$EXIT_UNUSABLE" "lego left no certificate or key in $state/certificates"; fi
bundle=$(mktemp "$cert_path.new.XXXXXX")
cat "$crt" "$key" > "$bundle"
if ! grep -q -- '-----BEGIN CERTIFICATE-----' "$bundle" || ! grep -q -- 'PRIVATE KEY-----' "$bundle"; then
    die "$EXIT_UNUSABLE" "lego's certificate or key is not PEM"
fi
# Whatever serves now (a placeholder at a new path, a certificate pushed while
# ACME was off) gives way to lego's; lego's own, still valid, stays.
if cmp -s "$bundle" "$cert_path"; then
    log "the served certificate is lego's and valid for more than 30 days: nothing to install"
    exit "$EXIT_OK"
fi

step=installRuntime
if [ -S "$socket" ]; then
    # The payload ends at the first empty line: PEM has none. Sent on stdin.
    answer=$({ printf 'set ssl cert %s <<\n' "$cert_path"; cat "$bundle"; printf '\n'; } | socat -t 10 stdio "UNIX-CONNECT:$socket")
    case $answer in *"Transaction created"* | *"Transaction updated"*) ;; *) die "$EXIT_REFUSED" "HAProxy refused the new certificate: $answer" ;; esac
    answer=$(printf 'commit ssl cert %s\n' "$cert_path" | socat -t 10 stdio "UNIX-CONNECT:$socket")
    case $answer in *Success*) ;; *) die "$EXIT_REFUSED" "HAProxy did not commit the new certificate: $answer" ;; esac
    log "the running HAProxy serves the new certificate (no reload)"
else
    log "no HAProxy admin socket at $socket: the certificate goes on disk only, for the next start"
fi

step=installDisk
chmod 600 "$bundle"
mv -f "$bundle" "$cert_path" || die "$EXIT_DISK" "could not replace $cert_path"
bundle=""
log "installed $(openssl x509 -noout -serial -enddate -in "$crt" | tr '\n' ' ')"
exit "$EXIT_OK"
