//! dlib's face-recognition ResNet (`dlib_face_recognition_resnet_model_v1.dat`): 29
//! convolutions, 128-D descriptor. The `.dat` layer chain is parsed record by record
//! (notes §C.2/§C.3), each `affine` is folded into the convolution below it at load time,
//! and the forward pass follows notes §C.6 in candle.

use std::path::Path;

use candle_core::{D, DType, Device, Module, Tensor};
use candle_nn::{Conv2d, Conv2dConfig};
use image::RgbImage;

use super::dlib_format::{DlibTensor, Reader};
use super::face_chip::CHIP_SIZE;
use super::nhwc;
use super::{EngineError, Result};

/// Length of a face descriptor.
pub const DESCRIPTOR_LEN: usize = 128;
/// Chips per forward pass; bounds the im2col buffers (≈ 0.5 GB of f32 at 32).
const MAX_BATCH: usize = 32;

/// One layer-details record of the file, in file order (input side first).
#[derive(Debug)]
pub(crate) enum Record {
    Con {
        params: DlibTensor,
        num_filters: usize,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
        filters: [usize; 4],
        biases: [usize; 4],
    },
    Affine {
        params: DlibTensor,
        gamma: [usize; 4],
        beta: [usize; 4],
        mode: i64,
    },
    Relu,
    AddPrev,
    AvgPool {
        size: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
    },
    MaxPool {
        size: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
    },
    Fc {
        num_outputs: usize,
        num_inputs: usize,
        params: DlibTensor,
        bias_mode: i64,
    },
}

/// The parsed file: input normalisation, the records in file order, and how many
/// tag/skip layers (which have no record) the header run listed.
#[derive(Debug)]
pub(crate) struct ParsedNet {
    pub avg_rgb: [f32; 3],
    pub input_size: [usize; 2],
    pub records: Vec<Record>,
    pub tags_and_skips: usize,
}

fn parse(r: &mut Reader<'_>) -> Result<ParsedNet> {
    r.expect_int(1, "add_loss_layer version")?;
    r.expect_string(&["loss_metric_2"])?;
    let _margin = r.read_f32()?;
    let _dist_thresh = r.read_f32()?;

    // The version ints of all wrappers, top-down: 1 = tag/skip, 2 = add_layer, and 3 =
    // the add_layer sitting on the input layer, which ends the run.
    let mut headers = Vec::new();
    loop {
        let at = r.offset();
        match r.read_int()? {
            v @ (1 | 2) => headers.push(v),
            3 => {
                headers.push(3);
                break;
            }
            v => return Err(r.error(format!("layer header at byte {at}: unexpected version {v}"))),
        }
    }

    r.expect_string(&["input_rgb_image_sized"])?;
    let avg_rgb = [r.read_f32()?, r.read_f32()?, r.read_f32()?];
    let input_size = [r.read_usize()?, r.read_usize()?];

    let mut records = Vec::new();
    for &h in headers.iter().rev() {
        if h == 1 {
            continue; // tag or skip: nothing stored
        }
        records.push(read_details(r)?);
        for _ in 0..3 {
            r.read_bool()?; // setup / stale / disabled flags, irrelevant for inference
        }
        for _ in 0..3 {
            r.read_tensor()?; // gradients and caches, empty in released models
        }
        if h == 3 {
            r.read_int()?; // _sample_expansion_factor
        }
    }
    r.expect_end()?;
    Ok(ParsedNet {
        avg_rgb,
        input_size,
        records,
        tags_and_skips: headers.iter().filter(|&&h| h == 1).count(),
    })
}

