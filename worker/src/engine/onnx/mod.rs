//! Reading ONNX model files: the graph's nodes in order, their attributes, the
//! initializers (weights) as plain `f32`/`i64` tensors, and the graph's inputs and
//! outputs. Networks are then built by hand from these (see `arcface/`), so only the
//! protobuf messages that carry those are decoded (`proto.rs`).

mod proto;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use prost::Message;

use self::proto::{attribute_type, data_type};
use super::{EngineError, Result};

/// What is wrong with an ONNX file or with what a caller asked of it.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    #[error("not an ONNX protobuf: {0}")]
    Decode(#[from] prost::DecodeError),
    #[error("the model has no graph")]
    NoGraph,
    #[error("tensor {name:?}: {problem}")]
    Tensor { name: String, problem: String },
    #[error("no initializer {name:?} of element type {wanted}")]
    MissingInitializer { name: String, wanted: &'static str },
    #[error("node {node:?} ({op_type}): attribute {attribute:?} {problem}")]
    Attribute {
        node: String,
        op_type: String,
        attribute: String,
        problem: String,
    },
}

/// A dense tensor from the file, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct OnnxTensor<T> {
    pub dims: Vec<usize>,
    pub data: Vec<T>,
}

impl<T> OnnxTensor<T> {
    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// A tensor's values converted to one of the two element types networks need: `f32` for
/// weights, `i64` for shapes and indices.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    F32(OnnxTensor<f32>),
    I64(OnnxTensor<i64>),
}

/// An attribute's value. Kinds a hand-built network never reads (graphs, sparse
/// tensors, type protos) are kept only as their ONNX type number.
#[derive(Debug, Clone, PartialEq)]
pub enum AttributeValue {
    Float(f32),
    Int(i64),
    String(String),
    Tensor(TensorData),
    Floats(Vec<f32>),
    Ints(Vec<i64>),
    Other(i32),
}

/// One operator of the graph.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub op_type: String,
    pub name: String,
    pub domain: String,
    /// Value names; an empty name is an omitted optional input.
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub attributes: Vec<(String, AttributeValue)>,
}

/// A graph input or output: its name, element type (ONNX `DataType` number) and shape,
/// where a symbolic dimension (such as the batch) is `None`.
#[derive(Debug, Clone, PartialEq)]
pub struct ValueInfo {
    pub name: String,
    pub elem_type: i32,
    pub shape: Vec<Option<usize>>,
}

/// A loaded ONNX model.
#[derive(Debug)]
pub struct OnnxModel {
    path: PathBuf,
    pub opset: i64,
    pub nodes: Vec<Node>,
    pub inputs: Vec<ValueInfo>,
    pub outputs: Vec<ValueInfo>,
    initializers: HashMap<String, TensorData>,
}

