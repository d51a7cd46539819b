//! `crash --nodes N`: the crash test on a cluster (issue 17, tests and failover target).
//!
//! N nodes share one PostgreSQL schema. The load runs through every node (the client loops
//! are dealt out over them; requests for the workspace reach its owner by forwarding). Each
//! round the node that owns the workspace is found from its lease and then, mid-load:
//!
//! * SIGKILLed (most rounds): the load goes on through the other nodes, a probe creates a
//!   task through a surviving node until one is acknowledged — the failover time, kill to
//!   first task created on the new owner — and the killed node is started again (same node
//!   id) before the next round's verification;
//! * or, every `--pause-every`th round, SIGSTOPped until its lease has run out, the failover
//!   probed the same way, then SIGCONTed with the load still on, through it too. It wakes up
//!   believing it owns the workspace; it must drop it ("lease lost" in its log) without
//!   writing over the new owner — a stale write would show as a second reservation of a
//!   task, a lost acknowledged step or a state the lifecycle does not allow, which the
//!   checks below catch. (Paused in the middle of a commit, it holds the lease row locked;
//!   the database ends its session after half a lease, and it stops when it wakes up and
//!   is started again before the next round.)
//!
//! Every verification is the single-node crash test's (see the parent module), read through
//! a different node each round. A node's answer that the outcome is unknown (502/503 from
//! forwarding to an owner that died mid-request) counts like a request without an answer.

use taskyard_store::cluster::{Directory, Held, NodeConfig};

use super::*;
use crate::server::{Node, start_nodes};

fn signal(pid: i32, sig: &str) -> anyhow::Result<()> {
    let status = std::process::Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .context("running kill")?;
    anyhow::ensure!(status.success(), "kill -{sig} {pid} failed");
    Ok(())
}

/// The node id that holds the workspace's lease now.
async fn owner_of(directory: &Arc<Directory>, ws: taskyard_engine::Sid) -> anyhow::Result<String> {
    let d = directory.clone();
    let owner = tokio::task::spawn_blocking(move || d.owner(ws)).await??;
    Ok(owner.context("the workspace has no lease")?.node_id)
}

