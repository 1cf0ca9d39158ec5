/**
 * Secret values on the provider wire: @pulumi/pulumi's provider server hands
 * a provider the engine's properties as plain JavaScript with secrets in the
 * SDK's signature object, and sends back whatever the provider returns, so a
 * value the provider wraps this way is a secret in the engine's state.
 */
import { isSecret, SECRET_SIG_KEY, SECRET_SIG_VALUE } from "../../support/pulumi-mocks";

export function wrapSecret(value: unknown): Record<string, unknown> {
    return { [SECRET_SIG_KEY]: SECRET_SIG_VALUE, value };
}

/** The value with every secret wrapper removed, and whether any was found. */
export function unwrapSecrets(value: unknown): { value: unknown; secret: boolean } {
    if (isSecret(value)) return { value: unwrapSecrets((value as { value: unknown }).value).value, secret: true };
    if (Array.isArray(value)) {
        const items = value.map(unwrapSecrets);
        return { value: items.map((i) => i.value), secret: items.some((i) => i.secret) };
    }
    if (typeof value === "object" && value !== null) {
        const entries = Object.entries(value).map(([k, v]) => [k, unwrapSecrets(v)] as const);
        return { value: Object.fromEntries(entries.map(([k, v]) => [k, v.value])), secret: entries.some(([, v]) => v.secret) };
    }
    return { value, secret: false };
}

/** The resource type in a URN (`urn:pulumi:stack::project::parent$type::name`): the last type after any parents. */
export function urnType(urn: string): string {
    return (urn.split("::")[2] ?? "").split("$").pop() ?? "";
}
