//! The one error type the engine returns. The API maps each variant to Twilio's error body in
//! one table (`taskyard_api::error`).

use crate::Kind;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// The resource named in the request path does not exist.
    #[error("{kind} {id} was not found")]
    NotFound { kind: Kind, id: String },
    /// A parameter's value is unacceptable; `param` is its Twilio form name.
    #[error("{message}")]
    Invalid {
        param: &'static str,
        message: String,
    },
    /// A uniqueness rule would be broken (duplicate worker name, task channel unique name).
    #[error("{message}")]
    Conflict { message: String },
    /// `If-Match` did not match the resource's current version.
    #[error("If-Match {given} does not match the current version {current}")]
    VersionMismatch { given: String, current: u64 },
    /// The resource is gone for this purpose (accepting a rescinded reservation: 410).
    #[error("{message}")]
    Gone { message: String },
    /// The operation is not allowed in the resource's current state (e.g. deleting an
    /// activity that workers are in).
    #[error("{message}")]
    Refused { message: String },
}

impl EngineError {
    pub(crate) fn invalid(param: &'static str, message: impl Into<String>) -> Self {
        EngineError::Invalid {
            param,
            message: message.into(),
        }
    }

    pub(crate) fn refused(message: impl Into<String>) -> Self {
        EngineError::Refused {
            message: message.into(),
        }
    }

    pub(crate) fn not_found(kind: Kind, id: impl ToString) -> Self {
        EngineError::NotFound {
            kind,
            id: id.to_string(),
        }
    }
}
