//! The discrete-event loop: the real engine, driven under simulated time.
//!
//! Three sources of "next things" are merged in time order, and time jumps straight to the
//! earliest (no fixed steps):
//!
//! 1. the prepared arrivals (a sorted list, read with a cursor);
//! 2. the simulation's own agenda, a heap ordered by `(time, sequence)`: a worker answering
//!    a reservation, a task's handling or wrap-up ending, a caller hanging up, a worker's
//!    schedule changing, a worker coming back after a reservation timed out;
//! 3. the engine's timers ([`Workspace::next_deadline`]): reservation timeouts, workflow
//!    step timeouts, task TTLs — fired by [`Workspace::tick`].
//!
//! At equal times the engine's timers go first, then the agenda in the order things were
//! scheduled, then arrivals; everything is a function of the seed, so a run replays exactly.
//!
//! The simulation never decides routing: it only does what people do (create tasks, accept,
//! reject, complete, cancel, change activity) through [`Workspace::apply`], and learns what
//! the engine did from the events it returns (`reservation.created` says who was offered
//! which task). Worker occupancy is read from the engine's own state after every command
//! that mentions the worker.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use rustc_hash::FxHashMap;
use taskyard_engine::{
    Command, CountingSids, CreateTask, Event, EventType, Millis, ReservationStatus, Sid,
    TaskStatus, UpdateReservation, UpdateTask, UpdateWorker, Workspace,
};

use crate::SimError;
use crate::arrivals::{Behaviour, Dist, Stream};
use crate::definition::{Built, BuiltWorker, DAY};

const DAY_MS: i64 = DAY as i64 * 1000;

/// How a task's life ended, as far as the report is concerned.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Outcome {
    /// Still pending or reserved when the simulation stopped.
    Open,
    /// Accepted by a worker, `wait_ms` after it was created.
    Handled { wait_ms: i64 },
    /// The caller hung up (patience ran out) before anyone accepted.
    Abandoned,
    /// The engine canceled it (task TTL, or the workflow had no target left for it).
    Canceled,
}

/// What the simulation remembers about one task.
#[derive(Debug, Clone)]
pub(crate) struct TaskRec {
    pub sid: Sid,
    /// Milliseconds from the start.
    pub created: i64,
    pub outcome: Outcome,
    /// The queue it was answered from, abandoned in, or last in (index into the
    /// definition's queues).
    pub queue: Option<usize>,
    /// Whether it was reserved by the command that created it (found a free worker).
    pub reserved_on_arrival: bool,
    pub rejected: u32,
    pub timed_out: u32,
    /// Index into the prepared stream (its handle time).
    stream: usize,
}

/// A worker's state as occupancy counts it, and the time it spent in each per interval.
pub(crate) struct WorkerRec {
    pub sid: Sid,
    built: BuiltWorker,
    available: bool,
    busy: bool,
    since: i64,
    /// In the timeout activity after letting a reservation time out: its schedule's
    /// changes wait until it comes back.
    away: bool,
    touched: bool,
    /// Per interval: milliseconds holding at least one reservation, and milliseconds
    /// either available or busy (logged in).
    pub busy_ms: Vec<i64>,
    pub staffed_ms: Vec<i64>,
}

/// Something the simulated people will do.
#[derive(Debug, Clone, Copy)]
enum What {
    Answer { reservation: Sid, accept: bool },
    HandleEnd { reservation: Sid },
    WrapEnd { reservation: Sid },
    Abandon(usize),
    Schedule(usize),
    Return(usize),
}

struct Due {
    at: i64,
    seq: u64,
    what: What,
}

impl PartialEq for Due {
    fn eq(&self, other: &Due) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Due) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Due {
    fn cmp(&self, other: &Due) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// What a run leaves for the report.
pub(crate) struct Outcomes {
    pub tasks: Vec<TaskRec>,
    pub workers: Vec<WorkerRec>,
    /// Per queue, the indices of its member workers.
    pub members: Vec<Vec<usize>>,
    pub commands: u64,
    pub ticks: u64,
    /// Milliseconds of simulated time the run covered.
    pub simulated_ms: i64,
    /// The engine's events, as the JSON the store keeps, when asked for.
    pub events: Option<Vec<String>>,
}

/// Parameters of one run.
pub(crate) struct Setup<'a> {
    pub built: Built,
    pub workflow: Sid,
    pub stream: &'a Stream,
    pub behaviour: &'a Behaviour,
    pub seed: u64,
    pub start_ms: Millis,
    pub interval_ms: i64,
    pub horizon_ms: i64,
    pub drain_ms: i64,
    /// Keep the engine's events (costly: each is rendered to JSON).
    pub keep_events: bool,
}

