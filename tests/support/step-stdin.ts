/*
 * A step's stdin as the component builds it (components/scripts.ts,
 * stepStdin): the veza-step/1 header, a blank line, the payload.
 */

/** Splits a step's stdin into its veza-step/1 header fields and payload. */
export function parseStepStdin(stdin: string): { header: Record<string, string>; payload: string } {
    const end = stdin.indexOf("\n\n");
    const lines = stdin.slice(0, end).split("\n");
    if (end < 0 || lines[0] !== "veza-step/1")
        throw new Error(`stdin does not start with a veza-step/1 header: ${JSON.stringify(stdin.slice(0, 40))}`);
    const header: Record<string, string> = {};
    for (const line of lines.slice(1)) header[line.slice(0, line.indexOf("="))] = line.slice(line.indexOf("=") + 1);
    return { header, payload: stdin.slice(end + 2) };
}

/** The same stdin with some header fields, or the payload, replaced (fault injection, faster waits). */
export function withHeader(stdin: string, fields: Record<string, string>, newPayload?: string): string {
    const { header, payload } = parseStepStdin(stdin);
    const merged = { ...header, ...fields };
    return ["veza-step/1", ...Object.entries(merged).map(([k, v]) => `${k}=${v}`), "", ""].join("\n") + (newPayload ?? payload);
}
