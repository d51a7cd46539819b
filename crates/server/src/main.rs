//! # taskyard
//!
//! The server binary: reads its configuration ([`config`]), opens the store (the embedded
//! SQLite database, or PostgreSQL when a database URL is given),
//! starts the [`Hub`](taskyard_hub::Hub) (one actor per workspace plus the group-committing
//! writer), makes sure an account exists to log in with, and serves the TaskRouter v1 API
//! until SIGINT/SIGTERM.

mod config;
mod export;
mod file;
mod forward;
mod limits;
mod requests;
mod scrape;
mod serve;
mod simulate;

use anyhow::Context as _;
use clap::{CommandFactory, FromArgMatches};
use taskyard_engine::{Account, Sid, sid::prefix};
use taskyard_hub::cluster::Cluster;
use taskyard_hub::{Hub, now_ms};
use taskyard_store::cluster::{Directory, Held, Leases, NodeConfig};
use taskyard_store::postgres::{Location, PostgresStore};
use taskyard_store::sqlite::SqliteStore;

use crate::config::{Cli, Command, ConfigCommand, LogFormat, Serve};

/// Events and rows are allocated on the workspaces' threads and freed on the writer's and the
/// dispatcher's; mimalloc handles that hand-off far more cheaply than glibc's malloc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    // The configuration file's settings become flags (unless the command line or the
    // environment has them): one parse then checks them all alike.
    let (args, from_file) =
        match file::apply(&Cli::command(), std::env::args_os().collect(), &|k| {
            std::env::var_os(k)
        }) {
            Ok(a) => a,
            Err(e) => {
                eprintln!("error: {e}");
                std::process::exit(2);
            }
        };
    let matches = Cli::command().get_matches_from(&args);
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let filter = tracing_subscriber::EnvFilter::try_from_env("TASKYARD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    match cli.log_format {
        // The request's id with every line, as a field of the current span.
        LogFormat::Json => logs
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
        LogFormat::Text => logs.init(),
    }
    match cli.command {
        Command::Serve(serve) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?
            .block_on(run(serve)),
        // An error is the user's input: one line, not a backtrace.
        Command::Simulate(args) => simulate::run(&args).or_else(|e| {
            eprintln!("error: {e:#}");
            std::process::exit(1)
        }),
        Command::Export(args) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?
            .block_on(export::run(args))
            .or_else(|e| {
                eprintln!("error: {e:#}");
                std::process::exit(1)
            }),
        Command::Config(ConfigCommand::Check(serve)) => {
            print!("{}", config::report(&matches, &from_file));
            match serve.check() {
                Ok(()) => {
                    println!("# the configuration is valid");
                    Ok(())
                }
                Err(e) => {
                    eprintln!("error: {e:#}");
                    std::process::exit(1);
                }
            }
        }
    }
}

