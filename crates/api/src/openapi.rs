//! The OpenAPI document served at `/openapi.json`.
//!
//! Twilio's own description of TaskRouter v1 (`openapi/twilio_taskrouter_v1.json`, copied
//! unchanged from twilio-oai; see `openapi/README.md`) with Taskyard's own routes
//! (`openapi/taskyard.json`) merged in. Both are compiled into the binary; the merge runs
//! once, on the first request. Keeping Twilio's file byte for byte makes it easy to update
//! from upstream and to see what Taskyard added.
//!
//! `tests/openapi.rs` holds the result to the router: every operation in it is answered by a
//! route, and every route is in it.

use serde_json::{Map, Value};

const TWILIO: &str = include_str!("../openapi/twilio_taskrouter_v1.json");
const TASKYARD: &str = include_str!("../openapi/taskyard.json");

/// Why the two documents could not be merged (a mistake in the files, which the crate's
/// tests catch before any release).
#[derive(Debug, thiserror::Error)]
pub enum OpenApiError {
    #[error("{0} is not valid JSON: {1}")]
    Json(&'static str, serde_json::Error),
    #[error("{0} has no object at {1}")]
    Shape(&'static str, &'static str),
    #[error("{0} '{1}' is in both Twilio's document and Taskyard's")]
    Duplicate(&'static str, String),
}

/// The merged document, with `servers` set to `public_url` (this server, instead of
/// `https://taskrouter.twilio.com`) and `info` saying it is Taskyard's.
pub fn document(public_url: &str) -> Result<Value, OpenApiError> {
    let mut doc: Value =
        serde_json::from_str(TWILIO).map_err(|e| OpenApiError::Json("twilio_taskrouter_v1", e))?;
    let ours: Value =
        serde_json::from_str(TASKYARD).map_err(|e| OpenApiError::Json("taskyard", e))?;
    let Value::Object(mut ours) = ours else {
        return Err(OpenApiError::Shape("taskyard", "/"));
    };

    let paths = object(&mut doc, "paths", "twilio_taskrouter_v1")?;
    // Twilio repeats its host on every path; one top-level server (this one) replaces them.
    for item in paths.values_mut() {
        if let Value::Object(item) = item {
            item.remove("servers");
        }
    }
    add_all(paths, take(&mut ours, "paths")?, "path")?;
    let ours_components = take(&mut ours, "components")?;
    let components = object(&mut doc, "components", "twilio_taskrouter_v1")?;
    for (kind, entries) in ours_components {
        let Value::Object(entries) = entries else {
            return Err(OpenApiError::Shape("taskyard", "components/*"));
        };
        let into = components
            .entry(kind)
            .or_insert_with(|| Value::Object(Map::new()));
        let Value::Object(into) = into else {
            return Err(OpenApiError::Shape("twilio_taskrouter_v1", "components/*"));
        };
        add_all(into, entries, "component")?;
    }
    if let (Some(Value::Array(tags)), Some(Value::Array(more))) =
        (doc.get_mut("tags"), ours.remove("tags"))
    {
        tags.extend(more);
    }
    if let Some(mut info) = ours.remove("info") {
        info["version"] = Value::String(env!("CARGO_PKG_VERSION").to_string());
        doc["info"] = info;
    }
    doc["servers"] = serde_json::json!([{ "url": public_url }]);
    Ok(doc)
}

fn object<'a>(
    doc: &'a mut Value,
    key: &'static str,
    name: &'static str,
) -> Result<&'a mut Map<String, Value>, OpenApiError> {
    doc.get_mut(key)
        .and_then(Value::as_object_mut)
        .ok_or(OpenApiError::Shape(name, key))
}

fn take(
    doc: &mut Map<String, Value>,
    key: &'static str,
) -> Result<Map<String, Value>, OpenApiError> {
    match doc.remove(key) {
        Some(Value::Object(m)) => Ok(m),
        _ => Err(OpenApiError::Shape("taskyard", key)),
    }
}

/// Adds Taskyard's entries; one that Twilio's document already has is a mistake (Taskyard's
/// additions never redefine Twilio's).
fn add_all(
    into: &mut Map<String, Value>,
    from: Map<String, Value>,
    what: &'static str,
) -> Result<(), OpenApiError> {
    for (k, v) in from {
        if into.contains_key(&k) {
            return Err(OpenApiError::Duplicate(what, k));
        }
        into.insert(k, v);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_without_clashes() {
        let doc = document("https://taskyard.example").expect("merged");
        assert_eq!(doc["servers"][0]["url"], "https://taskyard.example");
        assert_eq!(doc["info"]["title"], "Taskyard");
        let paths = doc["paths"].as_object().expect("paths");
        assert!(paths.contains_key("/v1/Workspaces/{WorkspaceSid}/Tasks"));
        assert!(paths.contains_key("/2010-04-01/Accounts.json"));
        assert!(paths.values().all(|p| p.get("servers").is_none()));
        assert!(doc["components"]["schemas"]["taskyard.error"].is_object());
        assert!(doc["components"]["schemas"]["taskrouter.v1.workspace"].is_object());
    }
}
