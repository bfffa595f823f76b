// What every Node test file shares: the clock unit, the Python to run, a
// Python fixture server as a child process, and waiting for an event.

import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

/** One test time unit in ms; a slow machine stretches every wait with MINISIO_TEST_UNIT. */
export const UNIT = Number(process.env.MINISIO_TEST_UNIT ?? "1") * 1000;
/** The same stretch, for server settings given in seconds. */
export const SCALE = UNIT / 1000;
export const PYTHON =
  process.env.MINISIO_PYTHON ?? fileURLToPath(new URL("../../.venv/bin/python", import.meta.url));
/** The repository's root folder (with a trailing slash). */
export const REPO = fileURLToPath(new URL("../../", import.meta.url));

const children = new Set();
// Last resort if a run is interrupted before its after() hooks ran.
process.once("exit", () => {
  for (const child of children) child.kill("SIGKILL");
});

/**
 * Run `python args...` from the repository root and resolve once its stdout
 * matches `ready` (a RegExp whose first group is the server's URL).
 *
 * Resolves to `{ url, port, proc, stderr(), freeze(), thaw(), stop() }`;
 * rejects with the child's stderr if it exits or stays silent for 10 units.
 */
export function startPython(args, { ready = /listening (http:\/\/127\.0\.0\.1:\d+)/, env } = {}) {
  const proc = spawn(PYTHON, args, {
    cwd: REPO,
    stdio: ["ignore", "pipe", "pipe"],
    env: env ? { ...process.env, ...env } : process.env,
  });
  children.add(proc);
  let stdout = "";
  let stderr = "";
  proc.stderr.setEncoding("utf8").on("data", (chunk) => (stderr += chunk));
  const exited = new Promise((resolve) =>
    proc.once("exit", (code, signal) => {
      children.delete(proc);
      resolve({ code, signal });
    }),
  );
  const running = () => proc.exitCode === null && proc.signalCode === null;
  return new Promise((resolve, reject) => {
    let done = false;
    const fail = (why) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      reject(new Error(`${PYTHON} ${args.join(" ")}: ${why}\nstderr:\n${stderr}`));
    };
    const timer = setTimeout(() => fail("did not print its URL in time"), 10 * UNIT);
    proc.once("error", (error) => fail(error.message));
    exited.then(({ code, signal }) => fail(`exited (${code ?? signal}) before it was ready`));
    proc.stdout.setEncoding("utf8").on("data", (chunk) => {
      if (done) return;
      stdout += chunk;
      const match = ready.exec(stdout);
      if (!match) return;
      done = true;
      clearTimeout(timer);
      const url = match[1];
      resolve({
        url,
        port: Number(new URL(url).port),
        proc,
        stderr: () => stderr,
        /** SIGSTOP: the server answers nothing (no pings, no polls) until thaw(). */
        freeze() {
          if (running()) proc.kill("SIGSTOP");
        },
        thaw() {
          if (running()) proc.kill("SIGCONT");
        },
        /** SIGTERM (a clean "server shutting down"), SIGKILL if it lingers. */
        async stop() {
          if (!running()) return exited;
          proc.kill("SIGCONT"); // a frozen server could not handle the SIGTERM
          proc.kill("SIGTERM");
          const kill = setTimeout(() => proc.kill("SIGKILL"), 3 * UNIT);
          const result = await exited;
          clearTimeout(kill);
          return result;
        },
      });
    });
  });
}

/** The arguments of the next `event` on `emitter`, or a rejection after `ms`. */
export function next(emitter, event, ms = 5 * UNIT) {
  const promise = new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(event, listener);
      reject(new Error(`no ${event} within ${ms} ms`));
    }, ms);
    timer.unref(); // a race's loser must not hold the process open
    function listener(...args) {
      clearTimeout(timer);
      emitter.off(event, listener);
      resolve(args);
    }
    emitter.on(event, listener);
  });
  promise.catch(() => {});
  return promise;
}

/** Chromium as Debian ships it, for playwright-core's `chromium.launch()`. */
export const CHROMIUM = {
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
  ],
};
