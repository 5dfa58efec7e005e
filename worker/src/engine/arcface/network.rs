//! InsightFace's MobileFaceNet (`w600k_mbf.onnx`) as typed layers built by walking the
//! ONNX graph at load: convolutions (dense, grouped or depthwise; batch-norm already
//! folded in by the exporter) with their PReLU fused, residual adds, and a head where the
//! trailing 1-D batch-norm is folded into the fully connected layer.
//!
//! Two forward passes, as for dlib's ResNet: NHWC kernels on the CPU (`nhwc::direct` for
//! the dense ones, 1×1 and the 3×3 stem; direct kernels for the grouped and depthwise
//! ones) and candle-nn's modules elsewhere (CUDA).

use std::collections::HashMap;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Conv2d, Conv2dConfig};
use image::RgbImage;

use super::grouped_conv::GroupedConv;
use crate::engine::nhwc::buffers;
use crate::engine::nhwc::depthwise::Depthwise;
use crate::engine::nhwc::direct::DirectConv;
use crate::engine::nhwc::{Act, Maps, in_pool};
use crate::engine::onnx::{Node, OnnxError, OnnxModel};
use crate::engine::{EngineError, Result};

/// Side of the square input crops.
pub const INPUT_SIZE: usize = 112;

/// Which forward pass the layers are laid out for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// The CPU's NHWC kernels.
    Nhwc,
    /// candle-nn's NCHW modules (any device).
    Candle,
}

#[derive(Debug)]
enum Kernel {
    Dense(DirectConv),
    Depthwise(Depthwise),
    /// Groups of several channels (MobileFaceNet's second layer).
    Grouped(GroupedConv),
    Candle(Conv2d),
}

#[derive(Debug)]
struct Prelu {
    slopes: Vec<f32>,
    /// `(1, c, 1, 1)` on the device, for the candle pass.
    tensor: Tensor,
}

#[derive(Debug)]
enum Step {
    Conv {
        input: usize,
        output: usize,
        kernel: Kernel,
        prelu: Option<Prelu>,
    },
    Add {
        a: usize,
        b: usize,
        output: usize,
    },
}

/// The loaded network.
#[derive(Debug)]
pub struct MobileFaceNet {
    steps: Vec<Step>,
    /// Values (slots) in all; slot 0 is the input.
    slots: usize,
    /// After which step each slot is read for the last time (frees memory early).
    last_use: Vec<usize>,
    head_input: usize,
    /// `(features, embedding)`: the Gemm with the batch-norm folded in, transposed, its
    /// rows in the flatten order of the layout (NHWC: `(h, w, c)`; NCHW: `(c, h, w)`).
    head_weight: Tensor,
    head_bias: Tensor,
    embedding_len: usize,
    device: Device,
    layout: Layout,
}

/// A value's shape without the batch: `(c, h, w)`.
type Shape = (usize, usize, usize);

struct Builder<'m> {
    model: &'m OnnxModel,
    slots: HashMap<String, (usize, Shape)>,
    /// How many nodes read each value.
    readers: HashMap<&'m str, usize>,
    device: Device,
    layout: Layout,
}

impl<'m> Builder<'m> {
    fn bad(&self, node: &Node, problem: impl Into<String>) -> EngineError {
        self.model.error(OnnxError::Tensor {
            name: format!("{} ({})", node.name, node.op_type),
            problem: problem.into(),
        })
    }

    fn attr<T>(&self, r: std::result::Result<T, OnnxError>) -> Result<T> {
        r.map_err(|e| self.model.error(e))
    }

    fn slot(&self, node: &Node, name: &str) -> Result<(usize, Shape)> {
        self.slots
            .get(name)
            .copied()
            .ok_or_else(|| self.bad(node, format!("input {name:?} is not computed before it")))
    }

    fn define(&mut self, name: &str, shape: Shape) -> usize {
        let slot = self.slots.len();
        self.slots.insert(name.to_owned(), (slot, shape));
        slot
    }

