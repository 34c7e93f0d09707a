// appmixer-auth for Node: startServer() runs the binary this package ships on a free port with an
// in-memory database and the fixture API on, for a test suite. Built by packaging/build-npm.sh.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/** The executable shipped in this package. */
export const binary = fileURLToPath(new URL('./bin/appmixer-auth', import.meta.url));

// Every server started here gets these settings: a test suite wants fast hashes (cost 4, not
// 10) and fails sign-ins on purpose, so the brute-force limit is off.
const TEST_SETTINGS = '[auth]\nbcrypt_cost = 4\nmax_failed_attempts = 0\n';

/**
 * Starts appmixer-auth on 127.0.0.1, a free port, `:memory:`, with the fixture API on; resolves
 * to { url, stop, reset } once the server prints `listening on …`.
 */
export async function startServer({ users = [], env = {}, args = [], binary: exe = binary, timeout = 10_000 } = {}) {
  // Always a settings file of our own: an appmixer.toml in the current directory belongs to
  // someone else and must not leak into a test server.
  const workdir = mkdtempSync(path.join(tmpdir(), 'appmixer-auth-'));
  const cleanUp = () => rmSync(workdir, { recursive: true, force: true });
  const config = path.join(workdir, 'appmixer.toml');
  try {
    writeFileSync(config, TEST_SETTINGS + users.map(userToml).join(''));
  } catch (err) {
    cleanUp();
    throw err;
  }
  const child = spawn(exe, ['--config', config, '--port', '0', '--db', ':memory:', '--fixture-api', ...args], {
    cwd: workdir,
    env: { ...process.env, RUST_LOG: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const url = await new Promise((resolve, reject) => {
    const fail = (err) => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      cleanUp();
      reject(err);
    };
    const timer = setTimeout(() => fail(new Error(`appmixer-auth did not start in ${timeout} ms`)), timeout);
    child.once('error', fail);
    child.once('exit', (code) => fail(new Error(`appmixer-auth exited with ${code} (its stderr says why)`)));
    createInterface({ input: child.stdout }).once('line', (line) => {
      clearTimeout(timer);
      child.removeAllListeners('exit');
      child.removeAllListeners('error');
      if (!line.startsWith('listening on ')) {
        fail(new Error(`appmixer-auth said ${JSON.stringify(line)} instead of "listening on …"`));
      } else {
        resolve(line.slice('listening on '.length));
      }
    });
  });
  // Keep reading stdout so that a full pipe can never stall the server.
  child.stdout.resume();
  const exited = new Promise((done) => child.once('exit', done));

  const post = async (route, body) => {
    const res = await fetch(url + route, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
    if (!res.ok) throw new Error(`POST ${route}: ${res.status} ${await res.text()}`);
  };
  return {
    url,
    /** Back to the declared users only, and the clock back to real time. */
    async reset() {
      await post('/_fixtures/reset', {});
      await post('/_fixtures/clock', { reset: true });
    },
    /** Stops the server (SIGTERM) and removes its settings file. */
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await exited;
      }
      cleanUp();
    },
  };
}

// A declared user as a `[[users]]` table of the settings file.
function userToml(user) {
  const lines = Object.entries(user)
    .filter(([, v]) => v !== undefined && v !== null)
    .map(([k, v]) => `${tomlKey(k)} = ${tomlValue(v)}\n`);
  return `\n[[users]]\n${lines.join('')}`;
}

function tomlKey(key) {
  return /^[A-Za-z0-9_-]+$/.test(key) ? key : tomlString(key);
}

// A JSON string is a TOML basic string, except that TOML also wants DEL escaped.
function tomlString(s) {
  return JSON.stringify(s).replaceAll('\x7f', '\\u007f');
}

function tomlValue(v) {
  if (typeof v === 'string') return tomlString(v);
  if (typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v))) return String(v);
  if (Array.isArray(v)) return `[${v.map(tomlValue).join(', ')}]`;
  if (typeof v === 'object') {
    const items = Object.entries(v).filter(([, x]) => x !== undefined && x !== null);
    return `{${items.map(([k, x]) => `${tomlKey(k)} = ${tomlValue(x)}`).join(', ')}}`;
  }
  throw new TypeError(`cannot write ${typeof v} into a settings file: ${String(v)}`);
}
