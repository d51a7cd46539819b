//! [`SimError`]: why a simulation could not be set up or run.
//!
//! Every error names what it was about (a worker, a queue, a CSV line), because the input is
//! usually a hand-written or exported file and the person running the simulator has to find
//! the line to fix.

use taskyard_engine::EngineError;

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A JSON document (definition, arrivals, options) did not parse.
    #[error("{what}: {source}")]
    Json {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// The definition is inconsistent (an unknown activity, queue or workflow, …).
    #[error("definition: {0}")]
    Definition(String),
    /// The arrivals are unusable (no rate, a negative time, …).
    #[error("arrivals: {0}")]
    Arrivals(String),
    /// A line of an arrivals CSV file is malformed.
    #[error("arrivals CSV line {line}: {message}")]
    Csv { line: usize, message: String },
    /// An Events API document does not hold what a replay needs.
    #[error("events: {0}")]
    Events(String),
    /// The engine refused a command: the definition asks for something TaskRouter does not
    /// allow (the engine's own validation), or a task's attributes or channel are invalid.
    #[error("{what}: {source}")]
    Engine {
        what: String,
        #[source]
        source: EngineError,
    },
}

impl SimError {
    pub(crate) fn engine(what: impl Into<String>, source: EngineError) -> SimError {
        SimError::Engine {
            what: what.into(),
            source,
        }
    }
}