    /// One Conv node and, when the next node is a PReLU on its output alone, that too.
    fn conv(&mut self, node: &Node, next: Option<&Node>) -> Result<(Step, bool)> {
        let (input, (c_in, h, w)) = self.slot(node, &node.inputs[0])?;
        let weight = self
            .model
            .f32_initializer(node.inputs.get(1).map_or("", String::as_str))?;
        let &[c_out, per_group, k_h, k_w] = weight.dims.as_slice() else {
            return Err(self.bad(node, format!("weight dims {:?}", weight.dims)));
        };
        let bias = match node.inputs.get(2).filter(|b| !b.is_empty()) {
            Some(b) => self.model.f32_initializer(b)?.data.clone(),
            None => vec![0.0; c_out],
        };
        let group = self.attr(node.int_or("group", 1))? as usize;
        let strides = self.attr(node.ints("strides"))?.unwrap_or(&[1, 1]).to_vec();
        let pads = self
            .attr(node.ints("pads"))?
            .unwrap_or(&[0, 0, 0, 0])
            .to_vec();
        let dilations = self
            .attr(node.ints("dilations"))?
            .unwrap_or(&[1, 1])
            .to_vec();
        let auto_pad = self.attr(node.string("auto_pad"))?.unwrap_or("NOTSET");
        let square = k_h == k_w
            && strides.len() == 2
            && strides[0] == strides[1]
            && strides[0] > 0
            && pads.len() == 4
            && pads.iter().all(|&p| p == pads[0] && p >= 0)
            && dilations == [1, 1]
            && auto_pad == "NOTSET";
        if !square
            || bias.len() != c_out
            || group == 0
            || c_in != per_group * group
            || c_out % group != 0
        {
            return Err(self.bad(
                node,
                format!(
                    "unsupported convolution: weight {:?}, input channels {c_in}, group {group}, \
                     strides {strides:?}, pads {pads:?}, dilations {dilations:?}, auto_pad {auto_pad}",
                    weight.dims
                ),
            ));
        }
        let (k, stride, padding) = (k_h, strides[0] as usize, pads[0] as usize);
        if h + 2 * padding < k || w + 2 * padding < k {
            return Err(self.bad(node, format!("a {k}×{k} kernel on a {h}×{w} input")));
        }
        let kernel = match self.layout {
            Layout::Candle => {
                let wt = Tensor::from_slice(&weight.data, (c_out, per_group, k, k), &self.device)?;
                let bt = Tensor::from_slice(&bias, c_out, &self.device)?;
                Kernel::Candle(Conv2d::new(
                    wt,
                    Some(bt),
                    Conv2dConfig {
                        padding,
                        stride,
                        groups: group,
                        ..Default::default()
                    },
                ))
            }
            Layout::Nhwc if per_group == 1 && c_out == group => Kernel::Depthwise(
                Depthwise::from_oihw(&weight.data, &bias, [c_out, k], stride, padding),
            ),
            Layout::Nhwc if group == 1 => Kernel::Dense(DirectConv::from_oihw(
                &weight.data,
                &bias,
                [c_out, c_in, k, k],
                stride,
                padding,
            )),
            Layout::Nhwc => Kernel::Grouped(GroupedConv::from_oihw(
                &weight.data,
                &bias,
                [c_out, per_group, k],
                group,
                stride,
                padding,
            )),
        };
        let shape = (
            c_out,
            (h + 2 * padding - k) / stride + 1,
            (w + 2 * padding - k) / stride + 1,
        );
        let conv_out = node.outputs[0].as_str();
        let fused = next.filter(|n| {
            n.op_type == "PRelu"
                && n.inputs.first().map(String::as_str) == Some(conv_out)
                && self.readers.get(conv_out) == Some(&1)
        });
        let (prelu, out_name) = match fused {
            Some(p) => {
                let slopes = self
                    .model
                    .f32_initializer(p.inputs.get(1).map_or("", String::as_str))?;
                if slopes.len() != c_out {
                    return Err(
                        self.bad(p, format!("{} slopes for {c_out} channels", slopes.len()))
                    );
                }
                let tensor = Tensor::from_slice(&slopes.data, (1, c_out, 1, 1), &self.device)?;
                let prelu = Prelu {
                    slopes: slopes.data.clone(),
                    tensor,
                };
                (Some(prelu), p.outputs[0].as_str())
            }
            None => (None, conv_out),
        };
        let output = self.define(out_name, shape);
        let step = Step::Conv {
            input,
            output,
            kernel,
            prelu,
        };
        Ok((step, fused.is_some()))
    }
}

