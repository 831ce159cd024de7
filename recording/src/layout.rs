//! The room composite's grid: where each video goes on the canvas. A pure function of how many
//! videos there are, so the picture re-lays itself as people join, leave, publish and unpublish.

/// The composite's canvas: 1280x720.
pub const CANVAS: (u32, u32) = (1280, 720);

/// One video's place on the canvas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tile {
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// Width (even, as 4:2:0 video needs).
    pub w: u32,
    /// Height (even).
    pub h: u32,
}

/// The grid for `n` videos on `canvas`: as square as the count allows, each row centred (so
/// a lone last row sits in the middle), tiles of equal size.
pub fn grid(n: usize, canvas: (u32, u32)) -> Vec<Tile> {
    if n == 0 {
        return Vec::new();
    }
    let n = n as u32;
    let cols = (1..=n).find(|c| c * c >= n).unwrap_or(n);
    let rows = n.div_ceil(cols);
    let even = |v: u32| v & !1;
    let (w, h) = (even(canvas.0 / cols), even(canvas.1 / rows));
    let top = (canvas.1 - h * rows) / 2;
    (0..n)
        .map(|i| {
            let (row, col) = (i / cols, i % cols);
            let in_row = (n - row * cols).min(cols);
            let left = (canvas.0 - w * in_row) / 2;
            Tile {
                x: even(left + col * w),
                y: even(top + row * h),
                w,
                h,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_video_fills_the_canvas() {
        assert_eq!(
            grid(1, CANVAS),
            vec![Tile {
                x: 0,
                y: 0,
                w: 1280,
                h: 720
            }]
        );
        assert!(grid(0, CANVAS).is_empty());
    }

    #[test]
    fn two_videos_sit_side_by_side_and_three_leave_the_last_one_centred() {
        let two = grid(2, CANVAS);
        assert_eq!(
            two[0],
            Tile {
                x: 0,
                y: 0,
                w: 640,
                h: 720
            }
        );
        assert_eq!(
            two[1],
            Tile {
                x: 640,
                y: 0,
                w: 640,
                h: 720
            }
        );
        let three = grid(3, CANVAS);
        assert_eq!(
            three[0],
            Tile {
                x: 0,
                y: 0,
                w: 640,
                h: 360
            }
        );
        assert_eq!(
            three[1],
            Tile {
                x: 640,
                y: 0,
                w: 640,
                h: 360
            }
        );
        assert_eq!(
            three[2],
            Tile {
                x: 320,
                y: 360,
                w: 640,
                h: 360
            },
            "centred"
        );
    }

    #[test]
    fn tiles_never_overlap_or_leave_the_canvas() {
        for n in 1..=25 {
            let tiles = grid(n, CANVAS);
            assert_eq!(tiles.len(), n);
            for (i, a) in tiles.iter().enumerate() {
                assert!(a.x + a.w <= CANVAS.0 && a.y + a.h <= CANVAS.1, "{n}: {a:?}");
                assert!(a.w % 2 == 0 && a.h % 2 == 0 && a.x % 2 == 0 && a.y % 2 == 0);
                for b in &tiles[i + 1..] {
                    let apart = a.x + a.w <= b.x
                        || b.x + b.w <= a.x
                        || a.y + a.h <= b.y
                        || b.y + b.h <= a.y;
                    assert!(apart, "{n}: {a:?} overlaps {b:?}");
                }
            }
        }
    }
}