async fn run(cfg: Serve) -> anyhow::Result<()> {
    cfg.check()?;
    let callbacks = cfg.callbacks()?;
    let lease = cfg.lease()?;
    let limits = cfg.limits.api()?;
    let connections = cfg.limits.connections()?;
    let body_timeout = cfg.limits.body_timeout()?;
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("listening on {}", cfg.listen))?;
    let local = listener.local_addr()?;
    let started = std::time::Instant::now();
    // Opening and loading block (the PostgreSQL client runs a runtime of its own), so they
    // leave this runtime's worker thread to it meanwhile.
    let hub = tokio::task::block_in_place(|| -> anyhow::Result<Hub> {
        match cfg.database_url.as_deref().filter(|u| !u.is_empty()) {
            Some(url) => start_node(&cfg, url, local, lease, callbacks),
            None => {
                let store =
                    SqliteStore::open(&cfg.data_dir, cfg.durability.into()).with_context(|| {
                        format!("opening the database in {}", cfg.data_dir.display())
                    })?;
                Hub::start_with(Box::new(store), callbacks).context("loading stored workspaces")
            }
        }
    })?;
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "state loaded"
    );
    ensure_account(&hub, &cfg).await?;

    let public_url = cfg
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{local}"));
    let max_body = limits.max_body;
    let app =
        taskyard_api::App::new(hub.clone(), &public_url, cfg.list_attributes).with_limits(limits);
    let mark = || axum::middleware::from_fn(requests::mark_route);
    let mut rest = taskyard_api::router(app).route_layer(mark());
    let forwarder = match hub.node() {
        Some(_) => {
            let f = std::sync::Arc::new(forward::Forwarder::new(hub.clone(), lease, max_body)?);
            rest = rest.layer(axum::middleware::from_fn_with_state(
                f.clone(),
                forward::route,
            ));
            Some(f)
        }
        None => None,
    };
    // Agents' SDKs (TaskRouter.js) connect to the event bridge on the same port.
    let bridge = taskyard_bridge::Bridge::start(hub.clone(), rest.clone(), cfg.bridge()?);
    let mut agents = bridge.router().route_layer(mark());
    if let Some(f) = &forwarder {
        agents = agents.layer(axum::middleware::from_fn_with_state(
            f.clone(),
            forward::route_bridge,
        ));
    }
    let database = match cfg.database_url {
        Some(_) => format!("postgresql (schema {})", cfg.database_schema),
        None => cfg.data_dir.display().to_string(),
    };
    match hub.node() {
        Some(node) => {
            tracing::info!(listen = %local, public_url, database, node_id = node.node_id, advertise_url = node.url, "taskyard is ready")
        }
        None => tracing::info!(listen = %local, public_url, database, "taskyard is ready"),
    }
    let leaving = (hub.clone(), forwarder);
    let stopping = async move {
        let (hub, forwarder) = leaving;
        shutdown().await;
        tracing::info!("stopping: finishing the requests in progress");
        hub.stop_streams();
        // On a cluster, the other nodes take this one's workspaces at once: its actors
        // finish what is queued, its agents' sessions close (the SDKs reconnect, through
        // any node, to the new owners), and requests still arriving here are forwarded to
        // them. Then the HTTP server stops.
        hub.hand_over().await;
        if let Some(f) = &forwarder {
            f.leave();
        }
    };
    // The console (`/console/`) is static files that call the REST API like any client.
    let scrape = std::sync::Arc::new(scrape::Scrape {
        hub: hub.clone(),
        token: cfg.metrics_token.clone().filter(|t| !t.is_empty()),
        per_workspace: cfg.metrics_per_workspace,
    });
    taskyard_metrics::set_enabled(cfg.metrics);
    let ops = match cfg.metrics {
        true => axum::Router::new()
            .route("/metrics", axum::routing::get(scrape::metrics))
            .with_state(scrape)
            .route_layer(mark()),
        false => axum::Router::new(),
    };
    let app = agents
        .merge(taskyard_console::router().route_layer(mark()))
        .merge(ops)
        .merge(rest)
        .layer(axum::middleware::from_fn_with_state(
            (body_timeout, max_body),
            limits::read_body,
        ))
        .layer(axum::middleware::from_fn(requests::log));
    serve::serve(listener, app, connections, stopping).await;
    tracing::info!("stopped");
    Ok(())
}

/// A node of a cluster on PostgreSQL: a fenced store, the lease keeper and the directory.
fn start_node(
    cfg: &Serve,
    url: &str,
    local: std::net::SocketAddr,
    lease: std::time::Duration,
    callbacks: taskyard_hub::CallbackOptions,
) -> anyhow::Result<Hub> {
    let location = Location {
        url: url.to_string(),
        schema: cfg.database_schema.clone(),
    };
    let context = || {
        format!(
            "opening the PostgreSQL database (schema {})",
            cfg.database_schema
        )
    };
    let mut store = PostgresStore::open(location.clone()).with_context(context)?;
    let host = host_name();
    let node = NodeConfig {
        node_id: cfg
            .node_id
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| format!("{host}-{}", local.port())),
        url: cfg.advertise_url.clone().unwrap_or_else(|| {
            if local.ip().is_unspecified() {
                format!("http://{host}:{}", local.port())
            } else {
                format!("http://{local}")
            }
        }),
        lease,
    };
    let held = Held::default();
    store
        .fence(&node.node_id, held.clone(), lease)
        .with_context(context)?;
    let leases = Leases::join(&location, node.clone(), held.clone()).with_context(context)?;
    let directory = Directory::new(&location, node, held.clone());
    Hub::start_cluster(
        Box::new(store),
        callbacks,
        Cluster {
            leases,
            directory,
            held,
        },
    )
    .context("starting the node")
}

