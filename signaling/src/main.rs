//! `bridge`: signaling and an embedded SFU in one process, with embedded defaults.

use anyhow::Context;
use clap::Parser;
use signaling::{Config, http, tls};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = Config::parse();
    if !config.web_root.join("index.html").exists() {
        anyhow::bail!(
            "the web client is not built: {} has no index.html (run `npm ci && npm run build`, or pass --web-root)",
            config.web_root.display()
        );
    }
    let state = signaling::start(&config).await?;
    let files = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => tls::TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        },
        _ => tls::self_signed(&config.data_dir, &config.tls_names)?,
    };
    let rustls = axum_server::tls_rustls::RustlsConfig::from_pem_file(&files.cert, &files.key)
        .await
        .with_context(|| format!("loading the certificate {}", files.cert.display()))?;
    let media = state.sfu.local_addr();
    let app = http::router(state);
    let listener = std::net::TcpListener::bind(config.listen)
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    let host = if addr.ip().is_unspecified() {
        "localhost".to_string()
    } else {
        addr.ip().to_string()
    };
    tracing::info!(media = %media, "media (UDP) listening");
    println!(
        "Bridge ready: open https://{host}:{}/ (demo meeting inside)",
        addr.port()
    );
    let handle = axum_server::Handle::new();
    let shutdown = handle.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        shutdown.graceful_shutdown(Some(std::time::Duration::from_secs(2)));
    });
    axum_server::from_tcp_rustls(listener, rustls)?
        .handle(handle)
        .serve(app.into_make_service())
        .await
        .context("HTTPS server failed")?;
    Ok(())
}
