// How a larger Veza stack uses the component: its own backend containers'
// names flow in as Inputs. Type-checked by `npm test` (tsconfig maps
// "veza-haproxy" to ./components), never run by the tests.
import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import { HaproxyLoadBalancer } from "veza-haproxy";

const config = new pulumi.Config();
const apiCount = config.getNumber("apiCount") ?? 2;

// Whatever creates the backends; here, one Incus container each.
const apiBackends = Array.from(
    { length: apiCount },
    (_, i) =>
        new command.local.Command(`backend-api-${i + 1}`, {
            create: 'incus launch veza-debian13-backend "$NAME"',
            delete: 'incus delete --force "$NAME"',
            environment: { NAME: `backend-api-${i + 1}` },
        }),
);

const lb = new HaproxyLoadBalancer(
    "edge",
    {
        apiServers: apiBackends.map((backend) => backend.environment.apply((env) => ({ name: env!.NAME, address: `${env!.NAME}.lxd` }))),
        streamServers: [{ name: "stream-srv-1", address: "stream-srv-1.lxd" }],
        healthCheckIntervalMs: 2000,
        image: "veza-debian13",
    },
    { dependsOn: apiBackends },
);

export const url = lb.httpUrl;
export const statsPassword = lb.statsPassword;
