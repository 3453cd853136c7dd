//! What the benchmark reads from the machine: CPU time and resident memory of a process from
//! `/proc`, the clock tick, and a description of the machine for the report.

use std::process::Command;

use anyhow::{Context, Result, bail};

/// CPU time (user + system) a process has used so far, in clock ticks.
pub fn cpu_ticks(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    // The command name (field 2) is in parentheses and may contain spaces: split after it.
    let after = text
        .rfind(')')
        .map(|i| &text[i + 1..])
        .with_context(|| format!("{path} has no command field"))?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the name, field 3 (state) is index 0; utime is field 14, stime field 15.
    let get = |field: usize| -> Result<u64> {
        fields
            .get(field - 3)
            .with_context(|| format!("{path} has no field {field}"))?
            .parse::<u64>()
            .with_context(|| format!("{path} field {field} is not a number"))
    };
    Ok(get(14)? + get(15)?)
}

/// The CPUs a process may run on (`Cpus_allowed_list`, e.g. `0-1`), to tell a run with the
/// SFU and the generator pinned to separate cores from one where they share them.
pub fn cpus_allowed(pid: u32) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .map(|v| v.trim().to_string())
}

/// Resident memory of a process (VmRSS), in bytes.
pub fn rss_bytes(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("VmRSS:") {
            let kib: u64 = rest
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .with_context(|| format!("{path}: unreadable VmRSS line {line:?}"))?;
            return Ok(kib * 1024);
        }
    }
    bail!("{path} has no VmRSS line")
}

/// Clock ticks per second (`getconf CLK_TCK`), to turn `/proc` times into seconds.
pub fn clock_ticks_per_second() -> Result<u64> {
    let out = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .context("running getconf CLK_TCK")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let ticks: u64 = text
        .trim()
        .parse()
        .with_context(|| format!("getconf CLK_TCK printed {text:?}"))?;
    if ticks == 0 {
        bail!("getconf CLK_TCK printed 0");
    }
    Ok(ticks)
}

/// The machine, as the report states it: CPU model from `/proc/cpuinfo`, `nproc --all`, memory.
pub fn machine() -> serde_json::Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|r| r.trim_start_matches([' ', '\t', ':']).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    // `--all`: the machine's processors, not only those this process may use (taskset).
    let nproc = Command::new("nproc")
        .arg("--all")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse::<u32>()
                .ok()
        });
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|r| r.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let loadavg = std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    serde_json::json!({
        "load_average_1_5_15_min_at_end": loadavg,
        "cpu_model": model,
        "nproc": nproc,
        "mem_total_bytes": mem_kib.map(|k| k * 1024),
        "kernel": kernel,
    })
}

/// How many times a process's threads have gone to sleep waiting (the sum of every thread's
/// `voluntary_ctxt_switches`): each is a wake-up later, whatever it waited for (a timer, a
/// socket, a lock). Only threads alive at the reading count: a thread that ends between two
/// readings takes its count with it. `None` if `/proc` does not say.
pub fn sleeps(pid: u32) -> Option<u64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut total = 0;
    for task in tasks.flatten() {
        // A thread that ended between the listing and the read is simply not counted.
        let Ok(text) = std::fs::read_to_string(task.path().join("status")) else {
            continue;
        };
        total += text
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .and_then(|v| v.trim().parse::<u64>().ok())?;
    }
    Some(total)
}

/// A process's CPU ticks, its threads' sleeps and the wall time, at one instant.
#[derive(Debug, Clone, Copy)]
pub struct CpuMark {
    ticks: u64,
    sleeps: Option<u64>,
    at: std::time::Instant,
}

impl CpuMark {
    /// Reads the process's CPU ticks now.
    pub fn now(pid: u32) -> Result<Self> {
        Ok(Self {
            ticks: cpu_ticks(pid)?,
            sleeps: sleeps(pid),
            at: std::time::Instant::now(),
        })
    }

    /// Wake-ups a second between `self` and `later`, all threads together.
    pub fn wakeups_per_second(&self, later: &CpuMark) -> Option<f64> {
        let wall = later.at.duration_since(self.at).as_secs_f64();
        let sleeps = later.sleeps?.checked_sub(self.sleeps?)?;
        (wall > 0.0).then(|| sleeps as f64 / wall)
    }

    /// CPU seconds used between `self` and `later`, and the wall seconds between them.
    pub fn until(&self, later: &CpuMark, ticks_per_second: u64) -> (f64, f64) {
        let cpu = later.ticks.saturating_sub(self.ticks) as f64 / ticks_per_second as f64;
        let wall = later.at.duration_since(self.at).as_secs_f64();
        (cpu, wall)
    }
}
