//! A grid of test images, each upscaled and captioned with its true class,
//! the network's (wrong) prediction and the probability it gave it.

use super::{Drawn, Picture, font, shorten, text_width};
use anyhow::{Result, bail};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// One image of the gallery.
pub(crate) struct Tile {
    /// Position in the test set.
    pub(crate) index: usize,
    /// Grey levels, row by row, 0 black (as IDX stores them, light on dark).
    pub(crate) pixels: Vec<u8>,
    /// The true class's name.
    pub(crate) label: String,
    /// The predicted class's name.
    pub(crate) predicted: String,
    /// The probability given to `predicted`.
    pub(crate) probability: f64,
}

/// The gallery picture.
pub(crate) struct Gallery {
    title: String,
    tiles: Vec<Tile>,
    /// Image rows and columns.
    shape: (usize, usize),
    columns: u32,
    scale: u32,
}

const TOP: u32 = 54;
const CAPTION: u32 = 46;
const GAP: u32 = 14;

impl Gallery {
    /// A grid of `tiles`, each `shape` (rows, columns) pixels.
    pub(crate) fn new(title: String, tiles: Vec<Tile>, shape: (usize, usize)) -> Result<Gallery> {
        if tiles.is_empty() {
            bail!("no test image is misclassified: the gallery would be empty");
        }
        if shape.0 == 0 || shape.1 == 0 || tiles.iter().any(|t| t.pixels.len() != shape.0 * shape.1) {
            bail!("the images are not {}x{}", shape.0, shape.1);
        }
        let columns = (tiles.len() as f64).sqrt().ceil().clamp(1.0, 8.0) as u32;
        // About 112 px per image (MNIST's 28 px times 4).
        let scale = (112 / shape.0.max(shape.1) as u32).max(1);
        Ok(Gallery {
            title,
            tiles,
            shape,
            columns,
            scale,
        })
    }

    /// A tile's width and height, caption included.
    fn tile(&self) -> (u32, u32) {
        let w = (self.shape.1 as u32 * self.scale).max(160);
        (w, self.shape.0 as u32 * self.scale + CAPTION)
    }
}

impl Picture for Gallery {
    fn size(&self) -> (u32, u32) {
        let (tw, th) = self.tile();
        let rows = (self.tiles.len() as u32).div_ceil(self.columns);
        let width = (GAP + self.columns * (tw + GAP)).max(text_width(&self.title, 20.0) + 40);
        (width, TOP + rows * (th + GAP))
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let (w, _) = self.size();
        let (tw, th) = self.tile();
        let s = self.scale as i32;
        let (img_w, img_h) = (self.shape.1 as i32 * s, self.shape.0 as i32 * s);
        root.draw(&Text::new(
            self.title.as_str(),
            (w as i32 / 2, 24),
            font(20.0).pos(Pos::new(HPos::Center, VPos::Center)),
        ))
        .drawn()?;
        for (k, tile) in self.tiles.iter().enumerate() {
            let (col, row) = (k as u32 % self.columns, k as u32 / self.columns);
            let x = (w - self.columns * (tw + GAP) + GAP) as i32 / 2 + (col * (tw + GAP)) as i32;
            let y = (TOP + row * (th + GAP)) as i32;
            let left = x + (tw as i32 - img_w) / 2;
            root.draw(&Rectangle::new([(left, y), (left + img_w, y + img_h)], BLACK.filled()))
                .drawn()?;
            for (i, &v) in tile.pixels.iter().enumerate() {
                if v == 0 {
                    continue;
                }
                let (r, c) = ((i / self.shape.1) as i32, (i % self.shape.1) as i32);
                let (px, py) = (left + c * s, y + r * s);
                root.draw(&Rectangle::new(
                    [(px, py), (px + s, py + s)],
                    RGBColor(v, v, v).filled(),
                ))
                .drawn()?;
            }
            let mid = x + tw as i32 / 2;
            let top = Pos::new(HPos::Center, VPos::Top);
            let first = format!(
                "true {} → predicted {}",
                shorten(&tile.label, 8),
                shorten(&tile.predicted, 8)
            );
            root.draw(&Text::new(first, (mid, y + img_h + 5), font(14.0).pos(top)))
                .drawn()?;
            let second = format!("p = {:.1}%  (#{})", 100.0 * tile.probability, tile.index);
            let red = RGBColor(200, 30, 30);
            root.draw(&Text::new(
                second,
                (mid, y + img_h + 24),
                font(14.0).color(&red).pos(top),
            ))
            .drawn()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tile(n: usize) -> Tile {
        Tile {
            index: 0,
            pixels: vec![9; n],
            label: "1".into(),
            predicted: "7".into(),
            probability: 0.9,
        }
    }

    #[test]
    fn grid_is_near_square_and_checks_shapes() {
        let g = Gallery::new("t".into(), (0..10).map(|_| tile(784)).collect(), (28, 28)).unwrap();
        assert_eq!((g.columns, g.scale), (4, 4));
        let (w, h) = g.size();
        assert_eq!(w, GAP + 4 * (160 + GAP));
        assert_eq!(h, TOP + 3 * (112 + CAPTION + GAP));
        assert!(Gallery::new("t".into(), vec![tile(783)], (28, 28)).is_err());
        assert!(Gallery::new("t".into(), Vec::new(), (28, 28)).is_err());
    }
}
