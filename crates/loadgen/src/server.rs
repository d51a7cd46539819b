//! Reaching the server under test: starting one (`--spawn`), waiting for it, and the small
//! authenticated JSON client every measurement uses.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;
use taskyard_store::postgres::Location;

pub const SPAWN_ACCOUNT_SID: &str = "AC00000000000000000000000000000001";
pub const SPAWN_AUTH_TOKEN: &str = "taskyard-load-token";

/// How to start a server: the binary, an optional core to pin it to, its durability, and
/// the PostgreSQL schema to keep its data in (else SQLite in the data directory).
#[derive(Clone, Debug)]
pub struct ServerCmd {
    pub bin: PathBuf,
    pub core: Option<usize>,
    pub durability: String,
    pub database: Option<Location>,
}

/// A server started by the harness: killed (SIGKILL) and reaped when dropped.
pub struct Spawned {
    pub child: Child,
}

impl Spawned {
    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        self.kill();
    }
}

impl ServerCmd {
    /// Starts `taskyard serve` on `listen` (`127.0.0.1:port`) with `data_dir`, with the
    /// harness's account.
    pub fn start(&self, listen: &str, data_dir: &Path) -> anyhow::Result<Spawned> {
        self.spawn(self.command(listen, data_dir))
    }

    /// Starts one node of a cluster (PostgreSQL): [`ServerCmd::start`] with a node id of
    /// its own, its log (warnings and up) appended to `log`.
    pub fn start_node(
        &self,
        listen: &str,
        data_dir: &Path,
        node_id: &str,
        log: &Path,
    ) -> anyhow::Result<Spawned> {
        let mut cmd = self.command(listen, data_dir);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        cmd.env("TASKYARD_NODE_ID", node_id).stderr(file);
        self.spawn(cmd)
    }

    fn spawn(&self, mut cmd: Command) -> anyhow::Result<Spawned> {
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", self.bin.display()))?;
        Ok(Spawned { child })
    }

    fn command(&self, listen: &str, data_dir: &Path) -> Command {
        let mut cmd = match self.core {
            Some(core) => {
                let mut c = Command::new("taskset");
                c.arg("-c").arg(core.to_string()).arg(&self.bin);
                c
            }
            None => Command::new(&self.bin),
        };
        cmd.arg("serve")
            .env("TASKYARD_LISTEN", listen)
            .env("TASKYARD_DATA_DIR", data_dir)
            .env("TASKYARD_ACCOUNT_SID", SPAWN_ACCOUNT_SID)
            .env("TASKYARD_AUTH_TOKEN", SPAWN_AUTH_TOKEN)
            .env("TASKYARD_DURABILITY", &self.durability)
            .env("TASKYARD_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        if let Some(db) = &self.database {
            cmd.env("TASKYARD_DATABASE_URL", &db.url)
                .env("TASKYARD_DATABASE_SCHEMA", &db.schema);
        }
        cmd
    }
}

/// The CPU time process `pid` has used so far, user and system, all its threads (ended ones
/// too), from `/proc/<pid>/stat`; `None` where that cannot be read (not Linux, or gone).
///
/// CPU time per request moves less than a rate when other tenants of a shared machine slow
/// it down (±5–10% where rates moved by half), which makes it the steadier figure for
/// comparing two builds.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    cpu_of_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// The threads of the server that do its storage work: the store writer (rendering events,
/// statistics, SQLite, `fsync`), the checkpoint thread and the dictionary trainer, by the
/// names the server gives them (`/proc` cuts a thread's name to 15 bytes). The writer comes
/// first: a server without a thread of that name is not split at all.
pub const STORE_THREADS: [&str; 3] = ["taskyard-writer", "taskyard-checkp", "taskyard-dict"];

/// One live thread's CPU time so far.
pub struct ThreadCpu {
    tid: u32,
    pub name: String,
    cpu: Duration,
}

