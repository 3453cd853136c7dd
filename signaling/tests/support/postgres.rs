//! A throwaway PostgreSQL server for the tests: `initdb` and `postgres` from Debian's packages in
//! a temporary folder, on a free loopback port, one per test process, stopped (and its folder
//! removed) by a watchdog when the test process ends. Each test gets its own database.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sqlx::Connection;

/// Where PostgreSQL listens, if it could be started.
static SERVER: OnceLock<Option<u16>> = OnceLock::new();
static NEXT_DB: AtomicUsize = AtomicUsize::new(0);

fn required() -> bool {
    std::env::var("BRIDGE_TEST_POSTGRES").is_ok_and(|v| v == "required")
}

/// The folder of `initdb`, `postgres`, `pg_ctl`, `pg_isready`.
fn bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// A command run as the `postgres` user when we are root (PostgreSQL refuses to run as root).
fn as_owner(root: bool, program: &Path) -> Command {
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn start() -> Result<u16, String> {
    let bin = bin_dir().ok_or("PostgreSQL is not installed (apt-get install postgresql)")?;
    let root = is_root();
    let dir = std::env::temp_dir().join(format!("bridge-pg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if root {
        let ok = Command::new("chown")
            .args(["postgres:postgres"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return Err("cannot give the temporary folder to the postgres user".into());
        }
    }
    let data = dir.join("data");
    let out = as_owner(root, &bin.join("initdb"))
        .args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
            "-D",
        ])
        .arg(&data)
        .output()
        .map_err(|e| format!("initdb: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free port: {e}"))?
        .port();
    let run = if root { "runuser -u postgres -- " } else { "" };
    // The watchdog: runs the server, and when this test process is gone, stops it and removes
    // the folder. Its output goes to a file so that cargo does not wait for it.
    let script = format!(
        "{run}'{bin}/postgres' -D '{data}' -p {port} -k '{dir}' -c listen_addresses=127.0.0.1 \
         -c fsync=off -c full_page_writes=off -c synchronous_commit=off >'{dir}/log' 2>&1 &\n\
         while kill -0 {pid} 2>/dev/null; do sleep 1; done\n\
         {run}'{bin}/pg_ctl' -D '{data}' -m immediate stop >/dev/null 2>&1\n\
         rm -rf '{dir}'\n",
        bin = bin.display(),
        data = data.display(),
        dir = dir.display(),
        pid = std::process::id(),
    );
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start postgres: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = Command::new(bin.join("pg_isready"))
            .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        if ready {
            return Ok(port);
        }
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
            return Err(format!("postgres did not become ready in 30 s:\n{log}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A fresh database's URL, or `None` when PostgreSQL is not installed and not required.
pub async fn database(name: &str) -> Option<String> {
    let port = SERVER
        .get_or_init(|| match start() {
            Ok(port) => Some(port),
            Err(e) if required() => panic!("BRIDGE_TEST_POSTGRES=required, but {e}"),
            Err(e) => {
                eprintln!("skipping the PostgreSQL runs: {e}");
                None
            }
        })
        .as_ref()
        .copied()?;
    let db = format!(
        "t{}_{}",
        NEXT_DB.fetch_add(1, Ordering::Relaxed),
        name.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
    );
    let mut admin =
        sqlx::PgConnection::connect(&format!("postgres://postgres@127.0.0.1:{port}/postgres"))
            .await
            .expect("connect to the test PostgreSQL");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
        .execute(&mut admin)
        .await
        .expect("create a test database");
    Some(format!("postgres://postgres@127.0.0.1:{port}/{db}"))
}
