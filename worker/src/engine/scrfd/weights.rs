//! SCRFD-500M's weights as typed layers, independent of the runtime that executes them
//! (the CPU NHWC layers in [`super::net_cpu`], candle-nn in [`super::net`]).
//!
//! Architecture (batch-norm folded into every convolution by the ONNX export):
//! - backbone: 3×3/2 stem + ReLU, then 14 depthwise-separable blocks (3×3 depthwise +
//!   ReLU, 1×1 pointwise + ReLU); the outputs at strides 8, 16 and 32 feed the neck;
//! - neck (PAFPN, no activations): 1×1 laterals, top-down nearest ×2 upsampling + add,
//!   3×3 FPN convs, bottom-up 3×3/2 downsampling + add, 3×3 PAFPN convs;
//! - one head per stride: depthwise-separable ×2 with ReLU, then 3×3 convs for the score
//!   (2 anchors), the box (2×4) and the keypoints (2×10), fused here into one 30-channel conv.

/// A convolution with bias, square kernel, equal padding on all sides.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvWeights {
    /// `(c_out, c_in / groups, k, k)` row-major.
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    pub c_out: usize,
    pub c_in: usize,
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
    pub groups: usize,
}

impl ConvWeights {
    pub fn is_depthwise(&self) -> bool {
        self.groups > 1 && self.groups == self.c_in && self.groups == self.c_out
    }

    /// `(c_out, c_in / groups, k, k)`.
    pub fn shape(&self) -> [usize; 4] {
        [self.c_out, self.c_in / self.groups, self.k, self.k]
    }

    /// Several convolutions over the same input stacked along the output channels.
    pub fn stack(parts: &[&ConvWeights]) -> ConvWeights {
        let first = parts[0];
        let mut out = ConvWeights {
            weight: Vec::new(),
            bias: Vec::new(),
            c_out: 0,
            ..first.clone()
        };
        for p in parts {
            debug_assert_eq!(
                (p.c_in, p.k, p.stride, p.pad, p.groups),
                (first.c_in, first.k, first.stride, first.pad, 1)
            );
            out.weight.extend_from_slice(&p.weight);
            out.bias.extend_from_slice(&p.bias);
            out.c_out += p.c_out;
        }
        out
    }
}

/// Depthwise 3×3 + ReLU, then pointwise 1×1 + ReLU.
#[derive(Debug, Clone, PartialEq)]
pub struct SeparableWeights {
    pub depthwise: ConvWeights,
    pub pointwise: ConvWeights,
}

/// One stride's head: two separable blocks, then the fused output conv whose 30 channels
/// per cell are `score[2]`, `bbox[2×4]`, `kps[2×10]` (anchor-major within each).
#[derive(Debug, Clone, PartialEq)]
pub struct HeadWeights {
    pub tower: [SeparableWeights; 2],
    pub out: ConvWeights,
}

/// Output channels of a head's fused conv.
pub const HEAD_CHANNELS: usize = 30;

#[derive(Debug, Clone, PartialEq)]
pub struct ScrfdWeights {
    pub stem: ConvWeights,
    pub blocks: Vec<SeparableWeights>,
    /// Index into `blocks` of the block whose output is the stride-8, 16 and 32 feature.
    pub taps: [usize; 3],
    pub lateral: [ConvWeights; 3],
    pub fpn: [ConvWeights; 3],
    pub downsample: [ConvWeights; 2],
    pub pafpn: [ConvWeights; 2],
    /// Heads for strides 8, 16, 32.
    pub heads: [HeadWeights; 3],
}

/// The strides of the three heads.
pub const STRIDES: [usize; 3] = [8, 16, 32];
