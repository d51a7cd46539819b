//! Compact event bodies for the SQLite store.
//!
//! An event's JSON repeats the same keys and, within one database, the same account,
//! workspace, queue, workflow and channel SIDs and names, event after event: about 1.1 KB
//! each, and most of what the writer puts on disk. Every byte of it is written twice (into the
//! WAL at commit, into the database at checkpoint), so the bytes, not the statements, set the
//! writer's pace. zstd with a dictionary trained on the database's own events shrinks a body
//! about tenfold for a couple of microseconds of CPU.
//!
//! `events.body` holds either the JSON itself (TEXT: events written before a dictionary
//! existed) or a BLOB: the dictionary's id (`u32`, little endian), the JSON's length (`u32`,
//! little endian), then one zstd frame. Dictionaries live in `event_dicts` and are never
//! deleted, so every row stays readable.
//!
//! Training: each process trains after its first [`SAMPLES`] events, and again after ten
//! times as many since the last training (up to four times), because a server's first events
//! are rarely its typical ones (a new deployment creates workers before it routes tasks).
//! Each time it trains on an evenly spaced sample of the events since the last training
//! (about [`SAMPLES`] of them; every other one is dropped whenever the sample doubles) and
//! tries the new dictionary against the one in use on a fifth of that sample it did not train
//! on. The new one is stored — in the same transaction as the first events it compresses —
//! only if it beats the old one by a fifth. Training (50–200 ms) runs on a thread of its own;
//! the writer judges and stores the result in the first commit after it is ready. So a steady database keeps one dictionary, and one
//! whose traffic changes shape gets a better one.

use std::collections::HashMap;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::StoreError;

/// Events before the first training, and about the size of each training sample.
pub const SAMPLES: usize = 2000;
/// Trainings per process, at `SAMPLES` × 1, 10, 100 and 1000 events since the last one.
const TRAININGS: u32 = 4;
/// Largest dictionary trained: more stops paying off for bodies of about a kilobyte.
const DICT_BYTES: usize = 16 * 1024;
/// zstd's level: 1 is within 5% of level 3's size here, at less CPU.
const LEVEL: i32 = 1;
/// Bytes before the zstd frame in a BLOB body.
const HEADER: usize = 8;

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("event body: {what}"))
}

fn compress_error(what: impl std::fmt::Display) -> StoreError {
    StoreError::Compress(what.to_string())
}

/// A dictionary and the compressor loaded with it.
struct Dict {
    id: u32,
    compressor: zstd::bulk::Compressor<'static>,
}

impl Dict {
    fn new(id: u32, bytes: &[u8]) -> Result<Dict, StoreError> {
        let mut compressor =
            zstd::bulk::Compressor::with_dictionary(LEVEL, bytes).map_err(compress_error)?;
        // The header already names the dictionary and the length; a checksum would only
        // repeat what SQLite's own page handling guarantees.
        compressor.include_dictid(false).map_err(compress_error)?;
        compressor
            .include_contentsize(false)
            .map_err(compress_error)?;
        compressor.include_checksum(false).map_err(compress_error)?;
        Ok(Dict { id, compressor })
    }

    fn pack(&mut self, json: &str) -> Result<Vec<u8>, StoreError> {
        let len = u32::try_from(json.len()).map_err(|_| compress_error("larger than 4 GiB"))?;
        let frame = self
            .compressor
            .compress(json.as_bytes())
            .map_err(compress_error)?;
        let mut out = Vec::with_capacity(HEADER + frame.len());
        out.extend_from_slice(&self.id.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&frame);
        Ok(out)
    }

    /// Total packed size of `samples`.
    fn size_of(&mut self, samples: &[String]) -> usize {
        samples
            .iter()
            .map(|s| self.pack(s).map_or(s.len(), |p| p.len()))
            .sum()
    }
}

/// A body as it goes into `events.body`.
pub enum Body<'a> {
    Text(&'a str),
    Blob(Vec<u8>),
}

