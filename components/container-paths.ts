/** Where things live inside the HAProxy container. */

/** Debian's haproxy unit reads this file. */
export const CONFIG_PATH = "/etc/haproxy/haproxy.cfg";
/** Debian's haproxy unit runs the master CLI on this socket. */
export const MASTER_SOCKET = "/run/haproxy-master.sock";
/** The only directory certificates are written to: nothing else lives there, so a certificate can never land on another file. */
export const CERT_DIR = "/etc/haproxy/certs";
/** Where the component installs a pushed certificate when `tlsCertPath` is unset. */
export const DEFAULT_TLS_CERT_PATH = `${CERT_DIR}/veza.pem`;
/** Written once a reload of the applied config succeeded; the VRRP track script reads it (templates/_config-in-container.sh, _vrrp-alive.sh). */
export const CONFIG_STAMP_PATH = `${CONFIG_PATH}.veza-stamp`;
/** Where the keepalived step installs the scripts keepalived runs (templates/keepalived-create.sh.mustache). */
export const VRRP_ALIVE_SCRIPT = "/usr/local/sbin/veza-haproxy-alive";
export const VRRP_NOTIFY_SCRIPT = "/usr/local/sbin/veza-vrrp-notify";
/** The ACME client's settings and the CA bundle it trusts (templates/acme-*.sh.mustache, _acme-renew.*). */
export const ACME_ENV_PATH = "/etc/veza-haproxy/acme.env";
export const ACME_CA_PATH = "/etc/veza-haproxy/acme-ca.pem";
/** Where the ACME client keeps its account, keys and certificates (mode 700). */
export const ACME_STATE_DIR = "/var/lib/veza-haproxy/acme";
/** The outcome of the last config apply ("<exit code> <unix time>"), for the node metrics (templates/_config-in-container.sh). */
export const CONFIG_RESULT_PATH = `${CONFIG_PATH}.veza-result`;
/** The outcome of the ACME renew script's last run, for the node metrics (templates/_acme-renew.sh). */
export const ACME_RESULT_PATH = `${ACME_STATE_DIR}/veza-last-run`;
/** The node metrics script (templates/_node-metrics.sh), run by systemd once per connection on NODE_METRICS_SOCKET. */
export const NODE_METRICS_SCRIPT = "/usr/local/sbin/veza-haproxy-node-metrics";
/**
 * The loopback port HAProxy's stats listener reaches it on (systemd listens,
 * veza-haproxy-node-metrics.socket). Not a unix socket: HAProxy's chroot
 * would hide a file, and before 3.1 HAProxy pads an abstract socket's name
 * (abns@) where systemd does not, so the two never meet.
 */
export const NODE_METRICS_PORT = 10001;
/** Where the stats listener serves the node metrics, beside HAProxy's own /metrics. */
export const NODE_METRICS_PATH = "/veza-metrics";
