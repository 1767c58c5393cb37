//! The 8x8 DCT of T.81 A.3.3, in floating point. Only the few blocks under the mark go through
//! it, so a plain separable transform is fast enough, and float keeps a block that is decoded
//! and re-encoded without change bit-identical after re-quantisation.

use std::sync::OnceLock;

/// `BASIS[u][x] = C(u)/2 * cos((2x+1)uπ/16)`: the orthonormal 1-D DCT-II matrix.
fn basis() -> &'static [[f32; 8]; 8] {
    static BASIS: OnceLock<[[f32; 8]; 8]> = OnceLock::new();
    BASIS.get_or_init(|| {
        let mut m = [[0f32; 8]; 8];
        for (u, row) in m.iter_mut().enumerate() {
            let c = if u == 0 {
                std::f64::consts::FRAC_1_SQRT_2
            } else {
                1.0
            };
            for (x, v) in row.iter_mut().enumerate() {
                let angle = (2 * x + 1) as f64 * u as f64 * std::f64::consts::PI / 16.0;
                *v = (c / 2.0 * angle.cos()) as f32;
            }
        }
        m
    })
}

/// Inverse DCT: dequantised coefficients (natural order) to level-shifted samples
/// (`sample - 128`), row-major.
pub(crate) fn inverse(coef: &[f32; 64]) -> [f32; 64] {
    let b = basis();
    // Rows of coefficients to rows of samples along x, then columns along y.
    let mut tmp = [0f32; 64];
    for v in 0..8 {
        for x in 0..8 {
            tmp[v * 8 + x] = (0..8).map(|u| b[u][x] * coef[v * 8 + u]).sum();
        }
    }
    let mut out = [0f32; 64];
    for y in 0..8 {
        for x in 0..8 {
            out[y * 8 + x] = (0..8).map(|v| b[v][y] * tmp[v * 8 + x]).sum();
        }
    }
    out
}

/// Forward DCT: level-shifted samples (row-major) to coefficients (natural order).
pub(crate) fn forward(samples: &[f32; 64]) -> [f32; 64] {
    let b = basis();
    let mut tmp = [0f32; 64];
    for y in 0..8 {
        for u in 0..8 {
            tmp[y * 8 + u] = (0..8).map(|x| b[u][x] * samples[y * 8 + x]).sum();
        }
    }
    let mut out = [0f32; 64];
    for v in 0..8 {
        for u in 0..8 {
            out[v * 8 + u] = (0..8).map(|y| b[v][y] * tmp[y * 8 + u]).sum();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_then_inverse_is_the_identity() {
        let samples: [f32; 64] = std::array::from_fn(|i| ((i * 37) % 255) as f32 - 128.0);
        let back = inverse(&forward(&samples));
        for (a, b) in samples.iter().zip(back.iter()) {
            assert!((a - b).abs() < 1e-3, "{a} vs {b}");
        }
    }

    #[test]
    fn a_flat_block_has_only_dc_of_eight_times_the_level() {
        let coef = forward(&[10.0; 64]);
        assert!((coef[0] - 80.0).abs() < 1e-3);
        assert!(coef[1..].iter().all(|c| c.abs() < 1e-3));
    }
}
