//! The routes: the page and its assets, `POST /api/predict`,
//! `GET /api/model`, `GET /healthz`; every error a JSON `{"error": ...}`.

use super::model::{Served, Summary};
use super::page;
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use backprop_data::{DIGIT_PIXELS, DataError, MAX_IMAGE_PIXELS, Preprocessed};
use http_body_util::BodyExt;
use serde::Serialize;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// The longest request body accepted: 4 MB. A drawing sent as PNG is a few
/// kilobytes; a photo of a digit should be scaled down first.
pub(crate) const MAX_BODY_BYTES: usize = 4 << 20;

/// How much of a body over [`MAX_BODY_BYTES`] is read and thrown away
/// before the 413 goes out, so that a client still sending sees the answer
/// rather than a reset connection; past this (or when Content-Length says
/// more) the 413 goes out at once and the connection is closed.
pub(crate) const MAX_DRAIN_BYTES: u64 = 64 << 20;

/// The longest a request may take, body upload included: 408 after.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// Content types `POST /api/predict` decodes as an image file (the format is
/// then taken from the content).
const IMAGE_TYPES: [&str; 6] = [
    "image/png",
    "image/jpeg",
    "image/x-portable-anymap",
    "image/x-portable-graymap",
    "image/x-portable-pixmap",
    "image/x-portable-bitmap",
];

/// What the handlers share.
#[derive(Clone)]
pub(crate) struct AppState {
    /// The model answering now; `--watch` swaps it whole.
    pub(crate) served: Arc<RwLock<Arc<Served>>>,
    /// One permit per CPU: bounds decodes and inferences running at once.
    pub(crate) cpu: Arc<Semaphore>,
}

impl AppState {
    /// The model answering now (a cheap clone of an `Arc`; a reload swaps
    /// the `Arc` under the lock, so a request sees one model throughout).
    pub(crate) fn current(&self) -> Arc<Served> {
        match self.served.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }
}

/// An error answer: a status and a message, sent as `{"error": message}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(ErrorBody { error: &self.message })).into_response();
        if self.status == StatusCode::PAYLOAD_TOO_LARGE || self.status == StatusCode::REQUEST_TIMEOUT {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

/// The router with every route and the request deadline.
pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/app.js", get(script))
        .route("/app.css", get(style))
        .route("/healthz", get(healthz))
        .route("/api/model", get(model_summary))
        .route("/api/predict", post(predict))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        .layer(middleware::from_fn(deadline))
        .layer(middleware::from_fn(security_headers))
}

/// Answers 408 when a request takes longer than [`REQUEST_TIMEOUT`].
async fn deadline(request: Request, next: Next) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            format!("the request took longer than {} s", REQUEST_TIMEOUT.as_secs()),
        )
        .into_response(),
    }
}

/// Nothing is loaded from elsewhere, nothing is sniffed, nothing is framed.
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; \
             frame-ancestors 'none'",
        ),
    );
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

async fn index() -> Response {
    asset("text/html; charset=utf-8", page::INDEX_HTML)
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", page::APP_JS)
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", page::APP_CSS)
}

async fn healthz() -> Response {
    asset("text/plain; charset=utf-8", "ok\n")
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such page")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed here")
}

async fn model_summary(State(state): State<AppState>) -> axum::Json<Summary> {
    axum::Json(state.current().summary.clone())
}

/// `POST /api/predict`'s answer.
#[derive(Serialize)]
pub(crate) struct PredictResponse {
    /// The most probable class.
    predicted: usize,
    /// Its name.
    class_name: String,
    /// One probability per class, summing to 1.
    probabilities: Vec<f32>,
    /// What the network saw: 28x28 bytes, row-major, ink bright.
    input_28x28: Vec<u8>,
    /// Whether the picture had a light background and was inverted.
    inverted: bool,
    /// Which load of the model answered (see `GET /api/model`).
    generation: u64,
    /// Time spent on inference alone, in microseconds.
    inference_us: f64,
}

/// The body's kind, from its Content-Type.
enum BodyKind {
    /// An image file (PNG, JPEG, PNM).
    Image,
    /// Raw 8-bit grey pixels, `width x height` of them.
    Raw { width: usize, height: usize },
}

async fn predict(State(state): State<AppState>, request: Request) -> Result<axum::Json<PredictResponse>, ApiError> {
    let (parts, body) = request.into_parts();
    let kind = body_kind(&parts.headers, parts.uri.query())?;
    let bytes = read_body(&parts.headers, body).await?;
    let permit = Arc::clone(&state.cpu)
        .acquire_owned()
        .await
        .map_err(|_| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the server is shutting down"))?;
    let served = state.current();
    let work = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        classify(&served, kind, &bytes)
    });
    match work.await {
        Ok(result) => result.map(axum::Json),
        Err(_) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the prediction failed unexpectedly",
        )),
    }
}

