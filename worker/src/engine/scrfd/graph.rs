//! Maps the ONNX graph of `scrfd_500m_bnkps.onnx` onto [`ScrfdWeights`] by following its
//! data flow: the backbone chain from the input, the neck and head convolutions by their
//! initializer names, the head towers backwards from each head's outputs. Any other
//! wiring (or another model) is a format error, not a silently different network.

use std::path::Path;

use super::weights::{ConvWeights, HeadWeights, STRIDES, ScrfdWeights, SeparableWeights};
use crate::engine::onnx::{Node, OnnxError, OnnxModel};
use crate::engine::{EngineError, Result};

/// Reads the model file and builds its layers.
pub fn load_weights(path: &Path) -> Result<ScrfdWeights> {
    let model = OnnxModel::load(path)?;
    Graph { model: &model }.weights()
}

struct Graph<'a> {
    model: &'a OnnxModel,
}

impl Graph<'_> {
    fn format(&self, reason: impl Into<String>) -> EngineError {
        EngineError::Format {
            path: self.model.path().to_path_buf(),
            reason: format!("not SCRFD-500M's graph: {}", reason.into()),
        }
    }

    fn onnx(&self, e: OnnxError) -> EngineError {
        self.model.error(e)
    }

    /// The node computing `tensor`.
    fn producer(&self, tensor: &str) -> Result<&Node> {
        self.model
            .nodes
            .iter()
            .find(|n| n.outputs.iter().any(|o| o == tensor))
            .ok_or_else(|| self.format(format!("nothing computes {tensor:?}")))
    }

    /// Convolutions reading `tensor` whose weights are not the neck's.
    fn backbone_convs(&self, tensor: &str) -> Vec<&Node> {
        self.model
            .nodes
            .iter()
            .filter(|n| n.op_type == "Conv" && n.inputs.first().is_some_and(|i| i == tensor))
            .filter(|n| !n.inputs.get(1).is_some_and(|w| w.starts_with("neck.")))
            .collect()
    }

    /// The output of the single ReLU applied to `node`'s output.
    fn relu_after(&self, node: &Node) -> Result<String> {
        let out = &node.outputs[0];
        self.model
            .nodes
            .iter()
            .find(|n| n.op_type == "Relu" && n.inputs.first() == Some(out))
            .map(|n| n.outputs[0].clone())
            .ok_or_else(|| self.format(format!("no ReLU after {:?}", node.name)))
    }

    /// The convolution whose weight initializer is `weight`.
    fn conv_named(&self, weight: &str) -> Result<&Node> {
        self.model
            .nodes
            .iter()
            .find(|n| n.op_type == "Conv" && n.inputs.get(1).is_some_and(|w| w == weight))
            .ok_or_else(|| self.format(format!("no convolution with weight {weight:?}")))
    }

    /// The convolution that `tensor` is the ReLU of.
    fn conv_before_relu(&self, tensor: &str) -> Result<&Node> {
        let relu = self.producer(tensor)?;
        if relu.op_type != "Relu" {
            return Err(self.format(format!("{tensor:?} is not a ReLU output")));
        }
        let conv = self.producer(&relu.inputs[0])?;
        if conv.op_type != "Conv" {
            return Err(self.format(format!("no convolution before {tensor:?}")));
        }
        Ok(conv)
    }

    /// A Conv node's weights, bias and geometry (square kernel, equal padding, no dilation).
    fn conv(&self, node: &Node) -> Result<ConvWeights> {
        let [_, w, b] = node.inputs.as_slice() else {
            return Err(self.format(format!("conv {:?} without bias", node.name)));
        };
        let (weight, bias) = (
            self.model.f32_initializer(w)?,
            self.model.f32_initializer(b)?,
        );
        let ints = |name: &str| -> Result<Vec<i64>> {
            Ok(node
                .ints(name)
                .map_err(|e| self.onnx(e))?
                .map(<[i64]>::to_vec)
                .unwrap_or_default())
        };
        let groups = node.int_or("group", 1).map_err(|e| self.onnx(e))? as usize;
        let (kernel, strides, pads, dilations) = (
            ints("kernel_shape")?,
            ints("strides")?,
            ints("pads")?,
            ints("dilations")?,
        );
        let &[c_out, c_in_per_group, kh, kw] = weight.dims.as_slice() else {
            return Err(self.format(format!("conv weight {w:?} is not 4-D")));
        };
        let uniform = |v: &[i64], n: usize, default: i64| {
            let v = if v.is_empty() {
                vec![default; n]
            } else {
                v.to_vec()
            };
            (v.len() == n && v.iter().all(|&x| x == v[0] && x >= 0)).then_some(v[0] as usize)
        };
        let geometry = (
            uniform(&kernel, 2, kh as i64),
            uniform(&strides, 2, 1),
            uniform(&pads, 4, 0),
            uniform(&dilations, 2, 1),
        );
        let (Some(k), Some(stride), Some(pad), Some(1)) = geometry else {
            return Err(self.format(format!(
                "conv {:?}: kernel {kernel:?}, strides {strides:?}, pads {pads:?}, dilations \
                 {dilations:?} (square kernels, equal padding and no dilation expected)",
                node.name
            )));
        };
        if k != kh || k != kw || bias.dims != [c_out] || groups == 0 || c_out % groups != 0 {
            return Err(self.format(format!(
                "conv {:?}: weight {:?}, bias {:?}, group {groups}",
                node.name, weight.dims, bias.dims
            )));
        }
        Ok(ConvWeights {
            weight: weight.data.clone(),
            bias: bias.data.clone(),
            c_out,
            c_in: c_in_per_group * groups,
            k,
            stride,
            pad,
            groups,
        })
    }

    fn separable(&self, depthwise: &Node, pointwise: &Node) -> Result<SeparableWeights> {
        let (depthwise, pointwise) = (self.conv(depthwise)?, self.conv(pointwise)?);
        if !depthwise.is_depthwise() || pointwise.k != 1 || pointwise.c_in != depthwise.c_out {
            return Err(self.format(format!(
                "separable block {:?} then {:?}",
                depthwise.shape(),
                pointwise.shape()
            )));
        }
        Ok(SeparableWeights {
            depthwise,
            pointwise,
        })
    }

    fn named(&self, prefix: &str, i: usize) -> Result<ConvWeights> {
        self.conv(self.conv_named(&format!("neck.{prefix}.{i}.conv.weight"))?)
    }

    fn weights(&self) -> Result<ScrfdWeights> {
        let input = self
            .model
            .inputs
            .first()
            .ok_or_else(|| self.format("no graph input"))?;
        let [stem] = self.backbone_convs(&input.name)[..] else {
            return Err(self.format("the input does not feed one stem convolution"));
        };
        let mut tensor = self.relu_after(stem)?;
        let (mut blocks, mut block_outputs) = (Vec::new(), Vec::new());
        // Depthwise-separable blocks until only the neck reads the feature map.
        while let [depthwise] = self.backbone_convs(&tensor)[..] {
            let mid = self.relu_after(depthwise)?;
            let [pointwise] = self.backbone_convs(&mid)[..] else {
                return Err(self.format(format!("no pointwise conv after {:?}", depthwise.name)));
            };
            blocks.push(self.separable(depthwise, pointwise)?);
            tensor = self.relu_after(pointwise)?;
            block_outputs.push(tensor.clone());
        }
        let mut taps = [0; 3];
        for (i, tap) in taps.iter_mut().enumerate() {
            let lateral = self.conv_named(&format!("neck.lateral_convs.{i}.conv.weight"))?;
            *tap = block_outputs
                .iter()
                .position(|t| Some(t) == lateral.inputs.first())
                .ok_or_else(|| {
                    self.format(format!("lateral conv {i} does not read the backbone"))
                })?;
        }
        if taps[0] >= taps[1] || taps[1] >= taps[2] {
            return Err(self.format(format!("backbone taps {taps:?} out of order")));
        }
        // Each head's input, by the neck conv that computes it.
        let levels = [
            self.conv_named("neck.fpn_convs.0.conv.weight")?,
            self.conv_named("neck.pafpn_convs.0.conv.weight")?,
            self.conv_named("neck.pafpn_convs.1.conv.weight")?,
        ];
        let head = |i: usize| -> Result<HeadWeights> {
            let s = STRIDES[i];
            let part =
                |kind: &str| self.conv_named(&format!("bbox_head.stride_{kind}.({s}, {s}).weight"));
            let (cls, reg, kps) = (part("cls")?, part("reg")?, part("kps")?);
            let tower_out = &cls.inputs[0];
            if reg.inputs[0] != *tower_out || kps.inputs[0] != *tower_out {
                return Err(self.format(format!("stride {s}: heads read different maps")));
            }
            let pw2 = self.conv_before_relu(tower_out)?;
            let dw2 = self.conv_before_relu(&pw2.inputs[0])?;
            let pw1 = self.conv_before_relu(&dw2.inputs[0])?;
            let dw1 = self.conv_before_relu(&pw1.inputs[0])?;
            if dw1.inputs[0] != levels[i].outputs[0] {
                return Err(self.format(format!("stride {s}: head does not read its neck level")));
            }
            let (cls, reg, kps) = (self.conv(cls)?, self.conv(reg)?, self.conv(kps)?);
            if (cls.c_out, reg.c_out, kps.c_out) != (2, 8, 20) {
                return Err(self.format(format!(
                    "stride {s}: outputs {} + {} + {} channels, expected 2 + 8 + 20",
                    cls.c_out, reg.c_out, kps.c_out
                )));
            }
            Ok(HeadWeights {
                tower: [self.separable(dw1, pw1)?, self.separable(dw2, pw2)?],
                out: ConvWeights::stack(&[&cls, &reg, &kps]),
            })
        };
        Ok(ScrfdWeights {
            stem: self.conv(stem)?,
            blocks,
            taps,
            lateral: [
                self.named("lateral_convs", 0)?,
                self.named("lateral_convs", 1)?,
                self.named("lateral_convs", 2)?,
            ],
            fpn: [
                self.named("fpn_convs", 0)?,
                self.named("fpn_convs", 1)?,
                self.named("fpn_convs", 2)?,
            ],
            downsample: [
                self.named("downsample_convs", 0)?,
                self.named("downsample_convs", 1)?,
            ],
            pafpn: [self.named("pafpn_convs", 0)?, self.named("pafpn_convs", 1)?],
            heads: [head(0)?, head(1)?, head(2)?],
        })
    }
}
