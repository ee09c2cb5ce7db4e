//! [`KafkaCluster`]: formatting, starting, bouncing and stopping KRaft nodes, and
//! waiting until they are ready.

use std::fs::{self, File};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::config::{pick_free_ports, server_properties, ClusterSpec, NodeLayout};
use crate::error::{HarnessError, Result};
use crate::node::{is_port_clash, random_cluster_id, sweep_stale_dirs, LogScan, Node};
use crate::process::{tail_file, JavaProcess, Launch};
use crate::provision::KafkaDist;

/// How long a clean stop may take before the node is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);
/// Grace for a node to exit on drop (after SIGTERM when its logs are kept), and for a half-started
/// node's stop.
const DROP_GRACE: Duration = Duration::from_secs(10);
/// Attempts when a picked port was taken by someone else before the broker bound it.
const PORT_ATTEMPTS: usize = 3;

/// Running Kafka nodes on 127.0.0.1.
///
/// Dropping it stops every node and deletes its temporary directory: SIGKILL, or, when
/// `JOSEFK_KEEP_KAFKA_LOGS=1` keeps the directory, SIGTERM (SIGKILL after a grace period).
/// If the owning process dies without dropping it, the nodes stop by themselves within
/// seconds.
#[derive(Debug)]
pub struct KafkaCluster {
    dist: KafkaDist,
    spec: ClusterSpec,
    dir: PathBuf,
    nodes: Vec<Node>,
}

impl KafkaCluster {
    /// Provisions Kafka if needed, formats fresh storage, starts every node and
    /// waits until each logs "Kafka Server started" and accepts TCP connections.
    pub fn start(spec: ClusterSpec) -> Result<KafkaCluster> {
        let dist = match spec.version_override() {
            Some(v) => KafkaDist::provision_version(v)?,
            None => KafkaDist::provision()?,
        };
        sweep_stale_dirs();
        let mut attempt = 1;
        loop {
            match KafkaCluster::start_once(&dist, &spec) {
                Err(e) if attempt < PORT_ATTEMPTS && is_port_clash(&e) => attempt += 1,
                other => return other,
            }
        }
    }

