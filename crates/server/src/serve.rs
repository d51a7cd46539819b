//! The HTTP/1.1 connection loop: what `axum::serve` does, plus the two limits it lacks.
//!
//! * **At most `max_connections` open at once.** Each connection holds a permit until its
//!   socket closes — also after it became an agent's websocket — and one more is answered
//!   with Twilio's 429 document and closed, instead of being left in the kernel's backlog
//!   while its client waits without knowing why.
//! * **Headers within `header_timeout`.** A client that opens connections and sends its
//!   request a byte at a time (slowloris) is cut off, as is a keep-alive connection that
//!   stays idle that long. (The body has its own deadline: [`crate::limits::read_body`].)
//!
//! On shutdown it stops accepting, asks every connection to finish the request it is on,
//! and returns when they have.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

/// Connections past the limit answered at once; more are closed unanswered.
const REFUSING_AT_ONCE: usize = 64;

#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub max_connections: usize,
    pub header_timeout: Duration,
}

/// Serves `app` on `listener` until `stop` completes, then finishes the requests in progress.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    options: Options,
    stop: impl std::future::Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(options.max_connections));
    // Refusing takes a moment (the answer waits for the request to arrive); a flood of
    // connections past the limit must not become a flood of refusals holding sockets, so
    // past this many at once the rest are closed without an answer.
    let refusals = Arc::new(Semaphore::new(REFUSING_AT_ONCE));
    // Every connection's task holds a receiver: the sender's `closed()` is "all finished",
    // and a send is "finish what you are doing".
    let (shutdown, watching) = watch::channel(());
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(options.header_timeout);
    let mut stop = std::pin::pin!(stop);
    // Refusals are logged at most once a second, with how many there were.
    let (mut refused, mut warned) = (0u64, None::<std::time::Instant>);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(s) => s,
                Err(e) => {
                    // Out of file descriptors, most likely: give the closing ones a moment.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let _ = stream.set_nodelay(true);
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            refused += 1;
            if warned.is_none_or(|w| w.elapsed() >= Duration::from_secs(1)) {
                tracing::warn!(
                    max_connections = options.max_connections,
                    refused,
                    "connections refused: too many open"
                );
                (refused, warned) = (0, Some(std::time::Instant::now()));
            }
            if let Ok(slot) = refusals.clone().try_acquire_owned() {
                tokio::spawn(async move {
                    refuse(stream, options.max_connections).await;
                    drop(slot);
                });
            }
            continue;
        };
        let io = TokioIo::new(Counted {
            stream,
            _permit: permit,
        });
        let service = TowerToHyperService::new(app.clone());
        let conn = http.serve_connection(io, service).with_upgrades();
        let mut watching = watching.clone();
        tokio::spawn(async move {
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => return,
                _ = watching.changed() => {}
            }
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
            drop(watching);
        });
    }
    drop(listener);
    let _ = shutdown.send(());
    drop(watching);
    shutdown.closed().await;
}

/// The answer to a connection over the limit: Twilio's error document, then close.
async fn refuse(mut stream: TcpStream, max: usize) {
    let body = format!(
        r#"{{"code":20429,"message":"Too many open connections (at most {max}); try again later","more_info":"https://www.twilio.com/docs/errors/20429","status":429}}"#
    );
    let answer = format!(
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    // Read what the client sent first (if it comes soon): closing a socket with unread data
    // resets it, and the client would see a reset instead of the answer.
    let mut head = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.read(&mut head)).await;
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await
    })
    .await;
}

/// A connection's socket with its permit: the permit goes back when the socket closes, which
/// for a websocket is long after the HTTP exchange that opened it.
struct Counted {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
