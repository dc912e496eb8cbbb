//! OMS's health endpoint: `GET http://<host>:<nginx port>/oms/health` answers JSON whose
//! `data.healthy` is `true` when the node is up (no auth). The upgrade confirms the new
//! container with it after `docker_init.sh`, and a rollback confirms the old one.
//!
//! [`HttpHealth`] is the real client (plain HTTP, short timeouts, never through a proxy:
//! the node is local). A single [`Health::check`] reports what it saw, including "not
//! healthy" answers; [`Health::wait_healthy`] polls until healthy or a deadline.

use std::future::Future;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// At most this many bytes of a response body are read; a health answer is tiny.
const MAX_BODY_BYTES: usize = 64 * 1024;
/// At most this many characters of the body are kept in a report.
const EXCERPT_CHARS: usize = 512;

/// What one health request saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthReport {
    /// True iff the answer was a 2xx with JSON `data.healthy == true`.
    pub healthy: bool,
    /// HTTP status code.
    pub status: u16,
    /// The start of the body (lossy UTF-8, at most 512 characters).
    pub body_excerpt: String,
    /// Why it is (not) healthy, in words.
    pub reason: String,
}

/// A health check could not get an answer, or the node did not become healthy in time.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    /// The base URL is not usable.
    #[error("invalid health URL `{url}`: {detail}")]
    InvalidUrl {
        /// The URL.
        url: String,
        /// Why.
        detail: String,
    },
    /// Nothing answered (connection refused, reset, DNS failure).
    #[error(
        "OMS health endpoint `{url}` is not reachable ({detail}); check that the container is \
         running (`docker ps`) and that nginx_server_port in config.yaml matches"
    )]
    Unreachable {
        /// The URL.
        url: String,
        /// What the client reported.
        detail: String,
    },
    /// A connection was made but no answer came within the request timeout.
    #[error("OMS health endpoint `{url}` did not answer within {after:?}")]
    RequestTimeout {
        /// The URL.
        url: String,
        /// The request timeout.
        after: Duration,
    },
    /// The node did not report healthy before the deadline.
    #[error(
        "OMS at `{url}` did not become healthy within {waited:?}; last observation: {last}. \
         Read the container's logs (`docker logs --tail 200 <container>`)"
    )]
    Timeout {
        /// The URL.
        url: String,
        /// How long was waited.
        waited: Duration,
        /// The last observation, in words.
        last: String,
        /// The last report, when the last attempt got an HTTP answer.
        last_report: Option<HealthReport>,
    },
}

/// Checks OMS health. The executor is generic over this trait; [`HttpHealth`] is the real one.
pub trait Health: Send + Sync {
    /// One request to `{base_url}/oms/health`. An answer that is not healthy is a report
    /// with `healthy: false`, not an error; errors mean no answer at all.
    fn check(
        &self,
        base_url: &str,
    ) -> impl Future<Output = Result<HealthReport, HealthError>> + Send;

    /// Polls [`Health::check`] every `poll_interval` until healthy, or
    /// [`HealthError::Timeout`] after `timeout`. Unreachable answers are expected while a
    /// node starts and are retried.
    fn wait_healthy(
        &self,
        base_url: &str,
        timeout: Duration,
        poll_interval: Duration,
    ) -> impl Future<Output = Result<HealthReport, HealthError>> + Send {
        async move {
            let start = Instant::now();
            let deadline = start + timeout;
            loop {
                let (last, last_report) = match self.check(base_url).await {
                    Ok(r) if r.healthy => return Ok(r),
                    Ok(r) => (format!("HTTP {}: {}", r.status, r.reason), Some(r)),
                    Err(e @ HealthError::InvalidUrl { .. }) => return Err(e),
                    Err(e) => (e.to_string(), None),
                };
                let now = Instant::now();
                if now >= deadline {
                    return Err(HealthError::Timeout {
                        url: health_url(base_url),
                        waited: now - start,
                        last,
                        last_report,
                    });
                }
                tokio::time::sleep(poll_interval.min(deadline - now)).await;
            }
        }
    }
}

/// `{base_url}/oms/health`, tolerating a trailing slash on the base.
pub fn health_url(base_url: &str) -> String {
    format!("{}/oms/health", base_url.trim_end_matches('/'))
}

