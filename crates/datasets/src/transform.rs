//! Image transforms for the rotated-digit study.

/// Intensity-weighted centre (row, col) of a `side` x `side` image; the geometric centre when
/// the image is blank.
pub fn centre_of_mass(pixels: &[f32], side: usize) -> (f64, f64) {
    let (mut m, mut r, mut c) = (0.0f64, 0.0f64, 0.0f64);
    for (i, &v) in pixels.iter().enumerate() {
        let v = f64::from(v);
        m += v;
        r += v * (i / side) as f64;
        c += v * (i % side) as f64;
    }
    if m <= 0.0 {
        let mid = (side as f64 - 1.0) / 2.0;
        return (mid, mid);
    }
    (r / m, c / m)
}

/// Rotates a `side` x `side` image by `degrees` (counter-clockwise as displayed, rows going down)
/// about its centre of mass, so the digit stays where it was; bilinear interpolation, zero
/// outside the image.
pub fn rotate(pixels: &[f32], side: usize, degrees: f64) -> Vec<f32> {
    let (cr, cc) = centre_of_mass(pixels, side);
    let (s, c) = degrees.to_radians().sin_cos();
    let at = |r: i64, col: i64| -> f64 {
        if r < 0 || col < 0 || r >= side as i64 || col >= side as i64 {
            0.0
        } else {
            f64::from(pixels[r as usize * side + col as usize])
        }
    };
    let mut out = vec![0f32; side * side];
    for (i, o) in out.iter_mut().enumerate() {
        let (y, x) = ((i / side) as f64 - cr, (i % side) as f64 - cc);
        // Inverse map: the source point that lands on (y, x). With rows pointing down, a
        // counter-clockwise turn on screen is (x, y) -> (x cos + y sin, -x sin + y cos).
        let sx = x * c - y * s + cc;
        let sy = x * s + y * c + cr;
        let (r0, c0) = (sy.floor(), sx.floor());
        let (fr, fc) = (sy - r0, sx - c0);
        let (r0, c0) = (r0 as i64, c0 as i64);
        let v = at(r0, c0) * (1.0 - fr) * (1.0 - fc)
            + at(r0, c0 + 1) * (1.0 - fr) * fc
            + at(r0 + 1, c0) * fr * (1.0 - fc)
            + at(r0 + 1, c0 + 1) * fr * fc;
        *o = v as f32;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A vertical stroke (a crude "1") with soft edges, like a pen stroke, centred in 28 x 28.
    fn bar() -> Vec<f32> {
        let mut img = vec![0f32; 28 * 28];
        for r in 0..28 {
            for c in 0..28 {
                let across = (c as f64 - 13.5) / 1.2;
                let along = ((r as f64 - 13.5).abs() - 7.0).max(0.0) / 1.2;
                img[r * 28 + c] = (-0.5 * (across * across + along * along)).exp() as f32;
            }
        }
        img
    }

    #[test]
    fn zero_degrees_is_the_identity() {
        let img = bar();
        assert_eq!(rotate(&img, 28, 0.0), img);
    }

    #[test]
    fn rotation_keeps_mass_and_centre() {
        let img = bar();
        let mass: f32 = img.iter().sum();
        let centre = centre_of_mass(&img, 28);
        for deg in [15.0, 45.0, 90.0, 127.0] {
            let out = rotate(&img, 28, deg);
            let m: f32 = out.iter().sum();
            assert!((m - mass).abs() / mass < 0.01, "{deg}: mass {m} vs {mass}");
            let (r, c) = centre_of_mass(&out, 28);
            assert!(
                (r - centre.0).abs() < 0.1 && (c - centre.1).abs() < 0.1,
                "{deg}: centre ({r}, {c}) vs {centre:?}"
            );
        }
    }

    #[test]
    fn ninety_degrees_turns_a_vertical_bar_horizontal() {
        let out = rotate(&bar(), 28, 90.0);
        let (mut rows, mut cols) = (
            std::collections::BTreeSet::new(),
            std::collections::BTreeSet::new(),
        );
        for (i, &v) in out.iter().enumerate() {
            if v > 0.6 {
                rows.insert(i / 28);
                cols.insert(i % 28);
            }
        }
        assert!(
            rows.len() <= 3 && cols.len() >= 14,
            "rows {rows:?} cols {cols:?}"
        );
    }
}
