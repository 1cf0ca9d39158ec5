import { spawnSync } from "child_process";

/** First line a tool prints about its version (nginx and wrk print it on stderr; wrk -v exits 1). */
export function toolVersion(cmd: string, args: string[]): string {
    const r = spawnSync(cmd, args, { encoding: "utf8" });
    return `${r.stdout ?? ""}${r.stderr ?? ""}`
        .split("\n")[0]
        .replace(/ - https?:\/\/\S+$/, "")
        .replace(/ Copyright.*$/, "")
        .trim();
}