impl MobileFaceNet {
    pub fn load(model: &OnnxModel, device: &Device, layout: Layout) -> Result<Self> {
        let input = match model.inputs.as_slice() {
            [i] if i.shape.get(1..) == Some(&[Some(3), Some(INPUT_SIZE), Some(INPUT_SIZE)][..]) => {
                i
            }
            other => {
                return Err(model.error(OnnxError::Tensor {
                    name: "graph input".into(),
                    problem: format!("expected one [N, 3, 112, 112] input, found {other:?}"),
                }));
            }
        };
        let mut readers: HashMap<&str, usize> = HashMap::new();
        for n in &model.nodes {
            for i in &n.inputs {
                *readers.entry(i.as_str()).or_default() += 1;
            }
        }
        for o in &model.outputs {
            *readers.entry(o.name.as_str()).or_default() += 1;
        }
        let mut b = Builder {
            model,
            slots: HashMap::new(),
            readers,
            device: device.clone(),
            layout,
        };
        b.define(&input.name, (3, INPUT_SIZE, INPUT_SIZE));

        let mut steps = Vec::new();
        let mut nodes = model.nodes.iter().peekable();
        let flatten = loop {
            let Some(node) = nodes.next() else {
                return Err(model.error(OnnxError::Tensor {
                    name: "graph".into(),
                    problem: "no Flatten before the embedding head".into(),
                }));
            };
            match node.op_type.as_str() {
                "Conv" => {
                    let (step, fused) = b.conv(node, nodes.peek().copied())?;
                    if fused {
                        nodes.next();
                    }
                    steps.push(step);
                }
                "Add" => {
                    let (a, sa) = b.slot(node, &node.inputs[0])?;
                    let (c, sc) = b.slot(node, node.inputs.get(1).map_or("", String::as_str))?;
                    if sa != sc {
                        return Err(b.bad(node, format!("adds shapes {sa:?} and {sc:?}")));
                    }
                    let output = b.define(&node.outputs[0], sa);
                    steps.push(Step::Add { a, b: c, output });
                }
                "Flatten" => break node,
                other => return Err(b.bad(node, format!("operator {other} is not supported here"))),
            }
        };
        if b.attr(flatten.int_or("axis", 1))? != 1 {
            return Err(b.bad(flatten, "only axis 1 is supported"));
        }
        let (head_input, (c, h, w)) = b.slot(flatten, &flatten.inputs[0])?;
        let features = c * h * w;
        let head_nodes: Vec<&Node> = nodes.collect();
        let (gemm, bn) = match head_nodes.as_slice() {
            [g] if g.op_type == "Gemm" => (*g, None),
            [g, n] if g.op_type == "Gemm" && n.op_type == "BatchNormalization" => (*g, Some(*n)),
            _ => {
                return Err(model.error(OnnxError::Tensor {
                    name: "head".into(),
                    problem: "expected Flatten, Gemm and an optional BatchNormalization".into(),
                }));
            }
        };
        // Rows: outputs; columns: features in NCHW flatten order.
        let (mut weight, mut bias, out_len) = gemm_matrix(&b, gemm, features)?;
        if let Some(bn) = bn {
            let eps = b.attr(bn.float_or("epsilon", 1e-5))?;
            let [gamma, beta, mean, var] = [1, 2, 3, 4].map(|i| {
                let t = model.f32_initializer(bn.inputs.get(i).map_or("", String::as_str))?;
                if t.len() != out_len {
                    return Err(b.bad(bn, format!("{} values for {out_len} features", t.len())));
                }
                Ok(t.data.as_slice())
            });
            let (gamma, beta, mean, var) = (gamma?, beta?, mean?, var?);
            for o in 0..out_len {
                let s = gamma[o] / (var[o] + eps).sqrt();
                for v in &mut weight[o * features..(o + 1) * features] {
                    *v *= s;
                }
                bias[o] = (bias[o] - mean[o]) * s + beta[o];
            }
        }
        let last = bn.unwrap_or(gemm);
        if model.outputs.first().map(|o| o.name.as_str())
            != last.outputs.first().map(String::as_str)
        {
            return Err(b.bad(last, "its output is not the graph's output"));
        }
        // Transposed to (features, out); NHWC rows reordered from (c, h, w) to (h, w, c).
        let mut wt = vec![0.0f32; features * out_len];
        for o in 0..out_len {
            for ci in 0..c {
                for y in 0..h {
                    for x in 0..w {
                        let nchw = (ci * h + y) * w + x;
                        let row = match layout {
                            Layout::Nhwc => (y * w + x) * c + ci,
                            Layout::Candle => nchw,
                        };
                        wt[row * out_len + o] = weight[o * features + nchw];
                    }
                }
            }
        }

        let slots = b.slots.len();
        let mut last_use = vec![usize::MAX; slots];
        for (i, step) in steps.iter().enumerate() {
            match step {
                Step::Conv { input, .. } => last_use[*input] = i,
                Step::Add { a, b, .. } => {
                    last_use[*a] = i;
                    last_use[*b] = i;
                }
            }
        }
        last_use[head_input] = usize::MAX;
        Ok(MobileFaceNet {
            steps,
            slots,
            last_use,
            head_input,
            head_weight: Tensor::from_vec(wt, (features, out_len), device)?,
            head_bias: Tensor::from_vec(bias, out_len, device)?,
            embedding_len: out_len,
            device: device.clone(),
            layout,
        })
    }

