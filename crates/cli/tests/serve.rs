//! `backprop serve` over HTTP: the real binary started with `--port 0`, its
//! printed URL parsed, requests sent with ureq.

mod serve_common;

use serve_common::{Server, agent, png, post, predict_index, test_image, train, upscale, write_digits};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// MNIST-like digits and a model trained on them, made once per run: `(data,
/// model)` with labels as drawn, and `(data, model)` with labels shifted by
/// one.
struct Fixture {
    data: PathBuf,
    model: PathBuf,
    shifted_data: PathBuf,
    shifted_model: PathBuf,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        // Made afresh on every run (the same bytes each time).
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("serve-fixture");
        let _ = std::fs::remove_dir_all(&root);
        let f = Fixture {
            data: root.join("digits"),
            model: root.join("digits.ckpt"),
            shifted_data: root.join("shifted"),
            shifted_model: root.join("shifted.ckpt"),
        };
        write_digits(&f.data, 0);
        write_digits(&f.shifted_data, 1);
        train(&f.data, &f.model);
        train(&f.shifted_data, &f.shifted_model);
        f
    })
}

fn get(agent: &ureq::Agent, url: &str) -> (u16, String, String) {
    let response = agent.get(url).call().expect("GET");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    (
        status,
        content_type,
        response.into_body().read_to_string().expect("body"),
    )
}

/// The PNG of test image `index`, scaled up to 280x280, light on dark as
/// drawn on the page.
fn drawn(data: &Path, index: usize) -> Vec<u8> {
    png(&upscale(&test_image(data, index), 10))
}

#[track_caller]
fn assert_answer(json: &serde_json::Value) -> usize {
    let p: Vec<f64> = json["probabilities"]
        .as_array()
        .expect("probabilities")
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(p.len(), 10, "{json}");
    assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-4, "{p:?}");
    assert!(p.iter().all(|&v| (0.0..=1.0).contains(&v)), "{p:?}");
    let input = json["input_28x28"].as_array().expect("input_28x28");
    assert_eq!(input.len(), 784);
    assert!(input.iter().all(|v| v.as_u64().is_some_and(|v| v <= 255)));
    let predicted = json["predicted"].as_u64().expect("predicted") as usize;
    let best = (0..10).max_by(|&a, &b| p[a].total_cmp(&p[b]).then(b.cmp(&a))).unwrap();
    assert_eq!(predicted, best, "{p:?}");
    assert_eq!(json["class_name"], predicted.to_string());
    predicted
}

#[test]
fn a_drawn_digit_gets_the_class_predict_gives_for_the_test_image() {
    let f = fixture();
    let server = Server::start(&f.model, &[]);
    assert!(server.url.starts_with("http://127.0.0.1:"), "{}", server.url);
    let agent = agent();
    for index in 0..8 {
        let expected = predict_index(&f.model, &f.data, index);
        let (status, json) = post(&agent, &server.url, "", "image/png", &drawn(&f.data, index));
        assert_eq!(status, 200, "{json}");
        assert_eq!(assert_answer(&json), expected, "test image {index}");
        assert_eq!(json["inverted"], false);
        // The same picture as raw grey bytes gives the same answer.
        let raw = upscale(&test_image(&f.data, index), 10).into_raw();
        let (status, raw_json) = post(
            &agent,
            &server.url,
            "?width=280&height=280",
            "application/octet-stream",
            &raw,
        );
        assert_eq!(status, 200, "{raw_json}");
        assert_eq!(raw_json["probabilities"], json["probabilities"]);
        assert_eq!(raw_json["input_28x28"], json["input_28x28"]);
    }
    // Dark on light is inverted first, as `backprop predict` does.
    let mut paper = upscale(&test_image(&f.data, 0), 10);
    image::imageops::invert(&mut paper);
    let (status, json) = post(&agent, &server.url, "", "image/png", &png(&paper));
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["inverted"], true);
    assert_eq!(assert_answer(&json), predict_index(&f.model, &f.data, 0));
}

