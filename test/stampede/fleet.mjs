// Instance processes for the cross-process stampedes (test/stampede/run.mjs and
// bench/stampede.mjs): each prints "ready", lines of its own, then "result {json}", and exits.
import { spawn } from "node:child_process";

/**
 * Starts `count` processes of `script` with `config` and waits until every one is ready.
 * `onLine` gets each line a process prints besides "ready" and its result, with the
 * process's index. `go()` tells all
 * of them to start at once and resolves with their results, when "go" was sent and when the
 * last result arrived; `kill()` ends them.
 * @param {string} script
 * @param {unknown} config
 * @param {number} count
 * @param {(line: string, index: number) => void} onLine
 */
export async function fleet(script, config, count, onLine) {
  let lastResult = 0;
  const children = Array.from({ length: count }, (_, index) => {
    const child = spawn(process.execPath, [script, JSON.stringify(config)], {
      stdio: ["pipe", "pipe", "inherit"],
    });
    let out = "";
    let result;
    let markReady;
    const ready = new Promise((resolve, reject) => {
      markReady = resolve;
      child.once("exit", (code) => reject(new Error(`instance exited early (${code})`)));
    });
    child.stdout.on("data", (chunk) => {
      out += chunk;
      let nl = out.indexOf("\n");
      while (nl >= 0) {
        const line = out.slice(0, nl);
        out = out.slice(nl + 1);
        if (line === "ready") markReady(undefined);
        else if (line.startsWith("result ")) {
          result = JSON.parse(line.slice(7));
          lastResult = performance.now();
        } else onLine(line, index);
        nl = out.indexOf("\n");
      }
    });
    const done = new Promise((resolve, reject) => {
      child.once("exit", (code) => {
        if (code !== 0 || result === undefined) {
          return reject(new Error(`instance exited with ${code}`));
        }
        resolve(result);
      });
    });
    ready.catch(() => {});
    done.catch(() => {});
    return { child, ready, done };
  });
  const kill = () => {
    for (const c of children) c.child.kill();
  };
  try {
    await Promise.all(children.map((c) => c.ready));
  } catch (err) {
    kill();
    throw err;
  }
  return {
    async go() {
      const started = performance.now();
      // As close to "at once" as separate processes get.
      for (const c of children) c.child.stdin.write("go\n");
      const results = await Promise.all(children.map((c) => c.done));
      return { results, started, lastResult };
    },
    kill,
  };
}
