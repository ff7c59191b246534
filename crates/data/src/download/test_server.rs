//! A tiny HTTP/1.1 server on 127.0.0.1 for the download tests: one thread
//! answers each request from a routing closure with a canned [`Reply`], then
//! closes the connection.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the server sends back for one request.
#[derive(Clone, Debug)]
pub(crate) enum Reply {
    /// Status 200 with this body.
    Ok(Vec<u8>),
    /// This status with a short text body.
    Status(u16),
    /// Status 200 with an HTML "not found" page, as some hosts send.
    HtmlPage,
    /// Status 200 announcing the whole body, sending half of it, then
    /// closing the connection.
    CloseHalfway(Vec<u8>),
    /// Accepts the request and never answers (until the client gives up).
    Silent,
}

/// A running server.
pub(crate) struct Server {
    /// `http://127.0.0.1:PORT/mirror/`.
    pub(crate) url: String,
    /// The path of every request received, in order.
    pub(crate) hits: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts a server on a free port that answers `route(path)`.
    pub(crate) fn start(route: impl Fn(&str) -> Reply + Send + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/mirror/", listener.local_addr().unwrap());
        let hits = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&hits);
        // The thread ends with the test process.
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let Some(path) = read_request(&stream) else { continue };
                log.lock().unwrap().push(path.clone());
                answer(stream, route(&path));
            }
        });
        Server { url, hits }
    }

    /// How many requests arrived so far.
    pub(crate) fn n_hits(&self) -> usize {
        self.hits.lock().unwrap().len()
    }
}

/// Reads a request's head and returns its path.
fn read_request(mut stream: &TcpStream) -> Option<String> {
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).ok()?;
    head.split_whitespace().nth(1).map(str::to_owned)
}

fn answer(mut stream: TcpStream, reply: Reply) {
    let head = |status: u16, reason: &str, content_type: &str, len: usize| {
        format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {len}\r\n\
             Connection: close\r\n\r\n"
        )
    };
    let (head, body) = match reply {
        Reply::Ok(body) => (head(200, "OK", "application/octet-stream", body.len()), body),
        Reply::Status(status) => {
            let body = format!("status {status}\n").into_bytes();
            (head(status, "Error", "text/plain", body.len()), body)
        }
        Reply::HtmlPage => {
            let body = b"<!DOCTYPE html>\n<html><body><h1>Not Found</h1></body></html>\n".to_vec();
            (head(200, "OK", "text/html", body.len()), body)
        }
        Reply::CloseHalfway(body) => {
            let half = body[..body.len() / 2].to_vec();
            (head(200, "OK", "application/octet-stream", body.len()), half)
        }
        Reply::Silent => {
            // Hold the connection open until the client hangs up.
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let _ = stream.read(&mut [0u8; 1]);
            return;
        }
    };
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(&body);
    let _ = stream.flush();
    // Dropping the stream closes the connection.
}
