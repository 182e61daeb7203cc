/**
 * The packed package in fresh projects, as a user installs it: `npm pack`, then for the
 * oldest and the newest supported hono and @upstash/redis, a project that installs the
 * tarball and those versions from the npm registry. In each, a user's file
 * (`test/package/app.ts`: `cached()`, `cacheAdmin()` mounted with `app.route`,
 * `upstashStore(new Redis(...))`) must typecheck under `--strict` with the libraries' own
 * declarations checked, and `test/package/run.mjs` must do the same things at run time
 * against the REST bridge.
 *
 * The Worker of docs/cloudflare.md (its `wrangler.toml`, `.dev.vars`, `tsconfig.json` and
 * `src/index.ts`) and the README's Worker are built from their snippets in such a project and
 * must typecheck after `wrangler types`, as the docs say.
 *
 * Needs the npm registry. The projects live under the system's temp directory, keyed by
 * the tarball's hash and the versions, so a second run of an unchanged build installs
 * nothing.
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import {
  copyFile,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, inject, it } from "vitest";

const root = fileURLToPath(new URL("..", import.meta.url));
const fixtures = join(root, "test", "package");
const tsc = join(root, "node_modules", ".bin", "tsc");
const wrangler = join(root, "node_modules", ".bin", "wrangler");
const work = join(tmpdir(), "edgecache-package-test");

/** One install from the registry on a busy two-core machine. */
const INSTALL_TIMEOUT = 180_000;

const matrix = [
  // The lowest versions package.json admits, and those the issue was found with.
  { hono: "4.6.0", redis: "1.34.0", otel: "1.4.0" },
  { hono: "4.6.20", redis: "1.34.9", otel: "1.7.0" },
  { hono: "latest", redis: "latest", otel: "latest" },
];

interface Outcome {
  code: number | string | null;
  stdout: string;
  stderr: string;
}

function run(
  command: string,
  args: string[],
  cwd: string,
  options: { env?: Record<string, string>; timeout?: number } = {},
): Promise<Outcome> {
  return new Promise((resolve) => {
    execFile(
      command,
      args,
      {
        cwd,
        env: { ...process.env, ...options.env },
        timeout: options.timeout ?? 60_000,
        killSignal: "SIGKILL",
        maxBuffer: 16 << 20,
      },
      (error, stdout, stderr) => {
        resolve({ code: error ? (error.code ?? error.signal ?? "killed") : 0, stdout, stderr });
      },
    );
  });
}

const ok = async (outcome: Promise<Outcome>, what: string): Promise<Outcome> => {
  const o = await outcome;
  if (o.code !== 0) throw new Error(`${what} failed (${o.code}):\n${o.stdout}\n${o.stderr}`);
  return o;
};

let tarball: string;
let hash: string;

beforeAll(async () => {
  await stat(join(root, "dist", "index.js")).catch(() => {
    throw new Error("dist/ is missing: run `npm run build` before this test");
  });
  await mkdir(work, { recursive: true });
  // Projects of builds not tested for a day go; checkouts running at once keep theirs.
  for (const entry of await readdir(work)) {
    const path = join(work, entry);
    const age = await stat(path).then(
      (s) => Date.now() - s.mtimeMs,
      () => 0,
    );
    if (age > 86_400_000) await rm(path, { recursive: true, force: true });
  }
  // Packed into a directory of this run's own, so that runs at once cannot mix tarballs.
  const packs = await mkdtemp(join(work, "pack-"));
  const packed = await ok(
    run("npm", ["pack", "--json", "--pack-destination", packs], root),
    "npm pack",
  );
  const [{ filename }] = JSON.parse(packed.stdout) as [{ filename: string }];
  const bytes = await readFile(join(packs, filename));
  hash = createHash("sha256").update(bytes).digest("hex").slice(0, 16);
  tarball = join(work, `${hash}.tgz`);
  await writeFile(`${tarball}.${process.pid}`, bytes);
  await rename(`${tarball}.${process.pid}`, tarball);
  await rm(packs, { recursive: true, force: true });
}, 60_000);

/** A project with the tarball and these versions installed, reused while the build is unchanged. */
async function project(versions: { hono: string; redis: string; otel: string }): Promise<string> {
  const dir = join(
    work,
    `${hash}-hono@${versions.hono}-redis@${versions.redis}-otel@${versions.otel}`,
  );
  const done = join(dir, ".installed");
  if (versions.hono === "latest" || versions.redis === "latest") {
    // "latest" moves: install again when the cached project is older than a day.
    const age = await stat(done).then(
      (s) => Date.now() - s.mtimeMs,
      () => Infinity,
    );
    if (age > 86_400_000) await rm(dir, { recursive: true, force: true });
  }
  if (!(await stat(done).catch(() => undefined))) {
    // Installed into a fresh directory, then moved into place: an interrupted install
    // never passes for a finished one.
    const fresh = `${dir}.${process.pid}`;
    await rm(fresh, { recursive: true, force: true });
    await mkdir(fresh, { recursive: true });
    const tgz = join(fresh, "edgecache.tgz");
    await copyFile(tarball, tgz);
    await writeFile(
      join(fresh, "package.json"),
      `${JSON.stringify({ name: "user-project", private: true, type: "module" })}\n`,
    );
    await ok(
      run(
        "npm",
        [
          "install",
          "--no-audit",
          "--no-fund",
          "--no-package-lock",
          "./edgecache.tgz",
          `hono@${versions.hono}`,
          `@upstash/redis@${versions.redis}`,
          `@opentelemetry/api@${versions.otel}`,
        ],
        fresh,
        { timeout: INSTALL_TIMEOUT },
      ),
      `npm install in ${fresh}`,
    );
    await writeFile(join(fresh, ".installed"), "");
    await rm(dir, { recursive: true, force: true });
    await rename(fresh, dir);
  }
  for (const file of ["app.ts", "run.mjs", "tsconfig.json"]) {
    await copyFile(join(fixtures, file), join(dir, file));
  }
  return dir;
}