fn read_details(r: &mut Reader<'_>) -> Result<Record> {
    let at = r.offset();
    let version = r.read_string()?;
    let pair = |r: &mut Reader<'_>| -> Result<[usize; 2]> { Ok([r.read_dim()?, r.read_dim()?]) };
    Ok(match version.as_str() {
        "con_4" => {
            let params = r.read_tensor()?;
            let num_filters = r.read_dim()?;
            let kernel = pair(r)?;
            let stride = pair(r)?;
            let padding = pair(r)?;
            let filters = r.read_alias_tensor()?;
            let biases = r.read_alias_tensor()?;
            for _ in 0..4 {
                r.read_f64()?; // learning-rate and weight-decay multipliers
            }
            Record::Con {
                params,
                num_filters,
                kernel,
                stride,
                padding,
                filters,
                biases,
            }
        }
        "affine_" => Record::Affine {
            params: r.read_tensor()?,
            gamma: r.read_alias_tensor()?,
            beta: r.read_alias_tensor()?,
            mode: r.read_int()?,
        },
        "relu_" => Record::Relu,
        "add_prev_" => Record::AddPrev,
        "avg_pool_2" | "max_pool_2" => {
            let size = pair(r)?;
            let stride = pair(r)?;
            let padding = pair(r)?;
            if version == "avg_pool_2" {
                Record::AvgPool {
                    size,
                    stride,
                    padding,
                }
            } else {
                Record::MaxPool {
                    size,
                    stride,
                    padding,
                }
            }
        }
        "fc_2" => {
            let num_outputs = r.read_usize()?;
            let num_inputs = r.read_usize()?;
            let params = r.read_tensor()?;
            let _weights = r.read_alias_tensor()?;
            let _biases = r.read_alias_tensor()?;
            let bias_mode = r.read_int()?;
            for _ in 0..4 {
                r.read_f64()?;
            }
            Record::Fc {
                num_outputs,
                num_inputs,
                params,
                bias_mode,
            }
        }
        other => {
            return Err(r.error(format!("record at byte {at}: unsupported layer {other:?}")));
        }
    })
}

/// A convolution with the following `affine` folded in, laid out for the device's
/// forward pass: NHWC kernels on the CPU (see `nhwc`), candle-nn's layer elsewhere.
#[derive(Debug)]
enum ConvAffine {
    Cpu(nhwc::Conv),
    Candle(Conv2d),
}

impl ConvAffine {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            ConvAffine::Candle(conv) => conv.forward(x),
            ConvAffine::Cpu(_) => candle_core::bail!("an NHWC layer in the tensor forward pass"),
        }
    }

    fn forward_cpu(&self, x: &nhwc::Maps) -> Result<nhwc::Maps> {
        match self {
            ConvAffine::Cpu(conv) => conv.forward(x),
            ConvAffine::Candle(_) => Err(EngineError::Invalid(
                "a candle layer in the CPU forward pass".into(),
            )),
        }
    }
}

/// One residual unit: `relu(shortcut ⊕ conv2(relu(conv1(x))))`, where the shortcut of a
/// down unit is a 2×2 average pool and ⊕ is dlib's zero-padding add.
#[derive(Debug)]
struct Residual {
    conv1: ConvAffine,
    conv2: ConvAffine,
    down: Option<[usize; 2]>,
}

/// The loaded descriptor network.
#[derive(Debug)]
pub struct FaceDescriptor {
    stem: ConvAffine,
    stem_pool: ([usize; 2], [usize; 2]),
    units: Vec<Residual>,
    /// `(256, 128)`, row = input.
    fc: Tensor,
    avg_rgb: [f32; 3],
    device: Device,
    /// The CPU's NHWC layers (else candle-nn's modules, as on CUDA).
    nhwc: bool,
}

/// Pulls records off the front of the file-order list, failing with what was expected.
struct Records<'p, 'a> {
    iter: std::iter::Peekable<std::vec::IntoIter<Record>>,
    r: &'p Reader<'a>,
    nhwc: bool,
}

impl Records<'_, '_> {
    fn next(&mut self, what: &str) -> Result<Record> {
        self.iter.next().ok_or_else(|| {
            self.r
                .error(format!("layer chain ended where {what} was expected"))
        })
    }

    fn bad(&self, what: &str, got: &Record) -> EngineError {
        let name = format!("{got:?}");
        let name = name.split([' ', '{']).next().unwrap_or_default().to_owned();
        self.r.error(format!("expected {what}, found {name}"))
    }

    fn relu(&mut self) -> Result<()> {
        match self.next("relu")? {
            Record::Relu => Ok(()),
            other => Err(self.bad("relu", &other)),
        }
    }

