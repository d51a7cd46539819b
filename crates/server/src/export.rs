//! `taskyard export`: a running workspace as a simulator definition ([`taskyard_sim`]'s
//! `Definition`), read through the REST API like any client — from Taskyard or from Twilio's
//! TaskRouter itself — and, with `--events`, a recorded stretch of its Events API to replay
//! as arrivals.
//!
//! The definition keeps the REST shapes (friendly names, SIDs, attributes, configuration
//! documents as the API gives them), so what the simulator reads is what the server holds.
//! Workers are fetched one by one: TaskRouter lists them without their attributes.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use serde_json::{Map, Value, json};

#[derive(Debug, Clone, clap::Args)]
pub struct Export {
    /// The workspace to export (WS…).
    #[arg(long)]
    pub workspace: String,

    /// The server's base URL (Taskyard's, or https://taskrouter.twilio.com).
    #[arg(long, env = "TASKYARD_URL", default_value = "http://127.0.0.1:8700")]
    pub url: String,

    /// The account to read it with.
    #[arg(long, env = "TASKYARD_ACCOUNT_SID")]
    pub account_sid: String,

    /// That account's auth token (or an API key's secret, with the key's SID as
    /// --account-sid).
    #[arg(long, env = "TASKYARD_AUTH_TOKEN", hide_env_values = true)]
    pub auth_token: String,

    /// Write the definition here [default: standard output].
    #[arg(long)]
    pub out: Option<PathBuf>,

    /// Also write the workspace's events (the Events API's, every type) here, for
    /// `taskyard simulate --arrivals`.
    #[arg(long)]
    pub events: Option<PathBuf>,

    /// With --events: the first moment, as the Events API's StartDate (ISO 8601)
    /// [default: the API's own, 15 minutes ago].
    #[arg(long, requires = "events")]
    pub since: Option<String>,

    /// With --events: the last moment (EndDate) [default: now].
    #[arg(long, requires = "events")]
    pub until: Option<String>,
}

pub async fn run(args: Export) -> anyhow::Result<()> {
    let api = Api {
        http: reqwest::Client::new(),
        base: args.url.trim_end_matches('/').to_string(),
        user: args.account_sid.clone(),
        password: args.auth_token.clone(),
    };
    let ws = format!("/v1/Workspaces/{}", args.workspace);
    let workspace = api.get(&ws).await?;
    let activities = api.list(&format!("{ws}/Activities"), "activities").await?;
    let channels = api.list(&format!("{ws}/TaskChannels"), "channels").await?;
    let queues = api.list(&format!("{ws}/TaskQueues"), "task_queues").await?;
    let workflows = api.list(&format!("{ws}/Workflows"), "workflows").await?;
    let mut workers = Vec::new();
    for w in api.list(&format!("{ws}/Workers"), "workers").await? {
        let sid = text(&w, "sid");
        workers.push(api.get(&format!("{ws}/Workers/{sid}")).await?);
    }
    let pick = |v: &Value, keys: &[&str]| -> Value {
        let mut m = Map::new();
        for k in keys {
            if let Some(x) = v.get(*k).filter(|x| !x.is_null()) {
                m.insert((*k).to_string(), x.clone());
            }
        }
        Value::Object(m)
    };
    let definition = json!({
        "friendly_name": workspace.get("friendly_name"),
        "multi_task_enabled": workspace.get("multi_task_enabled"),
        "timeout_activity": workspace.get("timeout_activity_sid"),
        "activities": activities.iter().map(|a| pick(a, &["friendly_name", "available", "sid"])).collect::<Vec<_>>(),
        "task_channels": channels.iter().map(|c| pick(c, &["unique_name", "friendly_name", "sid"])).collect::<Vec<_>>(),
        "workers": workers.iter().map(|w| pick(w, &["friendly_name", "sid", "attributes", "activity_sid", "activity_name"])).collect::<Vec<_>>(),
        "task_queues": queues.iter().map(|q| pick(q, &[
            "friendly_name", "sid", "target_workers", "max_reserved_workers", "task_order",
            "reservation_activity_sid", "assignment_activity_sid",
        ])).collect::<Vec<_>>(),
        "workflows": workflows.iter().map(|w| pick(w, &["friendly_name", "sid", "configuration", "task_reservation_timeout"])).collect::<Vec<_>>(),
    });
    // What the simulator reads must be what it can read: check before writing.
    let text_out = serde_json::to_string_pretty(&definition)?;
    taskyard_sim::Definition::from_json(&text_out)
        .context("the exported workspace is not a definition the simulator reads")?;
    match &args.out {
        Some(p) => {
            std::fs::write(p, &text_out).with_context(|| format!("writing {}", p.display()))?
        }
        None => println!("{text_out}"),
    }
    eprintln!(
        "exported {}: {} activities, {} workers, {} task queues, {} workflows",
        args.workspace,
        activities.len(),
        workers.len(),
        queues.len(),
        workflows.len()
    );
    if let Some(p) = &args.events {
        let mut query = Vec::new();
        if let Some(s) = &args.since {
            query.push(("StartDate", s.as_str()));
        }
        if let Some(u) = &args.until {
            query.push(("EndDate", u.as_str()));
        }
        let path = format!(
            "{ws}/Events?{}",
            form_urlencoded::Serializer::new(String::new())
                .extend_pairs(query)
                .finish()
        );
        let mut events = api.list(&path, "events").await?;
        // The Events API answers newest first; a replay reads them in order.
        events.reverse();
        let n = events.len();
        std::fs::write(p, serde_json::to_string(&json!({ "events": events }))?)
            .with_context(|| format!("writing {}", p.display()))?;
        eprintln!("exported {n} events to {}", p.display());
    }
    Ok(())
}

fn text(v: &Value, k: &str) -> String {
    v.get(k)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

struct Api {
    http: reqwest::Client,
    base: String,
    user: String,
    password: String,
}

impl Api {
    /// One resource (`path` from `/v1`, or an absolute `next_page_url`).
    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let url = if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        };
        let resp = self
            .http
            .get(&url)
            .basic_auth(&self.user, Some(&self.password))
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        let status = resp.status();
        let bytes = resp.bytes().await.with_context(|| format!("GET {url}"))?;
        let body: Value =
            serde_json::from_slice(&bytes).with_context(|| format!("GET {url}: not JSON"))?;
        if !status.is_success() {
            bail!(
                "GET {url}: {status}: {}",
                body.get("message").and_then(Value::as_str).unwrap_or("")
            );
        }
        Ok(body)
    }

    /// Every page of a list.
    async fn list(&self, path: &str, key: &str) -> anyhow::Result<Vec<Value>> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut next = Some(format!("{path}{sep}PageSize=1000"));
        let mut out = Vec::new();
        while let Some(page) = next.take() {
            let body = self.get(&page).await?;
            match body.get(key) {
                Some(Value::Array(items)) => out.extend(items.iter().cloned()),
                _ => bail!("GET {page}: no `{key}` list in the answer"),
            }
            next = body
                .pointer("/meta/next_page_url")
                .and_then(Value::as_str)
                .map(str::to_string);
        }
        Ok(out)
    }
}