    pub fn embedding_len(&self) -> usize {
        self.embedding_len
    }

    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Number of convolutions: `(dense, grouped)`.
    pub fn conv_counts(&self) -> (usize, usize) {
        let mut counts = (0, 0);
        for s in &self.steps {
            match s {
                Step::Conv {
                    kernel: Kernel::Grouped(_) | Kernel::Depthwise(_),
                    ..
                } => counts.1 += 1,
                Step::Conv {
                    kernel: Kernel::Candle(c),
                    ..
                } if c.config().groups > 1 => counts.1 += 1,
                Step::Conv { .. } => counts.0 += 1,
                Step::Add { .. } => {}
            }
        }
        counts
    }

    /// L2-normalised embeddings of 112×112 RGB crops, in one batch.
    pub fn forward(&self, crops: &[RgbImage]) -> Result<Vec<Vec<f32>>> {
        if crops.is_empty() {
            return Ok(Vec::new());
        }
        for (i, crop) in crops.iter().enumerate() {
            if crop.dimensions() != (INPUT_SIZE as u32, INPUT_SIZE as u32) {
                return Err(EngineError::Invalid(format!(
                    "crop {i} is {:?}, expected {INPUT_SIZE}x{INPUT_SIZE}",
                    crop.dimensions()
                )));
            }
        }
        let features = match self.layout {
            Layout::Nhwc => in_pool(|| self.features_nhwc(crops))?,
            Layout::Candle => self.features_candle(crops)?,
        };
        let out = features
            .matmul(&self.head_weight)?
            .broadcast_add(&self.head_bias)?
            .to_dtype(DType::F32)?
            .to_vec2::<f32>()?;
        Ok(out.into_iter().map(l2_normalised).collect())
    }

    /// `(n, features)` input of the head, NHWC flatten order.
    fn features_nhwc(&self, crops: &[RgbImage]) -> Result<Tensor> {
        let mut data = Vec::with_capacity(crops.len() * INPUT_SIZE * INPUT_SIZE * 3);
        for crop in crops {
            data.extend(
                crop.as_raw()
                    .iter()
                    .map(|&v| (f32::from(v) - 127.5) / 127.5),
            );
        }
        let mut values: Vec<Option<Maps>> = vec![None; self.slots];
        values[0] = Some(Maps {
            n: crops.len(),
            h: INPUT_SIZE,
            w: INPUT_SIZE,
            c: 3,
            data,
        });
        for (i, step) in self.steps.iter().enumerate() {
            let (output, y) = match step {
                Step::Conv {
                    input,
                    output,
                    kernel,
                    prelu,
                } => {
                    let slopes = prelu.as_ref().map(|p| p.slopes.as_slice());
                    let act = slopes.map_or(Act::Identity, Act::Prelu);
                    let x = value(&values, *input)?;
                    let y = match kernel {
                        Kernel::Dense(conv) => conv.forward_act(x, act),
                        Kernel::Depthwise(conv) => conv.forward(x, act),
                        Kernel::Grouped(conv) => conv.forward(x, slopes),
                        Kernel::Candle(_) => {
                            return Err(EngineError::Invalid(
                                "a candle layer in the NHWC forward pass".into(),
                            ));
                        }
                    };
                    (*output, y)
                }
                Step::Add { a, b, output } => {
                    // The sum overwrites `a` when nothing later reads it (the usual case
                    // for a residual branch), instead of copying it.
                    let mut y = match values[*a].take_if(|_| self.last_use[*a] == i && a != b) {
                        Some(y) => y,
                        None => value(&values, *a)?.clone(),
                    };
                    y.add_assign(value(&values, *b)?);
                    (*output, y)
                }
            };
            values[output] = Some(y);
            self.free_after(i, &mut values);
        }
        let x = values[self.head_input]
            .take()
            .ok_or_else(|| EngineError::Invalid("the head's input was not computed".into()))?;
        let n = x.n;
        Ok(Tensor::from_vec(
            x.data,
            (n, x.h * x.w * x.c),
            &Device::Cpu,
        )?)
    }