impl rusqlite::ToSql for Body<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        match self {
            Body::Text(s) => s.to_sql(),
            Body::Blob(b) => b.to_sql(),
        }
    }
}

/// The writer's side: packs bodies, trains dictionaries.
pub struct Packer {
    dict: Option<Dict>,
    /// Every `stride`-th body since the last training.
    samples: Vec<String>,
    stride: usize,
    /// Bodies seen since the last training.
    seen: usize,
    /// Train once `seen` reaches this (`None`: no more training in this process).
    train_at: Option<usize>,
    trainings: u32,
    /// Trained in the current transaction, installed once it commits.
    staged: Option<Dict>,
    /// Train on a thread of its own (training takes 50–200 ms, a stall for every request
    /// waiting for a commit if the writer did it); tests train in the foreground to know
    /// exactly which events are packed.
    background: bool,
    /// A training under way in the background.
    training: Option<Training>,
}

/// A dictionary being trained on another thread, and the samples set aside to judge it.
struct Training {
    judge: Vec<String>,
    result: std::sync::mpsc::Receiver<Option<Vec<u8>>>,
}

impl Packer {
    /// Loads the newest dictionary of the database; trains after `samples` events (0: never),
    /// on a thread of its own if `background`.
    pub fn open(conn: &Connection, samples: usize, background: bool) -> Result<Packer, StoreError> {
        let newest: Option<(u32, Vec<u8>)> = conn
            .query_row(
                "SELECT id, body FROM event_dicts ORDER BY id DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        Ok(Packer {
            dict: newest.map(|(id, b)| Dict::new(id, &b)).transpose()?,
            samples: Vec::new(),
            stride: 1,
            seen: 0,
            train_at: (samples > 0).then_some(samples),
            trainings: 0,
            background,
            training: None,
            staged: None,
        })
    }

    /// Sees the bodies about to be written in `tx`; once enough were seen, trains and, if
    /// the new dictionary is better, stores it in `tx` and packs with it from now on.
    pub fn observe<'a>(
        &mut self,
        tx: &Transaction<'_>,
        bodies: impl Iterator<Item = &'a str>,
    ) -> Result<(), StoreError> {
        // A dictionary trained in the background since the last commit: judge it now.
        if let Some(t) = &self.training {
            match t.result.try_recv() {
                Err(std::sync::mpsc::TryRecvError::Empty) => {}
                Ok(trained) => {
                    let t = self.training.take();
                    if let (Some(bytes), Some(t)) = (trained, t) {
                        self.adopt(tx, &bytes, &t.judge)?;
                    }
                }
                // Too few or too uniform samples (no dictionary), or the thread died: the
                // dictionary in use (or plain JSON) stays.
                Err(std::sync::mpsc::TryRecvError::Disconnected) => self.training = None,
            }
        }
        let Some(train_at) = self.train_at else {
            return Ok(());
        };
        for body in bodies {
            if self.seen.is_multiple_of(self.stride) {
                self.samples.push(body.to_owned());
                if self.samples.len() >= 2 * SAMPLES {
                    // Keep the sample evenly spaced and bounded: drop every other one.
                    self.samples = std::mem::take(&mut self.samples)
                        .into_iter()
                        .step_by(2)
                        .collect();
                    self.stride *= 2;
                }
            }
            self.seen += 1;
        }
        if self.seen < train_at || self.training.is_some() {
            return Ok(());
        }
        let mut samples = std::mem::take(&mut self.samples);
        self.trainings += 1;
        self.train_at = (self.trainings < TRAININGS).then(|| train_at.saturating_mul(10));
        self.seen = 0;
        self.stride = 1;
        // Train on four fifths, judge on the rest.
        let judge = samples.split_off(samples.len() * 4 / 5);
        if self.background {
            let (done, result) = std::sync::mpsc::channel();
            let spawned = std::thread::Builder::new()
                .name("taskyard-dict".into())
                .spawn(move || {
                    let _ = done.send(zstd::dict::from_samples(&samples, DICT_BYTES).ok());
                });
            // Without a thread there is no new dictionary this time; nothing is lost.
            if spawned.is_ok() {
                self.training = Some(Training { judge, result });
            }
            Ok(())
        } else {
            match zstd::dict::from_samples(&samples, DICT_BYTES) {
                Ok(bytes) => self.adopt(tx, &bytes, &judge),
                Err(_) => Ok(()),
            }
        }
    }

    /// Stores `bytes` as the next dictionary (in `tx`) and packs with it from now on, if it
    /// beats the one in use on `judge` by a fifth.
    fn adopt(
        &mut self,
        tx: &Transaction<'_>,
        bytes: &[u8],
        judge: &[String],
    ) -> Result<(), StoreError> {
        let id: u32 = tx.query_row(
            "SELECT coalesce(max(id), 0) + 1 FROM event_dicts",
            [],
            |r| r.get(0),
        )?;
        let mut trained = Dict::new(id, bytes)?;
        let new_size = trained.size_of(judge);
        let old_size = match &mut self.dict {
            Some(old) => old.size_of(judge),
            None => judge.iter().map(String::len).sum(),
        };
        if new_size * 5 < old_size * 4 {
            tx.execute(
                "INSERT INTO event_dicts (id, body) VALUES (?1, ?2)",
                params![id, bytes],
            )?;
            self.staged = Some(trained);
        }
        Ok(())
    }

    /// The stored form of `json`.
    pub fn pack<'a>(&mut self, json: &'a str) -> Result<Body<'a>, StoreError> {
        match self.staged.as_mut().or(self.dict.as_mut()) {
            Some(d) => d.pack(json).map(Body::Blob),
            None => Ok(Body::Text(json)),
        }
    }

    /// The transaction committed: a dictionary trained in it is the one to use.
    pub fn committed(&mut self) {
        if let Some(d) = self.staged.take() {
            self.dict = Some(d);
        }
    }

    /// The transaction rolled back: forget a dictionary trained in it.
    pub fn rolled_back(&mut self) {
        self.staged = None;
    }
}

