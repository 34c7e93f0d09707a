//! Builds the whole server from `Settings`: state, routes, middleware, listener.

use std::net::TcpListener;
use std::time::Duration;

use actix_cors::Cors;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Server, ServerHandle, ServiceRequest, ServiceResponse};
use actix_web::http::{StatusCode, header};
use actix_web::middleware::{Next, from_fn};
use actix_web::{App, HttpServer, web};
use anyhow::Context;

use crate::error::{INTERNAL_MESSAGE, boom_json};
use crate::routes::{config, meta, user, users};
use crate::settings::Settings;
use crate::state::AppState;

/// A bound, not yet running server.
pub struct Application {
    host: String,
    port: u16,
    server: Server,
    /// The metrics listener when `metrics.listen` is set, and its port.
    metrics: Option<(Server, u16)>,
    state: web::Data<AppState>,
}

impl Application {
    pub fn build(settings: Settings) -> anyhow::Result<Self> {
        let host = settings.server.host.clone();
        let listener = TcpListener::bind((host.as_str(), settings.server.port))
            .with_context(|| format!("cannot listen on {host}:{}", settings.server.port))?;
        let port = listener.local_addr()?.port();
        let workers = settings.server.workers;
        let blocking_threads = settings.blocking_threads();
        // Opening the database blocks (and PostgreSQL's client may not block on a runtime).
        let state = web::Data::new(crate::db::Store::off_runtime(|| AppState::new(settings))??);
        let data = state.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .configure(routes)
                .configure(|cfg| {
                    if data.settings.fixtures.api {
                        crate::routes::fixtures::routes(cfg);
                    }
                    if data.settings.metrics.enabled && data.settings.metrics.listen.is_none() {
                        cfg.route("/metrics", web::get().to(meta::metrics));
                    }
                })
                .default_service(web::to(meta::not_found))
                .wrap(cors(&data.settings))
                .wrap(from_fn(crate::logging::log_request))
                .wrap(from_fn(boom_everything))
                .wrap(from_fn(head_as_get))
                .wrap(security_headers(&data))
        })
        // Slow or silent clients are cut off instead of holding a connection forever.
        .client_request_timeout(Duration::from_secs(10))
        .client_disconnect_timeout(Duration::from_secs(2))
        .keep_alive(Duration::from_secs(30))
        .shutdown_timeout(10)
        // Blocking work is store calls (at most one per pooled connection does anything) and
        // hashes (at most one per slot): more threads than that only wait, and every thread
        // that came and went left its malloc arena a little more fragmented (the soak
        // benchmark's memory grew while actix's default of 512 threads per worker allowed 78).
        .worker_max_blocking_threads(blocking_threads)
        // Ctrl-C stops as gently as SIGTERM: actix's own handler makes SIGINT a forced stop
        // that drops the requests in flight.
        .shutdown_signal(stop_signal());
        let server = match &state.tls {
            Some(cert) => server.listen_rustls_0_23(listener, cert.server_config()?)?,
            None => server.listen(listener)?,
        };
        let server = if workers > 0 {
            server.workers(workers)
        } else {
            server
        };
        let metrics = match (&state.settings.metrics.listen, state.metrics.is_some()) {
            (Some(listen), true) => {
                let listener = TcpListener::bind(listen.as_str())
                    .with_context(|| format!("metrics.listen: cannot listen on {listen}"))?;
                let port = listener.local_addr()?.port();
                let data = state.clone();
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(data.clone())
                        .route("/metrics", web::get().to(meta::metrics))
                        .default_service(web::to(meta::not_found))
                        .wrap(from_fn(boom_everything))
                })
                .workers(1)
                .disable_signals()
                .shutdown_timeout(2)
                .listen(listener)?
                .run();
                Some((server, port))
            }
            _ => None,
        };
        let app = Self {
            host,
            port,
            server: server.run(),
            metrics,
            state,
        };
        let _ = app.state.public_url.set(app.url());
        Ok(app)
    }

    /// The port of the separate metrics listener, when `metrics.listen` is set.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics.as_ref().map(|(_, port)| *port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://HOST:PORT` (or `https://`) with the real port.
    pub fn url(&self) -> String {
        let scheme = if self.state.tls.is_some() {
            "https"
        } else {
            "http"
        };
        if self.host.contains(':') {
            format!("{scheme}://[{}]:{}", self.host, self.port)
        } else {
            format!("{scheme}://{}:{}", self.host, self.port)
        }
    }

    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    /// A handle that stops the server (gracefully or not).
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGINT/SIGTERM (finishing requests in flight, at most 10 s) or `handle().stop()`.
    /// SIGHUP reloads what can be reloaded without a restart instead of ending the process.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let state = self.state.clone();
            if let Ok(mut hangups) = signal(SignalKind::hangup()) {
                actix_web::rt::spawn(async move {
                    while hangups.recv().await.is_some() {
                        state.reload();
                    }
                });
            }
        }
        crate::outbox::worker::spawn(self.state.clone());
        let stop_metrics = self.metrics.map(|(server, _)| {
            let handle = server.handle();
            actix_web::rt::spawn(server);
            handle
        });
        let result = self.server.await;
        if let Some(handle) = stop_metrics {
            handle.stop(true).await;
        }
        result
    }
}

