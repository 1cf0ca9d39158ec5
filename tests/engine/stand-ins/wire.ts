/**
 * What @pulumi/pulumi's provider server hands a stand-in provider, and takes
 * back: properties as plain JavaScript, secrets in the SDK's signature object
 * (a value the stand-in wraps this way is a secret in the engine's state;
 * tests/support/pulumi-mocks.ts deepUnwrap takes them off), and URNs.
 */
import { SECRET_SIG_KEY, SECRET_SIG_VALUE } from "../../support/pulumi-mocks";

export function wrapSecret(value: unknown): Record<string, unknown> {
    return { [SECRET_SIG_KEY]: SECRET_SIG_VALUE, value };
}

/** The resource type in a URN (`urn:pulumi:stack::project::parent$type::name`): the last type after any parents. */
export function urnType(urn: string): string {
    return (urn.split("::")[2] ?? "").split("$").pop() ?? "";
}
