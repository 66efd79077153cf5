//! How the ResponseURL sender reaches a host: directly, or through the proxy that
//! `HTTPS_PROXY` / `HTTP_PROXY` / `ALL_PROXY` name (minus `NO_PROXY`), as a VPC without a NAT
//! gateway needs. HTTPS goes through a CONNECT tunnel (TLS stays end to end); plain HTTP is sent
//! to the proxy in absolute form. Built on hyper-util's own proxy matcher and tunnel.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A connector that goes direct or through the environment's proxy.
#[derive(Clone)]
pub(super) struct Route {
    direct: HttpConnector,
    proxies: Arc<Matcher>,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The matcher holds proxy URLs, which may carry credentials.
        f.debug_struct("Route").finish_non_exhaustive()
    }
}

impl Route {
    pub(super) fn new(direct: HttpConnector) -> Route {
        Route {
            direct,
            proxies: Arc::new(Matcher::from_env()),
        }
    }
}

/// A connection, remembering whether it goes to a proxy that expects absolute-form requests.
pub(super) struct Routed {
    io: TokioIo<TcpStream>,
    via_proxy: bool,
}

impl tower_service::Service<Uri> for Route {
    type Response = Routed;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Routed, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let mut direct = self.direct.clone();
        let intercept = self.proxies.intercept(&dst);
        Box::pin(async move {
            let Some(proxy) = intercept else {
                let io = direct.call(dst).await?;
                return Ok(Routed {
                    io,
                    via_proxy: false,
                });
            };
            if dst.scheme_str() == Some("https") {
                let mut tunnel = Tunnel::new(proxy.uri().clone(), direct);
                if let Some(auth) = proxy.basic_auth() {
                    tunnel = tunnel.with_auth(auth.clone());
                }
                let io = tunnel.call(dst).await?;
                return Ok(Routed {
                    io,
                    via_proxy: false,
                });
            }
            let io = direct.call(proxy.uri().clone()).await?;
            Ok(Routed {
                io,
                via_proxy: true,
            })
        })
    }
}

impl Connection for Routed {
    fn connected(&self) -> Connected {
        self.io.connected().proxy(self.via_proxy)
    }
}

impl Read for Routed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl Write for Routed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
