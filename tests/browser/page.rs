//! The sign-in page in headless Chromium, against the real server.

use serde_json::Value;

use crate::harness::{Browser, ENTER, Options, TAB, spawn_app, spawn_with, with_browser};

const SHIFT_TAB: &str = "\u{e008}\u{e004}\u{e000}";

/// The account view shows what `GET /user` says.
async fn assert_account(b: &Browser, user: &Value) {
    b.wait_text("#user-username", user["username"].as_str().unwrap())
        .await;
    assert_eq!(b.text("#user-email").await, user["email"].as_str().unwrap());
    assert_eq!(b.text("#user-id").await, user["id"].as_str().unwrap());
    assert_eq!(b.text("#user-scope").await, "user");
    assert_eq!(b.text("#user-plan").await, "free");
}

/// Signs in through the form with a password the server refuses, and waits for the page to
/// say so (the error text is emptied first, so an earlier refusal cannot stand in for this one).
async fn refused_sign_in(b: &Browser, login: &str, password: &str) {
    b.js("document.getElementById('signin-error').textContent = ''")
        .await;
    b.type_into("#signin-login", login).await;
    b.type_into("#signin-password", password).await;
    b.click("#signin-submit").await;
    b.wait_text("#signin-error", "Wrong username, email or password.")
        .await;
}

