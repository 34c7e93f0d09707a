//! Request bodies as hapi reads them: JSON (also when no content type is given, hapi's
//! default) or URL-encoded forms, at most 64 KiB, always a JSON object for the handler.

use std::pin::Pin;
use std::time::Duration;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::StreamExt;
use serde_json::Value;

use crate::domain::Object;
use crate::error::ApiError;

/// The largest body accepted; larger ones are refused with 413 before they are read whole.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// How long a body may pause (the headers themselves have the server's 10 s request timeout);
/// a client that stalls gets 408.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// The slowest a body may arrive on the whole: [`BODY_TIMEOUT`] plus a second per this many
/// bytes of the route's limit (12 s for the 64 KiB JSON routes).
const SLOWEST_BYTES_PER_SEC: usize = 32 * 1024;

/// Where inflated bytes go: a buffer that refuses to grow past the limit. A decoder writing
/// into it stops at the first byte too many, so a gzip bomb costs at most `limit` bytes of
/// memory (plus the decoder's own fixed window), never the inflated size of a network chunk.
struct Bounded {
    body: web::BytesMut,
    limit: usize,
}

impl std::io::Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.body.len() + buf.len() > self.limit {
            return Err(std::io::Error::other(TooLarge));
        }
        self.body.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[derive(Debug)]
struct TooLarge;

impl std::fmt::Display for TooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("body over the limit")
    }
}

impl std::error::Error for TooLarge {}

/// The body as it arrives, undone of its `Content-Encoding` on the way.
enum Sink {
    Plain(Bounded),
    Gzip(flate2::write::GzDecoder<Bounded>),
    Deflate(flate2::write::ZlibDecoder<Bounded>),
}

impl Sink {
    fn for_request(req: &HttpRequest, limit: usize, capacity: usize) -> Result<Self, ApiError> {
        let bounded = Bounded {
            body: web::BytesMut::with_capacity(capacity),
            limit,
        };
        let Some(value) = req.headers().get(header::CONTENT_ENCODING) else {
            return Ok(Sink::Plain(bounded));
        };
        let coding = value
            .to_str()
            .map_err(|_| ApiError::UnsupportedMediaType)?
            .trim()
            .to_ascii_lowercase();
        match coding.as_str() {
            "" | "identity" => Ok(Sink::Plain(bounded)),
            "gzip" | "x-gzip" => Ok(Sink::Gzip(flate2::write::GzDecoder::new(bounded))),
            "deflate" => Ok(Sink::Deflate(flate2::write::ZlibDecoder::new(bounded))),
            // br, zstd, chains of codings: not taken (hapi answers 415 as well).
            _ => Err(ApiError::UnsupportedMediaType),
        }
    }

    fn write(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        use std::io::Write;
        match self {
            Sink::Plain(b) => b.write_all(chunk),
            Sink::Gzip(d) => d.write_all(chunk),
            Sink::Deflate(d) => d.write_all(chunk),
        }
    }

    fn finish(self) -> std::io::Result<web::BytesMut> {
        Ok(match self {
            Sink::Plain(b) => b.body,
            Sink::Gzip(d) => d.finish()?.body,
            Sink::Deflate(d) => d.finish()?.body,
        })
    }
}

/// Why a write into the sink failed: over the limit (413), or a broken encoding (400).
fn sink_error(e: std::io::Error, limit: usize) -> ApiError {
    if e.get_ref().is_some_and(|inner| inner.is::<TooLarge>()) {
        ApiError::PayloadTooLarge(limit)
    } else {
        log::debug!("request body: {e}");
        ApiError::BadRequest("Invalid request payload".into())
    }
}

/// Reads the whole body, decompressed as its `Content-Encoding` says (gzip, deflate or none):
/// at most `limit` bytes after decompression (413 beyond, checked against `Content-Length`
/// first), with no pause over [`BODY_TIMEOUT`] and not slower on the whole than
/// [`SLOWEST_BYTES_PER_SEC`] (408).
pub async fn read_body(
    req: &HttpRequest,
    mut payload: Payload,
    limit: usize,
) -> Result<web::BytesMut, ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::PayloadTooLarge(limit));
    }
    let mut sink = Sink::for_request(req, limit, declared.unwrap_or(0).min(MAX_BODY_BYTES))?;
    let read = async move {
        loop {
            let next = actix_web::rt::time::timeout(BODY_TIMEOUT, payload.next())
                .await
                .map_err(|_| ApiError::RequestTimeout)?;
            let Some(chunk) = next else { break };
            let chunk = chunk.map_err(|e| {
                log::debug!("request body: {e}");
                ApiError::BadRequest("Invalid request payload".into())
            })?;
            sink.write(&chunk).map_err(|e| sink_error(e, limit))?;
        }
        sink.finish().map_err(|e| sink_error(e, limit))
    };
    let whole = BODY_TIMEOUT + Duration::from_secs((limit / SLOWEST_BYTES_PER_SEC) as u64);
    actix_web::rt::time::timeout(whole, read)
        .await
        .map_err(|_| ApiError::RequestTimeout)?
}

/// A request body that is a JSON object.
#[derive(Debug)]
pub struct JsonObject(pub Object);

enum Kind {
    Json,
    Form,
}

fn kind(req: &HttpRequest) -> Result<Kind, ApiError> {
    let Some(value) = req.headers().get(header::CONTENT_TYPE) else {
        return Ok(Kind::Json);
    };
    let text = value.to_str().map_err(|_| ApiError::UnsupportedMediaType)?;
    let essence = text
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/json" => Ok(Kind::Json),
        "application/x-www-form-urlencoded" => Ok(Kind::Form),
        e if e.starts_with("application/") && e.ends_with("+json") => Ok(Kind::Json),
        _ => Err(ApiError::UnsupportedMediaType),
    }
}

async fn read_limited(req: HttpRequest, payload: Payload) -> Result<JsonObject, ApiError> {
    let kind = kind(&req)?;
    let body = read_body(&req, payload, MAX_BODY_BYTES).await?;
    let value = if body.iter().all(u8::is_ascii_whitespace) {
        // An empty body is an empty object, so the error names the first missing field.
        Value::Object(Object::new())
    } else {
        match kind {
            Kind::Json => serde_json::from_slice(&body)
                .map_err(|_| ApiError::BadRequest("Invalid request payload JSON format".into()))?,
            // `curl -d '{…}'` labels JSON as a form; read it as the JSON it plainly is.
            Kind::Form if body.trim_ascii_start().starts_with(b"{") => {
                serde_json::from_slice(&body).map_err(|_| {
                    ApiError::BadRequest("Invalid request payload JSON format".into())
                })?
            }
            Kind::Form => {
                let pairs: Vec<(String, String)> = serde_urlencoded_pairs(&body)?;
                Value::Object(
                    pairs
                        .into_iter()
                        .map(|(k, v)| (k, Value::String(v)))
                        .collect(),
                )
            }
        }
    };
    match value {
        Value::Object(map) => Ok(JsonObject(map)),
        _ => Err(ApiError::Validation {
            message: "\"value\" must be of type object".into(),
            field: None,
        }),
    }
}

fn serde_urlencoded_pairs(body: &[u8]) -> Result<Vec<(String, String)>, ApiError> {
    web::Query::<Vec<(String, String)>>::from_query(
        std::str::from_utf8(body)
            .map_err(|_| ApiError::BadRequest("Invalid request payload".into()))?,
    )
    .map(web::Query::into_inner)
    .map_err(|_| ApiError::BadRequest("Invalid request payload".into()))
}

impl FromRequest for JsonObject {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        Box::pin(read_limited(req.clone(), payload.take()))
    }
}
