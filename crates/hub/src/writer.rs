//! The store writer: one thread, group commit.
//!
//! Requests queue up on a channel while a commit is running; the next commit takes all of
//! them at once, in arrival order, in one transaction. Each request learns the outcome
//! through its own oneshot. Because every workspace actor submits in the order it applied its
//! commands, and the channel is FIFO, the database always receives a workspace's changes in
//! the order the engine made them.
//!
//! If a commit fails, memory and disk no longer agree. Rather than keep serving state that
//! might vanish, the writer fails the waiting requests and stops the process (fail-stop); a
//! restart reloads exactly what was committed.

use std::sync::Arc;

use taskyard_store::{Store, StoreError, Write};
use tokio::sync::{mpsc, oneshot};

/// At most this many writes go into one transaction, so one huge burst cannot delay its
/// first requests for long.
const MAX_BATCH: usize = 4096;

struct Request {
    write: Write,
    done: oneshot::Sender<Result<(), Arc<StoreError>>>,
}

/// Handle to the writer thread. Cheap to clone.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::UnboundedSender<Request>,
}

/// Resolves when the write is committed (or failed).
pub struct Committed(oneshot::Receiver<Result<(), Arc<StoreError>>>);

impl std::future::Future for Committed {
    type Output = Result<(), Arc<StoreError>>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx).map(|r| {
            r.unwrap_or_else(|_| {
                Err(Arc::new(StoreError::Corrupt(
                    "the store writer has stopped".into(),
                )))
            })
        })
    }
}

impl Writer {
    /// Starts the writer thread over `store`.
    pub fn start(mut store: Box<dyn Store>) -> Writer {
        let (tx, mut rx) = mpsc::unbounded_channel::<Request>();
        std::thread::Builder::new()
            .name("taskyard-writer".into())
            .spawn(move || {
                let mut batch: Vec<Request> = Vec::new();
                while let Some(first) = rx.blocking_recv() {
                    batch.push(first);
                    while batch.len() < MAX_BATCH {
                        match rx.try_recv() {
                            Ok(r) => batch.push(r),
                            Err(_) => break,
                        }
                    }
                    let (writes, waiting): (Vec<Write>, Vec<_>) = batch.drain(..).map(|r| (r.write, r.done)).unzip();
                    let result = store.commit(&writes).map_err(Arc::new);
                    if let Err(e) = &result {
                        tracing::error!(error = %e, "commit failed; stopping so that a restart reloads the committed state");
                    }
                    for done in waiting {
                        let _ = done.send(result.clone());
                    }
                    if result.is_err() {
                        // Give the failed requests a moment to be answered, then stop.
                        std::thread::sleep(std::time::Duration::from_millis(200));
                        std::process::exit(70);
                    }
                }
            })
            .expect("the writer thread can be started");
        Writer { tx }
    }

    /// Queues `write`; the returned future resolves once it is committed.
    pub fn submit(&self, write: Write) -> Committed {
        let (done, rx) = oneshot::channel();
        if self.tx.send(Request { write, done }).is_err() {
            tracing::error!("the store writer has stopped");
        }
        Committed(rx)
    }
}
