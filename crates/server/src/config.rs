//! Command-line and environment configuration. Every flag can also be set through the
//! environment variable named in its help.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};

/// Taskyard: a self-hosted task router that speaks Twilio TaskRouter's v1 REST API.
///
/// Point any TaskRouter client (for example Twilio's helper libraries) at the listen address
/// instead of https://taskrouter.twilio.com and log in with the account SID and auth token.
///
/// Logs go to standard error, a line per request among them; set TASKYARD_LOG to choose what
/// is logged (default `info`; for example `debug` or `taskyard_hub=debug`).
#[derive(Debug, Parser)]
#[command(name = "taskyard", version, about, long_about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// How log lines are written: `text` for people, `json` (one object a line) for log
    /// collectors.
    #[arg(long, global = true, env = "TASKYARD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the server (embedded SQLite database, no other set-up needed; or PostgreSQL with
    /// --database-url).
    Serve(Serve),
    /// Check a configuration (file, environment and flags together) without starting.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// What-if: run a workspace definition against a day of arrivals through the real
    /// engine under simulated time (no server needed), and report waits, service level,
    /// abandonment and occupancy per queue and interval; compare two workflows or two
    /// definitions on the same arrivals (docs/simulator.md).
    Simulate(crate::simulate::Simulate),
    /// Write a running workspace (read through its REST API, Taskyard's or Twilio's) as a
    /// definition for `simulate`, and optionally its recorded events as arrivals.
    Export(crate::export::Export),
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Check every setting `serve` would start with — the file's, the environment's and the
    /// flags' — print each with where it came from (secrets hidden), and exit non-zero if any
    /// is wrong.
    Check(Serve),
}

#[derive(Debug, Clone, clap::Args)]
pub struct Serve {
    /// A TOML file of settings (the flags' long names as keys, `max_connections = 5000`);
    /// environment variables and flags override it.
    #[arg(long, env = "TASKYARD_CONFIG")]
    pub config: Option<PathBuf>,

    #[command(flatten)]
    pub limits: crate::limits::Limits,

    /// Address and port to listen on.
    #[arg(long, env = "TASKYARD_LISTEN", default_value = "127.0.0.1:8700")]
    pub listen: SocketAddr,

    /// Directory of the SQLite database (created if missing). With --database-url it holds
    /// only the development account's credentials.
    #[arg(long, env = "TASKYARD_DATA_DIR", default_value = "./taskyard-data")]
    pub data_dir: PathBuf,

    /// Base URL used in every `url`, `links` and paging URL [default: http://<listen address>].
    #[arg(long, env = "TASKYARD_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// SID of the account to log in with (AC + 32 hex digits). With --auth-token; when both
    /// are unset a development account is created on first start, printed once and kept in
    /// <data-dir>/development-account.env.
    #[arg(long, env = "TASKYARD_ACCOUNT_SID")]
    pub account_sid: Option<String>,

    /// Auth token of that account.
    #[arg(long, env = "TASKYARD_AUTH_TOKEN", hide_env_values = true)]
    pub auth_token: Option<String>,

    /// A PostgreSQL database to keep everything in instead of the embedded SQLite one, as a
    /// URL (`postgres://user:password@host:5432/dbname`) or libpq key=value string. Several
    /// nodes may share one (see "Running a cluster" in the README).
    #[arg(long, env = "TASKYARD_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// The schema of that database that holds Taskyard's tables (created if missing).
    #[arg(long, env = "TASKYARD_DATABASE_SCHEMA", default_value = taskyard_store::postgres::DEFAULT_SCHEMA)]
    pub database_schema: String,

    /// This node's name in a cluster (PostgreSQL only); unique among the nodes
    /// [default: <host name>-<listen port>].
    #[arg(long, env = "TASKYARD_NODE_ID")]
    pub node_id: Option<String>,

    /// The URL the other nodes of a cluster reach this one's API at, to forward requests
    /// for the workspaces it runs [default: http://<listen address>, with the host name for
    /// an unspecified address such as 0.0.0.0].
    #[arg(long, env = "TASKYARD_ADVERTISE_URL")]
    pub advertise_url: Option<String>,

    /// Seconds a node's leases on its workspaces last without renewal (renewed every third
    /// of it): how soon other nodes take over from a node that died (PostgreSQL only).
    #[arg(long, env = "TASKYARD_LEASE_SECONDS", default_value_t = 3.0)]
    pub lease_seconds: f64,

    /// How hard each commit works to reach the disk: `full` survives power loss, `normal`
    /// survives a crash of the process only. SQLite only: on PostgreSQL every acknowledged
    /// write is committed (synchronous_commit = on).
    #[arg(long, env = "TASKYARD_DURABILITY", value_enum, default_value_t = DurabilityArg::Full)]
    pub durability: DurabilityArg,

