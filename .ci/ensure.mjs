// Bootstrap for `npm start` and `npm test` on a fresh machine, using Node built-ins only
// (it runs before any dependency is installed): installs the npm dependencies when they
// are missing, and redis-server with apt-get when it is missing and this is a root shell
// (for `npm test` also Chromium, which the admin page's browser test drives).
// Set EDGECACHE_NO_INSTALL=1 to only check.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";

const check = process.env.EDGECACHE_NO_INSTALL === "1";
const run = (cmd, args, env = process.env) => execFileSync(cmd, args, { stdio: "inherit", env });
const works = (cmd, args) => spawnSync(cmd, args, { stdio: "ignore" }).status === 0;

if (!existsSync("node_modules/.package-lock.json")) {
  if (check) {
    console.error("Dependencies are not installed: run `npm ci`.");
    process.exit(1);
  }
  console.log("Installing npm dependencies (npm ci)...");
  run("npm", ["ci", "--no-audit", "--no-fund"]);
}

if (!works("redis-server", ["--version"])) {
  const root = typeof process.getuid === "function" && process.getuid() === 0;
  if (check || !root || !works("apt-get", ["--version"])) {
    console.error(
      "redis-server is not installed. Install it with `sudo apt-get install -y redis-server` " +
        "(Debian/Ubuntu) or `brew install redis` (macOS), then run this again.",
    );
    process.exit(1);
  }
  console.log("Installing redis-server with apt-get (EDGECACHE_NO_INSTALL=1 skips this)...");
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  run("apt-get", ["update", "-qq"], env);
  run("apt-get", ["install", "-y", "-qq", "redis-server"], env);
}

// Only the tests need a browser: `npm start` and the benches do without it.
if (process.env.npm_lifecycle_event === "test" && !existsSync("/usr/bin/chromium")) {
  const root = typeof process.getuid === "function" && process.getuid() === 0;
  if (check || !root || !works("apt-get", ["--version"])) {
    // The other tests can still run; that one fails and says why.
    console.warn(
      "Chromium is not installed at /usr/bin/chromium, so test/hono/admin-page.test.ts will fail. " +
        "Install it with `sudo apt-get install -y chromium` (Debian).",
    );
  } else {
    console.log("Installing chromium with apt-get (EDGECACHE_NO_INSTALL=1 skips this)...");
    const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
    run("apt-get", ["update", "-qq"], env);
    run("apt-get", ["install", "-y", "-qq", "chromium"], env);
  }
}
