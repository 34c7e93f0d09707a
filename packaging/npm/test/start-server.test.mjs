// startServer() as installed from the npm tarball (.ci/packages.sh runs this file in a fresh
// project that has the package installed).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startServer } from 'appmixer-auth';

async function call(method, url, body, token) {
  const headers = { 'Content-Type': 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  const res = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: res.status, body: await res.json() };
}

test('a declared user with quotes, backslashes and unicode signs in', async () => {
  const password = 'a "quoted" \\ back\u00e9 \u{1f600} \x7f pass';
  const metadata = { team: 'q"a', nested: { list: [1, 2.5, true, 'x'] }, 'dotted.key': 'ok' };
  const server = await startServer({ users: [{ username: 'odd', email: 'odd@example.com', password, metadata }] });
  try {
    const signIn = await call('POST', `${server.url}/user/auth`, { username: 'odd', password });
    assert.equal(signIn.status, 200);
    const me = await call('GET', `${server.url}/user`, undefined, signIn.body.token);
    assert.deepEqual(me.body.metadata, metadata);
  } finally {
    await server.stop();
  }
});

test('an appmixer.toml in the current directory is not read', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'cwd-'));
  writeFileSync(path.join(dir, 'appmixer.toml'), 'not_a_setting = true\n');
  const before = process.cwd();
  process.chdir(dir);
  try {
    const server = await startServer();
    assert.equal((await call('GET', `${server.url}/`)).status, 200);
    await server.stop();
  } finally {
    process.chdir(before);
  }
});

test('a server that cannot start rejects and says so', async () => {
  await assert.rejects(startServer({ users: [{ username: 'no-email' }] }), /exited with/);
});

test('stop() ends the server', async () => {
  const server = await startServer();
  assert.equal((await call('GET', `${server.url}/`)).status, 200);
  await server.stop();
  await assert.rejects(fetch(`${server.url}/`));
});
