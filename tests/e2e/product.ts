/**
 * Runs the product's own provisioning steps against the lab: builds
 * HaproxyLoadBalancer under `pulumi.runtime.setMocks`, captures the command
 * resources it registers (`<name>-container`, `<name>-tls`, `<name>-config`)
 * and executes their scripts exactly as @pulumi/command's local provider
 * would: `/bin/sh -c <script>` with the registered environment and stdin.
 *
 * The mocks must be installed ONCE per test file, before the component module
 * is loaded: call `installProductMocks()` at the top of the test file, then
 * `buildSteps()` as often as needed (each build under a new component name).
 */
import { spawn } from "node:child_process";
import { isDeepStrictEqual } from "node:util";
import { installMocks, isSecret, registeredAll, Registered } from "../support/pulumi-mocks";
import type { HaproxyLoadBalancerArgs } from "../../components";

let registered: Registered[] | undefined;

/** Install the Pulumi mocks (idempotent: the mock monitor is installed once per module registry). */
export function installProductMocks(): Registered[] {
  if (!registered) registered = installMocks();
  return registered;
}

/** Deep-unwrap every secret wrapper in a registered input. */
export function deepUnwrap(value: unknown): unknown {
  if (isSecret(value)) return deepUnwrap((value as { value: unknown }).value);
  if (Array.isArray(value)) return value.map(deepUnwrap);
  if (typeof value === "object" && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, deepUnwrap(v)]));
  }
  return value;
}

/** One registered command resource, inputs unwrapped. */
export interface StepCommand {
  /** Registered resource name, e.g. `lab1-container`. */
  resource: string;
  type: string;
  create: string;
  update: string;
  delete: string;
  environment: Record<string, string>;
  stdin: string;
  interpreter: string[];
  /** Every registered input, unwrapped (for "would Pulumi run this step?" comparisons). */
  inputs: Record<string, unknown>;
}

export interface ProductSteps {
  container: StepCommand;
  tls?: StepCommand;
  config: StepCommand;
}

function toStep(r: Registered): StepCommand {
  const inputs = deepUnwrap(r.inputs) as Record<string, unknown>;
  const str = (k: string): string => (typeof inputs[k] === "string" ? (inputs[k] as string) : "");
  return {
    resource: r.name,
    type: r.type,
    create: str("create"),
    update: str("update"),
    delete: str("delete"),
    environment: (inputs.environment ?? {}) as Record<string, string>,
    stdin: str("stdin"),
    interpreter: (inputs.interpreter ?? []) as string[],
    inputs,
  };
}

/**
 * Build the component under mocks as `componentName` and return its registered
 * steps. Each call must use a new component name (URNs must stay unique in
 * one mock run).
 */
export async function buildSteps(componentName: string, args: HaproxyLoadBalancerArgs): Promise<ProductSteps> {
  const reg = installProductMocks();
  // Loaded lazily, after the mocks are installed, as the SDK requires.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { HaproxyLoadBalancer } = require("../../components") as typeof import("../../components");
  const lb = new HaproxyLoadBalancer(componentName, args);
  await registeredAll([lb.containerCommand, lb.configCommand, ...(lb.tlsCommand ? [lb.tlsCommand] : [])]);
  const find = (suffix: string): Registered | undefined => {
    const found = reg.filter((r) => r.name === `${componentName}-${suffix}`);
    if (found.length > 1) throw new Error(`${found.length} resources named ${componentName}-${suffix}`);
    return found[0];
  };
  const container = find("container");
  const config = find("config");
  if (!container || !config) throw new Error(`component ${componentName} did not register its container and config steps`);
  const tls = find("tls");
  const steps: ProductSteps = { container: toStep(container), config: toStep(config) };
  if (tls) steps.tls = toStep(tls);
  for (const s of [steps.container, steps.config, ...(steps.tls ? [steps.tls] : [])]) {
    if (s.type !== "command:local:Command") throw new Error(`${s.resource} is ${s.type}; the lab runs local commands`);
    if (!isDeepStrictEqual(s.interpreter, ["/bin/sh", "-c"])) {
      throw new Error(`${s.resource} interpreter is ${JSON.stringify(s.interpreter)}, expected ["/bin/sh","-c"]`);
    }
  }
  return steps;
}

export interface StepRun {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

export type StepOp = "create" | "update" | "delete";

/**
 * Run one operation of a step like the local command provider: the registered
 * interpreter (`/bin/sh -c`) with the script as its argument, the registered
 * environment (plus PATH/HOME so `incus` is found), the registered stdin.
 * `override` replaces environment entries or stdin (for fault injection).
 */
export function runStep(
  step: StepCommand,
  op: StepOp,
  override: { environment?: Record<string, string>; stdin?: string; timeoutMs?: number } = {},
): Promise<StepRun> {
  const script = step[op];
  if (!script) throw new Error(`${step.resource} has no ${op} script`);
  const [shell, ...shellArgs] = step.interpreter;
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    HOME: process.env.HOME ?? "/root",
    ...step.environment,
    ...(override.environment ?? {}),
  };
  const stdin = override.stdin ?? step.stdin;
  const timeoutMs = override.timeoutMs ?? 180_000;
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(shell, [...shellArgs, script], { env, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      stderr += `\n[${step.resource} ${op} killed after ${timeoutMs} ms]`;
      child.kill("SIGKILL");
    }, timeoutMs);
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr, ms: Date.now() - started });
    });
    child.stdin.on("error", () => undefined);
    child.stdin.end(stdin);
  });
}

/** Like runStep but throws with the step's stderr on a non-zero exit. */
export async function runStepOk(step: StepCommand, op: StepOp, override?: Parameters<typeof runStep>[2]): Promise<StepRun> {
  const r = await runStep(step, op, override);
  if (r.code !== 0) {
    throw new Error(`${step.resource} ${op} failed (exit ${r.code}) after ${r.ms} ms:\n${r.stderr.trim()}\n${r.stdout.trim()}`);
  }
  return r;
}
