//! Aligned 150×150 face chips → the network's input: `(pixel − mean RGB) / 256`, as
//! NHWC maps for the CPU layers or an NCHW tensor for candle-nn's.

use candle_core::{DType, Device, Tensor};
use image::RgbImage;

use crate::engine::dlib::face_chip::CHIP_SIZE;
use crate::engine::nhwc;
use crate::engine::{EngineError, Result};

/// `(n, 150, 150, 3)` NHWC float32, normalised as in [`input_tensor`].
pub(super) fn input_maps(chips: &[RgbImage], avg_rgb: &[f32; 3]) -> Result<nhwc::Maps> {
    let s = CHIP_SIZE as usize;
    // From the buffer pool, and back to it after the forward pass (8 MB for 30 faces).
    let mut data = nhwc::buffers::scratch(chips.len() * s * s * 3);
    for (i, (chip, out)) in chips
        .iter()
        .zip(data.chunks_exact_mut(s * s * 3))
        .enumerate()
    {
        check_chip(i, chip)?;
        let means = avg_rgb.iter().cycle();
        for (o, (v, mean)) in out.iter_mut().zip(chip.as_raw().iter().zip(means)) {
            *o = (f32::from(*v) - mean) / 256.0;
        }
    }
    Ok(nhwc::Maps {
        n: chips.len(),
        h: s,
        w: s,
        c: 3,
        data,
    })
}

/// `(n, 3, 150, 150)` float32: `(R − 122.782)/256`, etc., channels R, G, B.
pub(super) fn input_tensor(
    chips: &[RgbImage],
    avg_rgb: &[f32; 3],
    device: &Device,
) -> Result<Tensor> {
    let s = CHIP_SIZE as usize;
    let mut raw = Vec::with_capacity(chips.len() * s * s * 3);
    for (i, chip) in chips.iter().enumerate() {
        check_chip(i, chip)?;
        raw.extend_from_slice(chip.as_raw());
    }
    let mean = Tensor::from_slice(avg_rgb, (1, 3, 1, 1), device)?;
    let x = Tensor::from_vec(raw, (chips.len(), s, s, 3), device)?
        .to_dtype(DType::F32)?
        .permute((0, 3, 1, 2))?
        .contiguous()?
        .broadcast_sub(&mean)?;
    Ok((x / 256.0)?)
}

fn check_chip(i: usize, chip: &RgbImage) -> Result<()> {
    if chip.dimensions() != (CHIP_SIZE, CHIP_SIZE) {
        return Err(EngineError::Invalid(format!(
            "chip {i} is {:?}, expected {CHIP_SIZE}x{CHIP_SIZE}",
            chip.dimensions()
        )));
    }
    Ok(())
}
