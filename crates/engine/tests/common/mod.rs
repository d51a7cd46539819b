//! Helpers shared by the engine's integration tests.

use std::collections::BTreeMap;

use taskyard_engine::{Change, Kind, Sid};

/// The rows a store would hold, keyed by kind and SID.
pub type Rows = BTreeMap<(&'static str, Sid), (Kind, String)>;

/// Applies changes to a map standing in for the store.
pub fn persist(rows: &mut Rows, changes: &[Change]) {
    for c in changes {
        match c {
            Change::Put { kind, sid, body } => {
                rows.insert((kind.as_str(), *sid), (*kind, body.to_json().into_owned()));
            }
            Change::Delete { kind, sid } => {
                rows.remove(&(kind.as_str(), *sid));
            }
            Change::DropWorkspace => rows.clear(),
        }
    }
}
