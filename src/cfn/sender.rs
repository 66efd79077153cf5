//! The PUT to the ResponseURL. The URL comes from the event, so it is checked against an
//! allow-list before any request (an event could otherwise make the function call anywhere), and
//! it carries a signature, so it never reaches a log or an error message.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, StatusCode};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use tokio::time::Instant;
use url::Url;

use super::Error;
use super::connect::Route;

const HOSTS_VAR: &str = "VENDOR_GRANTS_RESPONSE_HOSTS";
/// Every CloudFormation response bucket is named this, then the region without dashes.
const RESPONSE_BUCKET_PREFIX: &str = "cloudformation-custom-resource-response-";

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// An attempt that hangs longer than this is abandoned for a fresh one while time remains.
const MAX_ATTEMPT: Duration = Duration::from_secs(10);
/// No attempt is shorter; an answer already late is still worth one short try.
const MIN_ATTEMPT: Duration = Duration::from_millis(250);
const BACKOFF_BASE: Duration = Duration::from_millis(200);
const BACKOFF_CAP: Duration = Duration::from_secs(5);

#[derive(Clone, Debug, PartialEq, Eq)]
enum HostPattern {
    Exact(String),
    /// `*.suffix`: any host strictly below `suffix`, not `suffix` itself.
    Below(String),
    /// The default: CloudFormation's response buckets only, virtual-hosted
    /// (`cloudformation-custom-resource-response-useast1.s3.amazonaws.com`) or path-style
    /// (`s3.us-east-1.amazonaws.com/cloudformation-custom-resource-response-useast1/...`), under
    /// `amazonaws.com` or `amazonaws.com.cn`, on the standard port. Not any S3 bucket or other
    /// AWS endpoint: anyone can own one of those, and a forged event would send them the answer.
    ResponseBuckets,
}

/// `cloudformation-custom-resource-response-` then the region without dashes (`useast1`).
fn is_response_bucket(name: &str) -> bool {
    name.strip_prefix(RESPONSE_BUCKET_PREFIX)
        .is_some_and(|region| {
            (4..=24).contains(&region.len())
                && region
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
                && region.bytes().any(|b| b.is_ascii_digit())
        })
}

/// An S3 endpoint host: `s3`, `s3.REGION`, `s3-REGION`, `s3.dualstack.REGION`, under
/// `.amazonaws.com` or `.amazonaws.com.cn`.
fn is_s3_host(host: &str) -> bool {
    let Some(rest) = host
        .strip_suffix(".amazonaws.com")
        .or_else(|| host.strip_suffix(".amazonaws.com.cn"))
    else {
        return false;
    };
    if rest == "s3" {
        return true;
    }
    let Some(region) = rest
        .strip_prefix("s3.")
        .or_else(|| rest.strip_prefix("s3-"))
    else {
        return false;
    };
    let labels: Vec<&str> = region.split('.').collect();
    labels.len() <= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

/// Whether `url` (https, standard port) is an object of a CloudFormation response bucket.
fn is_response_bucket_url(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    if url.port().is_some() {
        return false;
    }
    if let Some((bucket, s3)) = host.split_once('.')
        && is_response_bucket(bucket)
        && is_s3_host(s3)
    {
        return true;
    }
    is_s3_host(host)
        && url
            .path_segments()
            .and_then(|mut segments| segments.next())
            .is_some_and(is_response_bucket)
}

impl HostPattern {
    fn parse(entry: &str) -> Option<HostPattern> {
        let entry = entry.trim().to_ascii_lowercase();
        let entry = entry.trim_start_matches('[').trim_end_matches(']');
        if entry.parse::<IpAddr>().is_ok() {
            return Some(HostPattern::Exact(entry.to_owned()));
        }
        let (wildcard, name) = match entry.strip_prefix("*.") {
            Some(name) => (true, name),
            None => (false, entry),
        };
        let valid = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
        match (valid, wildcard) {
            (false, _) => None,
            (true, true) => Some(HostPattern::Below(name.to_owned())),
            (true, false) => Some(HostPattern::Exact(name.to_owned())),
        }
    }

    fn matches(&self, host: &str, url: &Url) -> bool {
        match self {
            HostPattern::ResponseBuckets => is_response_bucket_url(url),
            HostPattern::Exact(h) => host == h,
            HostPattern::Below(suffix) => host
                .strip_suffix(suffix.as_str())
                .is_some_and(|rest| rest.len() > 1 && rest.ends_with('.')),
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPattern::Exact(h) => f.write_str(h),
            HostPattern::Below(s) => write!(f, "*.{s}"),
            HostPattern::ResponseBuckets => f.write_str(
                "CloudFormation's response buckets (https://cloudformation-custom-resource-response-REGION.s3.amazonaws.com/...)",
            ),
        }
    }
}

/// The hosts a ResponseURL may point at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowList {
    patterns: Vec<HostPattern>,
}