/// This machine's name, for a default node id.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

/// Makes sure there is an account to log in with: the configured one (created or its token
/// updated), or else a development account whose credentials are kept in the data directory.
async fn ensure_account(hub: &Hub, cfg: &Serve) -> anyhow::Result<()> {
    let now = now_ms();
    match (&cfg.account_sid, &cfg.auth_token) {
        (Some(sid), Some(token)) => {
            let sid = Sid::parse_with(sid, prefix::ACCOUNT)
                .map_err(|e| anyhow::anyhow!("TASKYARD_ACCOUNT_SID {sid:?}: {e}"))?;
            anyhow::ensure!(!token.is_empty(), "TASKYARD_AUTH_TOKEN must not be empty");
            let account = match hub.account(sid) {
                Some(a) if a.auth_token == *token => return Ok(()),
                Some(a) => Account {
                    auth_token: token.clone(),
                    date_updated: now,
                    ..a
                },
                None => Account {
                    sid,
                    auth_token: token.clone(),
                    friendly_name: "Main account".into(),
                    owner_account_sid: None,
                    date_created: now,
                    date_updated: now,
                    api_keys: Vec::new(),
                },
            };
            hub.put_account(account).await?;
            Ok(())
        }
        (None, None) => {
            let file = cfg.data_dir.join("development-account.env");
            if let Ok(text) = std::fs::read_to_string(&file) {
                let sid = text
                    .lines()
                    .find_map(|l| l.strip_prefix("TASKYARD_ACCOUNT_SID="))
                    .and_then(|s| Sid::parse_with(s.trim(), prefix::ACCOUNT).ok());
                if let Some(sid) = sid.filter(|s| hub.account(*s).is_some()) {
                    tracing::info!(account_sid = %sid, credentials = %file.display(), "using the development account");
                    return Ok(());
                }
            }
            // Another node of a cluster (or an earlier data directory) may have made it.
            let existing = hub
                .accounts()
                .into_iter()
                .find(|a| a.owner_account_sid.is_none() && a.friendly_name == DEVELOPMENT_ACCOUNT);
            let verb = if existing.is_some() {
                "Found"
            } else {
                "Created"
            };
            let account = match existing {
                Some(a) => a,
                None => hub.create_account(DEVELOPMENT_ACCOUNT.into(), None).await?,
            };
            let text = format!(
                "TASKYARD_ACCOUNT_SID={}\nTASKYARD_AUTH_TOKEN={}\n",
                account.sid, account.auth_token
            );
            // With PostgreSQL nothing else made the data directory.
            std::fs::create_dir_all(&cfg.data_dir)
                .and_then(|()| write_private(&file, &text))
                .with_context(|| format!("writing {}", file.display()))?;
            println!(
                "{verb} a development account (credentials saved in {}):\n  TASKYARD_ACCOUNT_SID={}\n  TASKYARD_AUTH_TOKEN={}",
                file.display(),
                account.sid,
                account.auth_token
            );
            Ok(())
        }
        _ => anyhow::bail!("set both TASKYARD_ACCOUNT_SID and TASKYARD_AUTH_TOKEN, or neither"),
    }
}

const DEVELOPMENT_ACCOUNT: &str = "Development account";

/// Writes a file only its owner can read (it holds a secret).
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    use std::io::Write;
    opts.open(path)?.write_all(text.as_bytes())
}
