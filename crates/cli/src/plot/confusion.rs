//! The confusion matrix as a heatmap: rows are the true class, columns the
//! predicted one, and each cell holds its count. The diagonal is shaded
//! blue by the share of its row (the class's recall); the errors red, on
//! their own scale up to the largest error count, so that they stand out
//! beside diagonals a hundred times larger.

use super::{Drawn, Picture, font, shorten, text_width};
use anyhow::{Result, bail};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Class names longer than this are shortened on the axes.
const MAX_NAME: usize = 18;

/// The confusion-matrix picture.
pub(crate) struct Confusion {
    title: String,
    /// `counts[true][predicted]`.
    counts: Vec<Vec<usize>>,
    names: Vec<String>,
    cell: u32,
    /// Left and bottom margins, for the class names.
    margin: (u32, u32),
    /// Whether the column names are turned (when any is long).
    vertical: bool,
}

impl Confusion {
    /// A heatmap of `counts[true][predicted]`, its axes labelled with
    /// `classes` when there is one name per class, else class numbers.
    pub(crate) fn new(title: String, counts: Vec<Vec<usize>>, classes: &[String]) -> Result<Confusion> {
        let n = counts.len();
        if n == 0 || counts.iter().any(|row| row.len() != n) {
            bail!("the confusion matrix is not square");
        }
        let names: Vec<String> = if classes.len() == n {
            classes.iter().map(|c| shorten(c, MAX_NAME)).collect()
        } else {
            (0..n).map(|c| c.to_string()).collect()
        };
        let cell = (640 / n as u32).clamp(14, 64);
        let longest = names.iter().map(|s| text_width(s, label_size(cell))).max().unwrap_or(1);
        // Room for the row names and the axis title; the column names are
        // written vertically when long.
        let vertical = names.iter().any(|s| s.chars().count() > 3);
        let left = 50 + longest;
        let bottom = if vertical { 60 + longest } else { 70 };
        Ok(Confusion {
            title,
            counts,
            names,
            cell,
            margin: (left, bottom),
            vertical,
        })
    }

    fn n(&self) -> u32 {
        self.counts.len() as u32
    }
}

/// The size of the class names, for cells of `cell` pixels.
fn label_size(cell: u32) -> f64 {
    f64::from(cell).clamp(14.0, 28.0) * 0.45 + 5.0
}

/// From near white to `to`, for a share in [0, 1].
fn shade(share: f64, to: (f64, f64, f64)) -> RGBColor {
    let t = share.clamp(0.0, 1.0).sqrt();
    let mix = |a: f64, b: f64| (a + (b - a) * t).round() as u8;
    RGBColor(mix(250.0, to.0), mix(250.0, to.1), mix(250.0, to.2))
}

/// The diagonal's colour at full share.
const BLUE: (f64, f64, f64) = (8.0, 48.0, 107.0);
/// The errors' colour at the largest error.
const RED: (f64, f64, f64) = (178.0, 24.0, 43.0);

const TOP: u32 = 66;
const TITLE: f64 = 22.0;
/// The key to the colours, under the title.
const NOTE: &str = "blue: share of the true class predicted right; red: errors, darkest the most frequent";
const RIGHT: u32 = 30;

