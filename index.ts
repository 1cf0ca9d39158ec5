// The veza-haproxy stack: read the `haproxy:*` config, stand up the load balancer, export where it serves.
import * as pulumi from "@pulumi/pulumi";
import { HaproxyLoadBalancer } from "./components";
import { readStackConfig } from "./stack-config";

const config = new pulumi.Config("haproxy");
const lb = new HaproxyLoadBalancer("haproxy", readStackConfig(config, "haproxy"));

export const containerName = lb.containerName;
export const address = lb.address;
export const httpUrl = lb.httpUrl;
export const httpsUrl = lb.httpsUrl;
export const statsUrl = lb.statsUrl;
export const metricsUrl = lb.metricsUrl;
export const configFingerprint = lb.configFingerprint;
export const statsPassword = lb.statsPassword;
/**
 * With haproxy:acme: the certificate's expiry and issuer when it was last
 * obtained (not secret); null without it (an undefined output makes the
 * engine warn on every run).
 */
export const certificate = lb.certificate.apply((c) => c ?? null);