/// The CPU time so far of each live thread of process `pid` (`/proc/<pid>/task`); `None`
/// where that cannot be read.
pub fn thread_cpu_times(pid: u32) -> Option<Vec<ThreadCpu>> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut threads = Vec::new();
    for dir in tasks.flatten().map(|e| e.path()) {
        // A thread may end between listing and reading: it is then left out.
        let tid = dir.file_name().and_then(|n| n.to_str()?.parse().ok());
        let name = std::fs::read_to_string(dir.join("comm"));
        let stat = std::fs::read_to_string(dir.join("stat"));
        if let (Some(tid), Ok(name), Some(cpu)) =
            (tid, name, stat.ok().and_then(|s| cpu_of_stat(&s)))
        {
            let name = name.trim_end().to_owned();
            threads.push(ThreadCpu { tid, name, cpu });
        }
    }
    Some(threads)
}

/// The CPU time the threads whose names `pick` accepts used between two snapshots of
/// [`thread_cpu_times`], thread by thread. A thread that started in between counts from
/// zero; one that ended in between is left out, as what it used in between is not known.
pub fn cpu_between(
    before: &[ThreadCpu],
    after: &[ThreadCpu],
    pick: impl Fn(&str) -> bool,
) -> Duration {
    after
        .iter()
        .filter(|t| pick(&t.name))
        .map(|t| {
            let earlier = before
                .iter()
                .find(|b| b.tid == t.tid)
                .map_or(Duration::ZERO, |b| b.cpu);
            t.cpu.saturating_sub(earlier)
        })
        .sum()
}

/// utime + stime of a `/proc/<pid>/stat` line.
fn cpu_of_stat(stat: &str) -> Option<Duration> {
    // `pid (comm) state ppid …`: the command may hold spaces and parentheses, so count from
    // the last ')'. utime and stime are the 14th and 15th fields, in USER_HZ ticks (100 a
    // second on Linux, whatever the kernel's own tick).
    let mut after = stat
        .get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .skip(11);
    let mut ticks = || after.next()?.parse::<u64>().ok();
    let (user, system) = (ticks()?, ticks()?);
    Some(Duration::from_millis((user + system) * 10))
}

/// A free `127.0.0.1:port` to listen on.
pub fn free_listen_addr() -> anyhow::Result<String> {
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    Ok(format!("127.0.0.1:{port}"))
}

/// How to reach the server.
#[derive(Clone)]
pub struct Api {
    pub client: reqwest::Client,
    pub base: String,
    pub sid: String,
    pub token: String,
}

impl Api {
    /// POSTs a form; the answer's JSON.
    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> anyhow::Result<Value> {
        Ok(serde_json::from_slice(&self.post_bytes(path, form).await?)?)
    }

    /// POSTs a form and checks the status; the answer's bytes, unparsed (for set-up at full
    /// speed).
    pub async fn post_bytes(&self, path: &str, form: &[(&str, &str)]) -> anyhow::Result<Vec<u8>> {
        let request = self.client.post(format!("{}{path}", self.base)).form(form);
        self.send(request, "POST", path).await
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let request = self.client.get(format!("{}{path}", self.base));
        Ok(serde_json::from_slice(
            &self.send(request, "GET", path).await?,
        )?)
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        method: &str,
        path: &str,
    ) -> anyhow::Result<Vec<u8>> {
        let resp = request
            .basic_auth(&self.sid, Some(&self.token))
            .send()
            .await?;
        let status = resp.status();
        let body = resp.bytes().await?;
        if !status.is_success() {
            bail!(
                "{method} {path}: {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        Ok(body.to_vec())
    }
}

pub fn sid_of(v: &Value) -> anyhow::Result<String> {
    v.get("sid")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .with_context(|| format!("no sid in {v}"))
}

pub fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(usize::MAX)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .build()?)
}

