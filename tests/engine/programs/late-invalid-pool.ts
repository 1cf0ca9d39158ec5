/**
 * The lab stack's program with one more API server whose address is only
 * known when an Output resolves, and is invalid then: what a larger stack
 * gets when a pool is built from another resource's outputs. The component
 * cannot refuse it at construction; it refuses it when the value resolves.
 */
import * as pulumi from "@pulumi/pulumi";
import { HaproxyLoadBalancer } from "../../../components";
import { readStackConfig } from "../../../stack-config";

const args = readStackConfig(new pulumi.Config("haproxy"), "haproxy");
const lb = new HaproxyLoadBalancer("haproxy", {
    ...args,
    apiServers: pulumi
        .output(args.apiServers)
        .apply((servers) => [...(servers ?? []), { name: "backend-api-late", address: "late address;reboot" }]),
});

export const containerName = lb.containerName;
export const httpUrl = lb.httpUrl;
