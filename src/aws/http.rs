//! The one HTTPS stack of the process: hyper-util's pooled HTTP/1.1 client over rustls with ring
//! and the system's CA certificates. The SDK clients use it through [`http_client`], and the
//! ResponseURL sender builds its client from the same TLS setup ([`crate::tls`]).
//!
//! The SDK's own client (aws-smithy-http-client) is built on the same crates, but it always links
//! an HTTP/2 stack (h2, about 110 KB of the zip) that AWS's S3, KMS, IAM, DynamoDB and
//! CloudFormation endpoints, all HTTP/1.1, never use. This adapter is what it does for HTTP/1.1:
//! the request and response conversions, the connect timeout, and the classification of transport
//! errors that decides what the SDK retries (connection failures, resets and lost answers are
//! transient; a request the client could not form is not). Transport errors carry the endpoint
//! ([`Unreachable`]) and answers name it in a header ([`super::failure::ENDPOINT_HEADER`]), so
//! that an error can say which endpoint it was.

use std::error::Error as StdError;
use std::sync::Mutex;
use std::time::Duration;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::retry::ErrorKind;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector as TcpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

type BoxError = Box<dyn StdError + Send + Sync>;

/// A transport failure and the endpoint (scheme and authority, never a path or query) it was
/// talking to.
#[derive(Debug)]
pub struct Unreachable {
    pub endpoint: String,
    source: BoxError,
}

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "talking to {}", self.endpoint)
    }
}

impl StdError for Unreachable {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(self.source.as_ref())
    }
}

/// `scheme://authority` of a request's URI.
fn endpoint_of(uri: &hyper::Uri) -> String {
    format!(
        "{}://{}",
        uri.scheme_str().unwrap_or("https"),
        uri.authority().map_or("", |a| a.as_str())
    )
}

/// The SDK clients' HTTP client.
pub fn http_client() -> SharedHttpClient {
    SharedHttpClient::new(Http1Client::default())
}

/// Builds one connector per connect timeout the SDK asks for (in practice one), and keeps it:
/// the connector holds the connection pool.
#[derive(Debug, Default)]
struct Http1Client {
    connectors: Mutex<Vec<(Option<Duration>, SharedHttpConnector)>>,
}

impl HttpClient for Http1Client {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        let connect_timeout = settings.connect_timeout();
        let mut connectors = self
            .connectors
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((_, c)) = connectors.iter().find(|(t, _)| *t == connect_timeout) {
            return c.clone();
        }
        let connector = SharedHttpConnector::new(Http1Connector::new(
            connect_timeout,
            settings.read_timeout(),
        ));
        connectors.push((connect_timeout, connector.clone()));
        connector
    }
}

#[derive(Debug, Clone)]
struct Http1Connector {
    /// The pooled client, or why none could be built (then every call fails saying so).
    client: Result<Client<HttpsConnector<TcpConnector>, SdkBody>, String>,
    /// How long to wait for the response's head once the request is sent (the SDK's read
    /// timeout; vendor-grants sets none and bounds each attempt with its operation timeout).
    read_timeout: Option<Duration>,
}

impl Http1Connector {
    fn new(connect_timeout: Option<Duration>, read_timeout: Option<Duration>) -> Self {
        let mut tcp = TcpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(connect_timeout);
        let client = crate::tls::config().map(|tls| {
            let https = hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(tls.config.clone())
                .https_or_http()
                .enable_http1()
                .wrap_connector(tcp);
            Client::builder(TokioExecutor::new())
                // Idle connections are closed by the pool's timer.
                .pool_timer(TokioTimer::new())
                .build(https)
        });
        Http1Connector {
            client,
            read_timeout,
        }
    }
}

impl HttpConnector for Http1Connector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let request = match request.try_into_http1x() {
            Ok(request) => request,
            Err(e) => return HttpConnectorFuture::ready(Err(ConnectorError::user(e.into()))),
        };
        let client = match &self.client {
            Ok(client) => client,
            Err(why) => {
                return HttpConnectorFuture::ready(Err(ConnectorError::other(
                    why.clone().into(),
                    None,
                )));
            }
        };
        let endpoint = endpoint_of(request.uri());
        let sent = client.request(request);
        let read_timeout = self.read_timeout;
        HttpConnectorFuture::new(async move {
            let answer = match read_timeout {
                Some(limit) => match tokio::time::timeout(limit, sent).await {
                    Ok(answer) => answer,
                    Err(elapsed) => {
                        return Err(ConnectorError::timeout(Box::new(Unreachable {
                            endpoint,
                            source: elapsed.into(),
                        })));
                    }
                },
                None => sent.await,
            };
            match answer {
                Ok(mut response) => {
                    if let Ok(value) = hyper::header::HeaderValue::from_str(&endpoint) {
                        response
                            .headers_mut()
                            .insert(super::failure::ENDPOINT_HEADER, value);
                    }
                    HttpResponse::try_from(response.map(SdkBody::from_body_1_x))
                        .map_err(|e| ConnectorError::other(e.into(), None))
                }
                Err(e) => Err(classify(e, endpoint)),
            }
        })
    }
}