impl AllowList {
    /// `value` is VENDOR_GRANTS_RESPONSE_HOSTS: comma-separated hosts, exact or `*.suffix`, no
    /// scheme or port. Unset or blank means the AWS response buckets. Entries that are not host
    /// names are dropped with a warning rather than widening or failing the list.
    pub fn parse(value: Option<&str>) -> AllowList {
        let Some(value) = value.filter(|v| v.split(',').any(|e| !e.trim().is_empty())) else {
            return AllowList {
                patterns: vec![HostPattern::ResponseBuckets],
            };
        };
        let mut patterns = Vec::new();
        for entry in value.split(',') {
            if entry.trim().is_empty() {
                continue;
            }
            match HostPattern::parse(entry) {
                Some(p) => patterns.push(p),
                None => tracing::warn!(
                    entry = entry.trim(),
                    "ignoring an entry of {HOSTS_VAR} that is not a host name or *.suffix"
                ),
            }
        }
        AllowList { patterns }
    }

    /// The URL to send the answer to, if it may be called. Errors name the host, never the URL.
    pub fn check(&self, url: &str) -> Result<Url, Error> {
        let parsed = Url::parse(url).map_err(|e| Error::InvalidResponseUrl(e.to_string()))?;
        let host = match parsed.host_str() {
            Some(h) if !h.is_empty() => h.to_owned(),
            _ => return Err(Error::InvalidResponseUrl("it has no host".into())),
        };
        let refuse = |why: String| Error::ResponseUrlRefused {
            host: host.clone(),
            why,
        };
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(refuse(
                "the URL must not carry a user name or password".into(),
            ));
        }
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if !self.patterns.iter().any(|p| p.matches(bare, &parsed)) {
            return Err(refuse(format!(
                "the host is not one of {self}; {HOSTS_VAR} sets the allowed hosts"
            )));
        }
        match parsed.scheme() {
            "https" => Ok(parsed),
            "http" if is_loopback(bare) => Ok(parsed),
            "http" => Err(refuse(
                "plain http is allowed only to a loopback host; the URL must use https".into(),
            )),
            other => Err(refuse(format!("the scheme must be https, not {other}"))),
        }
    }
}

impl fmt::Display for AllowList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.patterns.is_empty() {
            return f.write_str("(no valid hosts)");
        }
        for (i, p) in self.patterns.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SendReport {
    pub attempts: u32,
    pub status: u16,
}

type HttpsClient = Client<HttpsConnector<Route>, Full<Bytes>>;

/// Sends answers; build one per process and reuse it (the client holds the connection pool and
/// the loaded CA certificates). It uses the TLS setup of the SDK clients' HTTP client
/// (`crate::tls`: rustls with ring, the system's CA certificates; hyper 1), so the process carries
/// one HTTP stack.
#[derive(Debug)]
pub struct Sender {
    client: HttpsClient,
    allow: AllowList,
    /// Why HTTPS cannot work, when the system has no usable CA certificates.
    https_unavailable: Option<String>,
}

/// Why one attempt at the PUT failed.
#[derive(Debug)]
enum PutError {
    /// The request could not be formed (never retried).
    Build(String),
    /// No answer within the attempt's time.
    TimedOut(Duration),
    /// Connecting, TLS or the exchange failed.
    Transport(hyper_util::client::legacy::Error),
}