#[test]
fn the_page_the_model_summary_and_the_health_check_are_served() {
    let f = fixture();
    let server = Server::start(&f.model, &[]);
    let agent = agent();
    let (status, content_type, page) = get(&agent, &server.url);
    assert_eq!(status, 200);
    assert!(content_type.starts_with("text/html"), "{content_type}");
    assert!(page.contains("<canvas id=\"pad\"") && page.contains("app.js"), "{page}");
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "no CDN: {page}"
    );
    let (status, content_type, script) = get(&agent, &format!("{}app.js", server.url));
    assert_eq!(status, 200);
    assert!(content_type.starts_with("text/javascript"), "{content_type}");
    assert!(script.contains("api/predict"));
    let (status, content_type, _) = get(&agent, &format!("{}app.css", server.url));
    assert_eq!(status, 200);
    assert!(content_type.starts_with("text/css"), "{content_type}");
    assert_eq!(get(&agent, &format!("{}healthz", server.url)).0, 200);

    let (status, _, body) = get(&agent, &format!("{}api/model", server.url));
    assert_eq!(status, 200);
    let m: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(m["layers"], serde_json::json!([784, 64, 10]));
    assert_eq!(m["architecture"], "784-64-10");
    assert_eq!(m["parameters"], 784 * 64 + 64 + 64 * 10 + 10);
    assert_eq!(m["epoch"], 6);
    assert_eq!(m["generation"], 1);
    assert_eq!(m["classes"].as_array().unwrap().len(), 10);
    assert_eq!(m["history"].as_array().unwrap().len(), 6);
    let accuracy = m["test_accuracy"].as_f64().unwrap();
    assert!(accuracy > 0.9, "the synthetic digits are easy: {accuracy}");
    assert_eq!(m["history"][5]["test_accuracy"].as_f64(), Some(accuracy));
}

/// A PNG that declares `width x height` 8-bit grey pixels and then stops.
fn png_header_only(width: u32, height: u32) -> Vec<u8> {
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);
    png.extend_from_slice(&13u32.to_be_bytes());
    png.extend_from_slice(&ihdr);
    png.extend_from_slice(&crc32(&ihdr).to_be_bytes());
    png.extend_from_slice(&100u32.to_be_bytes());
    png.extend_from_slice(b"IDAT\x78\x01");
    png
}

#[test]
fn bad_requests_get_the_right_4xx_and_the_server_keeps_serving() {
    let f = fixture();
    let mut server = Server::start(&f.model, &[]);
    let agent = agent();
    let url = server.url.clone();
    let good = drawn(&f.data, 3);
    let black = png(&image::GrayImage::new(280, 280));
    let cases: Vec<(&str, &str, Vec<u8>, u16, &str)> = vec![
        ("", "image/png", vec![0; 5 << 20], 413, "4194304"),
        ("", "image/png", png_header_only(22000, 22000), 413, "50000000"),
        (
            "?width=10000&height=10000",
            "application/octet-stream",
            vec![1; 10],
            413,
            "pixels",
        ),
        ("", "image/png", b"not a png at all".to_vec(), 400, "cannot decode"),
        ("", "image/png", good[..good.len() / 2].to_vec(), 400, "cannot decode"),
        ("", "image/png", Vec::new(), 400, "empty"),
        ("", "image/png", black.clone(), 422, "blank"),
        (
            "?width=280&height=280",
            "application/octet-stream",
            vec![0; 280 * 280],
            422,
            "blank",
        ),
        (
            "?width=280&height=280",
            "application/octet-stream",
            vec![0; 100],
            400,
            "holds 100",
        ),
        ("", "application/octet-stream", vec![0; 100], 400, "width"),
        (
            "?width=abc&height=2",
            "application/octet-stream",
            vec![0; 100],
            400,
            "width",
        ),
        ("", "text/plain", good.clone(), 415, "Content-Type"),
        ("", "application/json", b"{}".to_vec(), 415, "Content-Type"),
        ("", "image/gif", good.clone(), 415, "image/png"),
    ];
    for (query, content_type, body, status, needle) in cases {
        let (got, json) = post(&agent, &url, query, content_type, &body);
        assert_eq!(got, status, "{content_type} {query} ({} bytes): {json}", body.len());
        let error = json["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error field: {json}"));
        assert!(error.contains(needle), "{needle:?} not in {error:?}");
        // Still serving.
        let (status, json) = post(&agent, &url, "", "image/png", &good);
        assert_eq!(status, 200, "{json}");
    }
    // No Content-Type at all.
    let response = agent.post(format!("{url}api/predict")).send(&good[..]).unwrap();
    assert_eq!(response.status().as_u16(), 415);
    // Wrong method, unknown path: JSON errors too.
    let (status, _, body) = get(&agent, &format!("{url}api/predict"));
    assert_eq!(status, 405, "{body}");
    assert!(body.contains("\"error\""), "{body}");
    let (status, _, body) = get(&agent, &format!("{url}no/such/page"));
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("\"error\""), "{body}");
    assert!(server.is_running());
    assert!(!server.stderr().contains("panicked"), "{}", server.stderr());
}

