/**
 * STAND-IN for the real pulumi-resource-random, for the engine tests only.
 * The real provider is bridged from terraform-provider-random and is not
 * served by the Go module proxy these machines reach (its module
 * github.com/pulumi/pulumi-random/provider/v4 answers 403), so it cannot be
 * built here. This serves the one resource the component uses,
 * `random:index/randomPassword:RandomPassword`, with its documented
 * semantics: `result` (and `bcryptHash`) secret, every input forces a
 * replacement (terraform-provider-random's resource_password: all
 * attributes RequiresReplace), read returns the state as is.
 *
 * Launched by the engine as the plugin `pulumi-resource-random` (the
 * wrapper in stand-ins/bin/), version from the SDK's request.
 */
import * as pulumi from "@pulumi/pulumi";
import { randomInt } from "node:crypto";
import { urnType, wrapSecret } from "./wire";

const RANDOM_PASSWORD = "random:index/randomPassword:RandomPassword";
const UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const LOWER = "abcdefghijklmnopqrstuvwxyz";
const NUMERIC = "0123456789";
const SPECIAL = "!@#$%&*()-_=+[]{}<>:?";
const INPUTS = ["length", "special", "upper", "lower", "numeric", "number", "overrideSpecial", "keepers"] as const;

function password(inputs: Record<string, unknown>): string {
    const length = Number(inputs.length);
    if (!Number.isInteger(length) || length < 1)
        throw new Error(`RandomPassword: length must be a positive integer, got ${String(inputs.length)}`);
    const on = (key: string) => inputs[key] !== false;
    const alphabet =
        (on("upper") ? UPPER : "") +
        (on("lower") ? LOWER : "") +
        (on("numeric") && on("number") ? NUMERIC : "") +
        (on("special") ? (typeof inputs.overrideSpecial === "string" ? inputs.overrideSpecial : SPECIAL) : "");
    return Array.from({ length }, () => alphabet[randomInt(alphabet.length)]).join("");
}

const provider: pulumi.provider.Provider = {
    version: "0.0.0-stand-in",
    async check(_urn, _olds, news) {
        return { inputs: news };
    },
    async diff(_id, _urn, olds, news) {
        const changed = INPUTS.filter((k) => JSON.stringify(olds[k] ?? null) !== JSON.stringify(news[k] ?? null));
        return { changes: changed.length > 0, replaces: changed, deleteBeforeReplace: false };
    },
    async create(urn, inputs) {
        if (urnType(urn) !== RANDOM_PASSWORD) {
            throw new Error(`random stand-in: unsupported resource ${urn}`);
        }
        const result = password(inputs);
        return { id: "none", outs: { ...inputs, result: wrapSecret(result), bcryptHash: wrapSecret("") } };
    },
};

pulumi.provider.main(provider, process.argv.slice(2)).catch((err: unknown) => {
    console.error(err);
    process.exit(1);
});