impl Sender {
    /// With no CA certificates on the system the sender still builds, trusting no roots at all:
    /// plain HTTP to a loopback host (tests, emulators) still works, and an HTTPS answer fails
    /// at once with an error that says why instead of retrying a doomed handshake.
    pub fn new(allow: AllowList) -> Result<Sender, Error> {
        let tls = crate::tls::config().map_err(Error::HttpClient)?;
        let https_unavailable = tls.unavailable.clone();
        if let Some(why) = &https_unavailable {
            tracing::error!(
                error = %why,
                "no usable CA certificates; answers can go only to plain-HTTP loopback hosts"
            );
        }
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls.config.clone())
            .https_or_http()
            .enable_http1()
            .wrap_connector(Route::new(http));
        // hyper never follows redirects: a redirect would take the answer to a host the
        // allow-list never saw, and it is judged as the refusal it is.
        let client = Client::builder(hyper_util::rt::TokioExecutor::new()).build(https);
        Ok(Sender {
            client,
            allow,
            https_unavailable,
        })
    }

    pub fn allow_list(&self) -> &AllowList {
        &self.allow
    }

    /// PUTs `body` to `url`, retrying server errors, throttling and transport failures with
    /// exponential backoff and full jitter until `deadline`. Any other status is final, since a
    /// pre-signed URL that is refused once (expired, wrong signature) is refused again.
    pub async fn send(
        &self,
        url: &str,
        body: Vec<u8>,
        deadline: Instant,
    ) -> Result<SendReport, Error> {
        let url = self.allow.check(url)?;
        let host = url.host_str().unwrap_or_default().to_owned();
        if let (Some(why), "https") = (&self.https_unavailable, url.scheme()) {
            return Err(Error::HttpsUnavailable {
                host,
                why: why.clone(),
            });
        }

        let body = Bytes::from(body);
        let mut attempts: u32 = 0;
        loop {
            attempts += 1;
            let result = self.put_once(&url, body.clone(), deadline).await;
            let failure = match judge(&host, attempts, result) {
                Attempt::Final(outcome) => return outcome,
                Attempt::Retry(failure) => failure,
            };
            let pause = retry_pause(&host, attempts, failure, deadline)?;
            tokio::time::sleep(pause).await;
        }
    }

    /// One PUT of the answer, given whatever time is left before `deadline`.
    async fn put_once(
        &self,
        url: &Url,
        body: Bytes,
        deadline: Instant,
    ) -> Result<StatusCode, PutError> {
        let left = deadline.saturating_duration_since(Instant::now());
        let request = hyper::Request::builder()
            .method(Method::PUT)
            .uri(url.as_str())
            // The empty Content-Type of AWS's own cfn-response: the pre-signed URL was
            // signed without one, and a value such as application/json gets a 403.
            .header(CONTENT_TYPE, HeaderValue::from_static(""))
            .body(Full::new(body))
            // The error names the URI, which must not reach a log.
            .map_err(|_| PutError::Build("the ResponseURL is not a valid request URI".into()))?;
        let limit = left.clamp(MIN_ATTEMPT, MAX_ATTEMPT);
        match tokio::time::timeout(limit, self.client.request(request)).await {
            Ok(Ok(response)) => Ok(response.status()),
            Ok(Err(e)) => Err(PutError::Transport(e)),
            Err(_) => Err(PutError::TimedOut(limit)),
        }
    }
}

/// What one attempt at the PUT came to.
enum Attempt {
    /// Delivered, refused for good, or the request could not be built: no more attempts.
    Final(Result<SendReport, Error>),
    /// A failure worth another attempt while time remains, described for the log.
    Retry(String),
}