/// Everything the server sends on `stream` until it closes it, and how long
/// that took.
fn read_until_closed(mut stream: std::net::TcpStream) -> (String, Duration) {
    use std::io::Read;
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let start = Instant::now();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    (String::from_utf8_lossy(&answer).into_owned(), start.elapsed())
}

#[test]
fn silent_and_slow_clients_are_cut_off_and_do_not_stop_others() {
    use std::io::Write;
    let f = fixture();
    let server = Server::start(&f.model, &[]);
    let addr = server
        .url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    // Connects and sends nothing: closed after the header timeout (10 s).
    let silent = std::net::TcpStream::connect(&addr).unwrap();
    // Sends headers and 3 of the 1000 bytes it announced: 408 after the
    // request timeout (15 s).
    let mut slow = std::net::TcpStream::connect(&addr).unwrap();
    slow.write_all(
        b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 1000\r\n\r\nabc",
    )
    .unwrap();
    let silent = std::thread::spawn(move || read_until_closed(silent));
    let slow = std::thread::spawn(move || read_until_closed(slow));
    // Meanwhile others are served.
    let (status, _) = post(&agent(), &server.url, "", "image/png", &drawn(&f.data, 1));
    assert_eq!(status, 200);
    let (answer, waited) = silent.join().unwrap();
    assert_eq!(answer, "");
    assert!(
        waited >= Duration::from_secs(9) && waited < Duration::from_secs(30),
        "{waited:?}"
    );
    let (answer, waited) = slow.join().unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"error\""), "{answer}");
    assert!(
        waited >= Duration::from_secs(14) && waited < Duration::from_secs(40),
        "{waited:?}"
    );
}