impl Picture for Confusion {
    fn size(&self) -> (u32, u32) {
        let side = self.n() * self.cell;
        let width = (self.margin.0 + side + RIGHT)
            .max(text_width(&self.title, TITLE) + 40)
            .max(text_width(NOTE, 13.0) + 40);
        (width, TOP + side + self.margin.1)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let (n, cell) = (self.n() as i32, self.cell as i32);
        let side = n * cell;
        let (w, _) = self.size();
        // The grid, centred when the title makes the picture wider.
        let spare = w as i32 - (self.margin.0 as i32 + side + RIGHT as i32);
        let (x0, y0) = (self.margin.0 as i32 + spare / 2, TOP as i32);
        let centre = Pos::new(HPos::Center, VPos::Center);
        root.draw(&Text::new(
            self.title.as_str(),
            (w as i32 / 2, 22),
            font(TITLE).pos(centre),
        ))
        .drawn()?;
        root.draw(&Text::new(
            NOTE,
            (w as i32 / 2, 44),
            font(13.0).color(&RGBColor(90, 90, 90)).pos(centre),
        ))
        .drawn()?;
        let value_size = f64::from(cell) * 0.36;
        let errors = self
            .counts
            .iter()
            .enumerate()
            .flat_map(|(t, row)| row.iter().enumerate().filter(move |(p, _)| *p != t).map(|(_, &c)| c));
        let max_error = errors.max().unwrap_or(0).max(1) as f64;
        for (t, row) in self.counts.iter().enumerate() {
            let total: usize = row.iter().sum();
            for (p, &count) in row.iter().enumerate() {
                let share = match (t == p, total) {
                    (true, 0) => 0.0,
                    (true, _) => count as f64 / total as f64,
                    (false, _) => count as f64 / max_error,
                };
                let fill = shade(share, if t == p { BLUE } else { RED });
                let (x, y) = (x0 + p as i32 * cell, y0 + t as i32 * cell);
                root.draw(&Rectangle::new([(x, y), (x + cell, y + cell)], fill.filled()))
                    .drawn()?;
                if cell >= 20 {
                    // Zeros recede, so that the errors stand out.
                    let ink = match (count, share > 0.45) {
                        (0, _) => RGBColor(190, 190, 190),
                        (_, true) => WHITE,
                        (_, false) => BLACK,
                    };
                    let label = count.to_string();
                    let size = value_size.min(1.6 * f64::from(cell) / label.len() as f64);
                    root.draw(&Text::new(
                        label,
                        (x + cell / 2, y + cell / 2),
                        font(size).color(&ink).pos(centre),
                    ))
                    .drawn()?;
                }
            }
        }
        root.draw(&Rectangle::new(
            [(x0, y0), (x0 + side, y0 + side)],
            RGBColor(120, 120, 120),
        ))
        .drawn()?;
        let label_size = label_size(self.cell);
        let vertical = self.vertical;
        for (i, name) in self.names.iter().enumerate() {
            let mid = i as i32 * cell + cell / 2;
            // Row names, right-aligned left of the grid.
            root.draw(&Text::new(
                name.as_str(),
                (x0 - 8, y0 + mid),
                font(label_size).pos(Pos::new(HPos::Right, VPos::Center)),
            ))
            .drawn()?;
            // Column names under the grid, turned when long.
            let style = if vertical {
                font(label_size)
                    .transform(FontTransform::Rotate270)
                    .pos(Pos::new(HPos::Right, VPos::Center))
            } else {
                font(label_size).pos(Pos::new(HPos::Center, VPos::Top))
            };
            root.draw(&Text::new(name.as_str(), (x0 + mid, y0 + side + 8), style))
                .drawn()?;
        }
        let (_, h) = self.size();
        root.draw(&Text::new(
            "predicted class",
            (x0 + side / 2, h as i32 - 20),
            font(17.0).pos(centre),
        ))
        .drawn()?;
        root.draw(&Text::new(
            "true class",
            (spare / 2 + 18, y0 + side / 2),
            font(17.0).transform(FontTransform::Rotate270).pos(centre),
        ))
        .drawn()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fall_back_on_numbers_and_shades_darken() {
        let c = Confusion::new("t".into(), vec![vec![1, 0], vec![0, 1]], &[]).unwrap();
        assert_eq!(c.names, ["0", "1"]);
        let c = Confusion::new("t".into(), vec![vec![1, 0], vec![0, 1]], &["a".into(), "b".into()]).unwrap();
        assert_eq!(c.names, ["a", "b"]);
        assert!(Confusion::new("t".into(), vec![vec![1, 0]], &[]).is_err());
        assert!(shade(1.0, BLUE).0 < shade(0.1, BLUE).0 && shade(0.0, RED) == RGBColor(250, 250, 250));
    }
}
