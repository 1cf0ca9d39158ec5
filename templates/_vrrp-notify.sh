#!/bin/sh
# keepalived's notify hook on a pair node: every VRRP transition goes to the
# journal (tag veza-vrrp), e.g. "veza_vip: BACKUP -> MASTER".
# keepalived calls it as: TYPE NAME STATE PRIORITY.
state_file=/run/veza-vrrp.state
previous=$(cat "$state_file" 2>/dev/null || echo INIT)
printf '%s\n' "$3" > "$state_file"
logger -t veza-vrrp "$2: $previous -> $3 (priority $4)"
