// appmixer-auth for this suite. With the npm package installed (`npm install appmixer-auth`),
// startServer() is the package's: a fresh in-memory server on a free port, with the fixture API
// on, from the binary the package ships; a suite of your own imports it from 'appmixer-auth'
// directly. Inside this repository without the package, the package's source runs the debug
// build, or the binary APPMIXER_AUTH_BIN names.
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));

async function installedPackage() {
  try {
    return await import('appmixer-auth');
  } catch (err) {
    if (err.code === 'ERR_MODULE_NOT_FOUND' && err.message.includes("'appmixer-auth'")) return null;
    throw err;
  }
}

const installed = await installedPackage();
const pkg = installed ?? (await import('../../packaging/npm/index.mjs'));

/** The binary: the package's, else $APPMIXER_AUTH_BIN, else this repository's debug build. */
export const binary = installed
  ? installed.binary
  : (process.env.APPMIXER_AUTH_BIN ?? path.join(here, '..', '..', 'target', 'debug', 'appmixer-auth'));

/**
 * Starts the server and resolves to { url, stop, reset } once it prints `listening on …`.
 * `users` declares users, `env` adds settings, e.g. { APPMIXER_AUTH__TOKEN_EXPIRATION: '1h' }.
 */
export function startServer(options = {}) {
  return pkg.startServer({ binary, ...options });
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
