/**
 * The lab stack's program with the component renamed from `haproxy` to
 * `edge`, the container name kept: a user's edit of index.ts. With the
 * stack config `engineTest:alias` true it declares the old name as an alias.
 */
import * as pulumi from "@pulumi/pulumi";
import { HaproxyLoadBalancer } from "../../../components";
import { readStackConfig } from "../../../stack-config";

const withAlias = new pulumi.Config("engineTest").getBoolean("alias") ?? false;
const lb = new HaproxyLoadBalancer(
    "edge",
    { ...readStackConfig(new pulumi.Config("haproxy"), "edge"), containerName: "haproxy" },
    withAlias ? { aliases: [{ name: "haproxy" }] } : {},
);

export const containerName = lb.containerName;
export const httpUrl = lb.httpUrl;
