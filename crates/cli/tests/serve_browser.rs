//! `backprop serve` in a real browser: headless Chromium driven through
//! chromedriver (WebDriver) with fantoccini draws a test digit on the page
//! with pointer actions, one stroke per run of ink in each row, and the page
//! must show the class `backprop predict --index` gives, with ten bars whose
//! probabilities sum to 1. Saves a screenshot.
//!
//! Needs `chromium` and `chromedriver` on the PATH (Debian: `apt-get install
//! chromium chromium-driver`); built only with the `browser-test` feature:
//! `cargo test -p backprop-cli --features browser-test --test serve_browser`
//! (`.ci/run` does this). `SERVE_SCREENSHOT=PATH` saves the screenshot there
//! too.

mod serve_common;

use fantoccini::actions::{InputSource, MOUSE_BUTTON_LEFT, MouseActions, PointerAction};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serve_common::{Server, predict_index, test_image, train, write_digits};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The test image drawn, unless `SERVE_BROWSER_INDEX` says otherwise.
const INDEX: usize = 0;

/// chromedriver, killed when dropped.
struct Chromedriver(Child);

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts chromedriver on a free port; `(process, URL)` once it answers.
fn start_chromedriver() -> (Chromedriver, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver: install chromium and chromium-driver (Debian) first");
    let driver = Chromedriver(child);
    let url = format!("http://127.0.0.1:{port}");
    let agent = serve_common::agent();
    let deadline = Instant::now() + Duration::from_secs(30);
    while agent.get(format!("{url}/status")).call().is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    (driver, url)
}

/// The capabilities: headless Chromium with a fresh profile, nothing
/// fetched from the network.
fn capabilities(profile: &Path) -> serde_json::Map<String, serde_json::Value> {
    let mut args = vec![
        "--headless".to_owned(),
        "--no-sandbox".to_owned(),
        "--disable-gpu".to_owned(),
        "--disable-dev-shm-usage".to_owned(),
        "--disable-background-networking".to_owned(),
        "--disable-component-update".to_owned(),
        "--disable-sync".to_owned(),
        "--no-first-run".to_owned(),
        "--window-size=1200,760".to_owned(),
        format!("--user-data-dir={}", profile.display()),
    ];
    args.push("--force-device-scale-factor=1".to_owned());
    let mut options = serde_json::json!({ "args": args });
    if Path::new("/usr/bin/chromium").exists() {
        options["binary"] = "/usr/bin/chromium".into();
    }
    let mut caps = serde_json::Map::new();
    caps.insert("goog:chromeOptions".to_owned(), options);
    caps
}