/// Sorts one attempt's result into final or retryable, logging the final ones.
fn judge(host: &str, attempts: u32, result: Result<StatusCode, PutError>) -> Attempt {
    let status = match result {
        Ok(status) => status,
        Err(PutError::Build(why)) => return Attempt::Final(Err(Error::HttpClient(why))),
        Err(e) => return Attempt::Retry(describe(&e)),
    };
    if status.is_success() {
        tracing::info!(
            %host,
            attempt = attempts,
            status = status.as_u16(),
            "answer delivered"
        );
        return Attempt::Final(Ok(SendReport {
            attempts,
            status: status.as_u16(),
        }));
    }
    if !status.is_server_error() && status != StatusCode::TOO_MANY_REQUESTS {
        tracing::error!(
            %host,
            attempt = attempts,
            status = status.as_u16(),
            "answer refused"
        );
        return Attempt::Final(Err(Error::AnswerRejected {
            host: host.to_owned(),
            status: status.as_u16(),
            attempts,
        }));
    }
    Attempt::Retry(format!("HTTP {}", status.as_u16()))
}

/// The pause before the next attempt, or the timed-out error when too little time is left.
fn retry_pause(
    host: &str,
    attempts: u32,
    failure: String,
    deadline: Instant,
) -> Result<Duration, Error> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left < MIN_ATTEMPT {
        tracing::error!(
            %host,
            attempt = attempts,
            %failure,
            "answer not delivered by the deadline"
        );
        return Err(Error::AnswerTimedOut {
            host: host.to_owned(),
            attempts,
            last: failure,
        });
    }
    let pause = backoff(attempts).min(left - MIN_ATTEMPT);
    tracing::warn!(
        %host,
        attempt = attempts,
        %failure,
        retry_in_ms = pause.as_millis() as u64,
        "answer not delivered; retrying"
    );
    Ok(pause)
}

/// Full jitter: a uniform pause up to an exponentially growing ceiling, so that many functions
/// failing together do not retry together.
fn backoff(attempt: u32) -> Duration {
    let doubling = 1u32 << attempt.saturating_sub(1).min(16);
    let ceiling = BACKOFF_BASE.saturating_mul(doubling).min(BACKOFF_CAP);
    Duration::from_millis(fastrand::u64(0..=ceiling.as_millis() as u64))
}