#[test]
fn another_host_than_loopback_is_warned_about() {
    let f = fixture();
    let server = Server::start(&f.model, &["--host", "0.0.0.0"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.stderr().contains("not a loopback address") {
        assert!(Instant::now() < deadline, "no warning: {}", server.stderr());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(server.url.starts_with("http://127.0.0.1:"), "{}", server.url);
    assert_eq!(get(&agent(), &format!("{}healthz", server.url)).0, 200);
}

#[test]
fn a_model_that_is_not_a_28x28_classifier_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    backprop_tests::Synthetic::default().write_dir(&data, false);
    let model = dir.path().join("small.ckpt");
    let out = serve_common::backprop(&[
        "train",
        "--data",
        data.to_str().unwrap(),
        "--layers",
        "64,8,10",
        "--epochs",
        "1",
        "--save",
        model.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = serve_common::backprop(&["serve", model.to_str().unwrap(), "--port", "0"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("takes 64 inputs") && !err.contains("panicked"), "{err}");
    let out = serve_common::backprop(&["serve", "/no/such/model.ckpt", "--port", "0"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/model.ckpt"));
}

/// Copies `from` over `to` as `backprop train --save` does: a temporary file
/// beside it, renamed over it.
fn replace_atomically(from: &Path, to: &Path) {
    let tmp = to.with_extension("tmp");
    std::fs::copy(from, &tmp).unwrap();
    std::fs::rename(&tmp, to).unwrap();
}

#[test]
fn watch_reloads_a_changed_checkpoint_and_keeps_the_old_one_when_the_new_is_bad() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let served = dir.path().join("served.ckpt");
    std::fs::copy(&f.model, &served).unwrap();
    let server = Server::start(&served, &["--watch"]);
    let agent = agent();
    let index = 5;
    let image = drawn(&f.data, index);
    let (status, json) = post(&agent, &server.url, "", "image/png", &image);
    assert_eq!(status, 200);
    let before = assert_answer(&json);
    assert_eq!(before, predict_index(&f.model, &f.data, index));
    assert_eq!(json["generation"], 1);

    // The shifted model, trained on the same images with labels plus one.
    let expected = predict_index(&f.shifted_model, &f.shifted_data, index);
    assert_ne!(expected, before);
    replace_atomically(&f.shifted_model, &served);
    let deadline = Instant::now() + Duration::from_secs(20);
    let after = loop {
        let (status, json) = post(&agent, &server.url, "", "image/png", &image);
        assert_eq!(status, 200);
        if json["generation"] == 2 {
            break assert_answer(&json);
        }
        assert!(Instant::now() < deadline, "not reloaded: {}", server.stderr());
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(after, expected);
    assert!(server.stderr().contains("reloaded"), "{}", server.stderr());

    // A damaged checkpoint (cut short) is refused; the model stays.
    let bytes = std::fs::read(&f.model).unwrap();
    let damaged = dir.path().join("damaged.ckpt");
    std::fs::write(&damaged, &bytes[..bytes.len() / 2]).unwrap();
    replace_atomically(&damaged, &served);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !server.stderr().contains("keeping the model loaded before") {
        assert!(Instant::now() < deadline, "no warning: {}", server.stderr());
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, json) = post(&agent, &server.url, "", "image/png", &image);
    assert_eq!(status, 200);
    assert_eq!(json["generation"], 2);
    assert_eq!(assert_answer(&json), expected);
}

/// Percentile `q` (0-1) of sorted `values`.
fn percentile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// The load test: 2,000 predictions from 16 concurrent clients on loopback,
/// no errors; prints p50/p99 latency and the server's peak RSS. Run in
/// release for the figures in BENCHMARKS.md:
/// `cargo test --release -p backprop-cli --test serve -- --ignored --nocapture load`
/// (with `SERVE_LOAD_DATA=DIR SERVE_LOAD_MODEL=FILE` for another data set and
/// model than the synthetic digits).
#[test]
#[ignore = "load test: run on its own, in release, for BENCHMARKS.md"]
fn load_2000_predictions_from_16_clients() {
    const CLIENTS: usize = 16;
    const REQUESTS: usize = 2000;
    let dir = tempfile::tempdir().unwrap();
    let (data, model) = match (
        std::env::var_os("SERVE_LOAD_DATA"),
        std::env::var_os("SERVE_LOAD_MODEL"),
    ) {
        // MNIST and a model trained on it, say.
        (Some(data), Some(model)) => (PathBuf::from(data), PathBuf::from(model)),
        _ => {
            let data = fixture().data.clone();
            let model = dir.path().join("seed.ckpt");
            // The seed recipe's shape.
            let out = serve_common::backprop(&[
                "train",
                "--data",
                data.to_str().unwrap(),
                "--epochs",
                "2",
                "--save",
                model.to_str().unwrap(),
            ]);
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            (data, model)
        }
    };
    let server = Server::start(&model, &[]);
    // Test images drawn as the page sends them: 280x280 PNGs.
    let bodies: Vec<Vec<u8>> = (0..20).map(|i| drawn(&data, i)).collect();
    let start = Instant::now();
    let latencies: Vec<Duration> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let (url, bodies) = (&server.url, &bodies);
                scope.spawn(move || {
                    let agent = agent();
                    (0..REQUESTS / CLIENTS)
                        .map(|i| {
                            let body = &bodies[(c + i) % bodies.len()];
                            let t = Instant::now();
                            let (status, json) = post(&agent, url, "", "image/png", body);
                            let elapsed = t.elapsed();
                            assert_eq!(status, 200, "{json}");
                            elapsed
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let wall = start.elapsed();
    let mut sorted = latencies.clone();
    sorted.sort();
    assert_eq!(sorted.len(), REQUESTS);
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid())).unwrap_or_default();
    let hwm = status
        .lines()
        .find(|l| l.starts_with("VmHWM"))
        .unwrap_or("VmHWM: unknown")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let (_, json) = post(&agent(), &server.url, "", "image/png", &bodies[0]);
    println!(
        "{REQUESTS} requests, {CLIENTS} clients, {:.2} s ({:.0} requests/s): p50 {:.2} ms, p99 {:.2} ms, \
         max {:.2} ms; server {hwm}; inference {:.1} us; {} cpus",
        wall.as_secs_f64(),
        REQUESTS as f64 / wall.as_secs_f64(),
        percentile(&sorted, 0.5).as_secs_f64() * 1e3,
        percentile(&sorted, 0.99).as_secs_f64() * 1e3,
        sorted[sorted.len() - 1].as_secs_f64() * 1e3,
        json["inference_us"].as_f64().unwrap_or(f64::NAN),
        std::thread::available_parallelism().map_or(1, usize::from),
    );
}