impl OnnxModel {
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|source| EngineError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_bytes(&bytes, path).map_err(|source| EngineError::Onnx {
            path: path.to_owned(),
            source: Box::new(source),
        })
    }

    /// Parses `bytes`; `path` only names the model in later errors.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> std::result::Result<Self, OnnxError> {
        let model = proto::ModelProto::decode(bytes)?;
        // The default ("" or "ai.onnx") domain's version: the one the operators follow.
        let opset = model
            .opset_import
            .iter()
            .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
            .map_or(0, |o| o.version);
        let graph = model.graph.ok_or(OnnxError::NoGraph)?;
        let mut initializers = HashMap::with_capacity(graph.initializer.len());
        for t in graph.initializer {
            let name = t.name.clone();
            initializers.insert(name, convert_tensor(t)?);
        }
        let graph_inputs = graph
            .input
            .into_iter()
            // Old exporters list the initializers among the inputs too.
            .filter(|v| !initializers.contains_key(&v.name))
            .map(value_info)
            .collect();
        let nodes = graph
            .node
            .into_iter()
            .map(convert_node)
            .collect::<std::result::Result<_, _>>()?;
        Ok(OnnxModel {
            path: path.to_owned(),
            opset,
            nodes,
            inputs: graph_inputs,
            outputs: graph.output.into_iter().map(value_info).collect(),
            initializers,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of initializers (weights and constant shapes).
    pub fn initializer_count(&self) -> usize {
        self.initializers.len()
    }

    pub fn initializer(&self, name: &str) -> Option<&TensorData> {
        self.initializers.get(name)
    }

    /// The `f32` initializer `name`.
    pub fn f32_initializer(&self, name: &str) -> Result<&OnnxTensor<f32>> {
        match self.initializers.get(name) {
            Some(TensorData::F32(t)) => Ok(t),
            _ => Err(self.error(OnnxError::MissingInitializer {
                name: name.to_owned(),
                wanted: "float",
            })),
        }
    }

    /// The `i64` initializer `name`.
    pub fn i64_initializer(&self, name: &str) -> Result<&OnnxTensor<i64>> {
        match self.initializers.get(name) {
            Some(TensorData::I64(t)) => Ok(t),
            _ => Err(self.error(OnnxError::MissingInitializer {
                name: name.to_owned(),
                wanted: "int64",
            })),
        }
    }

    /// Wraps `source` with this model's path, for errors found while building on it.
    pub fn error(&self, source: OnnxError) -> EngineError {
        EngineError::Onnx {
            path: self.path.clone(),
            source: Box::new(source),
        }
    }
}

impl Node {
    pub fn attribute(&self, name: &str) -> Option<&AttributeValue> {
        self.attributes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    fn attribute_error(&self, attribute: &str, problem: impl Into<String>) -> OnnxError {
        OnnxError::Attribute {
            node: self.name.clone(),
            op_type: self.op_type.clone(),
            attribute: attribute.to_owned(),
            problem: problem.into(),
        }
    }

    fn typed<'a, T>(
        &'a self,
        name: &str,
        kind: &str,
        pick: impl Fn(&'a AttributeValue) -> Option<T>,
    ) -> std::result::Result<Option<T>, OnnxError> {
        match self.attribute(name) {
            None => Ok(None),
            Some(v) => pick(v)
                .map(Some)
                .ok_or_else(|| self.attribute_error(name, format!("is not {kind}: {v:?}"))),
        }
    }

    /// The integer attribute `name`, `None` when absent; an error when of another type.
    pub fn int(&self, name: &str) -> std::result::Result<Option<i64>, OnnxError> {
        self.typed(name, "an int", |v| match v {
            AttributeValue::Int(i) => Some(*i),
            _ => None,
        })
    }

    pub fn ints(&self, name: &str) -> std::result::Result<Option<&[i64]>, OnnxError> {
        self.typed(name, "a list of ints", |v| match v {
            AttributeValue::Ints(i) => Some(i.as_slice()),
            _ => None,
        })
    }

    pub fn float(&self, name: &str) -> std::result::Result<Option<f32>, OnnxError> {
        self.typed(name, "a float", |v| match v {
            AttributeValue::Float(f) => Some(*f),
            _ => None,
        })
    }

    pub fn floats(&self, name: &str) -> std::result::Result<Option<&[f32]>, OnnxError> {
        self.typed(name, "a list of floats", |v| match v {
            AttributeValue::Floats(f) => Some(f.as_slice()),
            _ => None,
        })
    }

    pub fn string(&self, name: &str) -> std::result::Result<Option<&str>, OnnxError> {
        self.typed(name, "a string", |v| match v {
            AttributeValue::String(s) => Some(s.as_str()),
            _ => None,
        })
    }

    pub fn tensor(&self, name: &str) -> std::result::Result<Option<&TensorData>, OnnxError> {
        self.typed(name, "a tensor", |v| match v {
            AttributeValue::Tensor(t) => Some(t),
            _ => None,
        })
    }

    /// The integer attribute `name`, or `default` when absent.
    pub fn int_or(&self, name: &str, default: i64) -> std::result::Result<i64, OnnxError> {
        Ok(self.int(name)?.unwrap_or(default))
    }

    /// The float attribute `name`, or `default` when absent.
    pub fn float_or(&self, name: &str, default: f32) -> std::result::Result<f32, OnnxError> {
        Ok(self.float(name)?.unwrap_or(default))
    }

    /// The attribute `name`, which must be present.
    pub fn required<T>(
        &self,
        name: &str,
        value: std::result::Result<Option<T>, OnnxError>,
    ) -> std::result::Result<T, OnnxError> {
        value?.ok_or_else(|| self.attribute_error(name, "is missing"))
    }
}

fn value_info(v: proto::ValueInfoProto) -> ValueInfo {
    let tensor = v.r#type.and_then(|t| t.tensor_type);
    ValueInfo {
        name: v.name,
        elem_type: tensor.as_ref().map_or(0, |t| t.elem_type),
        shape: tensor
            .and_then(|t| t.shape)
            .map(|s| {
                s.dim
                    .iter()
                    .map(|d| d.dim_value.and_then(|v| usize::try_from(v).ok()))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

fn convert_node(n: proto::NodeProto) -> std::result::Result<Node, OnnxError> {
    let attributes = n
        .attribute
        .into_iter()
        .map(|a| {
            let value = match a.r#type {
                attribute_type::FLOAT => AttributeValue::Float(a.f),
                attribute_type::INT => AttributeValue::Int(a.i),
                attribute_type::STRING => {
                    AttributeValue::String(String::from_utf8_lossy(&a.s).into_owned())
                }
                attribute_type::TENSOR => match a.t {
                    Some(t) => AttributeValue::Tensor(convert_tensor(t)?),
                    None => AttributeValue::Other(a.r#type),
                },
                attribute_type::FLOATS => AttributeValue::Floats(a.floats),
                attribute_type::INTS => AttributeValue::Ints(a.ints),
                other => AttributeValue::Other(other),
            };
            Ok((a.name, value))
        })
        .collect::<std::result::Result<_, OnnxError>>()?;
    Ok(Node {
        op_type: n.op_type,
        name: n.name,
        domain: n.domain,
        inputs: n.input,
        outputs: n.output,
        attributes,
    })
}

/// Converts a `TensorProto` to `f32` (float, double) or `i64` (int64, int32) values,
/// from `raw_data` (little-endian) or the typed repeated field.
fn convert_tensor(t: proto::TensorProto) -> std::result::Result<TensorData, OnnxError> {
    let bad = |problem: String| OnnxError::Tensor {
        name: t.name.clone(),
        problem,
    };
    if t.data_location == 1 {
        return Err(bad("its data is in an external file".into()));
    }
    let dims = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| bad(format!("negative dimension {d}"))))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let count = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| bad(format!("dimensions {dims:?} overflow")))?;
    let raw = !t.raw_data.is_empty();
    let data = match t.data_type {
        data_type::FLOAT if raw => F32(le_values(&t.raw_data, f32::from_le_bytes)),
        data_type::FLOAT => F32(t.float_data.clone()),
        data_type::DOUBLE if raw => F32(le_values(&t.raw_data, f64::from_le_bytes)
            .into_iter()
            .map(|v| v as f32)
            .collect()),
        data_type::DOUBLE => F32(t.double_data.iter().map(|&v| v as f32).collect()),
        data_type::INT64 if raw => I64(le_values(&t.raw_data, i64::from_le_bytes)),
        data_type::INT64 => I64(t.int64_data.clone()),
        data_type::INT32 if raw => I64(le_values(&t.raw_data, i32::from_le_bytes)
            .into_iter()
            .map(i64::from)
            .collect()),
        data_type::INT32 => I64(t.int32_data.iter().map(|&v| i64::from(v)).collect()),
        other => return Err(bad(format!("element type {other} is not supported"))),
    };
    let len = match &data {
        F32(v) => v.len(),
        I64(v) => v.len(),
    };
    if len != count {
        return Err(bad(format!(
            "{len} values for dimensions {dims:?} ({count} expected)"
        )));
    }
    Ok(match data {
        F32(data) => TensorData::F32(OnnxTensor { dims, data }),
        I64(data) => TensorData::I64(OnnxTensor { dims, data }),
    })
}

enum Values {
    F32(Vec<f32>),
    I64(Vec<i64>),
}
use Values::{F32, I64};

/// Little-endian values of `N` bytes each; a trailing partial value is dropped (and then
/// caught by the element count check).
fn le_values<T, const N: usize>(bytes: &[u8], from: fn([u8; N]) -> T) -> Vec<T> {
    bytes
        .chunks_exact(N)
        .map(|c| {
            let mut a = [0u8; N];
            a.copy_from_slice(c);
            from(a)
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests;
