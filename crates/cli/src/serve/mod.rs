//! `backprop serve MODEL`: a local web page on which to draw a digit and
//! watch the network answer, and the JSON API behind it.
//!
//! - [`server`]: the listener, the connection loop and its bounds.
//! - [`api`]: the routes (`POST /api/predict`, `GET /api/model`,
//!   `GET /healthz`, the page) and their errors.
//! - [`model`]: the served model (a checkpoint loaded and checked) and its
//!   summary.
//! - [`page`]: the page's HTML, CSS and JavaScript, embedded in the binary
//!   (no CDN, no build step).
//! - [`watch`]: `--watch`, reloading the checkpoint when its file changes.
//!
//! What bounds the server, so that no request can make it panic, hang or
//! grow without limit:
//!
//! - **Connections**: at most [`server::MAX_CONNECTIONS`] at once (a
//!   semaphore in the accept loop; more wait in the kernel's backlog); each
//!   must send its request headers within [`server::HEADER_TIMEOUT`]
//!   (hyper's header-read timer, which also closes idle keep-alive
//!   connections) and lives at most [`server::CONNECTION_LIFETIME`].
//! - **Requests**: each is answered within [`api::REQUEST_TIMEOUT`] (body
//!   upload included) or gets 408; a body is read up to
//!   [`api::MAX_BODY_BYTES`] (4 MB), and a longer one gets 413 (after being
//!   drained up to [`api::MAX_DRAIN_BYTES`], so the client sees the answer).
//! - **CPU and memory**: decoding, preprocessing and inference run on
//!   tokio's blocking pool under a semaphore of one permit per CPU, so at
//!   most that many images are decoded at once, each within the limits of
//!   [`backprop_data::decode_digit_image`] (50 million pixels); inference of
//!   one 28x28 image takes microseconds.
//! - **Failures**: every error is a 4xx or 5xx with a JSON body
//!   `{"error": "..."}`; a panic in the blocking work becomes a 500.

pub(crate) mod api;
pub(crate) mod model;
pub(crate) mod page;
pub(crate) mod server;
pub(crate) mod watch;

use crate::args::ServeArgs;
use anyhow::Result;

/// `backprop serve`: load the model, listen, print the URL, serve until
/// interrupted.
pub(crate) fn run(args: ServeArgs) -> Result<()> {
    server::run(args)
}