#[tokio::test]
async fn signing_in_with_a_username_shows_who_you_are_and_when_the_token_expires() {
    let app = spawn_app();
    let created = app.create_user("ada", "ada@example.com", "secret1").await;
    with_browser(
        "signing_in_with_a_username",
        &app,
        Options::default(),
        async |b| {
            b.open_page("/").await;
            assert_eq!(b.client.title().await.unwrap(), "Sign in · appmixer-auth");
            // A light system theme gets the light page.
            assert_eq!(
                b.js("return matchMedia('(prefers-color-scheme: dark)').matches")
                    .await,
                Value::Bool(false)
            );
            b.sign_in("ada", "secret1").await;
            assert_account(b, &created["user"]).await;
            assert_eq!(b.text("#account-title").await, "Signed in");

            // The expiry comes from the token's `exp`: 30 days ahead by default.
            let token = b.stored_token().await.expect("token stored");
            let exp_ms = crate::claims(&token)["exp"].as_i64().unwrap() * 1000;
            let shown = b
                .js("return Date.parse(document.getElementById('token-expires').dateTime)")
                .await;
            assert_eq!(shown.as_i64(), Some(exp_ms));
            let text = b.text("#token-expires").await;
            assert!(text.contains("in 30 days"), "{text}");
        },
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn signing_in_by_email_or_by_a_username_that_looks_like_an_email_works() {
    let app = spawn_app();
    let grace = app
        .create_user("grace", "grace@example.com", "secret1")
        .await;
    // The SDK's way: a username that is an address, but not this user's email.
    let odd = app
        .create_user("team@example.com", "owner@example.com", "secret2")
        .await;
    with_browser("signing_in_by_email", &app, Options::default(), async |b| {
        b.open_page("/signin").await;
        b.sign_in("grace@example.com", "secret1").await;
        assert_account(b, &grace["user"]).await;
        b.click("#sign-out").await;
        b.wait_visible("#signin-view").await;
        b.sign_in("team@example.com", "secret2").await;
        assert_account(b, &odd["user"]).await;
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn a_wrong_password_typed_on_the_page_counts_once_toward_the_lockout() {
    // Three failures lock an address out. Two wrong passwords for an email login must leave a
    // third try: the page makes one request per try, not one as email and one as username.
    let app = spawn_with(|s| s.auth.max_failed_attempts = 3);
    let ada = app.create_user("ada", "ada@example.com", "secret1").await;
    with_browser("counts_once", &app, Options::default(), async |b| {
        b.open_page("/").await;
        for _ in 0..2 {
            refused_sign_in(b, "ada@example.com", "wrong-password").await;
        }
        b.sign_in("ada@example.com", "secret1").await;
        assert_account(b, &ada["user"]).await;
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn a_wrong_password_shows_an_error_next_to_the_form() {
    let app = spawn_app();
    app.create_user("ada", "ada@example.com", "secret1").await;
    with_browser("a_wrong_password", &app, Options::default(), async |b| {
        b.open_page("/").await;
        refused_sign_in(b, "ada", "wrong-password").await;
        // Announced to screen readers, tied to the field, and the cursor is back in it.
        let error = b.find("#signin-error").await;
        assert_eq!(error.attr("role").await.unwrap().as_deref(), Some("alert"));
        let password = b.find("#signin-password").await;
        assert_eq!(
            password.attr("aria-invalid").await.unwrap().as_deref(),
            Some("true")
        );
        let described = password.attr("aria-describedby").await.unwrap();
        assert!(
            described.unwrap_or_default().contains("signin-error"),
            "aria-describedby"
        );
        assert_eq!(b.focused().await, "signin-password");
        assert!(b.find("#signin-submit").await.is_enabled().await.unwrap());
        assert!(
            b.find("#account-view")
                .await
                .attr("hidden")
                .await
                .unwrap()
                .is_some()
        );
        assert_eq!(b.stored_token().await, None);
        // An unknown user reads the same.
        refused_sign_in(b, "nobody", "secret1").await;
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn creating_an_account_lands_signed_in() {
    let app = spawn_app();
    with_browser("creating_an_account", &app, Options::default(), async |b| {
        b.open_page("/").await;
        b.click("#show-signup").await;
        b.wait_visible("#signup-view").await;
        assert_eq!(b.focused().await, "signup-username");
        b.screenshot("creating_an_account-form").await;
        b.type_into("#signup-username", "linus").await;
        b.type_into("#signup-email", "linus@example.com").await;
        b.type_into("#signup-password", "penguin1").await;
        b.click("#signup-submit").await;
        b.wait_visible("#account-view").await;
        b.wait_text("#user-username", "linus").await;
        assert_eq!(b.text("#user-email").await, "linus@example.com");
        b.wait_text("#status", "Account created. You are signed in.")
            .await;
        assert_eq!(b.focused().await, "account-title");
    })
    .await;
    // The account is real: the API signs it in.
    let res = app
        .client
        .post(format!("{}/user/auth", app.url))
        .json(&serde_json::json!({"username": "linus", "password": "penguin1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn a_taken_username_or_email_is_explained_in_the_form() {
    let app = spawn_app();
    app.create_user("ada", "ada@example.com", "secret1").await;
    with_browser("a_taken_username", &app, Options::default(), async |b| {
        b.open_page("/").await;
        b.click("#show-signup").await;
        b.type_into("#signup-username", "ada").await;
        b.type_into("#signup-email", "other@example.com").await;
        b.type_into("#signup-password", "secret1").await;
        b.click("#signup-submit").await;
        b.wait_text(
            "#signup-error",
            "That username is taken. Choose another one, or sign in if it is yours.",
        )
        .await;
        assert_eq!(b.focused().await, "signup-username");

        b.type_into("#signup-username", "ada2").await;
        b.type_into("#signup-email", "ada@example.com").await;
        b.click("#signup-submit").await;
        b.wait_text(
            "#signup-error",
            "An account with this email already exists. Sign in instead, or use another email.",
        )
        .await;
        assert_eq!(b.focused().await, "signup-email");
        assert_eq!(b.stored_token().await, None);
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn signing_out_forgets_the_token_and_shows_the_form_again() {
    let app = spawn_app();
    app.create_user("ada", "ada@example.com", "secret1").await;
    with_browser("signing_out", &app, Options::default(), async |b| {
        b.open_page("/").await;
        b.sign_in("ada", "secret1").await;
        assert!(b.stored_token().await.is_some());
        b.click("#sign-out").await;
        b.wait_visible("#signin-view").await;
        b.wait_text("#status", "Signed out.").await;
        assert_eq!(b.stored_token().await, None);
        assert_eq!(b.focused().await, "signin-login");
        // The password is not left in the form.
        let password = b
            .find("#signin-password")
            .await
            .prop("value")
            .await
            .unwrap();
        assert_eq!(password.as_deref(), Some(""));
        // And a reload stays signed out.
        b.client.refresh().await.unwrap();
        b.open_page("/").await;
        b.wait_visible("#signin-view").await;
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn a_reload_keeps_the_session() {
    let app = spawn_app();
    let created = app.create_user("ada", "ada@example.com", "secret1").await;
    with_browser(
        "a_reload_keeps_the_session",
        &app,
        Options::default(),
        async |b| {
            b.open_page("/").await;
            b.sign_in("ada", "secret1").await;
            let token = b.stored_token().await;
            b.client.refresh().await.unwrap();
            b.wait_visible("#account-view").await;
            assert_account(b, &created["user"]).await;
            assert_eq!(b.stored_token().await, token);
            // The page at /signin shares the session too.
            b.open_page("/signin").await;
            b.wait_visible("#account-view").await;
        },
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn the_keyboard_alone_signs_in_copies_the_token_and_signs_out() {
    let app = spawn_app();
    app.create_user("ada", "ada@example.com", "secret1").await;
    with_browser("the_keyboard_alone", &app, Options::default(), async |b| {
        b.open_page("/").await;
        // The cursor starts in the first field.
        b.wait_visible("#signin-view").await;
        assert_eq!(b.focused().await, "signin-login");
        b.keys("ada").await;
        b.keys(TAB).await;
        assert_eq!(b.focused().await, "signin-password");
        b.keys(&format!("secret1{ENTER}")).await;
        b.wait_visible("#account-view").await;
        b.wait_text("#user-username", "ada").await;
        assert_eq!(b.focused().await, "account-title");

        b.keys(TAB).await;
        assert_eq!(b.focused().await, "copy-token");
        // Keyboard focus is visible.
        let outline = b
            .js("const s = getComputedStyle(document.activeElement); \
                 return [s.outlineStyle, parseFloat(s.outlineWidth)]")
            .await;
        assert_eq!(outline[0], "solid", "{outline}");
        assert!(outline[1].as_f64().unwrap() >= 2.0, "{outline}");
        b.screenshot("the_keyboard_alone-focus").await;

        b.keys(ENTER).await;
        b.wait_until(
            "the token is copied or selected",
            "const s = document.getElementById('status').textContent; \
             return s === 'Token copied to the clipboard.' || s.startsWith('Copy the selected token')",
        )
        .await;
        let token = b.stored_token().await.unwrap();
        if b.focused().await == "token-text" {
            // No clipboard: the token is shown, selected, for Ctrl+C.
            let shown = b.find("#token-text").await.prop("value").await.unwrap();
            assert_eq!(shown.as_deref(), Some(token.as_str()));
            b.keys(SHIFT_TAB).await;
        } else {
            b.keys(TAB).await;
        }
        assert_eq!(b.focused().await, "sign-out");
        b.keys(ENTER).await;
        b.wait_visible("#signin-view").await;
        assert_eq!(b.focused().await, "signin-login");
        assert_eq!(b.stored_token().await, None);

        // To the account form and back without a mouse.
        b.keys(&format!("{TAB}{TAB}")).await;
        assert_eq!(b.focused().await, "signin-submit");
        b.keys(TAB).await;
        assert_eq!(b.focused().await, "show-forgot");
        b.keys(TAB).await;
        assert_eq!(b.focused().await, "show-signup");
        b.keys(ENTER).await;
        b.wait_visible("#signup-view").await;
        assert_eq!(b.focused().await, "signup-username");
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn when_creation_needs_a_scope_the_page_says_an_admin_creates_accounts() {
    let app = spawn_with(|s| s.tenant.api_user_create_scope = vec!["admin".into()]);
    with_browser("sign_up_closed", &app, Options::default(), async |b| {
        b.open_page("/").await;
        let note = b.wait_visible("#signup-closed").await;
        assert_eq!(
            note.text().await.unwrap(),
            "Accounts on this server are created by an administrator. Ask yours for one."
        );
        assert!(!b.find("#signup-switch").await.is_displayed().await.unwrap());
        assert!(!b.find("#signup-view").await.is_displayed().await.unwrap());
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn the_submit_button_is_disabled_while_the_request_is_in_flight() {
    let app = spawn_app();
    app.create_user("ada", "ada@example.com", "secret1").await;
    with_browser("in_flight", &app, Options::default(), async |b| {
        b.open_page("/").await;
        // Hold the sign-in request until the test lets it go.
        b.js("const real = window.fetch; \
              window.fetch = (url, init) => url !== '/user/auth' ? real(url, init) : \
                new Promise((resolve) => { window.signInCalls = (window.signInCalls || 0) + 1; window.releaseSignIn = () => resolve(real(url, init)); });")
            .await;
        b.type_into("#signin-login", "ada").await;
        b.type_into("#signin-password", "secret1").await;
        b.click("#signin-submit").await;
        b.wait_until(
            "the request is in flight",
            "return typeof window.releaseSignIn === 'function'",
        )
        .await;
        let button = b.find("#signin-submit").await;
        assert!(!button.is_enabled().await.unwrap());
        assert_eq!(button.text().await.unwrap(), "Signing in…");
        b.screenshot("in_flight-signing-in").await;
        // Enter again meanwhile sends nothing more.
        b.find("#signin-password").await.send_keys(ENTER).await.unwrap();
        b.js("window.releaseSignIn()").await;
        b.wait_visible("#account-view").await;
        b.wait_text("#user-username", "ada").await;
        assert_eq!(b.js("return window.signInCalls").await, 1);
        // Ready for the next time (hidden now, so read the DOM rather than the rendering).
        assert!(button.is_enabled().await.unwrap());
        let label = button.prop("textContent").await.unwrap();
        assert_eq!(label.as_deref(), Some("Sign in"));
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn too_many_attempts_is_explained_with_the_wait() {
    let app = spawn_with(|s| s.auth.max_failed_attempts = 1);
    app.create_user("ada", "ada@example.com", "secret1").await;
    with_browser("too_many_attempts", &app, Options::default(), async |b| {
        b.open_page("/").await;
        refused_sign_in(b, "ada", "wrong-password").await;
        b.type_into("#signin-password", "secret1").await;
        b.click("#signin-submit").await;
        // The limit's window is 15 minutes; Retry-After says how long is left.
        b.wait_text(
            "#signin-error",
            "Too many attempts. Wait 15 minutes and try again.",
        )
        .await;
        assert_eq!(b.stored_token().await, None);
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn a_stored_token_that_no_longer_works_asks_to_sign_in_again() {
    let app = spawn_app();
    with_browser("a_stale_token", &app, Options::default(), async |b| {
        b.open_page("/").await;
        // Expired by its own `exp`: the page says so without asking the server.
        let expired = fake_token(1_000_000_000);
        b.js(&format!(
            "localStorage.setItem('appmixer-auth.token', '{expired}')"
        ))
        .await;
        b.client.refresh().await.unwrap();
        b.wait_visible("#signin-view").await;
        b.wait_text("#status", "Your session expired. Sign in again.")
            .await;
        assert_eq!(b.stored_token().await, None);

        // Not expired, but signed with another key: the server refuses it.
        let forged = fake_token(4_000_000_000);
        b.js(&format!(
            "localStorage.setItem('appmixer-auth.token', '{forged}')"
        ))
        .await;
        b.client.refresh().await.unwrap();
        b.wait_visible("#signin-view").await;
        b.wait_text("#status", "Your session is no longer valid. Sign in again.")
            .await;
        assert_eq!(b.stored_token().await, None);
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn the_page_fits_a_phone_width_screen() {
    let app = spawn_app();
    app.create_user(
        "a.rather.long.username@example.com",
        "a.rather.long.username@example.com",
        "secret1",
    )
    .await;
    let phone = Options {
        width: 390,
        height: 844,
        dark: false,
    };
    with_browser("phone_width", &app, phone, async |b| {
        b.open_page("/").await;
        assert_eq!(b.js("return window.innerWidth").await, 390);
        assert_no_sideways_scroll(b).await;
        b.screenshot("phone_width-signin").await;
        b.sign_in("a.rather.long.username@example.com", "secret1")
            .await;
        b.wait_text("#user-username", "a.rather.long.username@example.com")
            .await;
        assert_no_sideways_scroll(b).await;
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn the_page_follows_a_dark_system_theme() {
    let app = spawn_app();
    app.create_user("ada", "ada@example.com", "secret1").await;
    let dark = Options {
        dark: true,
        ..Options::default()
    };
    with_browser("dark_theme", &app, dark, async |b| {
        b.open_page("/").await;
        assert_eq!(
            b.js("return matchMedia('(prefers-color-scheme: dark)').matches")
                .await,
            Value::Bool(true)
        );
        let [bg, fg] = [
            "getComputedStyle(document.documentElement).backgroundColor",
            "getComputedStyle(document.body).color",
        ]
        .map(|s| s.to_owned());
        let bg = brightness(&b.js(&format!("return {bg}")).await);
        let fg = brightness(&b.js(&format!("return {fg}")).await);
        assert!(bg < 60.0 && fg > 180.0, "background {bg}, text {fg}");
        b.screenshot("dark_theme-signin").await;
        b.sign_in("ada", "secret1").await;
        b.wait_text("#user-username", "ada").await;
    })
    .await;
    app.stop().await;
}

async fn assert_no_sideways_scroll(b: &Browser) {
    let widths = b
        .js("return [document.documentElement.scrollWidth, window.innerWidth]")
        .await;
    assert!(
        widths[0].as_u64() <= widths[1].as_u64(),
        "the page is wider than the screen: {widths}"
    );
}

/// The mean of an `rgb(r, g, b)` colour's channels.
fn brightness(css: &Value) -> f64 {
    let s = css.as_str().unwrap();
    let inner = s
        .trim_start_matches("rgba(")
        .trim_start_matches("rgb(")
        .trim_end_matches(')');
    let channels: Vec<f64> = inner
        .split(',')
        .take(3)
        .map(|c| c.trim().parse().unwrap())
        .collect();
    channels.iter().sum::<f64>() / 3.0
}

/// A well-formed token that this server never signed, expiring at `exp` (seconds).
fn fake_token(exp: i64) -> String {
    use base64::Engine;
    let b64 = |v: &serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    format!(
        "{}.{}.{}",
        b64(&serde_json::json!({"alg": "HS256", "typ": "JWT"})),
        b64(
            &serde_json::json!({"id": "0123456789abcdef01234567", "scope": ["user"],
                                "iat": exp - 3600, "exp": exp})
        ),
        "c2lnbmF0dXJl"
    )
}

#[tokio::test]
async fn forgot_password_sends_a_link_whose_page_sets_a_new_password_and_signs_in() {
    let app = spawn_app();
    app.create_user("ada", "ada@example.com", "secret1").await;
    let code = std::sync::Mutex::new(String::new());
    with_browser("forgot_password", &app, Options::default(), async |b| {
        b.open_page("/").await;
        b.type_into("#signin-login", "ada@example.com").await;
        b.click("#show-forgot").await;
        b.wait_visible("#forgot-view").await;
        // The address typed to sign in is carried over.
        assert_eq!(
            b.js("return document.getElementById('forgot-email').value")
                .await,
            Value::from("ada@example.com")
        );
        assert_eq!(b.focused().await, "forgot-email");
        b.screenshot("forgot_password-form").await;
        b.click("#forgot-submit").await;
        b.wait_visible("#signin-view").await;
        b.wait_text(
            "#status",
            "If ada@example.com belongs to an account, a message with a reset link is on its way.",
        )
        .await;
        // The link of the message (the fixture API's inbox, as a suite would read it).
        let inbox: Value = app
            .get("/_fixtures/messages?to=ada@example.com", None)
            .await
            .json()
            .await
            .unwrap();
        let link = inbox[0]["body"]["link"].as_str().unwrap().to_owned();
        *code.lock().unwrap() = inbox[0]["body"]["code"].as_str().unwrap().to_owned();
        let path = &link[link.find("/signin").expect("a link to this page")..];
        b.open_page(path).await;
        b.wait_visible("#reset-view").await;
        assert_eq!(b.focused().await, "reset-email");
        // The code is gone from the address bar (and so from history).
        let href = b.js("return location.href").await;
        assert!(!href.as_str().unwrap().contains("code="), "{href}");
        b.type_into("#reset-email", "ada@example.com").await;
        b.type_into("#reset-password", "brand-new-1").await;
        b.screenshot("forgot_password-reset").await;
        b.click("#reset-submit").await;
        b.wait_visible("#account-view").await;
        b.wait_text("#user-username", "ada").await;
        b.wait_text("#status", "Password changed. You are signed in.")
            .await;
    })
    .await;
    // The password is the new one, and the link works once.
    let res = app
        .client
        .post(format!("{}/user/auth", app.url))
        .json(&serde_json::json!({"username": "ada", "password": "brand-new-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let code = code.lock().unwrap().clone();
    with_browser(
        "forgot_password-used_link",
        &app,
        Options::default(),
        async |b| {
            b.open_page(&format!("/signin?code={code}")).await;
            b.wait_visible("#reset-view").await;
            b.type_into("#reset-email", "ada@example.com").await;
            b.type_into("#reset-password", "another-one-2").await;
            b.click("#reset-submit").await;
            b.wait_text(
                "#reset-error",
                "This reset link was already used or has expired. Ask for a new one.",
            )
            .await;
        },
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn signing_out_everywhere_refuses_every_token_of_the_user() {
    let app = spawn_app();
    let created = app.create_user("ada", "ada@example.com", "secret1").await;
    let other_device = created["token"].as_str().unwrap().to_owned();
    with_browser("sign_out_everywhere", &app, Options::default(), async |b| {
        b.open_page("/").await;
        b.sign_in("ada", "secret1").await;
        b.wait_visible("#account-view").await;
        b.click("#sign-out-everywhere").await;
        b.wait_visible("#signin-view").await;
        b.wait_text(
            "#status",
            "Signed out everywhere: every token of yours is refused from now on.",
        )
        .await;
        assert_eq!(b.stored_token().await, None);
    })
    .await;
    let res = app
        .client
        .get(format!("{}/user", app.url))
        .bearer_auth(&other_device)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    app.stop().await;
}
