//! tern's HTTP/1.1 listener: hyper under the axum application, with the limits `axum::serve`
//! lacks. A connection must send each request's headers within `http.header_read_timeout_secs`
//! (this also closes a kept-alive connection that sits idle that long); at most
//! `http.max_connections` are open at once and at most `http.max_connections_per_ip` from one
//! address. Upgraded WebSocket connections keep counting until they close. A connection over a
//! limit gets a plain 503 or 429 answer and is closed.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::tls::Tls;

/// The limits of one HTTP listener.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// Time to send a request's headers, and the longest a kept-alive connection may idle.
    pub header_read_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
    /// Connections open at once from one IP address.
    pub max_connections_per_ip: usize,
}

/// Open connections, in total and per address.
#[derive(Debug, Default)]
struct Open {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// A connection's place among the open ones; given back when the connection is dropped.
struct Slot {
    open: Arc<Mutex<Open>>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.total -= 1;
        if let Some(n) = open.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.per_ip.remove(&self.ip);
            }
        }
    }
}

/// A TCP stream that holds its [`Slot`]: after a WebSocket upgrade it moves into the session,
/// so the slot stays taken for as long as the socket is open.
struct Counted {
    stream: TcpStream,
    _slot: Slot,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Serves `app` on `listener` (over TLS when `tls` is given) until `stop` turns true; then
/// stops accepting, lets each connection finish its request in flight, and returns once they
/// are done.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    tls: Option<Arc<Tls>>,
    mut stop: watch::Receiver<bool>,
) {
    let open = Arc::new(Mutex::new(Open::default()));
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let (stream, from) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, most likely: do not spin on it.
                    tracing::warn!(error = %e, "HTTP accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = stopped(&mut stop) => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
        };
        // Signaling sends small messages back to back (`joined`, then the subscriber offer):
        // with Nagle's algorithm the second waited for the client's delayed ACK, 40 ms.
        let _ = stream.set_nodelay(true);
        let Some(slot) = take_slot(&open, from, &limits) else {
            // Over TLS a plain-text answer would be noise: just close.
            if tls.is_none() {
                tasks.spawn(refuse(stream, from, open.clone(), limits));
            }
            continue;
        };
        let counted = Counted {
            stream,
            _slot: slot,
        };
        let (app, stop, tls) = (app.clone(), stop.clone(), tls.clone());
        tasks.spawn(async move {
            let Some(tls) = tls else {
                return connection(counted, app, limits, stop).await;
            };
            // The handshake is part of sending headers: it gets the same deadline.
            let handshake = tls.acceptor.accept(counted);
            if let Ok(Ok(stream)) =
                tokio::time::timeout(limits.header_read_timeout, handshake).await
            {
                connection(stream, app, limits, stop).await;
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

/// One HTTP/1.1 connection, WebSocket upgrades included, until it ends or the server stops.
async fn connection<I>(io: I, app: Router, limits: HttpLimits, mut stop: watch::Receiver<bool>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .serve_connection(TokioIo::new(io), TowerToHyperService::new(app))
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        () = stopped(&mut stop) => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// Resolves once `stop` turns true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// A slot for a connection from `from`, or `None` when a limit is reached.
fn take_slot(open: &Arc<Mutex<Open>>, from: SocketAddr, limits: &HttpLimits) -> Option<Slot> {
    let mut o = open.lock().unwrap_or_else(|e| e.into_inner());
    let ip = from.ip();
    let from_ip = o.per_ip.get(&ip).copied().unwrap_or(0);
    if o.total >= limits.max_connections || from_ip >= limits.max_connections_per_ip {
        return None;
    }
    o.total += 1;
    *o.per_ip.entry(ip).or_default() += 1;
    Some(Slot {
        open: open.clone(),
        ip,
    })
}

/// Answers a connection over a limit with a plain HTTP error, then closes it.
async fn refuse(
    mut stream: TcpStream,
    from: SocketAddr,
    open: Arc<Mutex<Open>>,
    limits: HttpLimits,
) {
    let per_ip = {
        let o = open.lock().unwrap_or_else(|e| e.into_inner());
        o.per_ip.get(&from.ip()).copied().unwrap_or(0) >= limits.max_connections_per_ip
    };
    let (status, reason) = if per_ip {
        ("429 Too Many Requests", "too_many_connections_from_address")
    } else {
        ("503 Service Unavailable", "too_many_connections")
    };
    crate::metrics::count_error("http", reason);
    let body = format!("{reason}\n");
    let answer = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nretry-after: 5\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(2), stream.write_all(answer.as_bytes())).await;
}