/// The body's kind from its Content-Type (and, for raw pixels, the
/// `width` and `height` query parameters).
fn body_kind(headers: &HeaderMap, query: Option<&str>) -> Result<BodyKind, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if IMAGE_TYPES.contains(&media.as_str()) {
        return Ok(BodyKind::Image);
    }
    if media != "application/octet-stream" {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "Content-Type {content_type:?} is not accepted: send an image ({}) or raw 8-bit grey \
                 pixels as application/octet-stream with ?width=W&height=H",
                IMAGE_TYPES.join(", ")
            ),
        ));
    }
    let (mut width, mut height) = (None, None);
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let slot = match key {
            "width" => &mut width,
            "height" => &mut height,
            _ => continue,
        };
        let n: usize = value.parse().ok().filter(|&n| n > 0).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("{key}={value:?}: expected a whole number of pixels above 0"),
            )
        })?;
        *slot = Some(n);
    }
    let (Some(width), Some(height)) = (width, height) else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "raw pixels (application/octet-stream) need ?width=W&height=H",
        ));
    };
    let pixels = (width as u64).saturating_mul(height as u64);
    if pixels > MAX_IMAGE_PIXELS {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("{width}x{height} = {pixels} pixels, more than the {MAX_IMAGE_PIXELS} accepted"),
        ));
    }
    Ok(BodyKind::Raw { width, height })
}

fn too_large(bytes: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the body holds {bytes} bytes or more, more than the {MAX_BODY_BYTES} accepted"),
    )
}

/// The whole body, at most [`MAX_BODY_BYTES`] (413 beyond, the rest drained
/// up to [`MAX_DRAIN_BYTES`]).
async fn read_body(headers: &HeaderMap, mut body: Body) -> Result<Vec<u8>, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(n) = declared.filter(|&n| n > MAX_DRAIN_BYTES) {
        return Err(too_large(n));
    }
    let mut bytes = Vec::new();
    let mut seen: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|err| ApiError::new(StatusCode::BAD_REQUEST, format!("cannot read the body: {err}")))?;
        let Ok(data) = frame.into_data() else { continue };
        seen += data.len() as u64;
        if seen > MAX_DRAIN_BYTES {
            return Err(too_large(seen));
        }
        if seen <= MAX_BODY_BYTES as u64 {
            bytes.extend_from_slice(&data);
        } else {
            bytes = Vec::new();
        }
    }
    if seen > MAX_BODY_BYTES as u64 {
        return Err(too_large(seen));
    }
    if bytes.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "the body is empty: send a drawing",
        ));
    }
    Ok(bytes)
}

/// Decodes, preprocesses (as `backprop predict` does) and classifies.
fn classify(served: &Served, kind: BodyKind, bytes: &[u8]) -> Result<PredictResponse, ApiError> {
    let digit = match kind {
        BodyKind::Image => backprop_data::decode_digit_image(bytes, "request body").map_err(image_error)?,
        BodyKind::Raw { width, height } => {
            if bytes.len() != width * height {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "{width}x{height} raw pixels are {} bytes, but the body holds {}",
                        width * height,
                        bytes.len()
                    ),
                ));
            }
            backprop_data::preprocess_digit(width, height, bytes).map_err(image_error)?
        }
    };
    answer(served, &digit)
}

/// The status for a failed decode or preprocessing.
fn image_error(err: DataError) -> ApiError {
    let status = match &err {
        DataError::ImageTooLarge { .. } | DataError::ImageFileTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        DataError::NoDigit { .. } | DataError::BlankImage { .. } | DataError::EmptyImage { .. } => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        _ => StatusCode::BAD_REQUEST,
    };
    let message = match &err {
        DataError::NoDigit { .. } | DataError::BlankImage { .. } | DataError::EmptyImage { .. } => {
            "no digit found: the drawing is blank".to_owned()
        }
        _ => err.to_string(),
    };
    ApiError::new(status, message)
}

fn answer(served: &Served, digit: &Preprocessed) -> Result<PredictResponse, ApiError> {
    let start = Instant::now();
    let probabilities = served
        .probabilities(&digit.pixels)
        .map_err(|err| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("{err:#}")))?;
    let inference_us = start.elapsed().as_secs_f64() * 1e6;
    let mut predicted = 0;
    for (i, &p) in probabilities.iter().enumerate() {
        if p > probabilities[predicted] {
            predicted = i;
        }
    }
    debug_assert_eq!(digit.pixels.len(), DIGIT_PIXELS);
    Ok(PredictResponse {
        predicted,
        class_name: served
            .classes
            .get(predicted)
            .cloned()
            .unwrap_or_else(|| predicted.to_string()),
        probabilities,
        input_28x28: digit.pixels.to_vec(),
        inverted: digit.inverted,
        generation: served.summary.generation,
        inference_us,
    })
}