    /// Whether the process counts what it does and serves GET /metrics.
    #[arg(long, env = "TASKYARD_METRICS", default_value_t = true, action = clap::ArgAction::Set)]
    pub metrics: bool,

    /// A bearer token `GET /metrics` requires (`Authorization: Bearer <token>`); unset, the
    /// metrics are open like /healthz.
    #[arg(long, env = "TASKYARD_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,

    /// Whether /metrics has per-workspace series (tasks waiting, longest wait, workers): one
    /// series per workspace this node runs and figure. Turn off on a node with very many.
    #[arg(long, env = "TASKYARD_METRICS_PER_WORKSPACE", default_value_t = true, action = clap::ArgAction::Set)]
    pub metrics_per_workspace: bool,

    /// Show worker attributes in list responses too (Twilio shows them only when fetching a
    /// single worker).
    #[arg(long, env = "TASKYARD_LIST_ATTRIBUTES", default_value_t = false)]
    pub list_attributes: bool,

    /// Where telephony instructions from assignment callbacks (dequeue, call, redirect,
    /// conference, supervise) are handed as a signed POST. Without one they are recorded as
    /// unsupported and the reservation stays pending.
    #[arg(long, env = "TASKYARD_MEDIA_CONNECTOR_URL")]
    pub media_connector_url: Option<String>,

    /// Seconds an application has to answer an assignment callback (Twilio: 5).
    #[arg(
        long,
        env = "TASKYARD_ASSIGNMENT_CALLBACK_TIMEOUT",
        default_value_t = 5.0
    )]
    pub assignment_callback_timeout: f64,

    /// Longest wait, in seconds, between two attempts to deliver an event callback.
    #[arg(
        long,
        env = "TASKYARD_EVENT_CALLBACK_MAX_BACKOFF",
        default_value_t = 60.0
    )]
    pub event_callback_max_backoff: f64,

    /// Seconds after an agent's last connection to the event bridge ends before its worker
    /// is set Offline (unless the SDK passed `setWorkerOfflineIfDisconnected=false`, or it
    /// reconnected in the meantime).
    #[arg(long, env = "TASKYARD_AGENT_OFFLINE_AFTER", default_value_t = 30.0)]
    pub agent_offline_after: f64,

    /// A browser build (ES module) of Twilio's worker SDK that the agent page (`/agent`)
    /// loads; unset, the page loads twilio-taskrouter 2.1.1 from a public CDN.
    #[arg(long, env = "TASKYARD_AGENT_SDK")]
    pub agent_sdk: Option<std::path::PathBuf>,

    /// Networks assignment, fallback and event callbacks may reach although the built-in
    /// list refuses them (link-local and cloud metadata, unspecified, broadcast, multicast),
    /// as comma-separated CIDR blocks or addresses: `169.254.10.0/24,fe80::1`. Between this
    /// list and --callback-deny the most specific entry wins, the deny list a tie.
    #[arg(long, env = "TASKYARD_CALLBACK_ALLOW", value_name = "CIDRS")]
    pub callback_allow: Option<String>,

    /// Networks callbacks may not reach, on top of the built-in list, as comma-separated CIDR
    /// blocks or addresses: `127.0.0.0/8,::1/128,10.0.0.0/8` (loopback and private networks
    /// are allowed unless listed here). Checked when a URL is saved and on every connection.
    #[arg(long, env = "TASKYARD_CALLBACK_DENY", value_name = "CIDRS")]
    pub callback_deny: Option<String>,
}

impl Serve {
    /// Every derived setting, checked (what `serve` checks before it opens anything).
    pub fn check(&self) -> anyhow::Result<()> {
        self.lease()?;
        self.bridge()?;
        self.callbacks()?;
        self.limits.api()?;
        self.limits.connections()?;
        self.limits.body_timeout()?;
        if let Some(sid) = &self.account_sid {
            taskyard_engine::Sid::parse_with(sid, taskyard_engine::sid::prefix::ACCOUNT)
                .map_err(|e| anyhow::anyhow!("--account-sid {sid:?}: {e}"))?;
        }
        anyhow::ensure!(
            self.account_sid.is_some() == self.auth_token.is_some(),
            "set both --account-sid and --auth-token (TASKYARD_ACCOUNT_SID, TASKYARD_AUTH_TOKEN), or neither"
        );
        Ok(())
    }

    /// The lease period, checked.
    pub fn lease(&self) -> anyhow::Result<std::time::Duration> {
        let v = self.lease_seconds;
        anyhow::ensure!(
            v.is_finite() && (0.3..=600.0).contains(&v),
            "--lease-seconds must be between 0.3 and 600"
        );
        Ok(std::time::Duration::from_secs_f64(v))
    }

