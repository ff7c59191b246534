//! The listener and the connection loop: hyper's HTTP/1 server with a
//! header-read timer, a cap on open connections and on each one's lifetime,
//! axum's router for the routes.

use super::api::{self, AppState};
use super::model::Served;
use super::watch;
use crate::args::ServeArgs;
use anyhow::{Context, Result};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::net::{SocketAddr, TcpListener as StdListener, ToSocketAddrs};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::Semaphore;

/// Connections served at once; more wait in the kernel's backlog.
pub(crate) const MAX_CONNECTIONS: usize = 256;

/// The longest a client may take to send a request's headers (and the
/// longest an idle keep-alive connection stays open).
pub(crate) const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest one connection stays open, however busy.
pub(crate) const CONNECTION_LIFETIME: Duration = Duration::from_secs(300);

/// Loads the model, binds, prints the URL and serves until Ctrl-C.
pub(crate) fn run(args: ServeArgs) -> Result<()> {
    let served = Served::load(&args.model, 1)?;
    let addr = resolve(&args.host, args.port)?;
    if !addr.ip().is_loopback() {
        eprintln!(
            "warning: listening on {addr}, not a loopback address: the page and the API can be reached \
             from other machines, with no authentication"
        );
    }
    let listener = StdListener::bind(addr).with_context(|| format!("cannot listen on {addr}"))?;
    listener.set_nonblocking(true)?;
    let local = listener.local_addr()?;
    let shown_host = if local.ip().is_unspecified() {
        if local.is_ipv4() {
            "127.0.0.1".to_owned()
        } else {
            "[::1]".to_owned()
        }
    } else if local.is_ipv6() {
        format!("[{}]", local.ip())
    } else {
        local.ip().to_string()
    };
    let url = format!("http://{shown_host}:{}/", local.port());
    let summary = &served.summary;
    eprintln!(
        "serving {} (layers {}, {} parameters, epoch {}{})",
        args.model.display(),
        summary.architecture,
        summary.parameters,
        summary.epoch,
        summary
            .test_accuracy
            .map(|a| format!(", test accuracy {:.2}%", 100.0 * a))
            .unwrap_or_default()
    );
    println!("listening on {url}");

    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    let state = AppState {
        served: Arc::new(RwLock::new(Arc::new(served))),
        cpu: Arc::new(Semaphore::new(cpus)),
    };
    if args.watch {
        watch::spawn(args.model.clone(), Arc::clone(&state.served), watch::POLL_INTERVAL)?;
    }
    if args.open {
        open_browser(&url);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cpus.clamp(1, 4))
        .max_blocking_threads(cpus.max(1) + 4)
        .enable_all()
        .build()?;
    runtime.block_on(serve(listener, state))
}

/// `host:port` as a socket address; a name (`localhost`) is resolved, its
/// first address taken.
fn resolve(host: &str, port: u16) -> Result<SocketAddr> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (host, port)
        .to_socket_addrs()
        .with_context(|| format!("--host {host}: not an address or a name that resolves"))?
        .next()
        .with_context(|| format!("--host {host}: resolves to no address"))
}

/// The accept loop: one task per connection, at most [`MAX_CONNECTIONS`].
async fn serve(listener: StdListener, state: AppState) -> Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let app = api::router(state);
    let connections = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let shutdown = tokio::signal::ctrl_c();
    tokio::pin!(shutdown);
    loop {
        let permit = Arc::clone(&connections).acquire_owned().await?;
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = &mut shutdown => {
                eprintln!("interrupted: stopping");
                return Ok(());
            }
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(err) => {
                // Out of file descriptors and the like: wait, do not spin.
                eprintln!("warning: cannot accept a connection: {err}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            // An error here is the client's (reset, bad request line); hyper
            // has answered what could be answered.
            let _ = tokio::time::timeout(CONNECTION_LIFETIME, connection).await;
        });
    }
}

/// Opens `url` in the default browser, if one can be found.
fn open_browser(url: &str) {
    let command = if cfg!(target_os = "macos") {
        std::process::Command::new("open").arg(url).spawn()
    } else if cfg!(windows) {
        std::process::Command::new("cmd").args(["/C", "start", "", url]).spawn()
    } else {
        std::process::Command::new("xdg-open").arg(url).spawn()
    };
    if let Err(err) = command {
        eprintln!("warning: cannot open a browser ({err}); open {url} yourself");
    }
}
