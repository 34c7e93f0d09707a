// The official `appmixer` CLI (npm `appmixer`, pinned in package.json), unchanged, against
// appmixer-auth: sign-in, the stored token, and how the CLI reads each refusal of `GET /user`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { startServer, post, get } from '../../examples/node/appmixer-auth.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const cli = path.join(here, 'node_modules', '.bin', 'appmixer');

let server;
const homes = [];

before(async () => {
  server = await startServer();
});

after(async () => {
  await server?.stop();
  for (const home of homes) rmSync(home, { recursive: true, force: true });
});

/** A CLI user of their own: an empty home, so an empty configstore. */
function cliUser() {
  const home = mkdtempSync(path.join(tmpdir(), 'appmixer-cli-'));
  homes.push(home);
  const config = path.join(home, '.config', 'configstore', 'appmixer.json');
  /** Runs `appmixer ...args` with `input` on stdin; resolves to { code, out } (stdout + stderr). */
  const run = (args, input = '') =>
    new Promise((resolve, reject) => {
      const child = spawn(cli, args, {
        env: { ...process.env, HOME: home, XDG_CONFIG_HOME: path.join(home, '.config'), GRIDD_URL: server.url },
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      let out = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (out += d));
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      child.once('error', reject);
      child.once('close', (code) => {
        clearTimeout(timer);
        resolve({ code, out });
      });
      child.stdin.end(input);
    });
  const stored = () => JSON.parse(readFileSync(config, 'utf8'));
  const store = (change) => writeFileSync(config, JSON.stringify(change(stored())));
  return { run, stored, store };
}

/** A user made through the API, with a unique name per test. */
async function newUser(name) {
  const user = { username: name, email: `${name}@example.com`, password: `${name}-pass` };
  const { status } = await post(`${server.url}/user`, user);
  assert.equal(status, 200);
  return user;
}

/** Signs `user` in through the CLI, as a person typing the password at its prompt. */
async function login(me, user) {
  const { code, out } = await me.run(['login', user.email], `${user.password}\n`);
  assert.equal(code, 0, out);
  assert.match(out, /Login successful/);
}

/** A new user, and a CLI user of their own signed in as them. */
async function signedIn(name) {
  const user = await newUser(name);
  const me = cliUser();
  await login(me, user);
  return { me, user };
}

test('login by email stores the token and user the server issued', async () => {
  const { me } = await signedIn('ada');

  const { token, user } = me.stored();
  assert.equal(user.email, 'ada@example.com');
  const printed = await me.run(['login', '-t']);
  assert.equal(printed.out.trim(), token);
  const current = await get(`${server.url}/user`, token);
  assert.equal(current.status, 200);
  assert.equal(current.body.id, user.id);
});

test('a second login checks the stored token with GET /user', async () => {
  const { me, user: bob } = await signedIn('bob');
  const again = await me.run(['login', bob.email]);
  assert.equal(again.code, 0, again.out);
  assert.match(again.out, /Already logged in as bob@example\.com/);
});

test('a wrong password and an unknown user fail alike', async () => {
  const cy = await newUser('cy');
  const me = cliUser();
  const wrong = await me.run(['login', cy.email], 'not-the-password\n');
  const unknown = await me.run(['login', 'nobody@example.com'], 'not-the-password\n');
  for (const { code, out } of [wrong, unknown]) {
    assert.equal(code, 1, out);
    assert.match(out, /Invalid credentials/);
  }
});

test('a token signed with another key reads as "logged in against a different URL"', async () => {
  const { me } = await signedIn('di');
  me.store((c) => ({ ...c, token: c.token.slice(0, -4) + (c.token.endsWith('AAAA') ? 'BBBB' : 'AAAA') }));
  const { code, out } = await me.run(['component', 'ls']);
  assert.equal(code, 1);
  assert.match(out, /different URL/);
});

test('expired and not-yet-valid tokens ask to log in again, and login mends them', async () => {
  const { me, user: ed } = await signedIn('ed');
  const now = Math.floor(Date.now() / 1000);
  try {
    // 31 days on: the token has expired. Then back to an hour ago: the token issued in between
    // is not valid yet.
    for (const move of [{ advance: '31d' }, { set: now - 3600 }]) {
      const why = JSON.stringify(move);
      assert.equal((await post(`${server.url}/_fixtures/clock`, move)).status, 200);
      const { code, out } = await me.run(['component', 'ls']);
      assert.equal(code, 1, why);
      assert.match(out, /Use appmixer login <email>/, why);
      assert.doesNotMatch(out, /different URL/, why);
      // The CLI sees the stored token refused and asks for the password again.
      await login(me, ed);
    }
  } finally {
    await post(`${server.url}/_fixtures/clock`, { reset: true });
  }
});

test('a deleted user reads as "User not found at" the server', async () => {
  const { me } = await signedIn('flo');
  // The fixture reset removes every user the settings do not declare.
  assert.equal((await post(`${server.url}/_fixtures/reset`, {})).status, 200);
  const { code, out } = await me.run(['component', 'ls']);
  assert.equal(code, 1);
  assert.match(out, new RegExp(`User not found at ${server.url.replace(/[.]/g, '\\.')}`));
});