struct Sim<'a> {
    ws: Workspace,
    ids: CountingSids,
    t0: Millis,
    now: i64,
    rng: fastrand::Rng,
    behaviour: &'a Behaviour,
    away: Dist,
    stream: &'a Stream,
    workflow: Sid,
    next_arrival: usize,
    agenda: BinaryHeap<Reverse<Due>>,
    seq: u64,
    tasks: Vec<TaskRec>,
    task_of: FxHashMap<Sid, usize>,
    workers: Vec<WorkerRec>,
    worker_of: FxHashMap<Sid, usize>,
    queue_of: FxHashMap<Sid, usize>,
    touched: Vec<usize>,
    /// Tasks neither handled, abandoned nor canceled yet.
    open: usize,
    /// Tasks accepted and not completed yet (handling or wrapping up).
    in_hand: usize,
    interval_ms: i64,
    horizon_ms: i64,
    commands: u64,
    ticks: u64,
    events: Option<Vec<String>>,
}

/// Runs the simulation to its end and returns what happened.
pub(crate) fn run(setup: Setup<'_>) -> Result<Outcomes, SimError> {
    let Setup {
        built,
        workflow,
        stream,
        behaviour,
        seed,
        start_ms,
        interval_ms,
        horizon_ms,
        drain_ms,
        keep_events,
    } = setup;
    let intervals = (horizon_ms.max(1) + interval_ms - 1) / interval_ms;
    let queue_of = built
        .queues
        .iter()
        .enumerate()
        .map(|(i, (sid, _))| (*sid, i))
        .collect();
    let mut sim = Sim {
        ids: built.ids,
        t0: start_ms,
        now: 0,
        // The workers' own generator, apart from the arrivals': see `Arrivals::prepare`.
        rng: fastrand::Rng::with_seed(seed ^ 0xbe4a_0105_0002),
        behaviour,
        away: behaviour
            .away_after_no_answer
            .clone()
            .unwrap_or(Dist::Fixed(60.0)),
        stream,
        workflow,
        next_arrival: 0,
        agenda: BinaryHeap::new(),
        seq: 0,
        tasks: Vec::with_capacity(stream.tasks.len()),
        task_of: FxHashMap::default(),
        workers: Vec::with_capacity(built.workers.len()),
        worker_of: FxHashMap::default(),
        queue_of,
        touched: Vec::new(),
        open: 0,
        in_hand: 0,
        interval_ms,
        horizon_ms,
        commands: 0,
        ticks: 0,
        events: keep_events.then(Vec::new),
        ws: built.ws,
    };
    for (i, b) in built.workers.into_iter().enumerate() {
        let w = &sim.ws.workers()[&b.sid];
        let available = sim.ws.activities()[&w.activity_sid].available;
        sim.worker_of.insert(b.sid, i);
        sim.workers.push(WorkerRec {
            sid: b.sid,
            built: b,
            available,
            busy: false,
            since: 0,
            away: false,
            touched: false,
            busy_ms: vec![0; intervals as usize],
            staffed_ms: vec![0; intervals as usize],
        });
        sim.plan_schedule(i);
    }
    let end = horizon_ms + drain_ms;
    loop {
        let arrival = sim.stream.tasks.get(sim.next_arrival).map(|t| t.at);
        let due = sim.agenda.peek().map(|d| d.0.at);
        let deadline = sim.ws.next_deadline().map(|d| d - sim.t0);
        let Some(next) = [deadline, due, arrival].into_iter().flatten().min() else {
            break;
        };
        // Past the simulated period, keep going only while some task is still waiting or
        // being handled (so the run's record ends with every accepted task completed).
        let done = arrival.is_none() && sim.open == 0 && sim.in_hand == 0;
        if next > end || (done && next >= horizon_ms) {
            break;
        }
        sim.now = next.max(sim.now);
        if deadline == Some(next) {
            let (_, events) = sim.ws.tick(sim.t0 + sim.now, &mut sim.ids);
            sim.ticks += 1;
            sim.absorb(&events);
        } else if due == Some(next) {
            if let Some(Reverse(d)) = sim.agenda.pop() {
                sim.act(d.what)?;
            }
        } else {
            sim.arrive()?;
        }
    }
    sim.finish()
}