    /// A `con` record followed by an `affine` record, folded into one convolution.
    fn conv_affine(&mut self, device: &Device) -> Result<ConvAffine> {
        let Record::Con {
            params,
            num_filters,
            kernel,
            stride,
            padding,
            filters,
            biases,
        } = self.next("con")?
        else {
            return Err(self.r.error("expected a con layer"));
        };
        if stride[0] != stride[1] || padding[0] != padding[1] {
            return Err(self
                .r
                .error("anisotropic conv stride/padding is not supported"));
        }
        let [f, c, kh, kw] = filters;
        let n_w = f * c * kh * kw;
        if f != num_filters
            || [kh, kw] != kernel
            || biases != [1, f, 1, 1]
            || params.len() != n_w + f
        {
            return Err(self.r.error(format!(
                "con params {:?} do not fit filters {filters:?} and biases {biases:?}",
                params.shape
            )));
        }
        let Record::Affine {
            params: ab,
            gamma,
            beta,
            mode,
        } = self.next("affine")?
        else {
            return Err(self.r.error("expected an affine layer after a con layer"));
        };
        if mode != 0 || gamma != [1, f, 1, 1] || beta != gamma || ab.len() != 2 * f {
            return Err(self.r.error(format!(
                "affine (mode {mode}, gamma {gamma:?}) does not fit a conv of {f} filters"
            )));
        }
        // y = γ·(W∗x + b) + β  ⇒  W' = γ·W, b' = γ·b + β (computed in f32 like dlib would
        // apply them one after the other; the change is within f32 rounding).
        let (g, bt) = ab.data.split_at(f);
        let per = c * kh * kw;
        let w: Vec<f32> = params.data[..n_w]
            .iter()
            .enumerate()
            .map(|(i, &v)| v * g[i / per])
            .collect();
        let b: Vec<f32> = params.data[n_w..]
            .iter()
            .zip(g.iter().zip(bt))
            .map(|(&v, (&g, &bt))| v * g + bt)
            .collect();
        if self.nhwc {
            return Ok(ConvAffine::Cpu(nhwc::Conv::from_oihw(
                &w, &b, filters, stride[0], padding[0],
            )?));
        }
        let weight = Tensor::from_vec(w, (f, c, kh, kw), device)?;
        let bias = Tensor::from_vec(b, f, device)?;
        Ok(ConvAffine::Candle(Conv2d::new(
            weight,
            Some(bias),
            Conv2dConfig {
                padding: padding[0],
                stride: stride[0],
                ..Default::default()
            },
        )))
    }
}