    /// The event bridge's settings, checked.
    pub fn bridge(&self) -> anyhow::Result<taskyard_bridge::Options> {
        let v = self.agent_offline_after;
        anyhow::ensure!(
            v.is_finite() && (0.0..=86_400.0).contains(&v),
            "--agent-offline-after must be between 0 and 86400 seconds"
        );
        if let Some(p) = &self.agent_sdk {
            anyhow::ensure!(
                p.is_file(),
                "--agent-sdk {}: no such file (a browser build of twilio-taskrouter)",
                p.display()
            );
        }
        Ok(taskyard_bridge::Options {
            offline_after: std::time::Duration::from_secs_f64(v),
            agent_sdk: self.agent_sdk.clone(),
        })
    }

    /// The callback settings, checked.
    pub fn callbacks(&self) -> anyhow::Result<taskyard_hub::CallbackOptions> {
        let seconds = |v: f64, name: &str| {
            if v.is_finite() && v > 0.0 && v <= 3600.0 {
                Ok(std::time::Duration::from_secs_f64(v))
            } else {
                anyhow::bail!("{name} must be between 0 and 3600 seconds")
            }
        };
        Ok(taskyard_hub::CallbackOptions {
            assignment_timeout: seconds(
                self.assignment_callback_timeout,
                "--assignment-callback-timeout",
            )?,
            media_connector_url: self.media_connector_url.clone().filter(|u| !u.is_empty()),
            max_backoff: seconds(
                self.event_callback_max_backoff,
                "--event-callback-max-backoff",
            )?,
            policy: self.callback_policy()?,
            ..Default::default()
        })
    }

    /// The callback policy: the built-in list with --callback-allow and --callback-deny.
    pub fn callback_policy(&self) -> anyhow::Result<taskyard_hub::Policy> {
        let list = |text: &Option<String>, flag: &str| {
            taskyard_hub::Cidr::parse_list(text.as_deref().unwrap_or_default())
                .map_err(|e| anyhow::anyhow!("{flag}: {e}"))
        };
        Ok(taskyard_hub::Policy::new(
            list(
                &self.callback_allow,
                "--callback-allow (TASKYARD_CALLBACK_ALLOW)",
            )?,
            list(
                &self.callback_deny,
                "--callback-deny (TASKYARD_CALLBACK_DENY)",
            )?,
        ))
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DurabilityArg {
    Full,
    Normal,
}

impl From<DurabilityArg> for taskyard_store::sqlite::Durability {
    fn from(d: DurabilityArg) -> Self {
        match d {
            DurabilityArg::Full => taskyard_store::sqlite::Durability::Full,
            DurabilityArg::Normal => taskyard_store::sqlite::Durability::Normal,
        }
    }
}

/// Every setting of `config check` as TOML, with where it came from; secrets (the settings
/// whose environment values clap hides) are shown only as set or not.
pub fn report(matches: &clap::ArgMatches, from_file: &[String]) -> String {
    use clap::parser::ValueSource;
    let command = Cli::command();
    let Some((name, sub)) = matches.subcommand() else {
        return String::new();
    };
    let sub = match sub.subcommand() {
        Some((inner, m)) => (format!("{name} {inner}"), m),
        None => (name.to_string(), sub),
    };
    let (path, m) = sub;
    let mut args: Vec<clap::Arg> = command.get_arguments().cloned().collect();
    let mut c = &command;
    for part in path.split(' ') {
        if let Some(s) = c.find_subcommand(part) {
            c = s;
        }
    }
    args.extend(c.get_arguments().cloned());
    let mut out = String::new();
    for arg in &args {
        let (Some(long), id) = (arg.get_long(), arg.get_id().as_str()) else {
            continue;
        };
        if matches!(id, "help" | "version" | "config") {
            continue;
        }
        let holder = if m.try_get_raw(id).is_ok() {
            m
        } else {
            matches
        };
        let value: Option<Vec<String>> = holder
            .try_get_raw(id)
            .ok()
            .flatten()
            .map(|v| v.map(|s| s.to_string_lossy().into_owned()).collect());
        let source = match holder.value_source(id) {
            Some(ValueSource::DefaultValue) => "default",
            Some(ValueSource::EnvVariable) => "environment",
            Some(ValueSource::CommandLine)
                if from_file
                    .iter()
                    .any(|f| f.starts_with(&format!("--{long}="))) =>
            {
                "file"
            }
            Some(ValueSource::CommandLine) => "command line",
            _ => "unset",
        };
        let key = long.replace('-', "_");
        let env = arg
            .get_env()
            .map(|e| format!(", {}", e.to_string_lossy()))
            .unwrap_or_default();
        let text = match value {
            None => format!("# {key} is unset"),
            Some(_) if arg.is_hide_env_values_set() => format!("{key} = \"(hidden)\""),
            // Numbers and booleans bare, as one would write them in the file.
            Some(v) => match v.join(",") {
                t if t.parse::<f64>().is_ok() || t == "true" || t == "false" => {
                    format!("{key} = {t}")
                }
                t => format!("{key} = {t:?}"),
            },
        };
        out.push_str(&format!("{text:<60} # {source}{env}\n"));
    }
    out
}