/** The installed version (some releases of @upstash/redis spell it "v1.34.0"). */
async function installed(dir: string, name: string): Promise<string> {
  const manifest = join(dir, "node_modules", name, "package.json");
  const { version } = JSON.parse(await readFile(manifest, "utf8")) as { version: string };
  return version.replace(/^v/, "");
}

describe("the packed package in a fresh project", () => {
  it.each(matrix)(
    "hono $hono, @upstash/redis $redis and @opentelemetry/api $otel: the user's code typechecks under --strict and runs",
    async (versions) => {
      const dir = await project(versions);
      // One copy of each: the project's, never a second one under edgecache/node_modules.
      const hono = await installed(dir, "hono");
      const redis = await installed(dir, "@upstash/redis");
      if (versions.hono !== "latest") expect(hono).toBe(versions.hono);
      if (versions.redis !== "latest") expect(redis).toBe(versions.redis);
      if (versions.otel !== "latest") {
        expect(await installed(dir, "@opentelemetry/api")).toBe(versions.otel);
      }
      for (const nested of ["hono", "@upstash/redis"]) {
        await expect(
          stat(join(dir, "node_modules", "edgecache", "node_modules", nested)),
        ).rejects.toThrow();
      }

      const typecheck = await run(tsc, ["-p", "tsconfig.json"], dir);
      expect(`${typecheck.stdout}${typecheck.stderr}`).toBe("");
      expect(typecheck.code).toBe(0);

      const outcome = await ok(
        run(process.execPath, ["run.mjs"], dir, {
          env: { BRIDGE_URL: inject("bridgeUrl"), BRIDGE_TOKEN: inject("bridgeToken") },
        }),
        `run.mjs with hono ${hono} and @upstash/redis ${redis}`,
      );
      const lines = outcome.stdout.trim().split("\n");
      expect(JSON.parse(lines[lines.length - 1]!)).toEqual({
        roundTrip: "Ada 1815-12-10T00:00:00.000Z",
        batch: [
          { name: "Ada", born: new Date(Date.UTC(1815, 11, 10)).toISOString() },
          "loaded b:1",
          "loaded b:2",
          1,
        ],
        cacheStatus: [
          "edgecache; fwd=miss; fwd-status=200; stored; ttl=60",
          expect.stringMatching(/^edgecache; hit; ttl=(59|60)$/),
        ],
        body: { id: "1" },
        runs: 1,
        stats: [200, true],
        login: [303, "/_cache", 200],
        timeout: "EC_STORE_TIMEOUT",
        timeoutWithin1s: true,
      });
    },
    INSTALL_TIMEOUT + 60_000,
  );
});

/** The fenced code blocks of a Markdown file whose first line is `marker`, that line included. */
async function snippets(file: string, marker: string): Promise<string[]> {
  const text = await readFile(join(root, file), "utf8");
  const blocks = [...text.matchAll(/^```[a-z]*\n([\s\S]*?)^```$/gm)].map((m) => m[1]!);
  return blocks.filter((block) => block.split("\n", 1)[0] === marker);
}

async function snippet(file: string, marker: string): Promise<string> {
  const found = await snippets(file, marker);
  expect(found, `one block of ${file} starting with "${marker}"`).toHaveLength(1);
  return found[0]!;
}

describe("the Worker of the docs, from their snippets", () => {
  it(
    "docs/cloudflare.md's and the README's Worker typecheck under --strict after `wrangler types`",
    async () => {
      const dir = join(await project(matrix[matrix.length - 1]!), "worker");
      await rm(dir, { recursive: true, force: true });
      await mkdir(join(dir, "src"), { recursive: true });
      const doc = "docs/cloudflare.md";
      await writeFile(join(dir, "wrangler.toml"), await snippet(doc, "# wrangler.toml"));
      await writeFile(join(dir, ".dev.vars"), await snippet(doc, "# .dev.vars"));
      await writeFile(join(dir, "tsconfig.json"), await snippet(doc, "// tsconfig.json"));
      // As the docs order it: the Worker first, then `wrangler types`, which reads it.
      await writeFile(join(dir, "src", "index.ts"), await snippet(doc, "// src/index.ts"));
      await ok(
        run(wrangler, ["types"], dir, {
          env: { WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false" },
        }),
        "wrangler types",
      );
      const env = await readFile(join(dir, "worker-configuration.d.ts"), "utf8");
      for (const name of ["UPSTASH_REDIS_REST_TOKEN", "EDGECACHE_ADMIN_TOKEN"]) {
        expect(env).toContain(name);
      }
      expect(env).toContain(
        'EDGECACHE_HUB: DurableObjectNamespace<import("./src/index").InvalidationHub>',
      );
      for (const [file, marker] of [
        [doc, "// src/index.ts"],
        [doc, "// src/index.ts (without Hono)"],
        ["README.md", "// src/index.ts"],
      ] as const) {
        await writeFile(join(dir, "src", "index.ts"), await snippet(file, marker));
        const typecheck = await run(tsc, ["-p", "tsconfig.json"], dir);
        expect(`${file}: ${typecheck.stdout}${typecheck.stderr}`).toBe(`${file}: `);
        expect(typecheck.code).toBe(0);
      }
    },
    INSTALL_TIMEOUT + 60_000,
  );
});