impl FaceDescriptor {
    /// Reads the `.dat` file and builds the network on `device`.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        Self::load_layers(path, device, device.is_cpu())
    }

    /// `nhwc`: the CPU's NHWC layers instead of candle-nn's modules.
    fn load_layers(path: &Path, device: &Device, nhwc: bool) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|source| EngineError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut reader = Reader::new(&bytes, path);
        let net = parse(&mut reader)?;
        let model = Self::build(net, &reader, device, nhwc)?;
        tracing::debug!(path = %path.display(), units = model.units.len(), "loaded face descriptor net");
        Ok(model)
    }

    fn build(net: ParsedNet, r: &Reader<'_>, device: &Device, nhwc: bool) -> Result<Self> {
        if net.input_size != [CHIP_SIZE as usize; 2] {
            return Err(r.error(format!("input size {:?}, expected 150x150", net.input_size)));
        }
        let mut recs = Records {
            iter: net.records.into_iter().peekable(),
            r,
            nhwc,
        };
        let stem = recs.conv_affine(device)?;
        recs.relu()?;
        let stem_pool = match recs.next("max_pool")? {
            Record::MaxPool {
                size,
                stride,
                padding: [0, 0],
            } => (size, stride),
            other => return Err(recs.bad("max_pool without padding", &other)),
        };

        let mut units = Vec::new();
        loop {
            if matches!(recs.iter.peek(), Some(Record::AvgPool { size: [0, 0], .. })) {
                break; // avg_pool_everything: the head
            }
            let conv1 = recs.conv_affine(device)?;
            recs.relu()?;
            let conv2 = recs.conv_affine(device)?;
            let down = match recs.next("avg_pool or add_prev")? {
                Record::AvgPool {
                    size,
                    stride,
                    padding: [0, 0],
                } if size == stride => {
                    match recs.next("add_prev")? {
                        Record::AddPrev => {}
                        other => return Err(recs.bad("add_prev", &other)),
                    }
                    Some(size)
                }
                Record::AddPrev => None,
                other => return Err(recs.bad("add_prev or avg_pool", &other)),
            };
            recs.relu()?;
            units.push(Residual { conv1, conv2, down });
        }
        recs.next("avg_pool_everything")?;
        let fc = match recs.next("fc")? {
            Record::Fc {
                num_outputs: DESCRIPTOR_LEN,
                num_inputs,
                params,
                bias_mode: 1,
            } if params.len() == num_inputs * DESCRIPTOR_LEN => {
                Tensor::from_vec(params.data, (num_inputs, DESCRIPTOR_LEN), device)?
            }
            other => return Err(recs.bad("fc_no_bias with 128 outputs", &other)),
        };
        if let Some(extra) = recs.iter.next() {
            return Err(recs.bad("the end of the layer chain", &extra));
        }
        let downs = units.iter().filter(|u| u.down.is_some()).count();
        // Each residual unit has one tag; a down unit a second tag and a skip.
        if net.tags_and_skips != units.len() + 2 * downs {
            return Err(r.error(format!(
                "{} tag/skip layers do not fit {} residual units ({downs} down)",
                net.tags_and_skips,
                units.len()
            )));
        }
        Ok(Self {
            stem,
            stem_pool,
            units,
            fc,
            avg_rgb: net.avg_rgb,
            device: device.clone(),
            nhwc,
        })
    }

    /// 128-D descriptors of 150×150 aligned chips (from `face_chip`), in order. Large
    /// inputs run in batches of 32.
    pub fn embed(&self, chips: &[RgbImage]) -> Result<Vec<[f32; DESCRIPTOR_LEN]>> {
        let mut out = Vec::with_capacity(chips.len());
        for batch in chips.chunks(MAX_BATCH) {
            let d = if self.nhwc {
                self.forward_cpu(&self.input_maps(batch)?)?
            } else {
                self.forward(&self.input_tensor(batch)?)?
            }
            .to_vec2::<f32>()?;
            out.extend(d.into_iter().map(|row| {
                let mut a = [0f32; DESCRIPTOR_LEN];
                a.copy_from_slice(&row);
                a
            }));
        }
        Ok(out)
    }

    /// `(n, 150, 150, 3)` NHWC float32, normalised as in [`Self::input_tensor`].
    fn input_maps(&self, chips: &[RgbImage]) -> Result<nhwc::Maps> {
        let s = CHIP_SIZE as usize;
        let mut data = Vec::with_capacity(chips.len() * s * s * 3);
        for (i, chip) in chips.iter().enumerate() {
            check_chip(i, chip)?;
            for px in chip.as_raw().chunks_exact(3) {
                for (v, mean) in px.iter().zip(&self.avg_rgb) {
                    data.push((f32::from(*v) - mean) / 256.0);
                }
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

    /// The forward pass of [`Self::forward`] on NHWC maps; `(n, 128)` descriptors.
    fn forward_cpu(&self, x: &nhwc::Maps) -> Result<Tensor> {
        let (pool, stride) = self.stem_pool;
        let mut x = self.stem.forward_cpu(x)?;
        x.relu();
        let mut x = nhwc::max_pool(&x, pool[0], stride[0]);
        for unit in &self.units {
            let mut h = unit.conv1.forward_cpu(&x)?;
            h.relu();
            let mut h = unit.conv2.forward_cpu(&h)?;
            x = match unit.down {
                None => {
                    h.add_assign(&x);
                    h
                }
                Some(k) => nhwc::add_zero_padded(&nhwc::avg_pool(&x, k[0], k[0]), &h),
            };
            x.relu();
        }
        let pooled = Tensor::from_vec(x.mean_over_pixels(), (x.n, x.c), &self.device)?;
        Ok(pooled.matmul(&self.fc)?)
    }

    /// `(n, 3, 150, 150)` float32: `(R − 122.782)/256`, etc., channels R, G, B.
    fn input_tensor(&self, chips: &[RgbImage]) -> Result<Tensor> {
        let s = CHIP_SIZE as usize;
        let mut raw = Vec::with_capacity(chips.len() * s * s * 3);
        for (i, chip) in chips.iter().enumerate() {
            check_chip(i, chip)?;
            raw.extend_from_slice(chip.as_raw());
        }
        let mean = Tensor::from_slice(&self.avg_rgb, (1, 3, 1, 1), &self.device)?;
        let x = Tensor::from_vec(raw, (chips.len(), s, s, 3), &self.device)?
            .to_dtype(DType::F32)?
            .permute((0, 3, 1, 2))?
            .contiguous()?
            .broadcast_sub(&mean)?;
        Ok((x / 256.0)?)
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (pool, stride) = self.stem_pool;
        let mut x = self
            .stem
            .forward(x)?
            .relu()?
            .max_pool2d_with_stride((pool[0], pool[1]), (stride[0], stride[1]))?;
        for unit in &self.units {
            let h = unit.conv2.forward(&unit.conv1.forward(&x)?.relu()?)?;
            x = match unit.down {
                None => (h + &x)?,
                Some(k) => add_prev(&x.avg_pool2d_with_stride((k[0], k[1]), (k[0], k[1]))?, &h)?,
            }
            .relu()?;
        }
        let pooled = x.mean(D::Minus1)?.mean(D::Minus1)?; // avg_pool_everything
        Ok(pooled.matmul(&self.fc)?)
    }
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

/// dlib's `add_prev` between tensors of different shapes: the output takes the larger
/// size in every dimension and a missing element counts as zero.
fn add_prev(a: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    let (da, db) = (a.dims(), b.dims());
    let pad = |t: &Tensor, dims: &[usize]| -> candle_core::Result<Tensor> {
        let mut t = t.clone();
        for (axis, (&have, (&x, &y))) in dims.iter().zip(da.iter().zip(db)).enumerate() {
            let want = x.max(y);
            if have < want {
                t = t.pad_with_zeros(axis, 0, want - have)?;
            }
        }
        Ok(t)
    };
    pad(a, da)? + pad(b, db)?
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn model_path() -> PathBuf {
        std::env::var_os("MODELS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/models"))
            .join("dlib_face_recognition_resnet_model_v1.dat")
    }

    fn sum(t: &DlibTensor) -> f64 {
        t.data.iter().map(|&v| f64::from(v)).sum()
    }

    #[test]
    fn real_model_has_the_layers_and_parameter_sums_of_the_notes() {
        let path = model_path();
        let bytes = std::fs::read(&path).expect("read resnet model");
        let net = parse(&mut Reader::new(&bytes, &path)).expect("parse");
        assert_eq!(net.avg_rgb, [122.782f32, 117.001f32, 104.298f32]);
        assert_eq!(net.input_size, [150, 150]);
        assert_eq!(net.tags_and_skips, 22);
        let count = |f: fn(&Record) -> bool| net.records.iter().filter(|r| f(r)).count();
        assert_eq!(net.records.len(), 108);
        assert_eq!(count(|r| matches!(r, Record::Con { .. })), 29);
        assert_eq!(count(|r| matches!(r, Record::Affine { .. })), 29);
        assert_eq!(count(|r| matches!(r, Record::Relu)), 29);
        assert_eq!(count(|r| matches!(r, Record::AddPrev)), 14);
        assert_eq!(count(|r| matches!(r, Record::AvgPool { .. })), 5);
        assert_eq!(count(|r| matches!(r, Record::MaxPool { .. })), 1);
        assert_eq!(count(|r| matches!(r, Record::Fc { .. })), 1);

        let (mut floats, mut total, mut con_floats) = (0usize, 0f64, 0usize);
        for rec in &net.records {
            if let Record::Con { params, .. }
            | Record::Affine { params, .. }
            | Record::Fc { params, .. } = rec
            {
                floats += params.len();
                total += sum(params);
            }
            if let Record::Con { params, .. } = rec {
                con_floats += params.len();
            }
        }
        assert_eq!(con_floats, 5_574_720);
        assert_eq!(floats, 5_614_592);
        assert!((total - 28099.428485).abs() < 1e-3, "{total}");

        // The first record is the 7×7 stem (layer 130), the last the fc (layer 1).
        let Record::Con {
            params,
            filters,
            stride,
            padding,
            ..
        } = &net.records[0]
        else {
            panic!("first record is not the stem conv");
        };
        assert_eq!(
            (*filters, *stride, *padding),
            ([32, 3, 7, 7], [2, 2], [0, 0])
        );
        assert!((sum(params) - -1.035093).abs() < 1e-5);
        let Record::Fc {
            params,
            num_inputs,
            bias_mode,
            ..
        } = net.records.last().unwrap()
        else {
            panic!("last record is not the fc");
        };
        assert_eq!((*num_inputs, *bias_mode), (256, 1));
        assert!((sum(params) - -0.109791).abs() < 1e-5);
        // Layer 129, the stem affine.
        let Record::Affine { params, .. } = &net.records[1] else {
            panic!()
        };
        // The notes print 465.535803; the file sums to 465.536393 (all other sums agree).
        assert!((sum(params) - 465.536393).abs() < 1e-5, "{}", sum(params));
    }

    /// The CPU's NHWC layers and candle-nn's modules (what CUDA runs), both on the CPU,
    /// give the same descriptors.
    #[test]
    fn nhwc_layers_match_candle_nn_modules() {
        // Any 150×150 pictures exercise the arithmetic; faces make it realistic.
        let chips: Vec<RgbImage> = ["people/obama/obama1.jpg", "people/biden/biden1.jpg"]
            .iter()
            .map(|rel| {
                let img = image::open(crate::fixtures::photo(rel))
                    .expect("fixture")
                    .to_rgb8();
                image::imageops::resize(&img, 150, 150, image::imageops::FilterType::Triangle)
            })
            .collect();
        let load = |nhwc| FaceDescriptor::load_layers(&model_path(), &Device::Cpu, nhwc).unwrap();
        let ours = load(true).embed(&chips).unwrap();
        let reference = load(false).embed(&chips).unwrap();
        for (a, b) in ours.iter().zip(&reference) {
            let l2 = a
                .iter()
                .zip(b)
                .map(|(x, y)| (x - y).powi(2))
                .sum::<f32>()
                .sqrt();
            assert!(l2 < 1e-4, "L2 {l2}");
        }
        // Different faces, different descriptors: the comparison is not vacuous.
        let apart = ours[0]
            .iter()
            .zip(&ours[1])
            .map(|(x, y)| (x - y).powi(2))
            .sum::<f32>()
            .sqrt();
        assert!(apart > 0.3, "{apart}");
    }

    #[test]
    fn loads_into_fourteen_units_with_four_down_units() {
        let model = FaceDescriptor::load(&model_path(), &Device::Cpu).expect("load");
        assert_eq!(model.units.len(), 14);
        let downs: Vec<bool> = model.units.iter().map(|u| u.down.is_some()).collect();
        let mut expect = vec![false; 14];
        for i in [3, 7, 10, 13] {
            expect[i] = true;
        }
        assert_eq!(downs, expect);
    }

    #[test]
    fn add_prev_zero_pads_channels_and_rows() {
        let dev = Device::Cpu;
        let a = Tensor::ones((1, 1, 2, 2), DType::F32, &dev).unwrap();
        let b = Tensor::full(2f32, (1, 2, 1, 1), &dev).unwrap();
        let s = add_prev(&a, &b).unwrap();
        assert_eq!(s.dims(), &[1, 2, 2, 2]);
        let v = s.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(v, vec![3.0, 1.0, 1.0, 1.0, 2.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn wrong_chip_size_is_rejected() {
        let model = FaceDescriptor::load(&model_path(), &Device::Cpu).expect("load");
        let err = model.embed(&[RgbImage::new(100, 100)]).unwrap_err();
        assert!(err.to_string().contains("150x150"), "{err}");
    }
}
