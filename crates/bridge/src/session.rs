//! Agents' websocket connections: one task per connection, and the registry the pushes are
//! routed through.
//!
//! A connection's life (`taskrouter-js-protocol.md` §2):
//!
//! 1. The upgrade carries the Access Token; the connection registers (so no push made from
//!    now on can miss it) and sends `init`, which makes the SDK load its worker, the
//!    activities, its channels and its active reservations through envelopes.
//! 2. Until those four reads are answered, and for [`GRACE`] more — the SDK drops every
//!    event that arrives before it has processed them — pushes are held back. Each read
//!    reports the newest event its state reflects; a held (or late) push for an event up to
//!    that mark shows what the SDK already has, and is dropped, so a reservation that existed
//!    before the agent connected is neither missed nor announced twice.
//! 3. Live: pushes go out in commit order, with a heartbeat frame every [`HEARTBEAT`] (the
//!    SDK treats 30 s of silence as a lost connection, and protocol pings do not count). A
//!    push the SDK would crash on — an update of a reservation, activity or channel it has
//!    not loaded — is never sent: a reservation it lacks is announced as created instead,
//!    and an activity or channel created after it loaded ends the connection with
//!    [`REFRESH`], on which the SDK reconnects and loads everything again.
//! 4. The connection ends when the client goes, when its token expires (the SDK then
//!    reconnects only if the app gave it a new token), when its worker, workspace or API key
//!    is deleted, or when another connection of the worker asks for `closeExistingSessions`.
//!    On a cluster it also ends, with [`MOVED`], when another node takes the workspace over:
//!    the SDK reconnects and its new connection reaches the new owner.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use taskyard_engine::{Command, EventType as E, Sid, UpdateWorker};
use taskyard_hub::{Hub, Push, PushBatch, WatchGuard, WorkspaceHandle};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::token::Grant;

/// How often a live connection gets a heartbeat frame. The SDK gives up after 30 s of
/// silence (checked every 30 s) and its source says Twilio's gateway beats every 15 s; each
/// beat is a send per connection, which is most of what idle agents cost.
pub const HEARTBEAT: Duration = Duration::from_secs(15);
/// How long after the last of its start-up reads a connection starts pushing.
pub const GRACE: Duration = Duration::from_millis(250);
/// A connection whose SDK has not loaded its state by then is closed.
const INIT_TIMEOUT: Duration = Duration::from_secs(60);
/// A frame the peer does not take within this time ends the connection.
const SEND_TIMEOUT: Duration = Duration::from_secs(20);
/// At most this many pushes are held for a connection that is starting.
const MAX_HELD: usize = 10_000;

/// Close codes (application range) and what they tell the agent.
pub const REFRESH: (u16, &str) = (
    4000,
    "The workspace changed (a new activity or channel); reconnect to load it",
);
const EXPIRED: (u16, &str) = (4001, "The Access Token expired");
const SLOW_START: (u16, &str) = (4002, "The worker did not finish loading in time");
const REPLACED: (u16, &str) = (
    4003,
    "Another connection of this worker closed this one (closeExistingSessions)",
);
const GONE: (u16, &str) = (
    4004,
    "The worker, its workspace or the token's API key was deleted",
);
/// On a cluster: another node runs the workspace now; a new connection reaches it.
pub const MOVED: (u16, &str) = (4005, "Another node runs this workspace now; reconnect");

