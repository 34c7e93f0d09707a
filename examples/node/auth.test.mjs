// An example suite: sign-in, fixture users, and expiring tokens without waiting.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, post, get } from './appmixer-auth.mjs';

let server;

// A declared user: there from the start, and back after every reset.
const admin = { id: '64b7f0c2a1b2c3d4e5f60717', username: 'node-admin', email: 'admin@example.com', password: 'admin-pass', scope: ['user', 'admin'] };

before(async () => {
  server = await startServer({ users: [admin] });
});

after(async () => {
  await server?.stop();
});

test('the server answers its version', async () => {
  const { status, body } = await get(`${server.url}/`);
  assert.equal(status, 200);
  assert.match(body.version, /^\d+\.\d+\.\d+$/);
});

test('a user created through the fixture API signs in with fetch', async () => {
  const created = await post(`${server.url}/_fixtures/users`, [
    { id: '64b7f0c2a1b2c3d4e5f60718', username: 'node-user', email: 'node@example.com', password: 'node-pass', scope: ['user', 'tester'] },
  ]);
  assert.equal(created.status, 200);
  assert.equal(created.body[0].id, '64b7f0c2a1b2c3d4e5f60718');

  const signIn = await post(`${server.url}/user/auth`, { username: 'node-user', password: 'node-pass' });
  assert.equal(signIn.status, 200);
  assert.deepEqual(signIn.body.user.scope, ['user', 'tester']);

  const me = await get(`${server.url}/user`, signIn.body.token);
  assert.equal(me.status, 200);
  assert.equal(me.body.email, 'node@example.com');
});

test('a wrong password is 403 with a Boom body', async () => {
  const { status, body } = await post(`${server.url}/user/auth`, { username: 'node-user', password: 'nope!' });
  assert.equal(status, 403);
  assert.equal(body.statusCode, 403);
  assert.equal(body.error, 'Forbidden');
});

test('a token stops working once the clock passes its lifetime', async () => {
  const signIn = await post(`${server.url}/user/auth`, { email: 'node@example.com', password: 'node-pass' });
  const token = signIn.body.token;
  assert.equal((await get(`${server.url}/user`, token)).status, 200);

  const moved = await post(`${server.url}/_fixtures/clock`, { advance: '31d' });
  assert.equal(moved.status, 200);
  const expired = await get(`${server.url}/user`, token);
  assert.equal(expired.status, 401);
  assert.equal(expired.body.message, 'Token expired');

  await post(`${server.url}/_fixtures/clock`, { reset: true });
  assert.equal((await get(`${server.url}/user`, token)).status, 200);
});

test('reset removes every user the settings file does not declare', async () => {
  await post(`${server.url}/user`, { username: 'temp', email: 'temp@example.com', password: 'temp-pass' });
  const reset = await post(`${server.url}/_fixtures/reset`, {});
  assert.equal(reset.status, 200);
  assert.deepEqual(reset.body, { users: 1 });
  const gone = await post(`${server.url}/user/auth`, { username: 'temp', password: 'temp-pass' });
  assert.equal(gone.status, 403);
});

test('server.reset() brings back the declared user as declared and the real clock', async () => {
  const signIn = await post(`${server.url}/user/auth`, { username: 'node-admin', password: 'admin-pass' });
  assert.equal(signIn.status, 200);
  assert.deepEqual(signIn.body.user.scope, ['user', 'admin']);
  const changed = await post(`${server.url}/_fixtures/users`, [{ ...admin, password: 'changed-pass' }]);
  assert.equal(changed.status, 200);
  await post(`${server.url}/_fixtures/clock`, { advance: '31d' });

  await server.reset();
  const back = await post(`${server.url}/user/auth`, { username: 'node-admin', password: 'admin-pass' });
  assert.equal(back.status, 200);
  const clock = await post(`${server.url}/_fixtures/clock`, { advance: 0 });
  assert.ok(Math.abs(clock.body.now - Date.now() / 1000) < 60);
});

test('forgot password: the code from the fixture inbox sets a new password, once', async () => {
  const asked = await post(`${server.url}/user/forgot-password`, { email: 'admin@example.com' });
  assert.deepEqual([asked.status, asked.body], [200, {}]);
  const inbox = await get(`${server.url}/_fixtures/messages?to=admin@example.com`);
  assert.equal(inbox.status, 200);
  const code = inbox.body.at(-1).body.code;
  assert.ok(code.length >= 43);

  const reset = await post(`${server.url}/user/forgot-password/reset`, { code, password: 'admin-pass-2' });
  assert.equal(reset.status, 200);
  const signIn = await post(`${server.url}/user/auth`, { email: 'admin@example.com', password: 'admin-pass-2' });
  assert.equal(signIn.status, 200);
  const again = await post(`${server.url}/user/forgot-password/reset`, { code, password: 'admin-pass-3' });
  assert.deepEqual([again.status, again.body.message], [400, 'Invalid or expired code']);
  // Back to the declared password for the tests that follow.
  await post(`${server.url}/_fixtures/reset`, {});
});