/// Every API route as (method, path), the way the OpenAPI document names them. A test checks
/// that each is served and documented, and that the document names no other.
pub const API_ROUTES: &[(&str, &str)] = &[
    ("GET", "/"),
    ("GET", "/openapi.json"),
    ("POST", "/user/auth"),
    ("GET", "/user"),
    ("POST", "/user"),
    ("POST", "/user/reset-password"),
    ("POST", "/user/change-password"),
    ("POST", "/user/revoke-tokens"),
    ("POST", "/user/forgot-password"),
    ("POST", "/user/forgot-password/reset"),
    ("POST", "/users/{id}/revoke-tokens"),
    ("GET", "/users"),
    ("GET", "/users/count"),
    ("GET", "/users/{id}"),
    ("PUT", "/users/{id}"),
    ("DELETE", "/users/{id}"),
    ("GET", "/users/{id}/delete-status/{ticket}"),
    ("GET", "/config"),
    ("POST", "/config"),
    ("DELETE", "/config/{key}"),
    ("GET", "/signin"),
    ("GET", "/signin/config.json"),
    // Served only when turned on (`metrics.enabled`, `fixtures.api`).
    ("GET", "/metrics"),
    ("POST", "/_fixtures/reset"),
    ("POST", "/_fixtures/users"),
    ("POST", "/_fixtures/clock"),
    ("POST", "/_fixtures/limits/reset"),
    ("GET", "/_fixtures/messages"),
];

/// The route table.
pub fn routes(cfg: &mut web::ServiceConfig) {
    // `/` answers the version JSON to API clients and the sign-in page to browsers.
    cfg.service(
        web::resource("/")
            .route(crate::routes::pages::get_or_head().to(crate::routes::pages::home))
            .default_service(web::to(meta::method_not_allowed("GET, HEAD"))),
    )
    .configure(crate::routes::pages::routes)
    .service(
        web::resource("/openapi.json")
            .route(web::get().to(meta::openapi))
            .default_service(web::to(meta::method_not_allowed("GET"))),
    )
    .service(
        web::resource("/user")
            .route(web::get().to(user::current))
            .route(web::post().to(user::create))
            .default_service(web::to(meta::method_not_allowed("GET, POST"))),
    )
    .service(
        web::resource("/user/auth")
            .route(web::post().to(user::sign_in))
            .default_service(web::to(meta::method_not_allowed("POST"))),
    )
    .service(
        web::resource("/user/reset-password")
            .route(web::post().to(users::reset_password))
            .default_service(web::to(meta::method_not_allowed("POST"))),
    )
    .service(
        web::resource("/user/change-password")
            .route(web::post().to(users::change_password))
            .default_service(web::to(meta::method_not_allowed("POST"))),
    )
    .service(
        web::resource("/users")
            .route(web::get().to(users::list))
            .default_service(web::to(meta::method_not_allowed("GET"))),
    )
    .service(
        web::resource("/users/count")
            .route(web::get().to(users::count))
            .default_service(web::to(meta::method_not_allowed("GET"))),
    )
    .service(
        web::resource("/users/{id}")
            .route(web::get().to(users::read))
            .route(web::put().to(users::update))
            .route(web::delete().to(users::delete))
            .default_service(web::to(meta::method_not_allowed("GET, PUT, DELETE"))),
    )
    .service(
        web::resource("/users/{id}/delete-status/{ticket}")
            .route(web::get().to(users::delete_status))
            .default_service(web::to(meta::method_not_allowed("GET"))),
    )
    .service(
        web::resource("/user/forgot-password")
            .route(web::post().to(user::forgot_password))
            .default_service(web::to(meta::method_not_allowed("POST"))),
    )
    .service(
        web::resource("/user/forgot-password/reset")
            .route(web::post().to(user::reset_password))
            .default_service(web::to(meta::method_not_allowed("POST"))),
    )
    .service(
        web::resource("/user/revoke-tokens")
            .route(web::post().to(users::revoke_own_tokens))
            .default_service(web::to(meta::method_not_allowed("POST"))),
    )
    .service(
        web::resource("/users/{id}/revoke-tokens")
            .route(web::post().to(users::revoke_tokens))
            .default_service(web::to(meta::method_not_allowed("POST"))),
    )
    .service(
        web::resource("/config")
            .route(web::get().to(config::list))
            .route(web::post().to(config::set))
            .default_service(web::to(meta::method_not_allowed("GET, POST"))),
    )
    .service(
        web::resource("/config/{key}")
            .route(web::delete().to(config::delete))
            .default_service(web::to(meta::method_not_allowed("DELETE"))),
    );
}

