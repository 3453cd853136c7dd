//! What the HTTP API tests share: a bridge in-process on loopback with its real database (SQLite,
//! and PostgreSQL when its binaries are installed), and a small HTTP client.

#![allow(dead_code)]

pub mod postgres;

use std::net::SocketAddr;
use std::path::PathBuf;

use serde_json::Value;
use signaling::{Config, http};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A bridge serving HTTP on loopback; its folder goes when it is dropped.
pub struct Server {
    pub http: SocketAddr,
    /// The running bridge's state (its SFU handle, for what only the media plane knows).
    pub state: signaling::AppState,
    pub dir: PathBuf,
    pub database: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The databases every test runs on: SQLite always, PostgreSQL when available (required when
/// `BRIDGE_TEST_POSTGRES=required`, as the README's test command sets it).
pub async fn databases(name: &str) -> Vec<(&'static str, Option<String>)> {
    let mut out = vec![("sqlite", None)];
    if let Some(url) = postgres::database(name).await {
        eprintln!("{name}: also on PostgreSQL ({url})");
        out.push(("postgres", Some(url)));
    }
    out
}

/// Starts a bridge on `database` (`None`: SQLite in its own folder).
pub async fn start(name: &str, database: Option<String>) -> Server {
    let dir = std::env::temp_dir().join(format!("bridge-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let web = dir.join("web");
    std::fs::create_dir_all(&web).expect("temp dir");
    std::fs::write(web.join("index.html"), "<!doctype html><title>test</title>").expect("index");
    let mut config = Config::for_test(dir.join("data"), web);
    config.database_url = database.clone();
    let state = signaling::start(&config).await.expect("server starts");
    let kept = state.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let http = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        axum::serve(listener, http::router(state))
            .await
            .expect("serve");
    });
    Server {
        http,
        state: kept,
        dir,
        database: database.unwrap_or_else(|| "sqlite".into()),
    }
}

/// A response: status, content type and body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

impl Response {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("JSON expected ({e}): {} {}", self.status, self.body))
    }

    /// The stable error code of an error response.
    pub fn code(&self) -> String {
        self.json()["code"].as_str().unwrap_or_default().to_string()
    }
}

/// One HTTP/1.1 request; `token` goes as a bearer token.
pub async fn request(
    server: &Server,
    method: &str,
    path: &str,
    token: Option<&str>,
    content_type: &str,
    body: &[u8],
) -> Response {
    let mut s = TcpStream::connect(server.http).await.expect("connect");
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n{auth}\
         Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.expect("write");
    // The server may answer (413) before reading a large body: a failed write is fine then.
    let _ = s.write_all(body).await;
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw).await;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").expect("a full response");
    let status = head[9..12].parse().expect("status code");
    let header = |name: &str| {
        head.lines()
            .find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
            })
            .unwrap_or_default()
    };
    let body = if header("transfer-encoding").eq_ignore_ascii_case("chunked") {
        unchunk(rest)
    } else {
        rest.to_string()
    };
    Response {
        status,
        content_type: header("content-type"),
        body,
    }
}

fn unchunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).expect("chunk size");
        if n == 0 {
            break;
        }
        out.push_str(&after[..n]);
        rest = &after[n + 2..];
    }
    out
}

pub async fn get(server: &Server, path: &str, token: Option<&str>) -> Response {
    request(server, "GET", path, token, "application/json", b"").await
}

pub async fn post(server: &Server, path: &str, token: Option<&str>, body: &Value) -> Response {
    request(
        server,
        "POST",
        path,
        token,
        "application/json",
        body.to_string().as_bytes(),
    )
    .await
}

pub async fn put(server: &Server, path: &str, token: Option<&str>, body: &Value) -> Response {
    request(
        server,
        "PUT",
        path,
        token,
        "application/json",
        body.to_string().as_bytes(),
    )
    .await
}

/// Logs in and returns the session token.
pub async fn login(server: &Server, username: &str, password: &str) -> String {
    let r = post(
        server,
        "/api/login",
        None,
        &serde_json::json!({"username": username, "password": password}),
    )
    .await;
    assert_eq!(r.status, 200, "login {username}: {}", r.body);
    r.json()["token"].as_str().expect("token").to_string()
}

/// Adds a person (role `role`, at site `site` if any) as `admin` and logs them in; returns
/// their session token.
pub async fn person(
    server: &Server,
    admin: &str,
    (username, display_name): (&str, &str),
    role: &str,
    site: Option<i64>,
) -> String {
    const PASSWORD: &str = "mật-khẩu-dài";
    let r = post(
        server,
        "/api/people",
        Some(admin),
        &serde_json::json!({"username": username, "display_name": display_name, "role": role,
                            "site_id": site, "password": PASSWORD}),
    )
    .await;
    assert_eq!(r.status, 201, "adding {username}: {}", r.body);
    login(server, username, PASSWORD).await
}

/// The administrator's token.
pub async fn admin(server: &Server) -> String {
    login(server, "admin", signaling::config::TEST_ADMIN_PASSWORD).await
}

/// Imports sites from CSV as `token`.
pub async fn import(server: &Server, token: &str, csv: &str) -> Response {
    request(
        server,
        "POST",
        "/api/sites/import",
        Some(token),
        "text/csv",
        csv.as_bytes(),
    )
    .await
}

/// The id of site `code` in a `GET /api/sites` answer.
pub fn site_id(sites: &Value, code: &str) -> i64 {
    sites
        .as_array()
        .expect("sites")
        .iter()
        .find(|s| s["code"] == code)
        .and_then(|s| s["id"].as_i64())
        .unwrap_or_else(|| panic!("site {code}"))
}

/// Unix seconds as the API takes times: RFC 3339, in Vietnam's time.
pub fn rfc3339(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .expect("time")
        .to_offset(time::macros::offset!(+7))
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format")
}