impl Sim<'_> {
    fn at(&mut self, at: i64, what: What) {
        self.seq += 1;
        self.agenda.push(Reverse(Due {
            at,
            seq: self.seq,
            what,
        }));
    }

    fn apply(&mut self, cmd: Command, what: impl FnOnce() -> String) -> Result<Sid, SimError> {
        self.commands += 1;
        let applied = self
            .ws
            .apply(cmd, self.t0 + self.now, &mut self.ids)
            .map_err(|e| SimError::engine(what(), e))?;
        self.absorb(&applied.events);
        Ok(applied.sid)
    }

    /// Plans the next change of a worker's schedule, if it has one.
    fn plan_schedule(&mut self, w: usize) {
        let day = self.now.div_euclid(DAY_MS);
        let second = (self.now.rem_euclid(DAY_MS) / 1000) as u32;
        if let Some(next) = self.workers[w].built.next_change(second) {
            self.at(day * DAY_MS + i64::from(next) * 1000, What::Schedule(w));
        }
    }

    /// Puts a worker in the activity its schedule gives now.
    fn follow_schedule(&mut self, w: usize) -> Result<(), SimError> {
        let second = (self.now.rem_euclid(DAY_MS) / 1000) as u32;
        let (sid, activity) = (self.workers[w].sid, self.workers[w].built.scheduled(second));
        if self
            .ws
            .workers()
            .get(&sid)
            .is_some_and(|x| x.activity_sid != activity)
        {
            self.apply(
                Command::UpdateWorker(UpdateWorker {
                    sid,
                    if_match: None,
                    activity_sid: Some(activity),
                    attributes: None,
                    friendly_name: None,
                    reject_pending_reservations: None,
                }),
                || format!("worker {sid}: schedule"),
            )?;
        }
        Ok(())
    }

    fn arrive(&mut self) -> Result<(), SimError> {
        let i = self.next_arrival;
        self.next_arrival += 1;
        let p = &self.stream.tasks[i];
        let cmd = Command::CreateTask(CreateTask {
            attributes: Some(self.stream.attributes[p.attributes].clone()),
            priority: p.priority,
            task_channel: p.channel.clone(),
            workflow_sid: Some(self.workflow),
            ..Default::default()
        });
        let patience = p.patience_ms;
        self.commands += 1;
        let applied = self
            .ws
            .apply(cmd, self.t0 + self.now, &mut self.ids)
            .map_err(|e| SimError::engine(format!("task {} (arrival {})", i + 1, i + 1), e))?;
        let idx = self.tasks.len();
        self.tasks.push(TaskRec {
            sid: applied.sid,
            created: self.now,
            outcome: Outcome::Open,
            queue: None,
            reserved_on_arrival: applied
                .events
                .iter()
                .any(|e| e.event_type == EventType::ReservationCreated),
            rejected: 0,
            timed_out: 0,
            stream: i,
        });
        self.task_of.insert(applied.sid, idx);
        self.open += 1;
        if let Some(p) = patience {
            self.at(self.now + p, What::Abandon(idx));
        }
        self.absorb(&applied.events);
        Ok(())
    }

    fn act(&mut self, what: What) -> Result<(), SimError> {
        match what {
            What::Answer {
                reservation,
                accept,
            } => {
                let Some(r) = self.ws.reservations().get(&reservation) else {
                    return Ok(());
                };
                // Rescinded (another worker took the task), canceled (the caller hung up)
                // or timed out meanwhile: too late to answer.
                if r.status != ReservationStatus::Pending {
                    return Ok(());
                }
                let (task, queue) = (r.task_sid, r.task_queue_sid);
                let status = if accept {
                    ReservationStatus::Accepted
                } else {
                    ReservationStatus::Rejected
                };
                self.apply(update_reservation(reservation, status), || {
                    format!("reservation {reservation}: {}", status.as_str())
                })?;
                if accept && let Some(&t) = self.task_of.get(&task) {
                    let rec = &mut self.tasks[t];
                    if rec.outcome == Outcome::Open {
                        rec.outcome = Outcome::Handled {
                            wait_ms: self.now - rec.created,
                        };
                        rec.queue = queue.and_then(|q| self.queue_of.get(&q).copied());
                        self.open -= 1;
                    }
                    let handle = self.stream.tasks[rec.stream].handle_ms;
                    self.in_hand += 1;
                    self.at(self.now + handle, What::HandleEnd { reservation });
                }
            }
            What::HandleEnd { reservation } => {
                // Nothing but the simulated worker moves an accepted reservation on; if
                // something did, the task is out of hand all the same.
                if !self.is(reservation, ReservationStatus::Accepted) {
                    self.in_hand -= 1;
                    return Ok(());
                }
                let wrapup = self
                    .behaviour
                    .wrapup
                    .as_ref()
                    .map(|d| d.sample(&mut self.rng));
                match wrapup {
                    Some(s) => {
                        self.apply(
                            update_reservation(reservation, ReservationStatus::Wrapping),
                            || format!("reservation {reservation}: wrapping"),
                        )?;
                        self.at(self.now + ms(s), What::WrapEnd { reservation });
                    }
                    None => self.complete(reservation)?,
                }
            }
            What::WrapEnd { reservation } => {
                if self.is(reservation, ReservationStatus::Wrapping) {
                    self.complete(reservation)?;
                } else {
                    self.in_hand -= 1;
                }
            }
            What::Abandon(t) => {
                let rec = &self.tasks[t];
                let sid = rec.sid;
                if rec.outcome != Outcome::Open {
                    return Ok(());
                }
                let Some(task) = self.ws.tasks().get(&sid) else {
                    return Ok(());
                };
                if !matches!(
                    task.assignment_status,
                    TaskStatus::Pending | TaskStatus::Reserved
                ) {
                    return Ok(());
                }
                let queue = task
                    .task_queue_sid
                    .and_then(|q| self.queue_of.get(&q).copied());
                let rec = &mut self.tasks[t];
                rec.outcome = Outcome::Abandoned;
                rec.queue = queue;
                self.open -= 1;
                self.apply(
                    Command::UpdateTask(UpdateTask {
                        sid,
                        if_match: None,
                        attributes: None,
                        priority: None,
                        assignment_status: Some(TaskStatus::Canceled),
                        reason: Some("abandoned".into()),
                        task_channel: None,
                        virtual_start_time: None,
                    }),
                    || format!("task {sid}: abandon"),
                )?;
            }
            What::Schedule(w) => {
                if !self.workers[w].away {
                    self.follow_schedule(w)?;
                }
                self.plan_schedule(w);
            }
            What::Return(w) => {
                if self.workers[w].away {
                    self.workers[w].away = false;
                    self.follow_schedule(w)?;
                }
            }
        }
        Ok(())
    }

    fn is(&self, reservation: Sid, status: ReservationStatus) -> bool {
        self.ws
            .reservations()
            .get(&reservation)
            .is_some_and(|r| r.status == status)
    }

    fn complete(&mut self, reservation: Sid) -> Result<(), SimError> {
        self.in_hand -= 1;
        self.apply(
            update_reservation(reservation, ReservationStatus::Completed),
            || format!("reservation {reservation}: completed"),
        )
        .map(drop)
    }

    /// Learns from the engine's events what it did: reservations to answer, timeouts,
    /// cancellations; and which workers' occupancy may have changed.
    fn absorb(&mut self, events: &[Event]) {
        if let Some(log) = &mut self.events {
            log.extend(events.iter().map(Event::to_json));
        }
        for e in events {
            if let Some(w) = e.worker.as_ref().and_then(|w| self.worker_of.get(&w.sid)) {
                let w = *w;
                if !self.workers[w].touched {
                    self.workers[w].touched = true;
                    self.touched.push(w);
                }
            }
            let task = e
                .task
                .as_ref()
                .and_then(|t| self.task_of.get(&t.sid))
                .copied();
            match e.event_type {
                EventType::ReservationCreated => {
                    if let Some((r, _)) = e.reservation {
                        self.offered(r);
                    }
                }
                EventType::ReservationRejected => {
                    if let Some(t) = task {
                        self.tasks[t].rejected += 1;
                    }
                }
                EventType::ReservationTimeout => {
                    if let Some(t) = task {
                        self.tasks[t].timed_out += 1;
                    }
                    // The engine moved the worker to the timeout activity; it comes back
                    // after a while (to whatever its schedule says then).
                    if let Some(&w) = e.worker.as_ref().and_then(|w| self.worker_of.get(&w.sid)) {
                        self.workers[w].away = true;
                        let back = ms(self.away.sample(&mut self.rng));
                        self.at(self.now + back, What::Return(w));
                    }
                }
                EventType::TaskCanceled => {
                    if let Some(t) = task
                        && self.tasks[t].outcome == Outcome::Open
                    {
                        let queue = e.task.as_ref().and_then(|f| f.queue.as_ref());
                        self.tasks[t].outcome = Outcome::Canceled;
                        self.tasks[t].queue = queue.and_then(|q| self.queue_of.get(&q.0).copied());
                        self.open -= 1;
                    }
                }
                _ => {}
            }
        }
        while let Some(w) = self.touched.pop() {
            self.workers[w].touched = false;
            self.refresh(w);
        }
    }

    /// A worker was offered a task: decide what it will do.
    fn offered(&mut self, reservation: Sid) {
        let b = self.behaviour;
        let u = self.rng.f64();
        if u < b.no_answer_probability {
            // Lets it ring: the engine's reservation timeout decides.
            return;
        }
        let accept = u >= b.no_answer_probability + b.reject_probability;
        let delay = b
            .accept_delay
            .as_ref()
            .map_or(0, |d| ms(d.sample(&mut self.rng)));
        self.at(
            self.now + delay,
            What::Answer {
                reservation,
                accept,
            },
        );
    }

    /// Re-reads a worker's availability and load from the engine, accounting the time
    /// spent in the state it leaves.
    fn refresh(&mut self, w: usize) {
        let sid = self.workers[w].sid;
        let Some(worker) = self.ws.workers().get(&sid) else {
            return;
        };
        let available = self
            .ws
            .activities()
            .get(&worker.activity_sid)
            .is_some_and(|a| a.available);
        let busy = self.ws.active_reservations(sid).next().is_some();
        let rec = &self.workers[w];
        if (available, busy) != (rec.available, rec.busy) {
            self.accrue(w, self.now);
            let rec = &mut self.workers[w];
            rec.available = available;
            rec.busy = busy;
        }
    }

    /// Adds the worker's time from `since` to `until` (clipped to the simulated period)
    /// to the intervals it covers.
    fn accrue(&mut self, w: usize, until: i64) {
        let (horizon, step) = (self.horizon_ms, self.interval_ms);
        let rec = &mut self.workers[w];
        let (mut from, to) = (rec.since.clamp(0, horizon), until.clamp(0, horizon));
        rec.since = until;
        let (busy, staffed) = (rec.busy, rec.busy || rec.available);
        if !staffed {
            return;
        }
        while from < to {
            let i = (from / step) as usize;
            let stop = ((i as i64 + 1) * step).min(to);
            if busy {
                rec.busy_ms[i] += stop - from;
            }
            rec.staffed_ms[i] += stop - from;
            from = stop;
        }
    }

    fn finish(mut self) -> Result<Outcomes, SimError> {
        let until = self.now.max(self.horizon_ms);
        for w in 0..self.workers.len() {
            self.accrue(w, until);
        }
        for rec in &mut self.tasks {
            if rec.outcome == Outcome::Open {
                rec.queue = self
                    .ws
                    .tasks()
                    .get(&rec.sid)
                    .and_then(|t| t.task_queue_sid)
                    .and_then(|q| self.queue_of.get(&q).copied());
            }
        }
        let mut members = vec![Vec::new(); self.queue_of.len()];
        for (sid, &q) in &self.queue_of {
            if let Some(tq) = self.ws.task_queues().get(sid) {
                members[q] = tq
                    .members
                    .iter()
                    .filter_map(|w| self.worker_of.get(w).copied())
                    .collect();
                members[q].sort_unstable();
            }
        }
        Ok(Outcomes {
            tasks: self.tasks,
            workers: self.workers,
            members,
            commands: self.commands,
            ticks: self.ticks,
            simulated_ms: self.now,
            events: self.events,
        })
    }
}

fn update_reservation(sid: Sid, status: ReservationStatus) -> Command {
    Command::UpdateReservation(UpdateReservation {
        sid,
        task: None,
        worker: None,
        if_match: None,
        status: Some(status),
        worker_activity_sid: None,
    })
}

fn ms(seconds: f64) -> i64 {
    (seconds * 1000.0).round() as i64
}
