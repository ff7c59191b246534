//! The page, embedded in the binary: one HTML file, its stylesheet and its
//! script, written by hand (no framework, no CDN, no build step).

/// `GET /`.
pub(crate) const INDEX_HTML: &str = include_str!("assets/index.html");

/// `GET /app.js`.
pub(crate) const APP_JS: &str = include_str!("assets/app.js");

/// `GET /app.css`.
pub(crate) const APP_CSS: &str = include_str!("assets/app.css");