/// What the SDK should make of a failed exchange: connecting, a reset, a connection closed before
/// the answer, or a timeout are transient and retried; a request hyper refused to send is the
/// caller's error.
fn classify(err: hyper_util::client::legacy::Error, endpoint: String) -> ConnectorError {
    let connect = err.is_connect();
    let err: BoxError = Box::new(Unreachable {
        endpoint,
        source: Box::new(err),
    });
    if connect {
        return ConnectorError::io(err);
    }
    if let Some(h) = find::<hyper::Error>(err.as_ref()) {
        if h.is_timeout() {
            return ConnectorError::timeout(err);
        }
        if h.is_user() {
            return ConnectorError::user(err);
        }
        if h.is_closed() || h.is_canceled() || find::<std::io::Error>(h).is_some() {
            return ConnectorError::io(err);
        }
        if h.is_incomplete_message() {
            return ConnectorError::other(err, Some(ErrorKind::TransientError));
        }
    }
    if find::<std::io::Error>(err.as_ref()).is_some() {
        return ConnectorError::io(err);
    }
    ConnectorError::other(err, None)
}

fn find<'a, E: StdError + 'static>(err: &'a (dyn StdError + 'static)) -> Option<&'a E> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(found) = e.downcast_ref::<E>() {
            return Some(found);
        }
        next = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    fn request(url: &str) -> HttpRequest {
        let r = hyper::http::Request::builder()
            .method("PUT")
            .uri(url)
            .body(SdkBody::from("{\"a\":1}"))
            .unwrap_or_else(|e| panic!("request: {e}"));
        HttpRequest::try_from(r).unwrap_or_else(|e| panic!("request: {e}"))
    }

    /// A loopback listener and its address.
    async fn listener() -> (TcpListener, std::net::SocketAddr) {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("bind: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("addr: {e}"));
        (listener, addr)
    }

    /// A server that answers each connection with `answer` (raw bytes) after reading the request.
    async fn serve(answer: &'static [u8]) -> String {
        let (listener, addr) = listener().await;
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = vec![0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(answer).await;
                let _ = s.shutdown().await;
            }
        });
        format!("http://{addr}/bucket?policy")
    }

    #[tokio::test]
    async fn an_answer_comes_back_with_status_headers_and_body() {
        let url = serve(b"HTTP/1.1 204 No Content\r\nx-amz-request-id: r1\r\n\r\n").await;
        let c = Http1Connector::new(Some(Duration::from_secs(2)), None);
        let response = c
            .call(request(&url))
            .await
            .unwrap_or_else(|e| panic!("call: {e}"));
        assert_eq!(response.status().as_u16(), 204);
        assert_eq!(response.headers().get("x-amz-request-id"), Some("r1"));
    }

    #[tokio::test]
    async fn a_refused_connection_and_a_lost_answer_are_transient() {
        // Nothing listens on this port once the listener is dropped.
        let (closed, addr) = listener().await;
        let port = addr.port();
        drop(closed);
        let c = Http1Connector::new(Some(Duration::from_secs(2)), None);
        let refused = c
            .call(request(&format!("http://127.0.0.1:{port}/")))
            .await
            .err()
            .unwrap_or_else(|| panic!("a refused connection succeeded"));
        assert!(refused.is_io(), "refused: {refused:?}");

        // The server reads the request and closes without a word.
        let url = serve(b"").await;
        let lost = c
            .call(request(&url))
            .await
            .err()
            .unwrap_or_else(|| panic!("a lost answer succeeded"));
        assert!(
            lost.is_io() || lost.as_other() == Some(ErrorKind::TransientError),
            "lost: {lost:?}"
        );
    }

    #[tokio::test]
    async fn a_slow_answer_is_a_timeout_when_a_read_timeout_is_set() {
        let (listener, addr) = listener().await;
        tokio::spawn(async move {
            if let Ok((s, _)) = listener.accept().await {
                tokio::time::sleep(Duration::from_secs(5)).await;
                drop(s);
            }
        });
        let c = Http1Connector::new(None, Some(Duration::from_millis(100)));
        let slow = c
            .call(request(&format!("http://{addr}/")))
            .await
            .err()
            .unwrap_or_else(|| panic!("a slow answer succeeded"));
        assert!(slow.is_timeout(), "slow: {slow:?}");
    }
}