/// Headers on every answer: `nosniff` (a JSON error is never run as a script or page), and
/// HSTS when the port speaks TLS and `server.hsts` is on.
fn security_headers(state: &AppState) -> actix_web::middleware::DefaultHeaders {
    let headers = actix_web::middleware::DefaultHeaders::new()
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"));
    if state.tls.is_some() && state.settings.server.hsts {
        headers.add((header::STRICT_TRANSPORT_SECURITY, "max-age=31536000"))
    } else {
        headers
    }
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C). Either starts a graceful stop: no new connections,
/// requests in flight finish (at most `shutdown_timeout`), then the database closes.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => log::info!("SIGTERM received; stopping gracefully"),
                    _ = int.recv() => log::info!("SIGINT received; stopping gracefully"),
                }
            }
            _ => {
                log::warn!("cannot listen for SIGTERM and SIGINT; only SIGKILL stops the server");
                std::future::pending::<()>().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        if tokio::signal::ctrl_c().await.is_ok() {
            log::info!("Ctrl-C received; stopping gracefully");
        } else {
            std::future::pending::<()>().await;
        }
    }
}

/// CORS as hapi's `cors: true`: the request's origin echoed, preflights for the usual headers.
fn cors(settings: &Settings) -> Cors {
    let mut cors = Cors::default()
        .allowed_methods(["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
        .allowed_headers([
            header::ACCEPT,
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_NONE_MATCH,
        ])
        .expose_headers([
            header::WWW_AUTHENTICATE,
            header::HeaderName::from_static("server-authorization"),
        ])
        .max_age(86_400);
    if settings.cors.allows_any() {
        cors = cors.allow_any_origin();
    } else {
        for origin in &settings.cors.allowed_origins {
            cors = cors.allowed_origin(origin);
        }
    }
    cors
}

/// HEAD is answered for every GET route, as hapi does: the request is routed as a GET, and
/// actix-http leaves the body out of the answer to a HEAD (it decided that when it read the
/// request line), keeping the headers, `Content-Length` included.
async fn head_as_get(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if req.method() == actix_web::http::Method::HEAD {
        req.head_mut().method = actix_web::http::Method::GET;
    }
    next.call(req).await
}

/// Last line of defence for the wire format: whatever answered with an error and no JSON body
/// (actix-cors, actix's own extractors) is turned into a Boom payload with the same status.
async fn boom_everything(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    // Errors raised by handlers and extractors, and actix-cors's refusals, arrive here as
    // responses; nothing in this stack returns `Err`, which actix would answer in plain text.
    let res = next.call(req).await?.map_into_boxed_body();
    let status = res.status();
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return Ok(res);
    }
    let message = if status == StatusCode::INTERNAL_SERVER_ERROR {
        INTERNAL_MESSAGE.to_owned()
    } else if let Some(err) = res.response().error() {
        err.to_string()
    } else {
        status.canonical_reason().unwrap_or("Error").to_owned()
    };
    let body = boom_json(status, &message);
    Ok(res.map_body(|head, _| {
        head.headers.insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/json; charset=utf-8"),
        );
        head.headers.remove(header::CONTENT_LENGTH);
        BoxBody::new(body)
    }))
}
