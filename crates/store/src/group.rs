//! Event groups: the events of one command, stored as one row.
//!
//! Creating a task records five events (workflow entered, queue entered, task created,
//! target matched, reservation created) that repeat the same task's facts. One row for the
//! five, with one compressed body, is one row and one entry per index instead of five;
//! events are the largest part of what a task costs the store writer (BENCHMARKS.md).
//!
//! A group only joins events of the same moment (a command's events share its time, so
//! retention, which goes by date, keeps or deletes a group whole) that agree on the task,
//! worker and reservation they are about (an event about none agrees with any), so that the
//! row's `task_sid`, `worker_sid` and `reservation_sid` columns — what the indexes hold —
//! name the one task, worker and reservation of all its events. Every other filter, and the exact SID and date bounds, are
//! checked per event once the group is read ([`matches`]).
//!
//! The body (before compression) is `G\n` and then, per event, one header line of
//! tab-separated fields — SID, type, date, task, worker, reservation, queue, workflow,
//! channel (empty for none), callback (`0`/`1`), the JSON's length in bytes — followed by the
//! JSON itself.

use taskyard_engine::Sid;

use crate::{EventQuery, StoreError, StoredEvent};

/// What a group body starts with (a single event's body is its JSON, which starts with `{`).
const MAGIC: &str = "G\n";

/// At most this many events in one group.
const MAX_EVENTS: usize = 64;

/// Splits one command's events, in order, into groups (see the module docs).
pub fn split(events: &[StoredEvent]) -> Vec<&[StoredEvent]> {
    let mut groups = Vec::new();
    let mut start = 0;
    let mut about: [Option<Sid>; 3] = [None; 3];
    for (i, e) in events.iter().enumerate() {
        let own = [e.task_sid, e.worker_sid, e.reservation_sid];
        let agrees = own
            .iter()
            .zip(&about)
            .all(|(mine, theirs)| mine.is_none() || theirs.is_none() || mine == theirs);
        // An event whose type cannot go in a header line stays alone (a plain row).
        let head = &events[start];
        let joins = agrees
            && e.date_ms == head.date_ms
            && i - start < MAX_EVENTS
            && framable(e)
            && framable(head);
        if i > start && !joins {
            groups.push(&events[start..i]);
            start = i;
            about = [None; 3];
        }
        for (slot, mine) in about.iter_mut().zip(own) {
            *slot = slot.or(mine);
        }
    }
    if start < events.len() {
        groups.push(&events[start..]);
    }
    groups
}

/// Whether `e`'s type can be a field of a header line.
fn framable(e: &StoredEvent) -> bool {
    !e.event_type.contains(['\t', '\n'])
}

/// The task, worker and reservation of a group's events (see the module docs).
pub fn about(group: &[StoredEvent]) -> [Option<Sid>; 3] {
    let first = |f: fn(&StoredEvent) -> Option<Sid>| group.iter().find_map(f);
    [
        first(|e| e.task_sid),
        first(|e| e.worker_sid),
        first(|e| e.reservation_sid),
    ]
}

/// The body of a group of two or more events.
pub fn encode(group: &[StoredEvent]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(group.iter().map(|e| e.json.len() + 320).sum());
    out.push_str(MAGIC);
    for e in group {
        // Writing to a String cannot fail.
        let _ = write!(out, "{}\t{}\t{}", e.sid, e.event_type, e.date_ms);
        for sid in [
            e.task_sid,
            e.worker_sid,
            e.reservation_sid,
            e.task_queue_sid,
            e.workflow_sid,
            e.task_channel_sid,
        ] {
            out.push('\t');
            if let Some(sid) = sid {
                let _ = write!(out, "{sid}");
            }
        }
        let _ = writeln!(out, "\t{}\t{}", u8::from(e.callback), e.json.len());
        out.push_str(&e.json);
    }
    out
}