/// The readers' side: the dictionaries seen so far, by id.
#[derive(Default)]
pub struct Unpacker {
    dicts: HashMap<u32, zstd::bulk::Decompressor<'static>>,
}

impl Unpacker {
    /// The JSON of a stored body.
    pub fn unpack(&mut self, conn: &Connection, body: ValueRef<'_>) -> Result<String, StoreError> {
        let blob = match body {
            ValueRef::Text(t) => {
                return String::from_utf8(t.to_vec()).map_err(corrupt);
            }
            ValueRef::Blob(b) => b,
            other => return Err(corrupt(format!("unexpected {:?}", other.data_type()))),
        };
        let short = || corrupt("short blob");
        let (id, rest) = blob.split_first_chunk::<4>().ok_or_else(short)?;
        let (len, frame) = rest.split_first_chunk::<4>().ok_or_else(short)?;
        let (id, len) = (u32::from_le_bytes(*id), u32::from_le_bytes(*len) as usize);
        let decompressor = match self.dicts.entry(id) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let bytes: Vec<u8> = conn
                    .query_row("SELECT body FROM event_dicts WHERE id = ?1", [id], |r| {
                        r.get(0)
                    })
                    .optional()?
                    .ok_or_else(|| corrupt(format!("dictionary {id} is missing")))?;
                e.insert(zstd::bulk::Decompressor::with_dictionary(&bytes).map_err(corrupt)?)
            }
        };
        let json = decompressor.decompress(frame, len).map_err(corrupt)?;
        if json.len() != len {
            return Err(corrupt("length does not match"));
        }
        String::from_utf8(json).map_err(corrupt)
    }
}
