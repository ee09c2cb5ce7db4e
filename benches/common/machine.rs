//! What the broker and the whole machine spend while one client runs, to show what bounds a
//! client's rate when broker and client share the cores: the broker's CPU (user+sys of its
//! process and every live descendant, from `/proc/<pid>/stat`) and the machine's busy CPU over
//! the same wall time (from `/proc/stat`, all CPUs). Both are read just before and just after
//! the client's process, so they cover its whole life (start-up included), like its own CPU.

/// The readings at one moment (see [`Snapshot::take`]).
#[derive(Debug, Clone, Copy)]
pub struct Snapshot {
    /// user+sys clock ticks of the broker's process tree, when its pid is known and it is alive.
    broker_ticks: Option<u64>,
    /// `/proc/stat` "cpu" line: ticks not idle (user, nice, system, irq, softirq, steal).
    busy_ticks: u64,
    /// All ticks of the line (busy + idle + iowait): wall time × CPUs.
    all_ticks: u64,
}

/// What was spent between two snapshots.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Spent {
    /// user+sys seconds of the broker's process tree; `None` when its pid is unknown.
    pub broker_cpu_s: Option<f64>,
    /// CPU seconds every process on the machine used (all CPUs).
    pub machine_busy_s: f64,
    /// CPU seconds the machine had (wall time × CPUs).
    pub machine_all_s: f64,
}

impl Snapshot {
    /// Reads the machine's CPU counters and, if `broker_pid` is given, the broker tree's CPU.
    pub fn take(broker_pid: Option<u32>) -> Snapshot {
        let (busy_ticks, all_ticks) = machine_ticks();
        Snapshot {
            broker_ticks: broker_pid.and_then(tree_ticks),
            busy_ticks,
            all_ticks,
        }
    }

    /// What was spent from `earlier` to this snapshot (`ticks`: clock ticks per second, the
    /// unit of both files).
    pub fn since(&self, earlier: &Snapshot, ticks: f64) -> Spent {
        let busy = self.busy_ticks.saturating_sub(earlier.busy_ticks) as f64;
        let all = self.all_ticks.saturating_sub(earlier.all_ticks) as f64;
        let broker = match (earlier.broker_ticks, self.broker_ticks) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 / ticks),
            _ => None,
        };
        Spent {
            broker_cpu_s: broker,
            machine_busy_s: busy / ticks,
            machine_all_s: all / ticks,
        }
    }
}

impl Spent {
    /// The broker's CPU seconds per million of `records`, `-` when unknown (a table cell).
    pub fn broker_s_per_m(&self, records: u64) -> String {
        match self.broker_cpu_s {
            Some(s) => format!("{:.2}", s * 1e6 / records.max(1) as f64),
            None => "-".into(),
        }
    }

    /// The machine's busy share in percent, 100 = every CPU busy the whole time (a table cell).
    pub fn busy_pct(&self) -> String {
        let share = if self.machine_all_s > 0.0 {
            self.machine_busy_s / self.machine_all_s
        } else {
            0.0
        };
        format!("{:.0}", share * 100.0)
    }

    /// The share of the machine (percent) busy with neither the client (`client_cpu_s`) nor
    /// the broker: other processes, this orchestrator, the kernel's own threads. `-` when the
    /// broker's CPU is unknown (a table cell).
    pub fn other_pct(&self, client_cpu_s: f64) -> String {
        match self.broker_cpu_s {
            Some(b) if self.machine_all_s > 0.0 => {
                let other = (self.machine_busy_s - client_cpu_s - b).max(0.0);
                format!("{:.0}", other / self.machine_all_s * 100.0)
            }
            _ => "-".into(),
        }
    }
}

/// `(busy, all)` ticks of the `/proc/stat` "cpu" line (the sum over CPUs); zeros if unreadable.
fn machine_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return (0, 0);
    };
    // user nice system idle iowait irq softirq steal guest guest_nice; guest time is already
    // counted in user and nice, so it is left out.
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let at = |i: usize| f.get(i).copied().unwrap_or(0);
    let all: u64 = (0..8).map(at).sum();
    (all - at(3) - at(4), all)
}

/// user+sys ticks of `root` and its live descendants (the harness's broker pid is a shell
/// wrapper whose child is the JVM), or `None` when `root` is gone.
fn tree_ticks(root: u32) -> Option<u64> {
    // (pid, ppid, utime+stime) of every process.
    let mut procs = Vec::new();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // The command name (field 2) may hold spaces; fields after it follow the last ')'.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        // After ')': index 0 is field 3 (state), so ppid (4) is 1, utime (14) 11, stime (15) 12.
        let num = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
        procs.push((pid, num(1) as u32, num(11) + num(12)));
    }
    if !procs.iter().any(|&(pid, _, _)| pid == root) {
        return None;
    }
    let mut tree = vec![root];
    let mut total = 0;
    // Breadth-first over parent links; a process tree is small.
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        for &(pid, ppid, t) in &procs {
            if pid == parent {
                total += t;
            }
            // `contains`: a parent link read across pid reuse mid-scan could form a cycle.
            if ppid == parent && !tree.contains(&pid) {
                tree.push(pid);
            }
        }
        i += 1;
    }
    Some(total)
}