    fn start_once(dist: &KafkaDist, spec: &ClusterSpec) -> Result<KafkaCluster> {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("josefk-kafka-{}-{n}", std::process::id()));
        let per_node = 2 + spec.listeners().len();
        let ports = pick_free_ports(per_node * spec.node_count())
            .map_err(|e| HarnessError::io("picking free ports on 127.0.0.1", e))?;
        let layouts: Vec<NodeLayout> = (0..spec.node_count())
            .map(|i| NodeLayout {
                id: i as i32 + 1,
                port: ports[per_node * i],
                controller_port: ports[per_node * i + 1],
                listener_ports: ports[per_node * i + 2..per_node * (i + 1)].to_vec(),
                dir: dir.join(format!("node-{}", i + 1)),
                extra_classpath: spec.extra_classpath().to_vec(),
            })
            .collect();
        // From here on, dropping `cluster` cleans up whatever was created.
        let mut cluster = KafkaCluster {
            dist: dist.clone(),
            spec: spec.clone(),
            dir,
            nodes: layouts
                .iter()
                .map(|l| Node {
                    layout: l.clone(),
                    process: None,
                })
                .collect(),
        };
        for layout in &layouts {
            fs::create_dir_all(layout.data_dir())
                .map_err(|e| HarnessError::io(format!("creating {}", layout.dir.display()), e))?;
            let props = server_properties(spec, &layouts, layout);
            let path = layout.dir.join("server.properties");
            fs::write(&path, props)
                .map_err(|e| HarnessError::io(format!("writing {}", path.display()), e))?;
        }
        cluster.format_all()?;
        // All at once: a majority of controllers must be up before any broker registers.
        let mut starts = Vec::new();
        for node in &mut cluster.nodes {
            starts.push(node.launch(&cluster.dist)?);
        }
        let ids: Vec<i32> = layouts.iter().map(|l| l.id).collect();
        cluster.wait_ready(&ids, &starts)?;
        Ok(cluster)
    }

    /// Runs `kafka.tools.StorageTool format` for every node in parallel.
    fn format_all(&mut self) -> Result<()> {
        let cluster_id = random_cluster_id();
        let mut running = Vec::new();
        for node in &self.nodes {
            let dir = &node.layout.dir;
            let log = dir.join("format.log");
            let out = File::create(&log)
                .map_err(|e| HarnessError::io(format!("creating {}", log.display()), e))?;
            let err = out
                .try_clone()
                .map_err(|e| HarnessError::io("duplicating a file handle", e))?;
            let mut args = vec![
                // Short-lived JVM: C1 only and serial GC start faster.
                "-XX:TieredStopAtLevel=1".into(),
                "-XX:+UseSerialGC".into(),
                "-Djosefk.harness=1".into(),
                self.dist
                    .log_config_flag(&self.dist.tools_log_config())
                    .into(),
                "-cp".into(),
                self.dist.broker_classpath().into(),
                "kafka.tools.StorageTool".into(),
                "format".into(),
                // One argument: an id may start with `-`, which argparse would take for an option.
                format!("--cluster-id={cluster_id}").into(),
                "-c".into(),
                dir.join("server.properties").into_os_string(),
            ];
            for (name, level) in self.spec.features() {
                args.push("--feature".into());
                args.push(format!("{name}={level}").into());
            }
            for arg in self.spec.scram_format_args() {
                args.push(arg.into());
            }
            let process = JavaProcess::spawn(Launch {
                program: self.dist.java().to_path_buf(),
                args,
                stdin_file: None,
                stdout: Stdio::from(out),
                stderr: Stdio::from(err),
                label: format!("storage format of node {}", node.layout.id),
            })?;
            running.push((node.layout.id, log, process));
        }
        for (node_id, log, mut process) in running {
            let status = process.wait_timeout(Duration::from_secs(120))?;
            if status.is_some_and(|s| s.success()) {
                continue;
            }
            let what = status.map_or("timed out after 120s".to_string(), |s| s.to_string());
            return Err(HarnessError::Format {
                node_id,
                detail: format!("{what}\n{}", tail_file(&log, 30)),
            });
        }
        Ok(())
    }

    /// Waits until every node in `ids` (started at log offsets `starts`) is ready.
    fn wait_ready(&mut self, ids: &[i32], starts: &[u64]) -> Result<()> {
        let timeout = self.spec.timeout();
        let deadline = Instant::now() + timeout;
        let mut pending: Vec<(i32, LogScan)> = ids
            .iter()
            .zip(starts)
            .map(|(&id, &offset)| (id, LogScan::new(offset)))
            .collect();
        while !pending.is_empty() {
            let mut still = Vec::new();
            for (id, mut scan) in pending {
                let node = self.node_mut(id)?;
                if let Some(process) = node.process.as_mut() {
                    if let Some(status) = process.try_wait()? {
                        node.process = None;
                        return Err(HarnessError::NodeExited {
                            node_id: id,
                            status: status.to_string(),
                            log_tail: node.log_tail(),
                        });
                    }
                }
                let logged = scan.seen(&node.layout.dir.join("server.log"));
                let addr = SocketAddr::from(([127, 0, 0, 1], node.layout.port));
                let ready =
                    logged && TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok();
                if ready {
                    continue;
                }
                if Instant::now() >= deadline {
                    let missing = if logged {
                        format!("logged \"Kafka Server started\" but {addr} refuses connections")
                    } else {
                        "no \"Kafka Server started\" in its log yet".to_string()
                    };
                    return Err(HarnessError::StartTimeout {
                        node_id: id,
                        waited: timeout,
                        missing,
                        log_tail: node.log_tail(),
                    });
                }
                still.push((id, scan));
            }
            pending = still;
            if !pending.is_empty() {
                thread::sleep(Duration::from_millis(100));
            }
        }
        Ok(())
    }

    /// `127.0.0.1:p1,127.0.0.1:p2,...` for every node, running or not.
    pub fn bootstrap_servers(&self) -> String {
        let addrs: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.layout.port))
            .collect();
        addrs.join(",")
    }

    /// `127.0.0.1:port,...` of the [`crate::Listener`] called `name` on every node. Panics if
    /// the spec has no such listener (a bug in the calling test).
    pub fn listener_bootstrap(&self, name: &str) -> String {
        let addrs: Vec<String> = self
            .nodes
            .iter()
            .map(|n| self.listener_address(name, n.layout.id))
            .collect();
        addrs.join(",")
    }

    /// `127.0.0.1:port` of the listener called `name` on one node. Panics on an unknown listener
    /// or node.
    pub fn listener_address(&self, name: &str, node_id: i32) -> String {
        let index = self
            .spec
            .listeners()
            .iter()
            .position(|l| l.name().eq_ignore_ascii_case(name))
            .unwrap_or_else(|| panic!("the cluster has no listener called {name}"));
        match self.nodes.iter().find(|n| n.layout.id == node_id) {
            Some(n) => format!("127.0.0.1:{}", n.layout.listener_ports[index]),
            None => panic!("{}", self.unknown(node_id)),
        }
    }

    /// The node ids, `1..=n`.
    pub fn node_ids(&self) -> Vec<i32> {
        self.nodes.iter().map(|n| n.layout.id).collect()
    }

    /// The PLAINTEXT address (`127.0.0.1:port`) of a node. Panics on an unknown id
    /// (a bug in the calling test).
    pub fn broker_address(&self, node_id: i32) -> String {
        match self.nodes.iter().find(|n| n.layout.id == node_id) {
            Some(n) => format!("127.0.0.1:{}", n.layout.port),
            None => panic!("{}", self.unknown(node_id)),
        }
    }

    /// Whether the node's JVM is running (it may not be ready yet after a crash).
    pub fn is_running(&mut self, node_id: i32) -> Result<bool> {
        let node = self.node_mut(node_id)?;
        match node.process.as_mut() {
            Some(p) => Ok(p.try_wait()?.is_none()),
            None => Ok(false),
        }
    }

    /// Stops a node cleanly (SIGTERM: controlled shutdown) and waits for its JVM to
    /// exit. Stopping a stopped node is a no-op.
    pub fn stop_node(&mut self, node_id: i32) -> Result<()> {
        let node = self.node_mut(node_id)?;
        let Some(mut process) = node.process.take() else {
            return Ok(());
        };
        process.terminate()?;
        if process.wait_timeout(STOP_TIMEOUT)?.is_some() {
            return Ok(());
        }
        process.kill_group();
        process.wait()?;
        Err(HarnessError::NodeState {
            node_id,
            detail: format!(
                "did not shut down within {}s of SIGTERM and was killed",
                STOP_TIMEOUT.as_secs()
            ),
        })
    }

    /// Kills a node with SIGKILL (a crash as far as Kafka can tell) and waits for it
    /// to exit. Killing a stopped node is a no-op.
    pub fn kill_node(&mut self, node_id: i32) -> Result<()> {
        let node = self.node_mut(node_id)?;
        if let Some(mut process) = node.process.take() {
            process.kill()?;
            process.wait()?;
        }
        Ok(())
    }

    /// Freezes a node (SIGSTOP to its processes): its sockets stay open and nothing is answered
    /// until [`KafkaCluster::resume_node`]. Pausing a stopped node is a no-op.
    pub fn pause_node(&mut self, node_id: i32) -> Result<()> {
        match &mut self.node_mut(node_id)?.process {
            Some(process) => process.pause(),
            None => Ok(()),
        }
    }

    /// Lets a paused node run again (SIGCONT).
    pub fn resume_node(&mut self, node_id: i32) -> Result<()> {
        match &mut self.node_mut(node_id)?.process {
            Some(process) => process.resume(),
            None => Ok(()),
        }
    }

    /// Restarts a stopped or killed node on the same ports and data dir, and waits
    /// until it is ready again. After [`KafkaCluster::kill_node`] this takes about
    /// `broker.session.timeout.ms` (9 s by default): the controller refuses the new
    /// registration until the killed incarnation's session expires. A lower value
    /// (with `broker.heartbeat.interval.ms` below it) via
    /// [`ClusterSpec::broker_property`] shortens that.
    pub fn start_node(&mut self, node_id: i32) -> Result<()> {
        if self.is_running(node_id)? {
            return Err(HarnessError::NodeState {
                node_id,
                detail: "start_node called while it is running (stop or kill it first)".into(),
            });
        }
        let dist = self.dist.clone();
        let start = self.node_mut(node_id)?.launch(&dist)?;
        if let Err(e) = self.wait_ready(&[node_id], &[start]) {
            // Do not leave a half-started node behind to confuse the next step.
            if let Some(mut p) = self.node_mut(node_id)?.process.take() {
                let _ = p.stop(DROP_GRACE);
            }
            return Err(e);
        }
        Ok(())
    }

    /// The pid of a node's process while it runs: the watcher wrapper whose child is the broker
    /// JVM (and the JVM's process group id), so the CPU of it and its descendants is the
    /// broker's. `None` for a stopped or unknown node.
    pub fn node_pid(&self, node_id: i32) -> Option<u32> {
        self.nodes
            .iter()
            .find(|n| n.layout.id == node_id)?
            .process
            .as_ref()
            .map(JavaProcess::pid)
    }

    /// The provisioned Kafka this cluster runs.
    pub fn dist(&self) -> &KafkaDist {
        &self.dist
    }

    /// The cluster's temporary directory (`node-<id>/server.log`, `server.properties`,
    /// `data/`), deleted on drop.
    pub fn data_dir(&self) -> &Path {
        &self.dir
    }

    /// The broker log of a node, for a test that wants to look at it.
    pub fn node_log(&self, node_id: i32) -> Result<PathBuf> {
        let node = self.nodes.iter().find(|n| n.layout.id == node_id);
        node.map(|n| n.layout.dir.join("server.log"))
            .ok_or_else(|| self.unknown(node_id))
    }

    fn node_mut(&mut self, node_id: i32) -> Result<&mut Node> {
        let err = self.unknown(node_id);
        self.nodes
            .iter_mut()
            .find(|n| n.layout.id == node_id)
            .ok_or(err)
    }

    fn unknown(&self, node_id: i32) -> HarnessError {
        HarnessError::UnknownNode {
            node_id,
            known: self.node_ids(),
        }
    }
}

impl Drop for KafkaCluster {
    fn drop(&mut self) {
        let keep = std::env::var_os("JOSEFK_KEEP_KAFKA_LOGS").is_some_and(|v| v != "0");
        // Signal all first, then wait: nodes shut down in parallel. Data about to be deleted
        // gains nothing from a controlled shutdown, which took ~6 s for three nodes stopping
        // together (each pass of CI's test run starts several such clusters): SIGKILL then. Kept
        // logs get the clean stop, so that they end as a broker's normally do.
        for node in &mut self.nodes {
            if let Some(p) = node.process.as_mut() {
                let _ = if keep { p.terminate() } else { p.kill() };
            }
        }
        let deadline = Instant::now() + DROP_GRACE;
        for node in &mut self.nodes {
            if let Some(mut p) = node.process.take() {
                let left = deadline.saturating_duration_since(Instant::now());
                if !matches!(p.wait_timeout(left), Ok(Some(_))) {
                    p.kill_group();
                    let _ = p.wait();
                }
            }
        }
        if keep {
            eprintln!("josefk-harness: kept Kafka logs in {}", self.dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}
