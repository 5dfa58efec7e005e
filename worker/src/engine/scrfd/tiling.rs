//! Which pixels go through the network: the photo at its own resolution, padded
//! bottom/right to a multiple of 32, or — above the size cap — overlapping full-resolution
//! tiles. Downscaling would lose the back-row faces (20–48 px) a classroom photo has.

/// Feature maps halve five times: the input sides must be multiples of this.
pub const ALIGN: u32 = 32;

/// Rounds `n` up to a multiple of [`ALIGN`].
pub fn aligned(n: u32) -> u32 {
    n.div_ceil(ALIGN) * ALIGN
}

/// One network input: the photo's pixels `[x, x + w) × [y, y + h)`, and the part of the
/// photo this tile answers for: a face belongs to the tile whose `own` rectangle
/// (`[x1, y1, x2, y2)`) holds its centre, so each face is reported once, by the tile that
/// sees it whole (as long as it is no larger than the overlap).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tile {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
    pub own: [f32; 4],
}

/// Start positions and owned ranges of tiles of length `tile` covering `len` with at
/// least `overlap` shared between neighbours.
fn spans(len: u32, tile: u32, overlap: u32) -> Vec<(u32, u32, f32, f32)> {
    if len <= tile {
        return vec![(0, len, f32::NEG_INFINITY, f32::INFINITY)];
    }
    let step = tile - overlap;
    let count = (len - tile).div_ceil(step) as usize + 1;
    // Spread the tiles evenly so that every overlap is at least `overlap`.
    let starts: Vec<u32> = (0..count)
        .map(|i| ((len - tile) as u64 * i as u64 / (count - 1) as u64) as u32)
        .collect();
    (0..count)
        .map(|i| {
            let start = starts[i];
            // The photo's own borders are open-ended: a face's box may reach past them.
            let own_start = if i == 0 {
                f32::NEG_INFINITY
            } else {
                (start + starts[i - 1] + tile) as f32 / 2.0
            };
            let own_end = if i + 1 == count {
                f32::INFINITY
            } else {
                (starts[i + 1] + start + tile) as f32 / 2.0
            };
            (start, tile, own_start, own_end)
        })
        .collect()
}

/// The tiles for a `width × height` photo: one when its long side is at most `max_side`,
/// else a grid of `max_side`-sized tiles (rounded down to a multiple of 32) overlapping by
/// `overlap` of a tile.
pub fn plan(width: u32, height: u32, max_side: u32, overlap: f32) -> Vec<Tile> {
    if width.max(height) <= max_side {
        return vec![Tile {
            x: 0,
            y: 0,
            w: width,
            h: height,
            own: [
                f32::NEG_INFINITY,
                f32::NEG_INFINITY,
                f32::INFINITY,
                f32::INFINITY,
            ],
        }];
    }
    let tile = (max_side / ALIGN).max(2) * ALIGN;
    let shared = ((tile as f32 * overlap).ceil() as u32).clamp(1, tile - 1);
    let (xs, ys) = (spans(width, tile, shared), spans(height, tile, shared));
    ys.iter()
        .flat_map(|&(y, h, oy1, oy2)| {
            xs.iter().map(move |&(x, w, ox1, ox2)| Tile {
                x,
                y,
                w,
                h,
                own: [ox1, oy1, ox2, oy2],
            })
        })
        .collect()
}

impl Tile {
    /// Whether a point of the photo is in the part this tile answers for.
    pub fn owns(&self, [x, y]: [f32; 2]) -> bool {
        x >= self.own[0] && x < self.own[2] && y >= self.own[1] && y < self.own[3]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_round_up_to_multiples_of_32() {
        assert_eq!(aligned(1366), 1376);
        assert_eq!(aligned(768), 768);
        assert_eq!(aligned(1), 32);
    }

    #[test]
    fn a_photo_under_the_cap_is_one_tile_at_full_size() {
        let tiles = plan(2000, 1125, 2048, 0.25);
        assert_eq!(tiles.len(), 1);
        assert_eq!((tiles[0].w, tiles[0].h), (2000, 1125));
    }

    #[test]
    fn tiles_cover_a_large_photo_overlap_and_own_every_pixel_once() {
        let (w, h) = (5000u32, 3000u32);
        let tiles = plan(w, h, 2048, 0.25);
        assert!(tiles.len() > 1);
        for t in &tiles {
            assert!(t.w <= 2048 && t.h <= 2048 && t.x + t.w <= w && t.y + t.h <= h);
        }
        // Every sample point is owned by exactly one tile, and lies inside that tile at
        // least 256 px (half the 512-px overlap) from any edge shared with another tile.
        for py in (0..h).step_by(37) {
            for px in (0..w).step_by(41) {
                let p = [px as f32 + 0.5, py as f32 + 0.5];
                let owners: Vec<_> = tiles.iter().filter(|t| t.owns(p)).collect();
                assert_eq!(owners.len(), 1, "point {p:?}");
                let t = owners[0];
                let inner = |d: f32, at_border: bool| at_border || d >= 256.0;
                assert!(inner(p[0] - t.x as f32, t.x == 0));
                assert!(inner(p[1] - t.y as f32, t.y == 0));
                assert!(inner((t.x + t.w) as f32 - p[0], t.x + t.w == w));
                assert!(inner((t.y + t.h) as f32 - p[1], t.y + t.h == h));
            }
        }
    }
}
