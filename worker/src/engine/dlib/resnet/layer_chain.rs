//! The layer chain of `dlib_face_recognition_resnet_model_v1.dat`, parsed record by
//! record (innermost layer first, as `dlib::serialize` writes a network) into [`Record`]s in file order, and a cursor that hands them
//! out to the network builder, failing with what was expected.

use crate::engine::dlib::format::{DlibTensor, Reader};
use crate::engine::{EngineError, Result};

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

pub(super) fn parse(r: &mut Reader<'_>) -> Result<ParsedNet> {
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

/// Pulls records off the front of the file-order list, failing with what was expected.
pub(super) struct Records<'p, 'a> {
    pub(super) iter: std::iter::Peekable<std::vec::IntoIter<Record>>,
    pub(super) r: &'p Reader<'a>,
    pub(super) nhwc: bool,
}

impl Records<'_, '_> {
    pub(super) fn next(&mut self, what: &str) -> Result<Record> {
        self.iter.next().ok_or_else(|| {
            self.r
                .error(format!("layer chain ended where {what} was expected"))
        })
    }

    pub(super) fn bad(&self, what: &str, got: &Record) -> EngineError {
        let name = format!("{got:?}");
        let name = name.split([' ', '{']).next().unwrap_or_default().to_owned();
        self.r.error(format!("expected {what}, found {name}"))
    }

    pub(super) fn relu(&mut self) -> Result<()> {
        match self.next("relu")? {
            Record::Relu => Ok(()),
            other => Err(self.bad("relu", &other)),
        }
    }
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
    fn real_model_has_the_expected_layers_and_parameter_sums() {
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
        // Sums computed in Python (numpy float64); this one is 465.536393.
        assert!((sum(params) - 465.536393).abs() < 1e-5, "{}", sum(params));
    }
}