/// Creates tasks through `ctx`'s node until one is acknowledged; how long that took.
async fn probe(ctx: &Ctx, within: Duration) -> anyhow::Result<Duration> {
    let started = Instant::now();
    loop {
        let n = ctx.shared.next_n.fetch_add(1, Ordering::Relaxed);
        if let Ok(Some(_)) = create_task(ctx, n).await {
            return Ok(started.elapsed());
        }
        if started.elapsed() > within {
            bail!("no task could be created for {within:?} after the owner stopped");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The end of every node's log, to see why a failover did not happen.
fn dump_logs(nodes: &[Node]) {
    for n in nodes {
        let text = n.log_text();
        let lines: Vec<&str> = text.lines().collect();
        eprintln!("--- {} (last lines of its log)", n.id);
        for l in &lines[lines.len().saturating_sub(15)..] {
            eprintln!("{l}");
        }
    }
}

pub(super) async fn run(
    args: CrashArgs,
    api: &Api,
    server: &ServerCmd,
    data_dir: &Path,
    spawned: Option<Spawned>,
    json_out: bool,
) -> anyhow::Result<()> {
    let Some(location) = server.database.clone() else {
        bail!("crash --nodes needs --database-url: the nodes share a PostgreSQL database");
    };
    anyhow::ensure!(args.nodes >= 2, "--nodes must be at least 2");
    // The harness starts every node itself, with ids of their own.
    drop(spawned);
    let seed = args.seed.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    eprintln!(
        "crash on {} nodes: seed {seed} (replay the round lengths and samples with --seed {seed})",
        args.nodes
    );
    let mut rng = Rng(seed);
    let mut nodes = start_nodes(api, server, data_dir, "crash-node", args.nodes).await?;
    let lease = Duration::from_secs(3);
    let directory = Arc::new(Directory::new(
        &location,
        NodeConfig {
            node_id: "crash-harness".into(),
            url: String::new(),
            lease,
        },
        Held::default(),
    ));

    let shared = Arc::new(Shared::default());
    let url = start_receiver(shared.clone()).await?;
    let setup = set_up(&nodes[0].api, Some(&url), args.workers, args.capacity).await?;
    let first = &nodes[0].api;
    first
        .post(
            &format!("{}/Workflows/{}", setup.ws_path, setup.workflow),
            &[("TaskReservationTimeout", "86400")],
        )
        .await?;
    let ws_json = first.get(&setup.ws_path).await?;
    let ws_created = ws_json
        .get("date_created")
        .and_then(Value::as_str)
        .context("workspace without date_created")?
        .to_owned();
    let ws_sid: taskyard_engine::Sid = sid_of(&ws_json)?.parse().context("workspace sid")?;
    let workers = list_all(
        first,
        &format!("{}/Workers?PageSize=1000", setup.ws_path),
        "workers",
    )
    .await?
    .iter()
    .map(sid_of)
    .collect::<anyhow::Result<Vec<_>>>()?;
    let ctxs: Vec<Arc<Ctx>> = nodes
        .iter()
        .map(|n| {
            Arc::new(Ctx {
                api: n.api.clone(),
                ws_path: setup.ws_path.clone(),
                workflow: setup.workflow.clone(),
                shared: shared.clone(),
            })
        })
        .collect();
    let mut verifier = Verifier {
        shared: shared.clone(),
        api: first.clone(),
        ws_path: setup.ws_path.clone(),
        capacity: args.capacity,
        workers,
        book: EventBook::default(),
    };

    let mut failover_us = Vec::new();
    let mut per_round = Vec::new();
    let mut pauses = 0;
    let mut since = ws_created.clone();
    let mut down: Option<usize> = None;
    for round in 1..=args.rounds + 1 {
        if round > 1 {
            if let Some(i) = down.take() {
                nodes[i].start(server, data_dir)?;
                nodes[i].wait_healthy().await?;
            }
            quiesce(&shared).await;
            let through = round as usize % nodes.len();
            verifier.api = nodes[through].api.clone();
            let t = Instant::now();
            let next_since = iso(unix_now() - 10);
            let last = verifier.verify(&since, &mut rng, args.sample).await?;
            since = next_since;
            eprintln!(
                "  verified through {}: {} acknowledged tasks ({} on the server), {} reservations, {} workers in {:.1} s; violations so far: {}",
                nodes[through].id,
                last.tasks_checked,
                last.server_tasks,
                verifier.book.reservations(),
                last.workers,
                t.elapsed().as_secs_f64(),
                shared.violations()
            );
        }
        if round > args.rounds {
            break;
        }
        let secs = args.min_secs + (args.max_secs - args.min_secs) * rng.unit();
        shared.round_created.store(0, Ordering::Relaxed);
        let (stop_tx, stop_rx) = watch::channel(false);
        let loops: Vec<_> = (0..args.connections.max(1))
            .map(|i| tokio::spawn(client_loop(ctxs[i % ctxs.len()].clone(), stop_rx.clone())))
            .collect();
        tokio::time::sleep(Duration::from_secs_f64(secs)).await;
        let owner_id = owner_of(&directory, ws_sid).await?;
        let owner = nodes
            .iter()
            .position(|n| n.id == owner_id)
            .with_context(|| format!("the owner {owner_id} is not one of the nodes"))?;
        let survivor = (owner + 1) % nodes.len();
        let pid = nodes[owner].pid().context("the owner is not running")?;
        let pause = args.pause_every > 0 && round % args.pause_every == 0;
        let what = if pause {
            pauses += 1;
            let lost_before = nodes[owner].log_text().matches("lease lost").count();
            signal(pid, "STOP")?;
            let stopped = Instant::now();
            let took = match probe(&ctxs[survivor], lease * 4).await {
                Ok(t) => t,
                Err(e) => {
                    let _ = signal(pid, "CONT");
                    dump_logs(&nodes);
                    return Err(e);
                }
            };
            failover_us.push(took.as_micros() as u64);
            // Past its lease for sure, then wake it with the load still running.
            tokio::time::sleep(
                (lease + Duration::from_millis(500)).saturating_sub(stopped.elapsed()),
            )
            .await;
            signal(pid, "CONT")?;
            tokio::time::sleep(Duration::from_secs(1)).await;
            // It drops the workspace when its renewal or its next commit is refused; or, if
            // it was paused mid-commit, the database ended its session and it stopped.
            let exited = nodes[owner]
                .process
                .as_mut()
                .is_some_and(|p| matches!(p.child.try_wait(), Ok(Some(_))));
            if exited {
                nodes[owner].process = None;
                down = Some(owner);
            }
            let fenced =
                exited || nodes[owner].log_text().matches("lease lost").count() > lost_before;
            if !fenced {
                shared.violation(
                    "stale owner not fenced",
                    format!(
                        "{} was paused past its lease and did not drop the workspace after SIGCONT",
                        nodes[owner].id
                    ),
                );
            }
            format!(
                "SIGSTOP {} after {secs:.2} s of load; first task created through {} after {:.0} ms; SIGCONT: {}",
                nodes[owner].id,
                nodes[survivor].id,
                took.as_secs_f64() * 1000.0,
                match (fenced, exited) {
                    (true, false) => "lease lost, fenced",
                    (true, true) => "its session was ended mid-commit; it stopped",
                    _ => "NOT FENCED",
                }
            )
        } else {
            if let Some(p) = nodes[owner].process.as_mut() {
                p.kill();
            }
            nodes[owner].process = None;
            down = Some(owner);
            let took = match probe(&ctxs[survivor], lease * 4).await {
                Ok(t) => t,
                Err(e) => {
                    dump_logs(&nodes);
                    return Err(e);
                }
            };
            failover_us.push(took.as_micros() as u64);
            // Some load on the new owner before the round ends.
            tokio::time::sleep(Duration::from_millis(300)).await;
            format!(
                "SIGKILL {} after {secs:.2} s of load; first task created through {} after {:.0} ms",
                nodes[owner].id,
                nodes[survivor].id,
                took.as_secs_f64() * 1000.0
            )
        };
        let _ = stop_tx.send(true);
        for l in loops {
            l.await?;
        }
        lock(&shared.callbacks).waiters.clear();
        let created = shared.round_created.load(Ordering::Relaxed);
        per_round.push(created);
        eprintln!(
            "round {round}/{}: {what}; {created} tasks created (acknowledged)",
            args.rounds
        );
    }

    let earlier = std::mem::take(&mut verifier.book);
    let final_check = verifier.verify(&ws_created, &mut rng, args.sample).await?;
    for e in earlier
        .seen
        .iter()
        .filter(|e| !verifier.book.seen.contains(*e))
    {
        shared.violation(
            "event lost",
            format!("event {e} was read before a failover and is missing now"),
        );
    }
    drop(nodes);

    let acked = lock(&shared.acked);
    let failover = summarise(failover_us.clone());
    let violations = shared.violations();
    let summary = json!({
        "seed": seed,
        "nodes": args.nodes,
        "rounds": args.rounds,
        "pauses": pauses,
        "connections": args.connections,
        "acknowledged_tasks": acked.len(),
        "tasks_per_round_mean": per_round.iter().sum::<u64>() as f64 / per_round.len().max(1) as f64,
        "tasks_verified": final_check.tasks_checked,
        "tasks_on_server": final_check.server_tasks,
        "committed_but_unacknowledged": final_check.unacked_committed,
        "reservations_checked": verifier.book.reservations(),
        "workers_checked": final_check.workers,
        "assignment_callbacks": lock(&shared.callbacks).total,
        "requests_without_answer": shared.transport_errors.load(Ordering::Relaxed),
        "failover_ms": failover_us.iter().map(|us| *us as f64 / 1000.0).collect::<Vec<_>>(),
        "failover_p50_ms": failover.p50_ms,
        "failover_p99_ms": failover.p99_ms,
        "failover_max_ms": failover.max_ms,
        "violations": violations,
        "violations_by_kind": shared.violation_kinds(),
    });
    drop(acked);
    report(json_out, summary)?;
    if violations > 0 {
        bail!("{violations} violations (seed {seed})");
    }
    Ok(())
}
