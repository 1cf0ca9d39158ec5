/**
 * Runs one program-running Pulumi CLI command (`preview`, `up`) with this
 * repository's stack program served in-process, in place of the Node.js
 * language host, which cannot be built here: its Go module
 * (github.com/pulumi/pulumi/sdk/nodejs/cmd/pulumi-language-nodejs/v3) is not
 * served by the Go module proxy these machines reach (403 on every version).
 *
 * This is exactly what the Automation API does for inline programs
 * (@pulumi/pulumi automation/stack.js, `up`/`preview`: a LanguageServer on
 * 127.0.0.1 and `--client=127.0.0.1:PORT --exec-kind auto.inline`), so the
 * CLI, its engine, the providers and the state are the real ones; only the
 * program's host process differs from `pulumi up`'s (which would start
 * pulumi-language-nodejs, which runs the same program through
 * @pulumi/pulumi/cmd/run).
 *
 *   ts-node tests/engine/inline-host.ts PROGRAM.ts -- <pulumi args...>
 *
 * The CLI runs with this process's cwd and environment; its exit status is ours.
 */
import * as grpc from "@grpc/grpc-js";
import { spawn } from "node:child_process";
import * as path from "node:path";

// Internal modules of @pulumi/pulumi: the automation API's own language server and gRPC service.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { LanguageServer } = require("@pulumi/pulumi/automation/server");
// eslint-disable-next-line @typescript-eslint/no-require-imports
const langrpc = require("@pulumi/pulumi/proto/language_grpc_pb");
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { grpcChannelOptions } = require("@pulumi/pulumi/runtime/settings");

async function main(argv: string[]): Promise<number> {
    const sep = argv.indexOf("--");
    if (sep !== 1) throw new Error("usage: inline-host.ts PROGRAM.ts -- <pulumi args...>");
    const programPath = path.resolve(argv[0]);
    const pulumiArgs = argv.slice(sep + 1);

    // The stack program's module exports are its stack outputs, as under the language host.
    const program = async () => import(programPath);
    const server = new grpc.Server({ ...grpcChannelOptions });
    const languageServer = new LanguageServer(program);
    server.addService(langrpc.LanguageRuntimeService, languageServer);
    const port = await new Promise<number>((resolve, reject) =>
        server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    const cli = spawn(process.env.PULUMI_BIN ?? "pulumi", [...pulumiArgs, `--client=127.0.0.1:${port}`, "--exec-kind", "auto.inline"], {
        stdio: "inherit",
    });
    const code = await new Promise<number>((resolve, reject) => {
        cli.on("error", reject);
        cli.on("close", (c, signal) => resolve(c ?? (signal ? 128 : 1)));
    });
    server.forceShutdown();
    return code;
}

main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
        console.error(`inline-host: ${err instanceof Error ? err.message : String(err)}`);
        process.exit(2);
    },
);
