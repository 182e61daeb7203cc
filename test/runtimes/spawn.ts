import { type ChildProcess, spawn } from "node:child_process";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

/** One subscriber process: JSON lines in and out (see subscriber.mjs). */
export interface RuntimeSubscriber {
  runtime: string;
  next(): Promise<unknown>;
  send(msg: unknown): void;
  stop(): void;
}

/**
 * Node, Deno and Bun processes running test/runtimes/subscriber.mjs with `env`; Deno may
 * reach `hosts` only.
 */
export function spawnRuntimes(env: Record<string, string>, hosts: string[]): RuntimeSubscriber[] {
  const bin = (name: string) => join(root, "node_modules", ".bin", name);
  const script = join(root, "test/runtimes/subscriber.mjs");
  const commands: Array<[string, string, string[]]> = [
    ["node", process.execPath, [script]],
    [
      "deno",
      bin("deno"),
      [
        "run",
        "--no-prompt",
        `--allow-net=${hosts.join(",")}`,
        "--allow-env",
        `--allow-read=${root}`,
        "--node-modules-dir=manual",
        script,
      ],
    ],
    ["bun", bin("bun"), ["--no-install", "--no-env-file", script]],
  ];
  return commands.map(([runtime, cmd, args]) => {
    const child: ChildProcess = spawn(cmd, args, {
      cwd: root,
      env: { ...process.env, ...env, RUNTIME: runtime },
      stdio: ["pipe", "pipe", "inherit"],
    });
    const queue: unknown[] = [];
    const waiting: Array<(v: unknown) => void> = [];
    createInterface({ input: child.stdout! }).on("line", (line) => {
      const msg = JSON.parse(line);
      const w = waiting.shift();
      if (w) w(msg);
      else queue.push(msg);
    });
    return {
      runtime,
      next(): Promise<unknown> {
        const msg = queue.shift();
        if (msg !== undefined) return Promise.resolve(msg);
        return new Promise((resolvePromise, reject) => {
          const timer = setTimeout(
            () => reject(new Error(`${runtime} subscriber: no answer`)),
            30_000,
          );
          waiting.push((v) => {
            clearTimeout(timer);
            resolvePromise(v);
          });
        });
      },
      send(msg: unknown) {
        child.stdin!.write(`${JSON.stringify(msg)}\n`);
      },
      stop() {
        child.kill();
      },
    };
  });
}
