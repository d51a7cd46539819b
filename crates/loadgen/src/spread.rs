//! `spread`: many workspaces on a cluster (issue 17, the three-node target).
//!
//! Starts `--nodes` nodes on the `--database-url` database (a scratch schema), creates
//! `--workspaces` workspaces through them in turn (so each node creates, and owns, its share),
//! each with one queue, a workflow with an assignment callback and `--workers` available
//! workers, then runs `--connections` closed loops creating tasks for `--duration` seconds.
//! Loop `i` creates its tasks in workspace `i mod W`, through node `i mod N` — a client
//! behind a round-robin balancer — so about two thirds of the requests on three nodes are
//! forwarded. Reported: the aggregate tasks/s, latency, how many requests were forwarded, and
//! the assignment callbacks received (each task is reserved once, and a callback sent by
//! its workspace's owner).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};
use taskyard_store::cluster::{Directory, Held, NodeConfig};

use crate::measure::{Receiver, closed_loop, create_task, set_up, start_receiver, summarise};
use crate::server::{Api, ServerCmd, Spawned, start_nodes};

#[derive(Debug, clap::Args)]
pub struct SpreadArgs {
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    #[arg(long, default_value_t = 300)]
    workspaces: usize,
    /// Available workers per workspace.
    #[arg(long, default_value_t = 4)]
    workers: usize,
    /// Capacity of each worker's `default` channel: enough that every task is reserved.
    #[arg(long, default_value_t = 1000)]
    capacity: u32,
    /// Seconds of task creation.
    #[arg(long, default_value_t = 20.0)]
    duration: f64,
    #[arg(long, default_value_t = 96)]
    connections: usize,
    /// Seconds to wait for callbacks still owed after the last POST.
    #[arg(long, default_value_t = 10.0)]
    drain: f64,
}

pub async fn run(
    api: &Api,
    server: &ServerCmd,
    data_dir: &std::path::Path,
    spawned: Option<Spawned>,
    args: SpreadArgs,
) -> anyhow::Result<Value> {
    let location = server.database.clone().context(
        "spread needs --spawn and --database-url: its nodes share a PostgreSQL database",
    )?;
    anyhow::ensure!(
        args.nodes >= 1 && args.workspaces >= 1,
        "need nodes and workspaces"
    );
    drop(spawned);
    let nodes = start_nodes(api, server, data_dir, "spread-node", args.nodes).await?;
    let rx = Receiver::default();
    let url = start_receiver(rx.clone()).await?;

    let started = Instant::now();
    let mut workspaces = Vec::with_capacity(args.workspaces);
    // A few at a time: each set-up is a few dozen requests.
    for chunk in (0..args.workspaces).collect::<Vec<_>>().chunks(16) {
        let mut handles = Vec::new();
        for &i in chunk {
            let node_api = nodes[i % nodes.len()].api.clone();
            let url = url.clone();
            let (workers, capacity) = (args.workers, args.capacity);
            handles.push(tokio::spawn(async move {
                set_up(&node_api, Some(&url), workers, capacity).await
            }));
        }
        for h in handles {
            let s = h.await??;
            workspaces.push((format!("{}/Tasks", s.ws_path), s.workflow));
        }
    }
    let setup_secs = started.elapsed().as_secs_f64();

    // Where the leases are: each node should own the workspaces it created.
    let directory = Directory::new(
        &location,
        NodeConfig {
            node_id: "spread-harness".into(),
            url: String::new(),
            lease: Duration::from_secs(3),
        },
        Held::default(),
    );
    let mut owned = std::collections::BTreeMap::<String, usize>::new();
    let sids: Vec<taskyard_engine::Sid> = workspaces
        .iter()
        .map(|(path, _)| {
            path.trim_start_matches("/v1/Workspaces/")
                .trim_end_matches("/Tasks")
                .parse()
                .context("workspace sid")
        })
        .collect::<anyhow::Result<_>>()?;
    let owners = tokio::task::spawn_blocking(move || {
        sids.iter()
            .map(|s| directory.owner(*s).map(|o| o.map(|o| o.node_id)))
            .collect::<Result<Vec<_>, _>>()
    })
    .await??;
    for o in owners.into_iter().flatten() {
        *owned.entry(o).or_default() += 1;
    }

    let workspaces = Arc::new(workspaces);
    let apis: Arc<Vec<Api>> = Arc::new(nodes.iter().map(|n| n.api.clone()).collect());
    let forwarded = Arc::new(AtomicU64::new(0));
    let callbacks_before = rx.count.load(Ordering::Relaxed);
    let connections = args.connections.max(1);
    let (ws2, apis2, fwd2) = (workspaces.clone(), apis.clone(), forwarded.clone());
    let (lat, errors, secs) = closed_loop(args.duration, connections, move |i| {
        let (workspaces, apis, forwarded) = (ws2.clone(), apis2.clone(), fwd2.clone());
        // Spread the iterations over workspaces and nodes independently of each other.
        let w = (i as usize) % workspaces.len();
        let n = (i as usize / workspaces.len() + i as usize) % apis.len();
        async move {
            let (tasks, workflow) = &workspaces[w];
            if w % apis.len() != n {
                forwarded.fetch_add(1, Ordering::Relaxed);
            }
            create_task(&apis[n], tasks, workflow, i).await?;
            Ok(())
        }
    })
    .await?;
    let tasks = lat.len() as u64;
    let drain_end = Instant::now() + Duration::from_secs_f64(args.drain.max(0.0));
    while rx.count.load(Ordering::Relaxed) - callbacks_before < tasks && Instant::now() < drain_end
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let callbacks = rx.count.load(Ordering::Relaxed) - callbacks_before;
    let s = summarise(lat);
    drop(nodes);
    Ok(json!({
        "nodes": args.nodes,
        "workspaces": args.workspaces,
        "workspaces_per_node": owned,
        "setup_seconds": setup_secs,
        "connections": connections,
        "tasks": tasks,
        "tasks_per_s": tasks as f64 / secs,
        "forwarded_share": forwarded.load(Ordering::Relaxed) as f64 / (tasks + errors).max(1) as f64,
        "task_p50_ms": s.p50_ms,
        "task_p99_ms": s.p99_ms,
        "task_max_ms": s.max_ms,
        "errors": errors,
        "callbacks_missing_after_drain": tasks.saturating_sub(callbacks),
    }))
}