/// The error and its causes on one line (hyper's errors never carry the URL).
fn describe(e: &PutError) -> String {
    let e = match e {
        PutError::Build(why) => return why.clone(),
        PutError::TimedOut(limit) => {
            return format!("no answer within {} ms", limit.as_millis());
        }
        PutError::Transport(e) => e,
    };
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    const SIGNATURE: &str = "X-Amz-Signature=secret";

    fn refused_why(list: &AllowList, url: &str) -> String {
        match list.check(url) {
            Err(Error::ResponseUrlRefused { why, .. }) => why,
            other => panic!("{url}: expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn default_list_allows_https_to_cloudformation_response_buckets_only() {
        let list = AllowList::parse(None);
        assert_eq!(list, AllowList::parse(Some(" , ")));
        assert!(list.to_string().contains("response buckets"));
        for ok in [
            "https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com/a?b=c",
            "https://cloudformation-custom-resource-response-uswest2.s3-us-west-2.amazonaws.com/arn%3Aaws/x?X-Amz-Signature=s",
            "https://cloudformation-custom-resource-response-euwest1.s3.eu-west-1.amazonaws.com/k",
            "https://s3.us-east-1.amazonaws.com/cloudformation-custom-resource-response-useast1/key",
            "https://s3.amazonaws.com/cloudformation-custom-resource-response-useast1/key",
            "https://cloudformation-custom-resource-response-cnnorth1.s3.cn-north-1.amazonaws.com.cn/k",
            "https://cloudformation-custom-resource-response-useast1.s3.dualstack.us-east-1.amazonaws.com/k",
            "https://CLOUDFORMATION-CUSTOM-RESOURCE-RESPONSE-USEAST1.S3.AMAZONAWS.COM/k",
            "https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com:443/k",
        ] {
            assert!(list.check(ok).is_ok(), "{ok}");
        }
        for bad in [
            // Anyone's bucket, or any other AWS endpoint, is not CloudFormation's.
            "https://s3.us-east-1.amazonaws.com/bucket/key",
            "https://attacker-bucket.s3.amazonaws.com/k",
            "https://x.s3.cn-north-1.amazonaws.com.cn/k",
            "https://abc123.execute-api.us-east-1.amazonaws.com/prod",
            "https://s3.amazonaws.com/attacker/cloudformation-custom-resource-response-useast1/k",
            "https://cloudformation-custom-resource-response-useast1.evil.com/k",
            "https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com.evil.com/k",
            "https://cloudformation-custom-resource-response-useast1.x.amazonaws.com/k",
            "https://cloudformation-custom-resource-response-.s3.amazonaws.com/k",
            "https://cloudformation-custom-resource-response-evil.s3.amazonaws.com/k",
            "https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com:8443/k",
            "http://cloudformation-custom-resource-response-useast1.s3.amazonaws.com/k",
            "http://s3.amazonaws.com/k",
            "https://amazonaws.com/k",
            "https://evil.com/x.amazonaws.com",
            "https://s3.amazonaws.com.evil.com/",
            "https://evilamazonaws.com/",
            "https://localhost/k",
            "http://127.0.0.1:9000/k",
            "ftp://s3.amazonaws.com/cloudformation-custom-resource-response-useast1/k",
        ] {
            refused_why(&list, bad);
        }
    }

    #[test]
    fn custom_list_replaces_the_default() {
        let list = AllowList::parse(Some(
            " Localhost, *.example.org ,127.0.0.1,[::1], bad/entry, *, host:9000",
        ));
        assert_eq!(list.to_string(), "localhost, *.example.org, 127.0.0.1, ::1");
        for ok in [
            "http://localhost:4566/bucket/key",
            "http://127.0.0.1:9000/k",
            "http://[::1]:9000/k",
            "https://a.b.example.org/k",
            "https://localhost/k",
        ] {
            assert!(list.check(ok).is_ok(), "{ok}");
        }
        assert!(refused_why(&list, "https://s3.amazonaws.com/k").contains("not one of"));
        assert!(refused_why(&list, "https://example.org/k").contains("not one of"));
        // Loopback, but not on the list.
        assert!(refused_why(&list, "http://127.0.0.2/k").contains("not one of"));
        // On the list, but plain http to a host that is not loopback.
        assert!(refused_why(&list, "http://a.example.org/k").contains("https"));
    }

    #[test]
    fn loopback_is_recognised() {
        let list = AllowList::parse(Some("127.0.0.5,localhost,::1,10.0.0.1"));
        assert!(list.check("http://127.0.0.5/").is_ok());
        assert!(list.check("http://LOCALHOST/").is_ok());
        assert!(list.check("http://[::1]/").is_ok());
        assert!(refused_why(&list, "http://10.0.0.1/").contains("loopback"));
        assert!(list.check("https://10.0.0.1/").is_ok());
    }

    #[test]
    fn userinfo_and_malformed_urls_are_refused_without_echoing_them() {
        let list = AllowList::parse(Some("localhost,*.amazonaws.com"));
        for url in [
            "https://user@s3.amazonaws.com/k?X-Amz-Signature=secret",
            "https://user:pw@s3.amazonaws.com/k?X-Amz-Signature=secret",
            "http://:pw@localhost/k?X-Amz-Signature=secret",
        ] {
            let err = list.check(url).unwrap_err().to_string();
            assert!(err.contains("user name or password"), "{err}");
            assert!(!err.contains("secret") && !err.contains("pw"), "{err}");
        }
        for url in [
            "",
            "not a url X-Amz-Signature=secret",
            "/relative?X-Amz-Signature=secret",
            "https://",
            "https://exa mple.amazonaws.com/?X-Amz-Signature=secret",
            "mailto:someone@s3.amazonaws.com?X-Amz-Signature=secret",
            "file:///etc/passwd?X-Amz-Signature=secret",
        ] {
            let err = list.check(url).unwrap_err();
            assert!(
                matches!(err, Error::InvalidResponseUrl(_)),
                "{url}: {err:?}"
            );
            assert!(!err.to_string().contains("secret"), "{err}");
        }
        let err = list
            .check("https://evil.com/?X-Amz-Signature=secret")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "refusing to send the answer to `evil.com`: the host is not one of localhost, \
             *.amazonaws.com; VENDOR_GRANTS_RESPONSE_HOSTS sets the allowed hosts"
        );
    }

    #[test]
    fn backoff_grows_with_full_jitter_up_to_the_cap() {
        for attempt in 1..40 {
            let ceiling = BACKOFF_BASE
                .saturating_mul(1 << (attempt - 1).min(16))
                .min(BACKOFF_CAP);
            for _ in 0..20 {
                assert!(backoff(attempt) <= ceiling);
            }
        }
        let spread: std::collections::HashSet<_> = (0..50).map(|_| backoff(5)).collect();
        assert!(spread.len() > 10, "jittered: {spread:?}");
    }

    // A tiny HTTP/1.1 server: answers each request from a script and records what it got.

    #[derive(Clone, Copy, Debug)]
    enum Reply {
        Status(u16),
        /// Read the request and never answer.
        Silent,
    }

    #[derive(Debug)]
    struct Seen {
        method: String,
        target: String,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    impl Seen {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        }
    }

    type Log = Arc<Mutex<Vec<Seen>>>;

    /// Returns the server's URL (with a fake signature in the query) and what it has seen.
    /// The last reply of the script repeats.
    async fn serve(script: Vec<Reply>) -> (String, Log) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let log: Log = Arc::default();
        let seen = log.clone();
        tokio::spawn(async move {
            for n in 0.. {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let reply = script[n.min(script.len() - 1)];
                let seen = seen.clone();
                tokio::spawn(async move {
                    let Some(request) = read_request(&mut stream).await else {
                        return;
                    };
                    seen.lock().unwrap().push(request);
                    match reply {
                        Reply::Status(code) => {
                            let head = format!(
                                "HTTP/1.1 {code} Scripted\r\n\
                                 content-length: 0\r\nconnection: close\r\n\r\n"
                            );
                            let _ = stream.write_all(head.as_bytes()).await;
                        }
                        Reply::Silent => tokio::time::sleep(Duration::from_secs(120)).await,
                    }
                });
            }
        });
        let url = format!("http://127.0.0.1:{port}/bucket/key?{SIGNATURE}");
        (url, log)
    }

    async fn read_request(stream: &mut TcpStream) -> Option<Seen> {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            let n = stream.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8(buf[..head_end].to_vec()).ok()?;
        let mut lines = head.split("\r\n");
        let mut first = lines.next()?.split(' ');
        let (method, target) = (first.next()?.to_owned(), first.next()?.to_owned());
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let length: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut body = buf[head_end + 4..].to_vec();
        while body.len() < length {
            let n = stream.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            body.extend_from_slice(&chunk[..n]);
        }
        Some(Seen {
            method,
            target,
            headers,
            body,
        })
    }

    fn loopback_sender() -> Sender {
        Sender::new(AllowList::parse(Some("127.0.0.1"))).unwrap()
    }

    fn in_secs(s: f64) -> Instant {
        Instant::now() + Duration::from_secs_f64(s)
    }

    const BODY: &str = r#"{"Status":"FAILED","Reason":"日本 é 🦀 \"q\""}"#;

    #[tokio::test]
    async fn delivers_the_body_intact_without_a_content_type() {
        let (url, log) = serve(vec![Reply::Status(200)]).await;
        let report = loopback_sender()
            .send(&url, BODY.as_bytes().to_vec(), in_secs(5.0))
            .await
            .unwrap();
        assert_eq!(
            report,
            SendReport {
                attempts: 1,
                status: 200
            }
        );
        let log = log.lock().unwrap();
        assert_eq!(log.len(), 1);
        let seen = &log[0];
        assert_eq!(seen.method, "PUT");
        assert_eq!(seen.target, format!("/bucket/key?{SIGNATURE}"));
        assert_eq!(seen.body, BODY.as_bytes());
        assert_eq!(
            seen.header("content-length"),
            Some(BODY.len().to_string().as_str())
        );
        assert_eq!(
            seen.header("content-type").unwrap_or(""),
            "",
            "{:?}",
            seen.headers
        );
    }

    #[tokio::test]
    async fn retries_server_errors_and_throttling() {
        let (url, log) = serve(vec![
            Reply::Status(500),
            Reply::Status(503),
            Reply::Status(429),
            Reply::Status(204),
        ])
        .await;
        let report = loopback_sender()
            .send(&url, BODY.as_bytes().to_vec(), in_secs(20.0))
            .await
            .unwrap();
        assert_eq!(
            report,
            SendReport {
                attempts: 4,
                status: 204
            }
        );
        let log = log.lock().unwrap();
        assert_eq!(log.len(), 4);
        assert!(
            log.iter()
                .all(|s| s.method == "PUT" && s.body == BODY.as_bytes())
        );
    }

    #[tokio::test]
    async fn a_client_error_is_final() {
        for code in [403, 400, 404, 301] {
            let (url, log) = serve(vec![Reply::Status(code), Reply::Status(200)]).await;
            let err = loopback_sender()
                .send(&url, b"{}".to_vec(), in_secs(10.0))
                .await
                .unwrap_err();
            assert!(
                matches!(err, Error::AnswerRejected { status, attempts: 1, .. } if status == code),
                "{err:?}"
            );
            assert!(!err.to_string().contains("secret"), "{err}");
            tokio::time::sleep(Duration::from_millis(50)).await;
            assert_eq!(log.lock().unwrap().len(), 1);
        }
    }

    #[tokio::test]
    async fn a_silent_server_is_given_up_on_at_the_deadline() {
        let (url, log) = serve(vec![Reply::Silent]).await;
        let start = Instant::now();
        let err = loopback_sender()
            .send(&url, b"{}".to_vec(), start + Duration::from_millis(1200))
            .await
            .unwrap_err();
        let took = start.elapsed();
        assert!(matches!(err, Error::AnswerTimedOut { .. }), "{err:?}");
        assert!(took >= Duration::from_millis(900), "{took:?}");
        assert!(took < Duration::from_millis(1700), "{took:?}");
        assert!(!err.to_string().contains("secret"), "{err}");
        assert!(!log.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn connection_failures_are_retried_until_the_deadline() {
        // A port that was just free: connections are refused.
        let port = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}/k?{SIGNATURE}");
        let start = Instant::now();
        let err = loopback_sender()
            .send(&url, b"{}".to_vec(), start + Duration::from_millis(1500))
            .await
            .unwrap_err();
        let took = start.elapsed();
        match &err {
            Error::AnswerTimedOut { attempts, host, .. } => {
                assert!(*attempts >= 2, "{err:?}");
                assert_eq!(host, "127.0.0.1");
            }
            other => panic!("{other:?}"),
        }
        assert!(took < Duration::from_millis(1800), "{took:?}");
        assert!(!err.to_string().contains("secret"), "{err}");
    }

    #[tokio::test]
    async fn a_past_deadline_still_gets_one_short_attempt() {
        let (url, log) = serve(vec![Reply::Status(200)]).await;
        let report = loopback_sender()
            .send(&url, b"{}".to_vec(), Instant::now())
            .await
            .unwrap();
        assert_eq!(report.attempts, 1);
        assert_eq!(log.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn refused_urls_get_no_request() {
        let (url, log) = serve(vec![Reply::Status(200)]).await;
        for list in [None, Some("localhost"), Some("127.0.0.2")] {
            let sender = Sender::new(AllowList::parse(list)).unwrap();
            let err = sender
                .send(&url, b"{}".to_vec(), in_secs(5.0))
                .await
                .unwrap_err();
            assert!(matches!(err, Error::ResponseUrlRefused { .. }), "{err:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(log.lock().unwrap().is_empty());
    }

    thread_local! {
        /// Where this thread's log lines go while it captures; `None`: dropped.
        static CAPTURE: std::cell::RefCell<Option<Arc<Mutex<Vec<u8>>>>> =
            const { std::cell::RefCell::new(None) };
    }

    /// Writes the log line to the capture of the thread that emitted it, if any.
    struct ThreadCapture;

    impl std::io::Write for ThreadCapture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            CAPTURE.with(|c| {
                if let Some(out) = c.borrow().as_ref() {
                    out.lock().unwrap().extend_from_slice(buf);
                }
            });
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Captures this thread's logs. A process-wide subscriber at TRACE, installed once: with a
    /// scoped one, a callsite another test's thread met first may stay cached as of no
    /// interest, and its lines would be lost.
    fn capture_logs() -> Arc<Mutex<Vec<u8>>> {
        static INSTALL: std::sync::Once = std::sync::Once::new();
        INSTALL.call_once(|| {
            let subscriber = tracing_subscriber::fmt()
                .with_max_level(tracing::Level::TRACE)
                .with_writer(|| ThreadCapture)
                .finish();
            tracing::subscriber::set_global_default(subscriber)
                .expect("no other global subscriber in the unit tests");
        });
        let out = Arc::new(Mutex::new(Vec::new()));
        CAPTURE.with(|c| *c.borrow_mut() = Some(out.clone()));
        out
    }

    #[tokio::test]
    async fn logs_name_the_host_but_not_the_url_or_body() {
        let captured = capture_logs();

        let (url, _) = serve(vec![Reply::Status(500), Reply::Status(200)]).await;
        loopback_sender()
            .send(
                &url,
                b"{\"Reason\":\"body-marker\"}".to_vec(),
                in_secs(10.0),
            )
            .await
            .unwrap();
        let (url, _) = serve(vec![Reply::Status(403)]).await;
        let _ = loopback_sender()
            .send(&url, b"{}".to_vec(), in_secs(10.0))
            .await;

        let logs = String::from_utf8(captured.lock().unwrap().clone()).unwrap();
        assert!(logs.contains("host=127.0.0.1"), "{logs}");
        assert!(logs.contains("attempt=2"), "{logs}");
        assert!(logs.contains("status=403"), "{logs}");
        for secret in ["secret", "/bucket/key", "body-marker"] {
            assert!(!logs.contains(secret), "{secret} leaked: {logs}");
        }
    }

    /// Runs in a child process whose environment points rustls at no CA certificates (see
    /// `works_without_ca_certificates`).
    #[tokio::test]
    async fn child_without_ca_certificates() {
        if std::env::var_os("VG_CFN_NO_CA_CHILD").is_none() {
            return;
        }
        let sender = Sender::new(AllowList::parse(Some("127.0.0.1,*.amazonaws.com"))).unwrap();
        assert!(sender.https_unavailable.is_some());
        let (url, log) = serve(vec![Reply::Status(200)]).await;
        sender
            .send(&url, b"{}".to_vec(), in_secs(5.0))
            .await
            .unwrap();
        assert_eq!(log.lock().unwrap().len(), 1);
        let err = sender
            .send(
                "https://s3.amazonaws.com/k?X-Amz-Signature=secret",
                b"{}".to_vec(),
                in_secs(5.0),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, Error::HttpsUnavailable { .. }), "{err:?}");
        assert!(err.to_string().contains("CA certificates"), "{err}");
        println!("CHILD-RAN-OK");
    }

    #[test]
    fn works_without_ca_certificates() {
        // The environment decides whether rustls finds roots, and a test cannot change its own
        // process's environment safely, so the check runs in a child test process.
        let name = format!("{}::child_without_ca_certificates", module_path!());
        let name = name
            .split_once("::")
            .map_or(name.as_str(), |(_, rest)| rest);
        let output = std::process::Command::new(std::env::current_exe().unwrap())
            .args([name, "--exact", "--nocapture", "--test-threads=1"])
            .env("VG_CFN_NO_CA_CHILD", "1")
            .env("SSL_CERT_FILE", "/nonexistent/vendor-grants-no-ca.pem")
            .env_remove("SSL_CERT_DIR")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.contains("CHILD-RAN-OK"),
            "{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    #[test]
    fn builds_with_system_certificates() {
        // This machine has CA certificates (SSL_CERT_FILE); when it does, HTTPS must stay usable.
        if std::env::var_os("VG_CFN_NO_CA_CHILD").is_some() {
            return;
        }
        let sender = Sender::new(AllowList::parse(None)).unwrap();
        assert_eq!(sender.https_unavailable, None);
    }
}
