// The sign-in page. It speaks the same API as the SDK (POST /user/auth, POST /user, GET /user)
// with same-origin relative URLs, and keeps the token in localStorage so a reload keeps the
// session. Text from the server is only ever set with textContent, never parsed as HTML.
'use strict';

(function () {
  const TOKEN_KEY = 'appmixer-auth.token';
  // setTimeout fires at once for delays past 2^31-1 ms (about 24.8 days).
  const MAX_TIMER_MS = 2147483647;

  const $ = (id) => document.getElementById(id);
  const views = {
    signin: $('signin-view'),
    signup: $('signup-view'),
    forgot: $('forgot-view'),
    reset: $('reset-view'),
    account: $('account-view'),
  };

  let currentToken = null;
  /** The code of the reset link this page was opened with, until it is used. */
  let resetCode = null;
  let expiryTimer = null;
  let statusTimer = null;

  // --- the token ----------------------------------------------------------------------------

  function storedToken() {
    try {
      return localStorage.getItem(TOKEN_KEY);
    } catch (_) {
      return null; // storage disabled: the session lasts until the page closes
    }
  }

  function keepToken(token) {
    currentToken = token;
    try {
      localStorage.setItem(TOKEN_KEY, token);
    } catch (_) {
      // storage disabled or full: the token stays in memory only
    }
  }

  function forgetToken() {
    currentToken = null;
    clearTimeout(expiryTimer);
    try {
      localStorage.removeItem(TOKEN_KEY);
    } catch (_) {
      // nothing was stored
    }
  }

  /** The token's `exp` claim in milliseconds, read without verifying (the server verifies). */
  function tokenExpiry(token) {
    try {
      const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
      const padded = part + '='.repeat((4 - (part.length % 4)) % 4);
      const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
      const claims = JSON.parse(new TextDecoder().decode(bytes));
      return typeof claims.exp === 'number' ? claims.exp * 1000 : null;
    } catch (_) {
      return null;
    }
  }

  // --- talking to the API ------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, body, retryAfter) {
      super(body && typeof body.message === 'string' ? body.message : 'HTTP ' + status);
      this.status = status; // 0: the server could not be reached
      this.body = body;
      this.retryAfter = retryAfter;
    }
  }

  async function api(method, path, body, token) {
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (token) headers.Authorization = 'Bearer ' + token;
    let res;
    try {
      res = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: 'omit',
        cache: 'no-store',
      });
    } catch (_) {
      throw new ApiError(0, null, null);
    }
    let data = null;
    try {
      data = await res.json();
    } catch (_) {
      data = null;
    }
    if (!res.ok) throw new ApiError(res.status, data, res.headers.get('Retry-After'));
    return data;
  }

  /**
   * Signs in with what the person typed, in one request (one attempt for the brute-force
   * limit). With an `@` it may be an email or a username that looks like one: the server
   * tries it as a username first, then as an email.
   */
  function signIn(login, password) {
    const body = login.includes('@') ? { username: login, email: login, password } : { username: login, password };
    return api('POST', '/user/auth', body);
  }

  /** An API error in words a person understands, and the form field it is about (if any). */
  function explain(err, action) {
    const msg = err.body && typeof err.body.message === 'string' ? err.body.message : '';
    const keys = err.body && err.body.validation && err.body.validation.keys;
    const field = Array.isArray(keys) && keys.length ? keys[0] : null;
    const seconds = Number.parseInt(err.retryAfter, 10);
    switch (err.status) {
      case 0:
        return { text: 'Cannot reach the server. Check that appmixer-auth is running, then try again.' };
      case 400:
        return explainInvalid(field, msg);
      case 401:
        if (action === 'signup') {
          return { text: 'Accounts on this server are created by an administrator. Ask yours for one.' };
        }
        if (/expired/i.test(msg)) return { text: 'Your session expired. Sign in again.' };
        if (/revoked/i.test(msg)) return { text: 'You were signed out everywhere. Sign in again.' };
        return { text: 'Your session is no longer valid. Sign in again.' };
      case 403:
        if (action === 'signin') {
          return { text: 'Wrong username, email or password.', field: 'password' };
        }
        if (action === 'reset') {
          return {
            text: 'Your password is changed, but that email is not your account’s: sign in with the right one.',
            field: 'email',
          };
        }
        return { text: 'You are not allowed to do that.' };
      case 404:
        if (action === 'load') return { text: 'Your account no longer exists. Sign in with another one.' };
        break;
      case 409:
        if (/^email/i.test(msg)) {
          return {
            text: 'An account with this email already exists. Sign in instead, or use another email.',
            field: 'email',
          };
        }
        return {
          text: 'That username is taken. Choose another one, or sign in if it is yours.',
          field: 'username',
        };
      case 429:
        return { text: `Too many attempts. Wait ${waitFor(seconds)} and try again.` };
      case 503:
        return { text: 'The server is busy. Try again in a moment.' };
      default:
        break;
    }
    if (err.status >= 500) return { text: 'Something went wrong on the server. Try again in a moment.' };
    return { text: msg ? `The server refused: ${msg}` : `The server answered with status ${err.status}.` };
  }

  /** `Retry-After` seconds in words: "30 seconds", "15 minutes". */
  function waitFor(seconds) {
    if (!Number.isFinite(seconds) || seconds <= 0) return 'a minute';
    if (seconds < 90) return `${seconds} second${seconds === 1 ? '' : 's'}`;
    return `${Math.ceil(seconds / 60)} minutes`;
  }

  function explainInvalid(field, msg) {
    if (/invalid or expired code/i.test(msg)) {
      return { text: 'This reset link was already used or has expired. Ask for a new one.' };
    }
    if (field === 'email') {
      return { text: 'Enter a valid email address, such as name@example.com.', field };
    }
    if (field === 'password') {
      if (/at least/.test(msg)) return { text: 'The password is too short: use at least 5 characters.', field };
      if (/at most/.test(msg)) {
        return { text: 'The password is too long: use at most 72 characters (fewer with accents or emoji).', field };
      }
      return { text: 'Enter a password.', field };
    }
    if (field === 'username') {
      if (/whitespace/.test(msg)) return { text: 'The username cannot start or end with a space.', field };
      if (/control/.test(msg)) return { text: 'The username contains characters that are not allowed.', field };
      if (/less than or equal/.test(msg)) return { text: 'The username is too long.', field };
      return { text: 'Enter a username.', field };
    }
    return { text: msg ? `The server refused: ${msg}` : 'The server could not read the form.' };
  }

  // --- the page ----------------------------------------------------------------------------

  function show(name) {
    $('loading').hidden = true;
    for (const [key, el] of Object.entries(views)) el.hidden = key !== name;
  }

  /** A message in the polite live region; emptied first so a repeat is announced again. */
  function setStatus(text) {
    const el = $('status');
    clearTimeout(statusTimer);
    el.textContent = '';
    if (text) statusTimer = setTimeout(() => (el.textContent = text), 50);
  }

  function showSignin(focus) {
    show('signin');
    if (focus) $('signin-login').focus();
  }

  function showSignup() {
    show('signup');
    $('signup-username').focus();
  }

  function clearErrors(form) {
    const error = form.querySelector('.error');
    error.textContent = '';
    for (const input of form.querySelectorAll('input[aria-invalid]')) markInvalid(input, false, error.id);
  }

  function markInvalid(input, invalid, errorId) {
    const described = (input.getAttribute('aria-describedby') || '').split(' ').filter((id) => id && id !== errorId);
    if (invalid) {
      input.setAttribute('aria-invalid', 'true');
      described.push(errorId);
    } else {
      input.removeAttribute('aria-invalid');
    }
    if (described.length) input.setAttribute('aria-describedby', described.join(' '));
    else input.removeAttribute('aria-describedby');
  }

  /** Shows an error next to the form, marks the field at fault and puts the cursor there. */
  function showError(form, err, action, fields) {
    const { text, field } = explain(err, action);
    const error = form.querySelector('.error');
    error.textContent = text;
    const input = field && fields[field];
    if (input) {
      markInvalid(input, true, error.id);
      input.focus();
      if (typeof input.select === 'function') input.select();
    }
  }

  /** Runs a request with the submit button disabled; a second submit meanwhile is ignored. */
  async function busy(form, busyLabel, work) {
    if (form.getAttribute('aria-busy') === 'true') return;
    const button = form.querySelector('button[type="submit"]');
    const label = button.textContent;
    form.setAttribute('aria-busy', 'true');
    button.disabled = true;
    button.textContent = busyLabel;
    try {
      await work();
    } finally {
      form.removeAttribute('aria-busy');
      button.disabled = false;
      button.textContent = label;
    }
  }

  function relative(ms) {
    const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });
    const s = Math.round(ms / 1000);
    const abs = Math.abs(s);
    if (abs < 60) return rtf.format(s, 'second');
    if (abs < 3600) return rtf.format(Math.round(s / 60), 'minute');
    if (abs < 48 * 3600) return rtf.format(Math.round(s / 3600), 'hour');
    return rtf.format(Math.round(s / 86400), 'day');
  }

  function renderAccount(user, token) {
    $('user-username').textContent = user.username;
    $('user-email').textContent = user.email;
    $('user-id').textContent = user.id;
    $('user-scope').textContent = Array.isArray(user.scope) && user.scope.length ? user.scope.join(', ') : '(none)';
    $('user-plan').textContent = user.plan || '(none)';
    const time = $('token-expires');
    const exp = tokenExpiry(token);
    clearTimeout(expiryTimer);
    if (exp === null) {
      time.removeAttribute('datetime');
      time.textContent = 'unknown';
    } else {
      const when = new Date(exp);
      time.dateTime = when.toISOString();
      const date = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' }).format(when);
      time.textContent = `${date} (${relative(exp - Date.now())})`;
      const left = exp - Date.now();
      if (left < MAX_TIMER_MS) expiryTimer = setTimeout(expired, Math.max(left, 0));
    }
    $('token-box').hidden = true;
    $('token-text').value = '';
  }

  function expired() {
    forgetToken();
    showSignin(false);
    setStatus('Your session expired. Sign in again.');
  }

  /** Reads `GET /user` with the token and shows who that is. */
  async function enter(token) {
    const user = await api('GET', '/user', undefined, token);
    keepToken(token);
    renderAccount(user, token);
    show('account');
  }

  function signOut(message) {
    forgetToken();
    $('signin-password').value = '';
    showSignin(true);
    setStatus(message);
  }

  async function copyToken() {
    if (!currentToken) return;
    try {
      await navigator.clipboard.writeText(currentToken);
      setStatus('Token copied to the clipboard.');
      return;
    } catch (_) {
      // no clipboard API (plain http on another host) or no permission: select it instead
    }
    const box = $('token-text');
    $('token-box').hidden = false;
    box.value = currentToken;
    box.focus();
    box.select();
    let copied = false;
    try {
      copied = document.execCommand('copy');
    } catch (_) {
      copied = false;
    }
    setStatus(copied ? 'Token copied to the clipboard.' : 'Copy the selected token with Ctrl+C (⌘C on a Mac).');
  }

  /** The reset code of a link to this page (`?code=`), taken out of the address bar. */
  function codeFromLink() {
    const params = new URLSearchParams(location.search);
    const code = params.get('code');
    if (code === null) return null;
    params.delete('code');
    const rest = params.toString();
    history.replaceState(null, '', location.pathname + (rest ? '?' + rest : '') + location.hash);
    return code;
  }

  // --- wiring ------------------------------------------------------------------------------

  function wire() {
    const signinForm = $('signin-form');
    const signinFields = { username: $('signin-login'), email: $('signin-login'), password: $('signin-password') };
    signinForm.addEventListener('submit', (event) => {
      event.preventDefault();
      clearErrors(signinForm);
      setStatus('');
      const login = $('signin-login').value.trim();
      const password = $('signin-password').value;
      busy(signinForm, 'Signing in…', async () => {
        try {
          const { token } = await signIn(login, password);
          await enter(token);
          $('signin-password').value = '';
          $('account-title').focus();
        } catch (err) {
          showError(signinForm, err, 'signin', signinFields);
        }
      });
    });

    const signupForm = $('signup-form');
    const signupFields = { username: $('signup-username'), email: $('signup-email'), password: $('signup-password') };
    signupForm.addEventListener('submit', (event) => {
      event.preventDefault();
      clearErrors(signupForm);
      setStatus('');
      const body = {
        username: $('signup-username').value.trim(),
        email: $('signup-email').value.trim(),
        password: $('signup-password').value,
      };
      busy(signupForm, 'Creating account…', async () => {
        try {
          const { token } = await api('POST', '/user', body);
          await enter(token);
          signupForm.reset();
          $('account-title').focus();
          setStatus('Account created. You are signed in.');
        } catch (err) {
          showError(signupForm, err, 'signup', signupFields);
        }
      });
    });

    for (const input of document.querySelectorAll('form input')) {
      input.addEventListener('input', () => markInvalid(input, false, input.form.querySelector('.error').id));
    }

    $('show-signup').addEventListener('click', () => {
      setStatus('');
      showSignup();
    });
    $('show-signin').addEventListener('click', () => {
      setStatus('');
      showSignin(true);
    });
    $('copy-token').addEventListener('click', copyToken);
    $('sign-out').addEventListener('click', () => signOut('Signed out.'));
    $('sign-out-everywhere').addEventListener('click', async () => {
      try {
        await api('POST', '/user/revoke-tokens', {}, currentToken);
        signOut('Signed out everywhere: every token of yours is refused from now on.');
      } catch (err) {
        setStatus(explain(err, 'revoke').text);
      }
    });

    $('show-forgot').addEventListener('click', () => {
      setStatus('');
      show('forgot');
      const login = $('signin-login').value.trim();
      if (login.includes('@')) $('forgot-email').value = login;
      $('forgot-email').focus();
    });
    $('forgot-back').addEventListener('click', () => {
      setStatus('');
      showSignin(true);
    });
    $('reset-back').addEventListener('click', () => {
      setStatus('');
      resetCode = null;
      showSignin(true);
    });

    const forgotForm = $('forgot-form');
    forgotForm.addEventListener('submit', (event) => {
      event.preventDefault();
      clearErrors(forgotForm);
      setStatus('');
      const email = $('forgot-email').value.trim();
      busy(forgotForm, 'Sending…', async () => {
        try {
          await api('POST', '/user/forgot-password', { email });
          forgotForm.reset();
          showSignin(false);
          $('signin-title').focus();
          setStatus(`If ${email} belongs to an account, a message with a reset link is on its way.`);
        } catch (err) {
          showError(forgotForm, err, 'forgot', { email: $('forgot-email') });
        }
      });
    });

    const resetForm = $('reset-form');
    resetForm.addEventListener('submit', (event) => {
      event.preventDefault();
      clearErrors(resetForm);
      setStatus('');
      const email = $('reset-email').value.trim();
      const password = $('reset-password').value;
      busy(resetForm, 'Setting password…', async () => {
        try {
          await api('POST', '/user/forgot-password/reset', { code: resetCode, password });
          resetCode = null;
          const { token } = await signIn(email, password);
          await enter(token);
          resetForm.reset();
          $('account-title').focus();
          setStatus('Password changed. You are signed in.');
        } catch (err) {
          showError(resetForm, err, 'reset', { email: $('reset-email'), password: $('reset-password') });
        }
      });
    });

    // Signing in or out in another tab of the same origin is followed here.
    window.addEventListener('storage', (event) => {
      if (event.key !== TOKEN_KEY && event.key !== null) return;
      const token = storedToken();
      if (!token && currentToken) {
        signOut('Signed out in another tab.');
      } else if (token && token !== currentToken) {
        enter(token).catch(() => {});
      }
    });
  }

  async function start() {
    wire();
    let config = { signupOpen: true, version: null };
    try {
      config = await api('GET', '/signin/config.json');
    } catch (_) {
      // the sign-in form still works; a closed sign-up is then explained by its 401
    }
    $('signup-switch').hidden = !config.signupOpen;
    $('signup-closed').hidden = !!config.signupOpen;
    $('show-signup').disabled = !config.signupOpen;
    if (config.version) $('footer').textContent = `appmixer-auth · API version ${config.version}`;

    resetCode = codeFromLink();
    if (resetCode !== null) {
      show('reset');
      $('reset-email').focus();
      return;
    }
    const token = storedToken();
    if (!token) {
      showSignin(true);
      return;
    }
    const exp = tokenExpiry(token);
    if (exp !== null && exp <= Date.now()) {
      forgetToken();
      showSignin(true);
      setStatus('Your session expired. Sign in again.');
      return;
    }
    try {
      await enter(token);
    } catch (err) {
      if (err.status === 401 || err.status === 404) forgetToken();
      showSignin(true);
      setStatus(explain(err, 'load').text);
    }
  }

  start();
})();
