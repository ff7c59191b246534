//! Training curves: the loss per epoch on the left, accuracy (or R²) on the
//! right when the history has it, each with labelled axes and a legend.

use super::history::{History, Score, Series};
use super::{Drawn, Picture, font};
use anyhow::{Result, bail};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::ops::Range;

/// The training-curves picture.
pub(crate) struct Curves {
    history: History,
    size: (u32, u32),
}

impl Curves {
    /// A picture of `history`, `size` pixels wide and high.
    pub(crate) fn new(history: History, size: (u32, u32)) -> Result<Curves> {
        let panels = if history.score.is_empty() { 1 } else { 2 };
        if size.0 < 200 * panels || size.1 < 150 {
            bail!(
                "a {}x{} picture is too small for {panels} panel(s): at least {}x150",
                size.0,
                size.1,
                200 * panels
            );
        }
        Ok(Curves { history, size })
    }
}

impl Picture for Curves {
    fn size(&self) -> (u32, u32) {
        self.size
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let h = &self.history;
        let body = root.titled(&h.title, font(22.0)).drawn()?;
        if h.score.is_empty() {
            panel(&body, "Loss", h.loss_label, &h.loss, None, true)?;
        } else {
            let (left, right) = body.split_horizontally(self.size.0 / 2);
            panel(&left, "Loss", h.loss_label, &h.loss, None, true)?;
            let (title, label, bounds) = match h.score_kind {
                Score::Accuracy => ("Accuracy", "accuracy (%)", Some(0.0..100.0)),
                Score::R2 => ("R²", "R²", Some(f64::NEG_INFINITY..1.0)),
            };
            panel(&right, title, label, &h.score, bounds, false)?;
        }
        Ok(())
    }
}

/// The colour of a curve, by the split it measures.
fn colour(name: &str) -> RGBColor {
    if name.starts_with("train") {
        RGBColor(31, 119, 180) // blue
    } else if name.starts_with("validation") {
        RGBColor(255, 127, 14) // orange
    } else {
        RGBColor(214, 39, 40) // red
    }
}

/// The epochs `series` spans, padded so that one epoch still has width.
fn x_range(series: &[Series]) -> Range<f64> {
    let xs = series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let (lo, hi) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| (lo.min(x), hi.max(x)));
    if hi > lo { lo..hi } else { lo - 1.0..hi + 1.0 }
}

/// The value range of `series`: from zero for a loss, else the data's range
/// padded by a tenth and kept within `bounds`.
fn y_range(series: &[Series], from_zero: bool, bounds: Option<Range<f64>>) -> Range<f64> {
    let ys = series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
    let (lo, hi) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), y| (lo.min(y), hi.max(y)));
    if from_zero && lo >= 0.0 {
        return 0.0..if hi > 0.0 { hi * 1.08 } else { 1.0 };
    }
    let pad = ((hi - lo) * 0.1).max(hi.abs().max(lo.abs()) * 0.005).max(1e-3);
    let (mut lo, mut hi) = (lo - pad, hi + pad);
    if let Some(b) = bounds {
        lo = lo.max(b.start);
        hi = hi.min(b.end).max(lo + pad);
    }
    lo..hi
}

/// One panel: `series` against the epoch, with axes, a caption and a legend.
fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    caption: &str,
    y_label: &str,
    series: &[Series],
    bounds: Option<Range<f64>>,
    is_loss: bool,
) -> Result<()> {
    let xs = x_range(series);
    let n_epochs = (xs.end - xs.start).round() as usize + 1;
    let mut chart = ChartBuilder::on(area)
        .caption(caption, font(18.0))
        .margin(12)
        .x_label_area_size(42)
        .y_label_area_size(64)
        .build_cartesian_2d(xs, y_range(series, is_loss, bounds))
        .drawn()?;
    let whole = |x: &f64| {
        if (x - x.round()).abs() < 1e-9 {
            format!("{x:.0}")
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc(y_label)
        .x_labels(n_epochs.clamp(2, 11))
        .x_label_formatter(&whole)
        .axis_desc_style(font(15.0))
        .label_style(font(13.0))
        .light_line_style(TRANSPARENT)
        .bold_line_style(RGBColor(225, 225, 225))
        .draw()
        .drawn()?;
    for s in series {
        let c = colour(s.name);
        // Validation is drawn thinner, under the test curve it often follows.
        let style = c.stroke_width(if s.name.starts_with("validation") { 2 } else { 3 });
        chart
            .draw_series(LineSeries::new(s.points.iter().copied(), style))
            .drawn()?
            .label(s.name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(3)));
        if s.points.len() <= 40 {
            chart
                .draw_series(s.points.iter().map(|&p| Circle::new(p, 3, c.filled())))
                .drawn()?;
        }
    }
    chart
        .configure_series_labels()
        .position(if is_loss {
            SeriesLabelPosition::UpperRight
        } else {
            SeriesLabelPosition::LowerRight
        })
        .label_font(font(14.0))
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(160, 160, 160))
        .draw()
        .drawn()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(points: &[(f64, f64)]) -> Vec<Series> {
        vec![Series {
            name: "test loss",
            points: points.to_vec(),
        }]
    }

    #[test]
    fn ranges_cover_the_data() {
        assert_eq!(x_range(&s(&[(3.0, 1.0)])), 2.0..4.0);
        assert_eq!(x_range(&s(&[(1.0, 1.0), (5.0, 0.5)])), 1.0..5.0);
        let y = y_range(&s(&[(1.0, 0.5), (2.0, 0.1)]), true, None);
        assert_eq!(y.start, 0.0);
        assert!(y.end > 0.5);
        let y = y_range(&s(&[(1.0, 97.0), (2.0, 99.9)]), false, Some(0.0..100.0));
        assert!(y.start < 97.0 && y.start > 90.0 && y.end == 100.0, "{y:?}");
        let y = y_range(&s(&[(1.0, -2.0), (2.0, 0.5)]), false, Some(f64::NEG_INFINITY..1.0));
        assert!(y.start < -2.0 && y.end <= 1.0 && y.end > 0.5, "{y:?}");
    }
}
