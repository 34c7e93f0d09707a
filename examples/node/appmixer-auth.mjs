// Starts appmixer-auth for a test suite: a fresh in-memory server on a free port, with the
// fixture API on. Copy this file into your own suite.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));

/** The binary: $APPMIXER_AUTH_BIN, else this repository's debug build. */
export const binary =
  process.env.APPMIXER_AUTH_BIN ?? path.join(here, '..', '..', 'target', 'debug', 'appmixer-auth');

/**
 * Starts the server and resolves to { url, stop } once it prints `listening on …`.
 * `env` adds settings, e.g. { APPMIXER_AUTH__TOKEN_EXPIRATION: '1h' }.
 */
export function startServer({ env = {}, args = [] } = {}) {
  const child = spawn(binary, ['--port', '0', '--db', ':memory:', '--fixture-api', ...args], {
    env: {
      ...process.env,
      APPMIXER_AUTH__BCRYPT_COST: '4', // fast hashes: this is a test
      APPMIXER_AUTH__MAX_FAILED_ATTEMPTS: '0', // tests fail sign-ins on purpose
      RUST_LOG: 'warn',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout });
    const timer = setTimeout(() => reject(new Error('appmixer-auth did not start in 10 s')), 10_000);
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`appmixer-auth exited with ${code}`)));
    lines.once('line', (line) => {
      clearTimeout(timer);
      const url = line.replace(/^listening on /, '');
      const stop = () =>
        new Promise((done) => {
          child.removeAllListeners('exit');
          child.once('exit', () => done());
          child.kill('SIGTERM');
        });
      resolve({ url, stop });
    });
  });
}

/** POST a JSON body; resolves to { status, body }. */
export async function post(url, body, token) {
  const headers = { 'Content-Type': 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  const res = await fetch(url, { method: 'POST', headers, body: JSON.stringify(body) });
  return { status: res.status, body: await res.json() };
}

/** GET with an optional token; resolves to { status, body }. */
export async function get(url, token) {
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  const res = await fetch(url, { headers });
  return { status: res.status, body: await res.json() };
}