/// Text of the element with `id`.
async fn text(client: &Client, id: &str) -> String {
    client
        .find(Locator::Id(id))
        .await
        .expect(id)
        .text()
        .await
        .expect("text")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_digit_drawn_in_chromium_gets_the_class_predict_gives() {
    let dir = tempfile::tempdir().unwrap();
    let (data, model) = match (
        std::env::var_os("SERVE_BROWSER_DATA"),
        std::env::var_os("SERVE_BROWSER_MODEL"),
    ) {
        (Some(data), Some(model)) => (data.into(), model.into()),
        _ => {
            let data = dir.path().join("digits");
            let model = dir.path().join("digits.ckpt");
            write_digits(&data, 0);
            train(&data, &model);
            (data, model)
        }
    };
    let index = std::env::var("SERVE_BROWSER_INDEX")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(INDEX);
    let expected = predict_index(&model, &data, index);
    let server = Server::start(&model, &[]);
    let (_driver, driver_url) = start_chromedriver();
    let profile = dir.path().join("profile");
    let client = ClientBuilder::new(HttpConnector::new())
        .capabilities(capabilities(&profile))
        .connect(&driver_url)
        .await
        .expect("a WebDriver session");
    let result = drive(&client, &server, &data, index, expected).await;
    let _ = client.close().await;
    result.unwrap_or_else(|err| panic!("{err}; server stderr: {}", server.stderr()));
}

async fn drive(client: &Client, server: &Server, data: &Path, index: usize, expected: usize) -> Result<(), String> {
    let e = |what: &str| {
        let what = what.to_owned();
        move |err: fantoccini::error::CmdError| format!("{what}: {err}")
    };
    client.goto(&server.url).await.map_err(e("open the page"))?;
    let pad = client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Id("pad"))
        .await
        .map_err(e("find the canvas"))?;
    // The side panel has loaded the model.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !text(client, "m-arch").await.starts_with("784-") {
        if Instant::now() > deadline {
            return Err("the model panel did not load".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // One stroke per run of ink in each row of the 28x28 image, on the
    // 280x280 canvas (offsets from its centre).
    let pixels = test_image(data, index);
    let pixels = pixels.as_slice();
    let at = |v: usize| (10 * v + 5) as f64 - 140.0;
    let mut mouse = MouseActions::new("mouse".to_owned());
    let mut strokes = 0;
    for y in 0..28 {
        let mut x = 0;
        while x < 28 {
            if pixels[y * 28 + x] < 128 {
                x += 1;
                continue;
            }
            let start = x;
            while x < 28 && pixels[y * 28 + x] >= 128 {
                x += 1;
            }
            let end = x - 1;
            let to = |x: usize| PointerAction::MoveToElement {
                element: pad.clone(),
                duration: Some(Duration::from_millis(5)),
                x: at(x),
                y: at(y),
            };
            mouse = mouse
                .then(to(start))
                .then(PointerAction::Down {
                    button: MOUSE_BUTTON_LEFT,
                })
                .then(to(end))
                .then(PointerAction::Up {
                    button: MOUSE_BUTTON_LEFT,
                });
            strokes += 1;
        }
    }
    if strokes == 0 {
        return Err("the test image has no ink".into());
    }
    client.perform_actions(mouse).await.map_err(e("draw"))?;

    // Wait until the page has answered and is idle.
    let status = client.find(Locator::Id("status")).await.map_err(e("status"))?;
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut idle_checks = 0;
    while idle_checks < 3 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let state = status.attr("data-state").await.map_err(e("state"))?;
        let answered = status.attr("data-predictions").await.map_err(e("count"))?;
        let answered: usize = answered.and_then(|v| v.parse().ok()).unwrap_or(0);
        if state.as_deref() == Some("idle") && answered > 0 {
            idle_checks += 1;
        } else {
            idle_checks = 0;
        }
        if Instant::now() > deadline {
            return Err(format!("no answer: {}", status.text().await.unwrap_or_default()));
        }
    }

    let shown = text(client, "predicted").await;
    let bars = client.find_all(Locator::Css("#bars li")).await.map_err(e("bars"))?;
    let mut probabilities = Vec::new();
    for bar in &bars {
        let p = bar.attr("data-p").await.map_err(e("data-p"))?.unwrap_or_default();
        probabilities.push(p.parse::<f64>().map_err(|err| format!("data-p {p:?}: {err}"))?);
    }
    let screenshot = client.screenshot().await.map_err(e("screenshot"))?;
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("serve-browser.png");
    std::fs::write(&path, &screenshot).map_err(|err| err.to_string())?;
    if let Ok(extra) = std::env::var("SERVE_SCREENSHOT") {
        std::fs::write(&extra, &screenshot).map_err(|err| format!("{extra}: {err}"))?;
    }
    println!(
        "drew test image {index} in {strokes} strokes; the page shows {shown}, expected {expected}; \
         probabilities {probabilities:?}; screenshot {}",
        path.display()
    );
    if shown != expected.to_string() {
        return Err(format!("the page shows {shown:?}, expected {expected}"));
    }
    if probabilities.len() != 10 {
        return Err(format!("{} bars, expected 10", probabilities.len()));
    }
    let sum: f64 = probabilities.iter().sum();
    if (sum - 1.0).abs() > 1e-4 {
        return Err(format!("the probabilities sum to {sum}: {probabilities:?}"));
    }
    let best = (0..10)
        .max_by(|&a, &b| probabilities[a].total_cmp(&probabilities[b]))
        .unwrap_or(0);
    if best != expected {
        return Err(format!("the longest bar is {best}, expected {expected}"));
    }

    // An image file through the file picker: the test image dark on light,
    // which the page sends as it is; it gets the class `backprop predict
    // FILE` gives.
    let mut paper = serve_common::upscale(pixels, 10);
    image::imageops::invert(&mut paper);
    let file = std::env::temp_dir().join(format!("serve-browser-{}.png", std::process::id()));
    std::fs::write(&file, serve_common::png(&paper)).map_err(|err| err.to_string())?;
    let out = serve_common::backprop(&["predict", &server.model, file.to_str().unwrap_or(""), "--json"]);
    let cli: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|err| format!("predict FILE: {err}"))?;
    let before = status.attr("data-predictions").await.map_err(e("count"))?;
    client
        .find(Locator::Id("file"))
        .await
        .map_err(e("the file picker"))?
        .send_keys(file.to_str().unwrap_or(""))
        .await
        .map_err(e("choose a file"))?;
    let deadline = Instant::now() + Duration::from_secs(15);
    while status.attr("data-predictions").await.map_err(e("count"))? == before {
        if Instant::now() > deadline {
            return Err(format!(
                "no answer to the file: {}",
                status.text().await.unwrap_or_default()
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = std::fs::remove_file(&file);
    let shown = text(client, "predicted").await;
    let cli_class = cli["predicted"].as_u64().map(|c| c.to_string()).unwrap_or_default();
    println!("opened a dark-on-light PNG of it: the page shows {shown}, `backprop predict FILE` {cli_class}");
    if shown != cli_class {
        return Err(format!(
            "the page shows {shown:?} for the file, predict FILE gives {cli_class}"
        ));
    }
    Ok(())
}