/// Polls `GET /healthz` until it answers 200 (or `within` passes, or `server` exits).
pub async fn wait_healthy(
    client: &reqwest::Client,
    base: &str,
    server: Option<&mut Spawned>,
    within: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    let mut server = server;
    loop {
        if let Ok(r) = client.get(format!("{base}/healthz")).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        if let Some(s) = server.as_deref_mut()
            && let Some(status) = s.child.try_wait()?
        {
            bail!("the server exited before it was ready: {status}");
        }
        if Instant::now() > deadline {
            bail!("{base}/healthz did not answer 200 within {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One node of a cluster the harness runs (see [`ServerCmd::start_node`]).
pub struct Node {
    pub id: String,
    pub listen: String,
    /// The harness's client, pointed at this node.
    pub api: Api,
    pub log: PathBuf,
    pub process: Option<Spawned>,
}

impl Node {
    pub fn start(&mut self, server: &ServerCmd, data_dir: &Path) -> anyhow::Result<()> {
        self.process = Some(server.start_node(&self.listen, data_dir, &self.id, &self.log)?);
        Ok(())
    }

    pub async fn wait_healthy(&mut self) -> anyhow::Result<()> {
        wait_healthy(
            &self.api.client,
            &self.api.base,
            self.process.as_mut(),
            Duration::from_secs(120),
        )
        .await
    }

    pub fn pid(&self) -> Option<i32> {
        self.process.as_ref().map(|p| p.child.id() as i32)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Starts `n` nodes named `<name>-<i>` on free ports (their logs in `data_dir`) and waits
/// until each answers.
pub async fn start_nodes(
    api: &Api,
    server: &ServerCmd,
    data_dir: &Path,
    name: &str,
    n: usize,
) -> anyhow::Result<Vec<Node>> {
    let mut nodes = Vec::with_capacity(n);
    for i in 0..n {
        let listen = free_listen_addr()?;
        let mut node_api = api.clone();
        node_api.base = format!("http://{listen}");
        let mut node = Node {
            id: format!("{name}-{i}"),
            listen,
            api: node_api,
            log: data_dir.join(format!("{name}-{i}.log")),
            process: None,
        };
        node.start(server, data_dir)?;
        nodes.push(node);
    }
    for node in &mut nodes {
        node.wait_healthy().await?;
    }
    Ok(nodes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_utime_plus_stime_whatever_the_command_name() {
        let stat = "4242 (task (yard) x) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 37 0 0 20 0 6";
        assert_eq!(cpu_of_stat(stat), Some(Duration::from_millis(2_870)));
        assert_eq!(cpu_of_stat("4242 (cut short) S 1"), None);
        assert_eq!(cpu_of_stat("garbage"), None);
        // This process has a stat file; its CPU time never goes back.
        let me = std::process::id();
        let a = cpu_time(me).expect("own stat");
        assert!(cpu_time(me).expect("own stat") >= a);
    }

    #[test]
    fn cpu_between_counts_the_picked_threads_from_the_first_snapshot_on() {
        const NAME: &str = "ty-load-busy";
        let me = std::process::id();
        let own_cpu = move || {
            thread_cpu_times(me)
                .and_then(|ts| ts.into_iter().find(|t| t.name == NAME))
                .map_or(Duration::ZERO, |t| t.cpu)
        };
        // Spins until this thread has used `until` of CPU time (not wall time, which a busy
        // machine would stretch).
        let spin = move |until: Duration| {
            let mut x = 0u64;
            while own_cpu() < until {
                for _ in 0..100_000 {
                    x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
                }
            }
        };
        let (go, wait) = std::sync::mpsc::channel::<()>();
        let (done, finished) = std::sync::mpsc::channel::<()>();
        let busy = std::thread::Builder::new()
            .name(NAME.into())
            .spawn(move || {
                // Busy before the first snapshot: not to be counted.
                spin(Duration::from_millis(300));
                let _ = done.send(());
                let _ = wait.recv();
                spin(Duration::from_millis(500));
                let _ = done.send(());
                // Still alive while the second snapshot is taken.
                let _ = wait.recv();
            })
            .expect("spawn");
        finished.recv().expect("first spin");
        let before = thread_cpu_times(me).expect("own threads");
        go.send(()).expect("go");
        finished.recv().expect("second spin");
        let after = thread_cpu_times(me).expect("own threads");
        go.send(()).expect("end");
        busy.join().expect("join");

        let busy = cpu_between(&before, &after, |n| n == NAME);
        let total = after
            .iter()
            .find(|t| t.name == NAME)
            .expect("still alive")
            .cpu;
        assert!(total >= Duration::from_millis(500), "{total:?}");
        assert!(
            busy >= Duration::from_millis(150) && busy <= total - Duration::from_millis(250),
            "between the snapshots {busy:?} of {total:?}"
        );
        assert_eq!(
            cpu_between(&before, &after, |n| n == "no-such-thread"),
            Duration::ZERO
        );
    }
}
