//! Logs: env_logger (`RUST_LOG`, default `info`) in text, or one JSON object per line for log
//! shippers; and the request log line, which never carries a body, a token or a query string.

use std::io::Write;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web;
use serde_json::{Map, Value};

use crate::state::AppState;

pub use crate::settings::LogFormat;

/// Collects a record's key-values into a JSON object.
struct Fields<'a>(&'a mut Map<String, Value>);

impl<'kvs> log::kv::VisitSource<'kvs> for Fields<'_> {
    fn visit_pair(
        &mut self,
        key: log::kv::Key<'kvs>,
        value: log::kv::Value<'kvs>,
    ) -> Result<(), log::kv::Error> {
        let v = if let Some(n) = value.to_u64() {
            Value::from(n)
        } else if let Some(f) = value.to_f64() {
            Value::from(f)
        } else {
            Value::from(value.to_string())
        };
        self.0.insert(key.to_string(), v);
        Ok(())
    }
}

/// Starts logging once for the process (later calls are ignored, for tests). `RUST_LOG`
/// overrides `default_level`.
pub fn init(format: LogFormat, default_level: &str) {
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default_level));
    match format {
        LogFormat::Text => builder.format(|buf, record| {
            writeln!(
                buf,
                "[{} {:<5} {}] {}",
                buf.timestamp_millis(),
                record.level(),
                record.target(),
                record.args()
            )
        }),
        LogFormat::Json => builder.format(|buf, record| {
            let mut obj = Map::new();
            obj.insert("time".into(), buf.timestamp_millis().to_string().into());
            obj.insert("level".into(), record.level().as_str().into());
            obj.insert("target".into(), record.target().into());
            obj.insert("message".into(), record.args().to_string().into());
            let _ = record.key_values().visit(&mut Fields(&mut obj));
            writeln!(buf, "{}", Value::Object(obj))
        }),
    };
    let logger = builder.build();
    let max = logger.filter();
    if log::set_boxed_logger(Box::new(ClientFaults(logger))).is_ok() {
        log::set_max_level(max);
    }
}

/// actix-http logs a request it cannot parse (a malformed header, a bad Content-Length, a
/// request line that is not HTTP) as `ERROR stream error: …`. That is the client's fault, and
/// the client was answered 400, so it is logged at DEBUG: an ERROR line should mean the server
/// needs attention.
struct ClientFaults(env_logger::Logger);

impl ClientFaults {
    fn is_client_fault(record: &log::Record<'_>) -> bool {
        record.level() == log::Level::Error
            && record.target().starts_with("actix_http::h1")
            && record.args().to_string().starts_with("stream error")
    }
}

impl log::Log for ClientFaults {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        self.0.enabled(metadata)
    }

    // env_logger's `log` applies its own filter to each record, the lowered one included.
    fn log(&self, record: &log::Record<'_>) {
        if !Self::is_client_fault(record) {
            return self.0.log(record);
        }
        self.0.log(
            &log::Record::builder()
                .level(log::Level::Debug)
                .target(record.target())
                .args(*record.args())
                .module_path(record.module_path())
                .file(record.file())
                .line(record.line())
                .key_values(record.key_values())
                .build(),
        );
    }

    fn flush(&self) {
        self.0.flush();
    }
}

/// One line per request: method, path (never the query string, which may hold a token),
/// status, duration and client address.
pub async fn log_request(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let metrics = state.as_ref().and_then(|s| s.metrics.as_ref());
    let logged = log::log_enabled!(target: "appmixer_auth::request", log::Level::Info);
    if !logged && metrics.is_none() {
        return next.call(req).await;
    }
    let method = req.method().clone();
    let path = if logged {
        req.path().to_owned()
    } else {
        String::new()
    };
    let client = match &state {
        Some(state) if logged => crate::net::client_ip(req.request(), &state.trusted_proxies)
            .map(|ip| ip.to_string())
            .unwrap_or_default(),
        _ => String::new(),
    };
    let res = next.call(req).await?;
    let status = res.status().as_u16();
    let elapsed = started.elapsed().as_secs_f64();
    if let Some(metrics) = metrics {
        let route = res
            .request()
            .match_pattern()
            .unwrap_or_else(|| "unmatched".into());
        metrics.observe_request(method.as_str(), &route, status, elapsed);
    }
    if logged {
        let ms = elapsed * 1000.0;
        log::info!(
            target: "appmixer_auth::request",
            method = method.as_str(), path = path.as_str(), status = status,
            duration_ms = (ms * 1000.0).round() / 1000.0, client = client.as_str();
            "{method} {path} {status} {ms:.3}ms {client}"
        );
    }
    Ok(res)
}