/// The events of a body written by [`encode`].
pub fn decode(body: &str) -> Result<Vec<StoredEvent>, StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("event group: {what}"));
    let mut rest = body
        .strip_prefix(MAGIC)
        .ok_or_else(|| corrupt("no header"))?;
    let mut events = Vec::new();
    while !rest.is_empty() {
        let (line, after) = rest.split_once('\n').ok_or_else(|| corrupt("cut short"))?;
        let f: Vec<&str> = line.split('\t').collect();
        let [
            sid,
            event_type,
            date,
            task,
            worker,
            reservation,
            queue,
            workflow,
            channel,
            cb,
            len,
        ] = f[..]
        else {
            return Err(corrupt("bad header line"));
        };
        let sid_of = |s: &str| -> Result<Option<Sid>, StoreError> {
            if s.is_empty() {
                return Ok(None);
            }
            s.parse().map(Some).map_err(|_| corrupt("bad SID"))
        };
        let len: usize = len.parse().map_err(|_| corrupt("bad length"))?;
        let json = after.get(..len).ok_or_else(|| corrupt("cut short"))?;
        events.push(StoredEvent {
            sid: sid_of(sid)?.ok_or_else(|| corrupt("no SID"))?,
            event_type: event_type.to_string(),
            date_ms: date.parse().map_err(|_| corrupt("bad date"))?,
            task_sid: sid_of(task)?,
            worker_sid: sid_of(worker)?,
            reservation_sid: sid_of(reservation)?,
            task_queue_sid: sid_of(queue)?,
            workflow_sid: sid_of(workflow)?,
            task_channel_sid: sid_of(channel)?,
            callback: cb == "1",
            json: json.to_string(),
        });
        rest = &after[len..];
    }
    Ok(events)
}

/// Whether `e` is one of the events `q` asks for (its limit aside).
pub fn matches(q: &EventQuery, e: &StoredEvent) -> bool {
    let same = |want: Option<Sid>, have: Option<Sid>| want.is_none() || want == have;
    q.start_ms.is_none_or(|ms| e.date_ms >= ms)
        && q.end_ms.is_none_or(|ms| e.date_ms <= ms)
        && q.after.is_none_or(|s| e.sid > s)
        && q.before.is_none_or(|s| e.sid < s)
        && q.sid.is_none_or(|s| e.sid == s)
        && q.event_type.as_ref().is_none_or(|t| *t == e.event_type)
        && same(q.task_sid, e.task_sid)
        && same(q.worker_sid, e.worker_sid)
        && same(q.reservation_sid, e.reservation_sid)
        && same(q.task_queue_sid, e.task_queue_sid)
        && same(q.workflow_sid, e.workflow_sid)
        && same(q.task_channel_sid, e.task_channel_sid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(n: u128, task: Option<u128>, worker: Option<u128>) -> StoredEvent {
        StoredEvent {
            sid: Sid::new("EV", n),
            event_type: "task.created".into(),
            date_ms: 1_000,
            task_sid: task.map(|t| Sid::new("WT", t)),
            worker_sid: worker.map(|w| Sid::new("WK", w)),
            reservation_sid: None,
            task_queue_sid: Some(Sid::new("WQ", 1)),
            workflow_sid: None,
            task_channel_sid: None,
            callback: n.is_multiple_of(2),
            json: format!("{{\"n\":{n},\"text\":\"tab\\there\\nnewline é\"}}"),
        }
    }

    #[test]
    fn a_body_reads_back_exactly() {
        let events = vec![
            ev(1, Some(1), None),
            ev(2, Some(1), Some(3)),
            ev(3, None, None),
        ];
        assert_eq!(decode(&encode(&events)).expect("decode"), events);
        assert!(decode("G\nEV1\tx").is_err());
        assert!(decode("{}").is_err());
    }

    #[test]
    fn groups_agree_on_their_task_worker_and_reservation() {
        let events = vec![
            ev(1, Some(1), None),
            ev(2, None, None),
            ev(3, Some(1), Some(7)),
            ev(4, Some(2), Some(7)), // another task: a new group
            ev(5, None, Some(8)),    // another worker: a new group
            ev(6, None, None),
        ];
        let sizes: Vec<usize> = split(&events).iter().map(|g| g.len()).collect();
        assert_eq!(sizes, vec![3, 1, 2]);
        let groups = split(&events);
        assert_eq!(
            about(groups[0]),
            [Some(Sid::new("WT", 1)), Some(Sid::new("WK", 7)), None]
        );
        let mut odd = ev(9, None, None);
        odd.event_type = "a\ttab".into();
        let events = vec![ev(1, None, None), odd, ev(2, None, None)];
        let sizes: Vec<usize> = split(&events).iter().map(|g| g.len()).collect();
        assert_eq!(sizes, vec![1, 1, 1]);
        let many: Vec<StoredEvent> = (0..130).map(|n| ev(n, None, None)).collect();
        let sizes: Vec<usize> = split(&many).iter().map(|g| g.len()).collect();
        assert_eq!(sizes, vec![64, 64, 2]);
        let mut later = ev(3, None, None);
        later.date_ms += 1;
        let events = vec![ev(1, None, None), ev(2, None, None), later];
        let sizes: Vec<usize> = split(&events).iter().map(|g| g.len()).collect();
        assert_eq!(sizes, vec![2, 1], "a new moment, a new group");
    }
}
