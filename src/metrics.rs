//! Prometheus metrics (`metrics.enabled`): requests by route and status, latency by route,
//! sign-ins by outcome, users stored and password hashes waiting.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    /// The route pattern (`/users/{id}`), never the raw path, so labels stay few.
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FromLabels {
    pub from: &'static str,
}

/// The method as a label: the standard ones by name, anything a client invented as `OTHER`,
/// so labels (and the memory they take) stay a fixed few whatever clients send.
pub fn method_label(method: &str) -> &'static str {
    const KNOWN: &[&str] = &[
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE",
    ];
    KNOWN
        .iter()
        .find(|m| **m == method)
        .copied()
        .unwrap_or("OTHER")
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    sign_ins: Family<OutcomeLabels, Counter>,
    webhooks: Family<OutcomeLabels, Counter>,
    rehashes: Family<FromLabels, Counter>,
    users: Gauge,
    hashes_waiting: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("appmixer_auth");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            // 0.1 ms to about 3 s: from a token check to a queue of bcrypt hashes.
            Histogram::new(exponential_buckets(0.0001, 2.0, 16))
        });
        let sign_ins = Family::<OutcomeLabels, Counter>::default();
        let webhooks = Family::<OutcomeLabels, Counter>::default();
        let rehashes = Family::<FromLabels, Counter>::default();
        let users = Gauge::default();
        let hashes_waiting = Gauge::default();
        registry.register("http_requests", "HTTP requests answered", requests.clone());
        registry.register(
            "http_request_duration_seconds",
            "Time to answer a request",
            latency.clone(),
        );
        registry.register(
            "sign_ins",
            "Sign-ins by outcome: success, failure, rate_limited",
            sign_ins.clone(),
        );
        registry.register(
            "webhook_deliveries",
            "Webhook delivery attempts by outcome: delivered, retried, abandoned",
            webhooks.clone(),
        );
        registry.register(
            "password_rehashes",
            "Stored hashes replaced by bcrypt at the configured cost after a sign-in, by the scheme they had",
            rehashes.clone(),
        );
        registry.register("users", "Users stored", users.clone());
        registry.register(
            "password_hashes_waiting",
            "Password hashes waiting for a free slot",
            hashes_waiting.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            sign_ins,
            webhooks,
            rehashes,
            users,
            hashes_waiting,
        }
    }

    pub fn observe_request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                method: method_label(method).to_owned(),
                route: route.to_owned(),
                status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
            })
            .observe(seconds);
    }

    /// `outcome` is `success`, `failure` or `rate_limited`.
    /// Counts a webhook delivery attempt: `delivered`, `retried` or `abandoned`.
    pub fn webhook(&self, outcome: &'static str) {
        self.webhooks
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// Counts a stored hash replaced by bcrypt after a sign-in.
    pub fn rehash(&self, from: &'static str) {
        self.rehashes.get_or_create(&FromLabels { from }).inc();
    }

    pub fn sign_in(&self, outcome: &'static str) {
        self.sign_ins
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// The text exposition, with the gauges read now.
    pub fn render(&self, users: u64, hashes_waiting: usize) -> String {
        self.users.set(i64::try_from(users).unwrap_or(i64::MAX));
        self.hashes_waiting
            .set(i64::try_from(hashes_waiting).unwrap_or(i64::MAX));
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invented_methods_share_one_label() {
        let m = Metrics::new();
        for i in 0..1000 {
            m.observe_request(&format!("X{i}"), "/", 405, 0.001);
        }
        m.observe_request("GET", "/", 200, 0.001);
        let text = m.render(0, 0);
        let lines = text
            .lines()
            .filter(|l| l.starts_with("appmixer_auth_http_requests_total"))
            .count();
        assert_eq!(lines, 2, "{text}");
        assert!(text.contains("method=\"OTHER\""));
    }
}