/// Decides health from a status and a body: healthy iff 2xx and JSON `data.healthy == true`.
pub fn judge(status: u16, body: &[u8]) -> HealthReport {
    let text = String::from_utf8_lossy(body);
    let body_excerpt: String = text.chars().take(EXCERPT_CHARS).collect();
    let (healthy, reason) = match serde_json::from_slice::<serde_json::Value>(body) {
        Err(_) => (false, "the answer is not JSON".to_string()),
        Ok(v) => match v.pointer("/data/healthy") {
            Some(serde_json::Value::Bool(true)) if (200..300).contains(&status) => {
                (true, "data.healthy is true".to_string())
            }
            Some(serde_json::Value::Bool(true)) => (
                false,
                format!("data.healthy is true but the HTTP status is {status}"),
            ),
            Some(serde_json::Value::Bool(false)) => (false, "data.healthy is false".to_string()),
            Some(other) => (false, format!("data.healthy is {other}, not a boolean")),
            None => (false, "the answer has no data.healthy".to_string()),
        },
    };
    HealthReport {
        healthy,
        status,
        body_excerpt,
        reason,
    }
}

/// The real [`Health`] over HTTP (reqwest).
#[derive(Debug, Clone)]
pub struct HttpHealth {
    client: reqwest::Client,
    request_timeout: Duration,
}

impl HttpHealth {
    /// A client with a 2 s connect timeout and a 5 s request timeout.
    pub fn new() -> Result<Self, HealthError> {
        Self::with_timeouts(Duration::from_secs(2), Duration::from_secs(5))
    }

    /// A client with the given connect and whole-request timeouts.
    pub fn with_timeouts(connect: Duration, request: Duration) -> Result<Self, HealthError> {
        let client = reqwest::Client::builder()
            .connect_timeout(connect)
            .timeout(request)
            // The node is local; a proxy from the environment would only get in the way.
            .no_proxy()
            .build()
            .map_err(|e| HealthError::InvalidUrl {
                url: String::new(),
                detail: format!("cannot build the HTTP client: {e}"),
            })?;
        Ok(HttpHealth {
            client,
            request_timeout: request,
        })
    }
}

impl Health for HttpHealth {
    async fn check(&self, base_url: &str) -> Result<HealthReport, HealthError> {
        let url = health_url(base_url);
        let classify = |e: reqwest::Error| {
            if e.is_builder() {
                HealthError::InvalidUrl {
                    url: url.clone(),
                    detail: e.to_string(),
                }
            } else if e.is_timeout() {
                HealthError::RequestTimeout {
                    url: url.clone(),
                    after: self.request_timeout,
                }
            } else {
                HealthError::Unreachable {
                    url: url.clone(),
                    detail: error_chain(&e),
                }
            }
        };
        let mut resp = self.client.get(&url).send().await.map_err(classify)?;
        let status = resp.status().as_u16();
        let mut body = Vec::new();
        while body.len() < MAX_BODY_BYTES {
            match resp.chunk().await.map_err(classify)? {
                Some(c) => body.extend_from_slice(&c),
                None => break,
            }
        }
        body.truncate(MAX_BODY_BYTES);
        Ok(judge(status, &body))
    }
}

/// The error and its causes on one line ("error sending request: connection refused").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judge_reads_data_healthy() {
        assert!(judge(200, br#"{"success":true,"data":{"healthy":true}}"#).healthy);
        let r = judge(200, br#"{"data":{"healthy":false}}"#);
        assert!(!r.healthy);
        assert_eq!(r.reason, "data.healthy is false");
        assert!(!judge(200, b"<html>502</html>").healthy);
        assert!(!judge(503, br#"{"data":{"healthy":true}}"#).healthy);
        assert!(!judge(200, br#"{"data":{"healthy":"true"}}"#).healthy);
        assert!(!judge(200, br#"{"healthy":true}"#).healthy);
    }

    #[test]
    fn url_tolerates_trailing_slash() {
        assert_eq!(
            health_url("http://127.0.0.1:8089/"),
            "http://127.0.0.1:8089/oms/health"
        );
    }
}
