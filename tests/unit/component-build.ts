/**
 * Builds a HaproxyLoadBalancer under mocks and records its children: name,
 * parent and the children each depends on (by name). Shared by the component
 * tests that check the steps' order. The component is loaded on first use,
 * after the test file has installed the mocks, as the SDK requires.
 */
import type * as pulumi from "@pulumi/pulumi";
import type { HaproxyLoadBalancer, HaproxyLoadBalancerArgs } from "../../components";
import { forgetClaims } from "../../components/claims";
import { registeredAll, Registered } from "../support";

export interface Built {
    lb: HaproxyLoadBalancer;
    children: { name: string; parent?: pulumi.Resource; dependsOn: string[] }[];
    byName(suffix: string): Registered;
}

export async function buildWithOrder(registered: Registered[], args: HaproxyLoadBalancerArgs, name: string): Promise<Built> {
    const { HaproxyLoadBalancer: Component } =
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        require("../../components/component") as typeof import("../../components/component");
    forgetClaims();
    const children: Built["children"] = [];
    const lb = new Component(name, args, {
        transformations: [
            (t) => {
                if (t.name === name) return undefined;
                const deps = t.opts.dependsOn;
                const list = (Array.isArray(deps) ? deps : deps ? [deps] : []) as pulumi.Resource[];
                // Children are named by the component: a dependency's name is enough to know it.
                const dependsOn = list.map((d) => (d as unknown as { __name?: string }).__name ?? "?");
                children.push({ name: t.name, parent: t.opts.parent, dependsOn });
                return undefined;
            },
        ],
    });
    await registeredAll([
        lb.configCommand,
        ...lb.nodeCommands.flatMap((n) => [n.container, ...(n.keepalived ? [n.keepalived] : []), ...(n.acme ? [n.acme] : [])]),
        ...(lb.acmeIssueCommand ? [lb.acmeIssueCommand] : []),
    ]);
    const byName = (suffix: string) => {
        const found = registered.filter((r) => r.name === `${name}-${suffix}`);
        if (found.length !== 1) throw new Error(`expected one resource ${name}-${suffix}, found ${found.length}`);
        return found[0];
    };
    return { lb, children, byName };
}
