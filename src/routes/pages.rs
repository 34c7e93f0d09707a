//! The sign-in page: static files embedded at compile time and served behind an allowlist.
//!
//! Nothing is read from the filesystem at run time, so the binary works from any directory and
//! no request path can reach a file that is not in [`ASSETS`].

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, guard, web};
use serde_json::json;

use crate::error::ApiError;
use crate::routes::{json_ok, meta};
use crate::state::AppState;

/// Only the page's own scripts, styles and requests; no inline code, no framing, no plugins.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; connect-src 'self'; img-src 'self' data:; form-action 'self'; \
     base-uri 'none'; frame-ancestors 'none'";

/// The page itself, served at `/` (to browsers) and at [`PAGE_PATH`].
pub const PAGE_PATH: &str = "/signin";

/// One embedded file.
pub struct Asset {
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

static PAGE: Asset = Asset {
    path: PAGE_PATH,
    content_type: "text/html; charset=utf-8",
    body: include_bytes!("../../static/index.html"),
};

/// Every file the page loads: the allowlist. Paths are absolute so the page works at `/` too.
pub const ASSETS: &[Asset] = &[
    Asset {
        path: "/signin/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../static/app.js"),
    },
    Asset {
        path: "/signin/style.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../static/style.css"),
    },
    Asset {
        path: "/signin/icon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("../../static/icon.svg"),
    },
];

/// Registers the page, its files and its settings under `/signin`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource(PAGE_PATH)
            .route(get_or_head().to(page))
            .default_service(web::to(meta::method_not_allowed("GET, HEAD"))),
    )
    .service(
        web::resource("/signin/config.json")
            .route(get_or_head().to(config))
            .default_service(web::to(meta::method_not_allowed("GET, HEAD"))),
    );
    for asset in ASSETS {
        cfg.service(
            web::resource(asset.path)
                .route(get_or_head().to(move || std::future::ready(serve(asset))))
                .default_service(web::to(meta::method_not_allowed("GET, HEAD"))),
        );
    }
}

/// GET, and HEAD with the same headers (actix-web drops the body of a HEAD answer).
pub fn get_or_head() -> actix_web::Route {
    web::route().guard(guard::Any(guard::Get()).or(guard::Head()))
}

/// `GET /`: the page for a browser that asks for HTML, the version JSON for everyone else
/// (the SDK, the CLI, curl), so API clients see no change.
pub async fn home(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let mut res = if prefers_html(accept) {
        serve(&PAGE)
    } else {
        meta::version(state).await?
    };
    // One URL, two representations: caches must key on Accept.
    res.headers_mut()
        .append(header::VARY, HeaderValue::from_static("Accept"));
    Ok(res)
}

/// `GET /signin`: the page.
pub async fn page() -> HttpResponse {
    serve(&PAGE)
}

/// `GET /signin/config.json`: what the page cannot learn from the API alone.
pub async fn config(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let tenant = &state.settings.tenant;
    let mut res = json_ok(&json!({
        "signupOpen": tenant.api_user_create_scope.is_empty(),
        "version": tenant.version,
    }))?;
    protect(&mut res);
    Ok(res)
}

/// An embedded file with its content type and the page's security headers.
fn serve(asset: &'static Asset) -> HttpResponse {
    let mut res = HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        ))
        .body(asset.body);
    protect(&mut res);
    res
}

fn protect(res: &mut HttpResponse) {
    let headers = res.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        // Never guess a type: a JSON error must not run as a script or render as HTML.
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        // The page's URL and the API's answers go nowhere else.
        (header::REFERRER_POLICY, "no-referrer"),
        // For browsers older than CSP's frame-ancestors: no clickjacking of the password form.
        (header::X_FRAME_OPTIONS, "DENY"),
        // The files are small and change with the binary: always revalidate, never go stale.
        (header::CACHE_CONTROL, "no-cache"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
}

/// Whether an `Accept` header asks for HTML: `text/html` named with a quality above zero and
/// above that of `application/json`. Wildcards alone (`*/*`, what curl and the SDK send) and
/// ties keep the API's JSON, which stays the contract at `/`.
pub fn prefers_html(accept: &str) -> bool {
    let mut html = 0.0_f32;
    let mut json = 0.0_f32;
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let quality = parts
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
            .map_or(1.0, |(_, v)| v.trim().parse::<f32>().unwrap_or(0.0));
        match media.as_str() {
            "text/html" => html = html.max(quality),
            "application/json" => json = json.max(quality),
            _ => {}
        }
    }
    html > 0.0 && html > json
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browsers_get_html() {
        // Chromium's and Firefox's navigation headers.
        assert!(prefers_html(
            "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
        ));
        assert!(prefers_html(
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
        ));
        assert!(prefers_html("TEXT/HTML"));
    }

    #[test]
    fn api_clients_keep_json() {
        for accept in [
            "",
            "*/*",
            "application/json",
            "application/json, text/plain, */*",
            "text/*",
            "text/html;q=0",
            "text/html;q=0.5, application/json",
            "application/json, text/html",
            "text/html;q=bogus",
        ] {
            assert!(!prefers_html(accept), "{accept:?}");
        }
    }

    #[test]
    fn every_asset_path_is_under_signin() {
        for asset in ASSETS {
            assert!(asset.path.starts_with("/signin/"), "{}", asset.path);
            assert!(!asset.body.is_empty(), "{}", asset.path);
        }
    }
}