    /// Drops the maps that step `i` was the last to read, their buffers going back to
    /// the pool for the next layers.
    fn free_after(&self, i: usize, values: &mut [Option<Maps>]) {
        for (slot, &last) in self.last_use.iter().enumerate() {
            if last == i
                && let Some(m) = values[slot].take()
            {
                buffers::recycle(m.data);
            }
        }
    }

    /// `(n, features)` input of the head, NCHW flatten order.
    fn features_candle(&self, crops: &[RgbImage]) -> Result<Tensor> {
        let s = INPUT_SIZE;
        let mut raw = Vec::with_capacity(crops.len() * s * s * 3);
        for crop in crops {
            raw.extend_from_slice(crop.as_raw());
        }
        let x = Tensor::from_vec(raw, (crops.len(), s, s, 3), &self.device)?
            .to_dtype(DType::F32)?
            .permute((0, 3, 1, 2))?
            .contiguous()?;
        let x = ((x - 127.5)? / 127.5)?;
        let mut values: Vec<Option<Tensor>> = vec![None; self.slots];
        values[0] = Some(x);
        for (i, step) in self.steps.iter().enumerate() {
            let (output, y) = match step {
                Step::Conv {
                    input,
                    output,
                    kernel: Kernel::Candle(conv),
                    prelu,
                } => {
                    let y = conv.forward(value(&values, *input)?)?;
                    let y = match prelu {
                        Some(p) => (y.relu()? + y.minimum(0f32)?.broadcast_mul(&p.tensor)?)?,
                        None => y,
                    };
                    (*output, y)
                }
                Step::Conv { .. } => {
                    return Err(EngineError::Invalid(
                        "an NHWC layer in the candle forward pass".into(),
                    ));
                }
                Step::Add { a, b, output } => {
                    (*output, (value(&values, *a)? + value(&values, *b)?)?)
                }
            };
            values[output] = Some(y);
            for (slot, &last) in self.last_use.iter().enumerate() {
                if last == i {
                    values[slot] = None;
                }
            }
        }
        Ok(value(&values, self.head_input)?.flatten_from(1)?)
    }
}

/// The value in `slot`; freed values are a bug in the step order, not a panic.
fn value<T>(values: &[Option<T>], slot: usize) -> Result<&T> {
    values[slot]
        .as_ref()
        .ok_or_else(|| EngineError::Invalid(format!("value {slot} read after it was freed")))
}

/// The Gemm node as `(weight (out, features) row-major, bias, out)`.
fn gemm_matrix(
    b: &Builder<'_>,
    gemm: &Node,
    features: usize,
) -> Result<(Vec<f32>, Vec<f32>, usize)> {
    let alpha = b.attr(gemm.float_or("alpha", 1.0))?;
    let beta = b.attr(gemm.float_or("beta", 1.0))?;
    let trans_a = b.attr(gemm.int_or("transA", 0))?;
    let trans_b = b.attr(gemm.int_or("transB", 0))?;
    let w = b
        .model
        .f32_initializer(gemm.inputs.get(1).map_or("", String::as_str))?;
    let (out_len, weight) = match (trans_b, w.dims.as_slice()) {
        (1, &[o, f]) if f == features => (o, w.data.iter().map(|v| v * alpha).collect()),
        (0, &[f, o]) if f == features => {
            let mut t = vec![0.0f32; o * f];
            for i in 0..f {
                for j in 0..o {
                    t[j * f + i] = w.data[i * o + j] * alpha;
                }
            }
            (o, t)
        }
        _ => {
            return Err(b.bad(
                gemm,
                format!(
                    "weight {:?} (transB {trans_b}) for {features} features",
                    w.dims
                ),
            ));
        }
    };
    if trans_a != 0 {
        return Err(b.bad(gemm, "transA is not supported"));
    }
    let bias = match gemm.inputs.get(2).filter(|n| !n.is_empty()) {
        Some(name) => {
            let t = b.model.f32_initializer(name)?;
            if t.len() != out_len {
                return Err(b.bad(gemm, format!("bias of {} for {out_len} outputs", t.len())));
            }
            t.data.iter().map(|v| v * beta).collect()
        }
        None => vec![0.0; out_len],
    };
    Ok((weight, bias, out_len))
}

fn l2_normalised(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        for x in &mut v {
            *x /= norm;
        }
    }
    v
}
