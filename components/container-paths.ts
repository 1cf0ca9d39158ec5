/** Where things live inside the HAProxy container. */

/** Debian's haproxy unit reads this file. */
export const CONFIG_PATH = "/etc/haproxy/haproxy.cfg";
/** Debian's haproxy unit runs the master CLI on this socket. */
export const MASTER_SOCKET = "/run/haproxy-master.sock";
/** The only directory certificates are written to: nothing else lives there, so a certificate can never land on another file. */
export const CERT_DIR = "/etc/haproxy/certs";
/** Where the component installs a pushed certificate when `tlsCertPath` is unset. */
export const DEFAULT_TLS_CERT_PATH = `${CERT_DIR}/veza.pem`;