/// What a connection's task is told.
pub(crate) enum Msg {
    Push(Arc<Push>),
    /// One of the SDK's start-up reads was answered.
    Loaded(Loaded),
    Close((u16, &'static str)),
}

/// A start-up read and what it showed the SDK: `upto` is the newest event its state
/// reflects ([`taskyard_hub::WorkspaceHandle::read_watermarked`]).
pub(crate) enum Loaded {
    Worker { upto: Option<Sid> },
    Activities { upto: Option<Sid>, sids: Vec<Sid> },
    Channels { upto: Option<Sid>, sids: Vec<Sid> },
    Reservations { upto: Option<Sid>, sids: Vec<Sid> },
}

#[derive(Clone)]
struct Entry {
    id: u64,
    token: Arc<str>,
    tx: mpsc::UnboundedSender<Msg>,
}

/// The live connections, by workspace and worker.
#[derive(Default)]
pub(crate) struct Sessions {
    next_id: AtomicU64,
    by_worker: Mutex<HashMap<(Sid, Sid), Vec<Entry>>>,
}

impl Sessions {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<(Sid, Sid), Vec<Entry>>> {
        self.by_worker.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a connection; with `close_others`, the worker's other connections are closed.
    fn register(
        &self,
        key: (Sid, Sid),
        token: Arc<str>,
        close_others: bool,
    ) -> (u64, mpsc::UnboundedReceiver<Msg>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::unbounded_channel();
        let mut map = self.map();
        let entries = map.entry(key).or_default();
        if close_others {
            for e in entries.drain(..) {
                let _ = e.tx.send(Msg::Close(REPLACED));
            }
        }
        entries.push(Entry { id, token, tx });
        (id, rx)
    }

    fn unregister(&self, key: (Sid, Sid), id: u64) {
        let mut map = self.map();
        if let Some(entries) = map.get_mut(&key) {
            entries.retain(|e| e.id != id);
            if entries.is_empty() {
                map.remove(&key);
            }
        }
    }

    /// Routes committed pushes to their workers' connections.
    pub(crate) fn deliver(&self, batch: PushBatch) {
        let map = self.map();
        for p in batch.pushes {
            let Some(entries) = map.get(&(batch.workspace, p.worker)) else {
                continue;
            };
            let p = Arc::new(p);
            for e in entries {
                let _ = e.tx.send(Msg::Push(p.clone()));
            }
        }
    }

    /// Tells the worker's connections that use `token` what a start-up read showed. (The
    /// protocol does not say which connection a request comes from; a connection that is
    /// already live ignores it.)
    pub(crate) fn loaded(&self, key: (Sid, Sid), token: &str, what: impl Fn() -> Loaded) {
        if let Some(entries) = self.map().get(&key) {
            for e in entries.iter().filter(|e| &*e.token == token) {
                let _ = e.tx.send(Msg::Loaded(what()));
            }
        }
    }

    /// Whether the worker has a connection open.
    pub(crate) fn connected(&self, key: (Sid, Sid)) -> bool {
        self.map().contains_key(&key)
    }

    /// How many connections are open.
    pub(crate) fn count(&self) -> usize {
        self.map().values().map(Vec::len).sum()
    }
}

/// What a connection was opened with.
pub(crate) struct Opened {
    pub grant: Grant,
    pub worker: Sid,
    pub token: Arc<str>,
    pub close_existing: bool,
    /// Set the worker Offline this long after its last connection ends, if set.
    pub offline_after: Option<Duration>,
}

/// What the SDK has loaded so far, while a connection starts.
#[derive(Default)]
struct Marks {
    worker: Option<Option<Sid>>,
    activities: Option<Option<Sid>>,
    channels: Option<Option<Sid>>,
    reservations: Option<Option<Sid>>,
}

impl Marks {
    fn complete(&self) -> bool {
        self.worker.is_some()
            && self.activities.is_some()
            && self.channels.is_some()
            && self.reservations.is_some()
    }
}

struct Conn {
    marks: Marks,
    /// `Some` until the connection is live.
    held: Option<Vec<Arc<Push>>>,
    live_at: Option<Instant>,
    reservations: HashSet<Sid>,
    activities: HashSet<Sid>,
    channels: HashSet<Sid>,
}

/// What to do with one push.
enum Verdict {
    Send(String),
    Drop,
    Close((u16, &'static str)),
}

impl Conn {
    fn loaded(&mut self, l: Loaded) {
        // The first answer of each read counts: a later one (the SDK refreshing, or another
        // connection with the same token) may be newer than what this SDK loaded.
        match l {
            Loaded::Worker { upto } => {
                self.marks.worker.get_or_insert(upto);
            }
            Loaded::Activities { upto, sids } => {
                if self.marks.activities.is_none() {
                    self.marks.activities = Some(upto);
                    self.activities.extend(sids);
                }
            }
            Loaded::Channels { upto, sids } => {
                if self.marks.channels.is_none() {
                    self.marks.channels = Some(upto);
                    self.channels.extend(sids);
                }
            }
            Loaded::Reservations { upto, sids } => {
                if self.marks.reservations.is_none() {
                    self.marks.reservations = Some(upto);
                    self.reservations.extend(sids);
                }
            }
        }
    }

    /// Whether the read that loaded what `p` is about already reflects it.
    fn already_loaded(&self, p: &Push) -> bool {
        let mark = match p.event_type {
            E::WorkerActivityUpdate | E::WorkerAttributesUpdate | E::WorkerDeleted => {
                self.marks.worker
            }
            E::WorkerCapacityUpdate | E::WorkerChannelAvailabilityUpdate => self.marks.channels,
            _ => self.marks.reservations,
        };
        matches!(mark, Some(Some(upto)) if p.event <= upto)
    }

    fn judge(&mut self, p: &Push) -> Verdict {
        if self.already_loaded(p) {
            return Verdict::Drop;
        }
        let frame = |event_type: &str| {
            Verdict::Send(format!(
                "{{\"event_type\":\"{event_type}\",\"payload\":{}}}",
                p.payload
            ))
        };
        let subject = p.subject.unwrap_or(p.worker);
        match p.event_type {
            E::WorkerDeleted => Verdict::Close(GONE),
            E::ReservationCreated => {
                if self.reservations.insert(subject) {
                    frame(p.event_type.as_str())
                } else {
                    Verdict::Drop
                }
            }
            // The SDK throws on an update of a reservation it does not have; hand it the
            // reservation as new instead, with its current status.
            E::ReservationAccepted | E::ReservationWrapup => {
                if self.reservations.insert(subject) {
                    frame(E::ReservationCreated.as_str())
                } else {
                    frame(p.event_type.as_str())
                }
            }
            E::ReservationRejected
            | E::ReservationTimeout
            | E::ReservationCanceled
            | E::ReservationRescinded
            | E::ReservationCompleted => {
                if self.reservations.remove(&subject) {
                    frame(p.event_type.as_str())
                } else {
                    Verdict::Drop
                }
            }
            E::WorkerActivityUpdate if !self.activities.contains(&subject) => {
                Verdict::Close(REFRESH)
            }
            E::WorkerCapacityUpdate | E::WorkerChannelAvailabilityUpdate
                if !self.channels.contains(&subject) =>
            {
                Verdict::Close(REFRESH)
            }
            other => frame(other.as_str()),
        }
    }
}

/// Runs one connection until it ends.
pub(crate) async fn run(
    mut socket: WebSocket,
    hub: Hub,
    sessions: Arc<Sessions>,
    opened: Opened,
    workspace: WorkspaceHandle,
    _watch: WatchGuard,
) {
    let key = (opened.grant.workspace, opened.worker);
    let (id, mut rx) = sessions.register(key, opened.token.clone(), opened.close_existing);
    let init = format!(
        "{{\"event_type\":\"init\",\"payload\":{{\"channel_id\":\"{}\",\"account_sid\":\"{}\",\"workspace_sid\":\"{}\",\"token_lifetime\":{}}}}}",
        opened.worker,
        opened.grant.account,
        opened.grant.workspace,
        (opened.grant.expires_at * 1000 - taskyard_hub::now_ms()).max(0)
    );
    let expires = Instant::now()
        + Duration::from_millis(
            u64::try_from(opened.grant.expires_at * 1000 - taskyard_hub::now_ms()).unwrap_or(0),
        );
    let started = Instant::now();
    let mut conn = Conn {
        marks: Marks::default(),
        held: Some(Vec::new()),
        live_at: None,
        reservations: HashSet::new(),
        activities: HashSet::new(),
        channels: HashSet::new(),
    };
    let mut heartbeat = tokio::time::interval_at(Instant::now() + HEARTBEAT, HEARTBEAT);
    let mut close = None;
    if send(&mut socket, init).await.is_err() {
        sessions.unregister(key, id);
        return;
    }
    'conn: loop {
        let live_at = conn.live_at;
        tokio::select! {
            msg = rx.recv() => {
                let Some(msg) = msg else { break };
                match msg {
                    Msg::Push(p) => match &mut conn.held {
                        Some(held) if held.len() >= MAX_HELD => {
                            close = Some(SLOW_START);
                            break;
                        }
                        Some(held) => held.push(p),
                        None => match conn.judge(&p) {
                            Verdict::Send(frame) => {
                                if send(&mut socket, frame).await.is_err() {
                                    break;
                                }
                            }
                            Verdict::Drop => {}
                            Verdict::Close(why) => {
                                close = Some(why);
                                break;
                            }
                        },
                    },
                    Msg::Loaded(l) => {
                        conn.loaded(l);
                        if conn.held.is_some() && conn.live_at.is_none() && conn.marks.complete() {
                            conn.live_at = Some(Instant::now() + GRACE);
                        }
                    }
                    Msg::Close(why) => {
                        close = Some(why);
                        break;
                    }
                }
            }
            _ = tokio::time::sleep_until(live_at.unwrap_or(started)), if live_at.is_some() && conn.held.is_some() => {
                let held = conn.held.take().unwrap_or_default();
                for p in held {
                    match conn.judge(&p) {
                        Verdict::Send(frame) => {
                            if send(&mut socket, frame).await.is_err() {
                                break 'conn;
                            }
                        }
                        Verdict::Drop => {}
                        Verdict::Close(why) => {
                            close = Some(why);
                            break 'conn;
                        }
                    }
                }
            }
            _ = heartbeat.tick() => {
                if conn.held.is_some() && started.elapsed() > INIT_TIMEOUT {
                    close = Some(SLOW_START);
                    break;
                }
                let gone = hub.workspace(opened.grant.account, opened.grant.workspace).is_err()
                    || hub.api_key_secret(opened.grant.key).is_none();
                if gone {
                    close = Some(GONE);
                    break;
                }
                if send(&mut socket, String::new()).await.is_err() {
                    break;
                }
            }
            () = workspace.stopped() => {
                close = Some(if workspace.moved() { MOVED } else { GONE });
                break;
            }
            _ = tokio::time::sleep_until(expires) => {
                close = Some(EXPIRED);
                break;
            }
            incoming = socket.recv() => match incoming {
                // The SDK sends nothing; pings are answered by the websocket layer.
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
        }
    }
    sessions.unregister(key, id);
    if let Some((code, reason)) = close {
        let _ = socket
            .send(Message::Close(Some(CloseFrame {
                code,
                reason: reason.into(),
            })))
            .await;
    }
    // A connection the server closed so that the SDK reconnects at once (to reload, or
    // because a newer one replaced it) does not mean the agent left.
    let reconnects = matches!(close, Some(c) if c == REFRESH || c == REPLACED || c == MOVED);
    if let (Some(after), false) = (opened.offline_after, reconnects) {
        tokio::spawn(offline_later(
            hub,
            sessions,
            opened.grant.account,
            key,
            after,
        ));
    }
}

/// After `after`, if the worker still has no connection and its activity is an available
/// one, sets it to the workspace's offline activity, rejecting its pending reservations (an
/// absent agent cannot answer them; the router offers the tasks to others at once). Accepted
/// work stays assigned.
async fn offline_later(
    hub: Hub,
    sessions: Arc<Sessions>,
    account: Sid,
    (workspace, worker): (Sid, Sid),
    after: Duration,
) {
    tokio::time::sleep(after).await;
    if sessions.connected((workspace, worker)) {
        return;
    }
    let Ok(h) = hub.workspace(account, workspace) else {
        return;
    };
    let offline = h
        .read(move |ws| {
            let w = ws.workers().get(&worker)?;
            ws.activities()
                .get(&w.activity_sid)
                .filter(|a| a.available)?;
            offline_activity(ws)
        })
        .await;
    let Ok(Some(activity)) = offline else {
        return;
    };
    let cmd = Command::UpdateWorker(UpdateWorker {
        sid: worker,
        if_match: None,
        activity_sid: Some(activity),
        attributes: None,
        friendly_name: None,
        reject_pending_reservations: Some(true),
    });
    match h.apply(cmd, |_, _| ()).await {
        Ok(()) => tracing::info!(%worker, "agent disconnected; worker set offline"),
        Err(e) => {
            tracing::warn!(%worker, error = %e, "could not set a disconnected agent's worker offline")
        }
    }
}

/// The activity a disconnected agent's worker goes to: an unavailable one named `Offline`,
/// else the workspace's default activity if it is unavailable, else the first unavailable
/// one; `None` if every activity is available.
pub(crate) fn offline_activity(ws: &taskyard_engine::Workspace) -> Option<Sid> {
    let unavailable = || ws.activities().values().filter(|a| !a.available);
    unavailable()
        .find(|a| a.friendly_name.eq_ignore_ascii_case("offline"))
        .or_else(|| {
            ws.activities()
                .get(&ws.info().default_activity_sid)
                .filter(|a| !a.available)
        })
        .or_else(|| unavailable().next())
        .map(|a| a.sid)
}

/// Sends one text frame. A peer that stops reading (a vanished laptop whose connection the
/// kernel still holds) must not keep the connection alive forever: a frame that cannot be
/// written within [`SEND_TIMEOUT`] ends it.
async fn send(socket: &mut WebSocket, frame: String) -> Result<(), ()> {
    match tokio::time::timeout(SEND_TIMEOUT, socket.send(Message::Text(frame.into()))).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sid(prefix: &str, n: u128) -> Sid {
        Sid::new(prefix, n)
    }

    fn push(event: u128, event_type: E, subject: Option<Sid>) -> Push {
        Push {
            worker: sid("WK", 1),
            event: sid("EV", event),
            event_type,
            subject,
            payload: "{}".into(),
        }
    }

    fn started(upto: u128) -> Conn {
        let mut c = Conn {
            marks: Marks::default(),
            held: None,
            live_at: None,
            reservations: HashSet::new(),
            activities: HashSet::new(),
            channels: HashSet::new(),
        };
        let upto = Some(sid("EV", upto));
        c.loaded(Loaded::Worker { upto });
        c.loaded(Loaded::Activities {
            upto,
            sids: vec![sid("WA", 1)],
        });
        c.loaded(Loaded::Channels {
            upto,
            sids: vec![sid("WC", 1)],
        });
        c.loaded(Loaded::Reservations {
            upto,
            sids: vec![sid("WR", 1)],
        });
        assert!(c.marks.complete());
        c
    }

    fn sent(v: Verdict) -> Option<String> {
        match v {
            Verdict::Send(f) => Some(f),
            _ => None,
        }
    }

    #[test]
    fn what_the_start_up_reads_showed_is_not_pushed_again() {
        let mut c = started(10);
        let old = push(10, E::ReservationCreated, Some(sid("WR", 2)));
        assert!(
            matches!(c.judge(&old), Verdict::Drop),
            "reflected by the read"
        );
        let loaded = push(11, E::ReservationCreated, Some(sid("WR", 1)));
        assert!(
            matches!(c.judge(&loaded), Verdict::Drop),
            "a reservation the SDK loaded is not announced twice"
        );
        let new = push(12, E::ReservationCreated, Some(sid("WR", 3)));
        let frame = sent(c.judge(&new)).expect("a new reservation is pushed");
        assert_eq!(
            frame,
            r#"{"event_type":"reservation.created","payload":{}}"#
        );
        assert!(matches!(c.judge(&new), Verdict::Drop), "and only once");
    }

    #[test]
    fn the_first_answer_of_each_read_sets_its_mark() {
        let mut c = started(10);
        c.loaded(Loaded::Reservations {
            upto: Some(sid("EV", 50)),
            sids: vec![],
        });
        let p = push(20, E::ReservationCreated, Some(sid("WR", 7)));
        assert!(
            sent(c.judge(&p)).is_some(),
            "a later read (another connection's) must not hide events from this one"
        );
    }

    #[test]
    fn nothing_the_sdk_would_throw_on_is_sent() {
        let mut c = started(0);
        // An update of a reservation it lacks: announced as created, with its status.
        let accepted = push(1, E::ReservationAccepted, Some(sid("WR", 9)));
        let frame = sent(c.judge(&accepted)).expect("pushed");
        assert!(
            frame.starts_with(r#"{"event_type":"reservation.created""#),
            "{frame}"
        );
        let again = push(2, E::ReservationWrapup, Some(sid("WR", 9)));
        let frame = sent(c.judge(&again)).expect("pushed");
        assert!(
            frame.starts_with(r#"{"event_type":"reservation.wrapup""#),
            "{frame}"
        );
        // The end of a reservation it does not know is dropped; of one it knows, sent once.
        let unknown_end = push(3, E::ReservationCompleted, Some(sid("WR", 8)));
        assert!(matches!(c.judge(&unknown_end), Verdict::Drop));
        let end = push(4, E::ReservationCompleted, Some(sid("WR", 9)));
        assert!(sent(c.judge(&end)).is_some());
        assert!(matches!(c.judge(&end), Verdict::Drop));
        // An activity or channel it has not loaded ends the connection so that it reloads.
        let known = push(5, E::WorkerActivityUpdate, Some(sid("WA", 1)));
        assert!(sent(c.judge(&known)).is_some());
        let unknown = push(6, E::WorkerActivityUpdate, Some(sid("WA", 2)));
        assert!(matches!(c.judge(&unknown), Verdict::Close(REFRESH)));
        let channel = push(7, E::WorkerCapacityUpdate, Some(sid("WC", 2)));
        assert!(matches!(c.judge(&channel), Verdict::Close(REFRESH)));
        let deleted = push(8, E::WorkerDeleted, None);
        assert!(matches!(c.judge(&deleted), Verdict::Close(GONE)));
        // Task events are harmless either way.
        let task = push(9, E::TaskUpdated, None);
        assert!(sent(c.judge(&task)).is_some());
    }

    #[test]
    fn pushes_reach_every_connection_of_their_worker_and_no_other() {
        let sessions = Sessions::default();
        let ws = sid("WS", 1);
        let (a, mut rx_a) = sessions.register((ws, sid("WK", 1)), "t1".into(), false);
        let (_b, mut rx_b) = sessions.register((ws, sid("WK", 1)), "t2".into(), false);
        let (_c, mut rx_c) = sessions.register((ws, sid("WK", 2)), "t3".into(), false);
        assert_eq!(sessions.count(), 3);
        sessions.deliver(PushBatch {
            workspace: ws,
            pushes: vec![push(1, E::TaskUpdated, None)],
        });
        assert!(matches!(rx_a.try_recv(), Ok(Msg::Push(_))));
        assert!(matches!(rx_b.try_recv(), Ok(Msg::Push(_))));
        assert!(rx_c.try_recv().is_err(), "another worker's push");
        sessions.loaded((ws, sid("WK", 1)), "t2", || Loaded::Worker { upto: None });
        assert!(
            rx_a.try_recv().is_err(),
            "reads are told to the token's connections"
        );
        assert!(matches!(rx_b.try_recv(), Ok(Msg::Loaded(_))));
        // closeExistingSessions closes the worker's other connections.
        let (_d, _rx_d) = sessions.register((ws, sid("WK", 1)), "t4".into(), true);
        assert!(matches!(rx_a.try_recv(), Ok(Msg::Close(REPLACED))));
        assert!(matches!(rx_b.try_recv(), Ok(Msg::Close(REPLACED))));
        sessions.unregister((ws, sid("WK", 1)), a);
        assert_eq!(sessions.count(), 2);
    }
}
