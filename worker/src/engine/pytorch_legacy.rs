//! Reader for PyTorch's legacy (pre-1.6, non-zip) `torch.save` format, enough for the
//! MTCNN state dicts shipped with facenet-pytorch (`pnet.pt`, `rnet.pt`, `onet.pt`).
//!
//! The file is five pickles in a row (magic number, protocol version, sys info, the state
//! dict, the list of storage keys) followed by the raw storages in key-list order. The
//! state dict refers to storages through persistent ids; tensors are rebuilt through
//! `(offset, size, stride)`, and the strides matter: these weights are column-major.
//!
//! The pickle VM is deliberately minimal: it knows the opcodes and the three globals that
//! such a file uses and rejects everything else as a [`EngineError::Format`] error, so that
//! an unexpected file fails loudly instead of loading garbage.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;
use std::rc::Rc;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use super::{EngineError, Result};

/// `torch.serialization.MAGIC_NUMBER`.
const MAGIC_NUMBER: i128 = 0x1950a86a20f9469cfc6c;
/// `torch.serialization.PROTOCOL_VERSION`.
const PROTOCOL_VERSION: i128 = 1001;

/// Reads a legacy `.pt` state dict. Tensors come back in the order of the state dict,
/// as C-contiguous `f32` tensors on `device`.
pub fn load_state_dict(path: &Path, device: &Device) -> Result<Vec<(String, Tensor)>> {
    let bytes = std::fs::read(path).map_err(|source| EngineError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let format = |e: PickleError| EngineError::Format {
        path: path.to_path_buf(),
        reason: e.0,
    };
    let entries = parse(&bytes).map_err(format)?;
    entries
        .into_iter()
        .map(|(name, shape, data)| {
            let tensor = Tensor::from_vec(data, shape, device)?;
            Ok((name, tensor))
        })
        .collect()
}

/// Reads a legacy `.pt` state dict into a [`VarBuilder`] (names as in the file).
pub fn var_builder(path: &Path, device: &Device) -> Result<VarBuilder<'static>> {
    let tensors: HashMap<String, Tensor> = load_state_dict(path, device)?.into_iter().collect();
    Ok(VarBuilder::from_tensors(tensors, DType::F32, device))
}

/// Why a file does not parse as a legacy state dict; the caller adds the path.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct PickleError(String);

impl From<String> for PickleError {
    fn from(reason: String) -> Self {
        PickleError(reason)
    }
}

impl From<&str> for PickleError {
    fn from(reason: &str) -> Self {
        PickleError(reason.to_owned())
    }
}

type PickleResult<T> = std::result::Result<T, PickleError>;

/// One tensor of the state dict: name, shape, C-order data.
type Entry = (String, Vec<usize>, Vec<f32>);

/// Parses the whole file. Errors are plain reasons; the caller adds the path.
fn parse(bytes: &[u8]) -> PickleResult<Vec<Entry>> {
    let mut cursor = Cursor { bytes, pos: 0 };

    let magic = Unpickler::run(&mut cursor)
        .map_err(|e| PickleError(format!("not a PyTorch legacy file: {e}")))?;
    if !matches!(magic, Value::Int(MAGIC_NUMBER)) {
        return Err("not a PyTorch legacy file: wrong magic number".into());
    }
    match Unpickler::run(&mut cursor)? {
        Value::Int(PROTOCOL_VERSION) => {}
        other => {
            return Err(PickleError(format!(
                "unsupported protocol version {other:?}"
            )));
        }
    }
    // The sys-info dict (endianness, type sizes). Only little-endian files exist in
    // practice and every storage here is float32, so its content is not needed.
    Unpickler::run(&mut cursor)?;

    let state = Unpickler::run(&mut cursor)?;
    let Value::Dict(items) = state else {
        return Err(PickleError(format!(
            "expected a state dict, found {}",
            state.kind()
        )));
    };
    let mut tensors = Vec::new();
    for (key, value) in items.borrow().iter() {
        let Value::Str(name) = key else {
            return Err(PickleError(format!(
                "state dict key is a {}, not a string",
                key.kind()
            )));
        };
        let Value::Tensor(t) = value else {
            return Err(PickleError(format!(
                "state dict entry {name} is a {}, not a tensor",
                value.kind()
            )));
        };
        tensors.push((name.clone(), t.clone()));
    }

    let keys = match Unpickler::run(&mut cursor)? {
        Value::List(list) => list
            .borrow()
            .iter()
            .map(|v| match v {
                Value::Str(s) => Ok(s.clone()),
                other => Err(PickleError(format!(
                    "storage key is a {}, not a string",
                    other.kind()
                ))),
            })
            .collect::<PickleResult<Vec<_>>>()?,
        other => {
            return Err(PickleError(format!(
                "expected the storage key list, found {}",
                other.kind()
            )));
        }
    };

    // Raw storages follow in key-list order: i64 element count, then the elements.
    let mut storages: HashMap<String, Vec<f32>> = HashMap::with_capacity(keys.len());
    for key in keys {
        let count = i64::from_le_bytes(cursor.array::<8>()?);
        let count = usize::try_from(count)
            .map_err(|_| PickleError(format!("storage {key}: negative size {count}")))?;
        let raw = cursor.take(count.checked_mul(4).ok_or("storage size overflows")?)?;
        let data = raw
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        storages.insert(key, data);
    }
    if cursor.pos != bytes.len() {
        return Err(PickleError(format!(
            "{} unexpected bytes after the last storage",
            bytes.len() - cursor.pos
        )));
    }

    tensors
        .into_iter()
        .map(|(name, t)| {
            let storage = storages
                .get(&t.storage.key)
                .ok_or_else(|| format!("{name}: storage {} is missing", t.storage.key))?;
            if storage.len() != t.storage.numel {
                return Err(PickleError(format!(
                    "{name}: storage {} holds {} elements, its persistent id says {}",
                    t.storage.key,
                    storage.len(),
                    t.storage.numel
                )));
            }
            let data = gather(storage, t.offset, &t.size, &t.stride)
                .map_err(|e| PickleError(format!("{name}: {e}")))?;
            Ok((name, t.size, data))
        })
        .collect()
}

/// Copies a strided view out of a storage into C order:
/// `out[i0,..,in] = storage[offset + Σ ik * stride[k]]`.
fn gather(
    storage: &[f32],
    offset: usize,
    size: &[usize],
    stride: &[usize],
) -> PickleResult<Vec<f32>> {
    let numel: usize = size.iter().product();
    if numel == 0 {
        return Ok(Vec::new());
    }
    let last = size
        .iter()
        .zip(stride)
        .try_fold(offset, |acc, (&n, &s)| {
            acc.checked_add((n - 1).checked_mul(s)?)
        })
        .ok_or("view extent overflows")?;
    if last >= storage.len() {
        return Err(PickleError(format!(
            "view reaches element {last} of a storage of {}",
            storage.len()
        )));
    }
    let mut out = Vec::with_capacity(numel);
    let mut index = vec![0usize; size.len()];
    let mut pos = offset;
    for _ in 0..numel {
        out.push(storage[pos]);
        // Odometer increment over the C-order index, keeping `pos` in step.
        for d in (0..size.len()).rev() {
            index[d] += 1;
            pos += stride[d];
            if index[d] < size[d] {
                break;
            }
            pos -= stride[d] * size[d];
            index[d] = 0;
        }
    }
    Ok(out)
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> PickleResult<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| {
                format!(
                    "truncated: needs {n} bytes at offset {} but the file has {}",
                    self.pos,
                    self.bytes.len()
                )
            })?;
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> PickleResult<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> PickleResult<u8> {
        Ok(self.array::<1>()?[0])
    }

    fn u32(&mut self) -> PickleResult<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    /// A `\n`-terminated line (GLOBAL's module and name).
    fn line(&mut self) -> PickleResult<String> {
        let rest = &self.bytes[self.pos..];
        let len = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or("truncated: unterminated GLOBAL")?;
        let text = std::str::from_utf8(&rest[..len]).map_err(|_| "GLOBAL name is not UTF-8")?;
        self.pos += len + 1;
        Ok(text.to_owned())
    }

    fn utf8(&mut self, len: usize) -> PickleResult<String> {
        let at = self.pos;
        let raw = self.take(len)?;
        String::from_utf8(raw.to_vec())
            .map_err(|_| PickleError(format!("string at offset {at} is not UTF-8")))
    }
}

/// A persistent-id storage reference: `('storage', FloatStorage, key, location, numel, None)`.
#[derive(Debug, Clone)]
struct StorageRef {
    key: String,
    numel: usize,
}

/// The arguments of `torch._utils._rebuild_tensor_v2`.
#[derive(Debug, Clone)]
struct TensorRef {
    storage: StorageRef,
    offset: usize,
    size: Vec<usize>,
    stride: Vec<usize>,
}

/// A pickled dict's items, shared because the pickle can reference it again by memo.
type DictItems = Rc<RefCell<Vec<(Value, Value)>>>;

/// Pickle values. Dicts and lists are shared (`Rc<RefCell>`) because pickle memoizes them
/// by reference and may fill them after they were stored in the memo.
#[derive(Debug, Clone)]
enum Value {
    Mark,
    None,
    /// `requires_grad`, `little_endian`: never needed, so not kept.
    Bool,
    Int(i128),
    Float,
    Str(String),
    Tuple(Rc<Vec<Value>>),
    List(Rc<RefCell<Vec<Value>>>),
    Dict(DictItems),
    Global {
        module: String,
        name: String,
    },
    Storage(StorageRef),
    Tensor(TensorRef),
}

impl Value {
    fn kind(&self) -> &'static str {
        match self {
            Value::Mark => "mark",
            Value::None => "None",
            Value::Bool => "bool",
            Value::Int(_) => "int",
            Value::Float => "float",
            Value::Str(_) => "str",
            Value::Tuple(_) => "tuple",
            Value::List(_) => "list",
            Value::Dict(_) => "dict",
            Value::Global { .. } => "global",
            Value::Storage(_) => "storage",
            Value::Tensor(_) => "tensor",
        }
    }

    fn as_usize(&self, what: &str) -> PickleResult<usize> {
        match self {
            Value::Int(i) => {
                usize::try_from(*i).map_err(|_| PickleError(format!("{what} is {i}, not a size")))
            }
            other => Err(PickleError(format!(
                "{what} is a {}, not an int",
                other.kind()
            ))),
        }
    }

    fn as_usizes(&self, what: &str) -> PickleResult<Vec<usize>> {
        match self {
            Value::Tuple(items) => items.iter().map(|v| v.as_usize(what)).collect(),
            other => Err(PickleError(format!(
                "{what} is a {}, not a tuple",
                other.kind()
            ))),
        }
    }

    fn is_global(&self, m: &str, n: &str) -> bool {
        matches!(self, Value::Global { module, name } if module == m && name == n)
    }
}

/// One pickle's VM state. Each pickle in the file has its own memo.
struct Unpickler {
    stack: Vec<Value>,
    memo: HashMap<u32, Value>,
}

impl Unpickler {
    fn run(cursor: &mut Cursor<'_>) -> PickleResult<Value> {
        let mut vm = Unpickler {
            stack: Vec::new(),
            memo: HashMap::new(),
        };
        loop {
            let at = cursor.pos;
            let op = cursor.u8()?;
            match op {
                // PROTO
                0x80 => {
                    let version = cursor.u8()?;
                    if version > 5 {
                        return Err(PickleError(format!(
                            "unsupported pickle protocol {version}"
                        )));
                    }
                }
                // STOP
                b'.' => {
                    let top = vm.pop()?;
                    return if vm.stack.is_empty() {
                        Ok(top)
                    } else {
                        Err(PickleError(format!(
                            "pickle ended at offset {at} with {} values left",
                            vm.stack.len()
                        )))
                    };
                }
                // MARK
                b'(' => vm.stack.push(Value::Mark),
                // NONE, NEWTRUE, NEWFALSE
                b'N' => vm.stack.push(Value::None),
                0x88 | 0x89 => vm.stack.push(Value::Bool),
                // BININT1, BININT2, BININT
                b'K' => vm.stack.push(Value::Int(cursor.u8()?.into())),
                b'M' => vm
                    .stack
                    .push(Value::Int(u16::from_le_bytes(cursor.array()?).into())),
                b'J' => vm
                    .stack
                    .push(Value::Int(i32::from_le_bytes(cursor.array()?).into())),
                // LONG1: little-endian two's complement of n bytes
                0x8a => {
                    let n = usize::from(cursor.u8()?);
                    if n > 16 {
                        return Err(PickleError(format!(
                            "LONG1 of {n} bytes at offset {at} is too large"
                        )));
                    }
                    let raw = cursor.take(n)?;
                    let mut buf = if raw.last().is_some_and(|&b| b & 0x80 != 0) {
                        [0xffu8; 16]
                    } else {
                        [0u8; 16]
                    };
                    buf[..n].copy_from_slice(raw);
                    vm.stack.push(Value::Int(i128::from_le_bytes(buf)));
                }
                // BINFLOAT (big-endian f64)
                b'G' => {
                    cursor.take(8)?;
                    vm.stack.push(Value::Float);
                }
                // BINUNICODE, SHORT_BINUNICODE
                b'X' => {
                    let len = cursor.u32()? as usize;
                    vm.stack.push(Value::Str(cursor.utf8(len)?));
                }
                0x8c => {
                    let len = usize::from(cursor.u8()?);
                    vm.stack.push(Value::Str(cursor.utf8(len)?));
                }
                // EMPTY_TUPLE, TUPLE1..3, TUPLE
                b')' => vm.stack.push(Value::Tuple(Rc::new(Vec::new()))),
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    let items = vm.pop_n(n)?;
                    vm.stack.push(Value::Tuple(Rc::new(items)));
                }
                b't' => {
                    let items = vm.pop_to_mark()?;
                    vm.stack.push(Value::Tuple(Rc::new(items)));
                }
                // EMPTY_LIST, APPEND, APPENDS
                b']' => vm
                    .stack
                    .push(Value::List(Rc::new(RefCell::new(Vec::new())))),
                b'a' => {
                    let item = vm.pop()?;
                    vm.top_list()?.borrow_mut().push(item);
                }
                b'e' => {
                    let items = vm.pop_to_mark()?;
                    vm.top_list()?.borrow_mut().extend(items);
                }
                // EMPTY_DICT, SETITEM, SETITEMS
                b'}' => vm
                    .stack
                    .push(Value::Dict(Rc::new(RefCell::new(Vec::new())))),
                b's' => {
                    let value = vm.pop()?;
                    let key = vm.pop()?;
                    vm.top_dict()?.borrow_mut().push((key, value));
                }
                b'u' => {
                    let items = vm.pop_to_mark()?;
                    if items.len() % 2 != 0 {
                        return Err(PickleError(format!(
                            "SETITEMS at offset {at} with an odd number of items"
                        )));
                    }
                    let dict = vm.top_dict()?;
                    let mut dict = dict.borrow_mut();
                    let mut items = items.into_iter();
                    while let (Some(k), Some(v)) = (items.next(), items.next()) {
                        dict.push((k, v));
                    }
                }
                // BINPUT, LONG_BINPUT, MEMOIZE
                b'q' => {
                    let slot = cursor.u8()?.into();
                    vm.put(slot)?;
                }
                b'r' => {
                    let slot = cursor.u32()?;
                    vm.put(slot)?;
                }
                0x94 => {
                    let slot = u32::try_from(vm.memo.len()).map_err(|_| "memo overflow")?;
                    vm.put(slot)?;
                }
                // BINGET, LONG_BINGET
                b'h' => {
                    let slot = cursor.u8()?.into();
                    vm.get(slot, at)?;
                }
                b'j' => {
                    let slot = cursor.u32()?;
                    vm.get(slot, at)?;
                }
                // GLOBAL
                b'c' => {
                    let module = cursor.line()?;
                    let name = cursor.line()?;
                    vm.stack.push(Value::Global { module, name });
                }
                // REDUCE
                b'R' => {
                    let args = vm.pop()?;
                    let callable = vm.pop()?;
                    let value = reduce(&callable, &args)
                        .map_err(|e| PickleError(format!("at offset {at}: {e}")))?;
                    vm.stack.push(value);
                }
                // BUILD: only `OrderedDict.__setstate__` with `_metadata` occurs, which carries
                // no weights, so the state is dropped.
                b'b' => {
                    vm.pop()?;
                    if vm.stack.is_empty() {
                        return Err(PickleError(format!(
                            "BUILD at offset {at} on an empty stack"
                        )));
                    }
                }
                // BINPERSID
                b'Q' => {
                    let pid = vm.pop()?;
                    let storage = persistent_load(&pid)
                        .map_err(|e| PickleError(format!("at offset {at}: {e}")))?;
                    vm.stack.push(Value::Storage(storage));
                }
                other => {
                    return Err(PickleError(format!(
                        "unsupported pickle opcode 0x{other:02x} at offset {at}"
                    )));
                }
            }
        }
    }

    fn pop(&mut self) -> PickleResult<Value> {
        match self.stack.pop() {
            Some(Value::Mark) | None => Err("pickle stack underflow".into()),
            Some(v) => Ok(v),
        }
    }

    fn pop_n(&mut self, n: usize) -> PickleResult<Vec<Value>> {
        let mut items = (0..n)
            .map(|_| self.pop())
            .collect::<PickleResult<Vec<_>>>()?;
        items.reverse();
        Ok(items)
    }

    fn pop_to_mark(&mut self) -> PickleResult<Vec<Value>> {
        let mark = self
            .stack
            .iter()
            .rposition(|v| matches!(v, Value::Mark))
            .ok_or("pickle MARK missing")?;
        let items = self.stack.split_off(mark + 1);
        self.stack.pop();
        Ok(items)
    }

    fn top_list(&self) -> PickleResult<Rc<RefCell<Vec<Value>>>> {
        match self.stack.last() {
            Some(Value::List(l)) => Ok(l.clone()),
            other => Err(PickleError(format!(
                "APPEND on a {}",
                other.map_or("empty stack", Value::kind)
            ))),
        }
    }

    fn top_dict(&self) -> PickleResult<DictItems> {
        match self.stack.last() {
            Some(Value::Dict(d)) => Ok(d.clone()),
            other => Err(PickleError(format!(
                "SETITEM on a {}",
                other.map_or("empty stack", Value::kind)
            ))),
        }
    }

    fn put(&mut self, slot: u32) -> PickleResult<()> {
        let top = self
            .stack
            .last()
            .ok_or("memo put on an empty stack")?
            .clone();
        self.memo.insert(slot, top);
        Ok(())
    }

    fn get(&mut self, slot: u32, at: usize) -> PickleResult<()> {
        let value = self
            .memo
            .get(&slot)
            .ok_or_else(|| format!("memo slot {slot} read at offset {at} was never written"))?
            .clone();
        self.stack.push(value);
        Ok(())
    }
}

/// The calls a state dict makes: `OrderedDict()` and `_rebuild_tensor_v2(...)`.
fn reduce(callable: &Value, args: &Value) -> PickleResult<Value> {
    let Value::Tuple(args) = args else {
        return Err(PickleError(format!(
            "REDUCE arguments are a {}, not a tuple",
            args.kind()
        )));
    };
    if callable.is_global("collections", "OrderedDict") && args.is_empty() {
        return Ok(Value::Dict(Rc::new(RefCell::new(Vec::new()))));
    }
    if callable.is_global("torch._utils", "_rebuild_tensor_v2") {
        // (storage, storage_offset, size, stride, requires_grad, backward_hooks)
        if args.len() < 4 {
            return Err(PickleError(format!(
                "_rebuild_tensor_v2 with {} arguments",
                args.len()
            )));
        }
        let Value::Storage(storage) = &args[0] else {
            return Err(PickleError(format!(
                "_rebuild_tensor_v2 on a {}, not a storage",
                args[0].kind()
            )));
        };
        let size = args[2].as_usizes("tensor size")?;
        let stride = args[3].as_usizes("tensor stride")?;
        if size.len() != stride.len() {
            return Err(PickleError(format!(
                "size {size:?} and stride {stride:?} differ in rank"
            )));
        }
        return Ok(Value::Tensor(TensorRef {
            storage: storage.clone(),
            offset: args[1].as_usize("storage offset")?,
            size,
            stride,
        }));
    }
    match callable {
        Value::Global { module, name } => {
            Err(PickleError(format!("unsupported call {module}.{name}")))
        }
        other => Err(PickleError(format!("REDUCE on a {}", other.kind()))),
    }
}

/// `persistent_load(('storage', FloatStorage, key, location, numel, view_metadata))`.
fn persistent_load(pid: &Value) -> PickleResult<StorageRef> {
    let Value::Tuple(items) = pid else {
        return Err(PickleError(format!(
            "persistent id is a {}, not a tuple",
            pid.kind()
        )));
    };
    match items.as_slice() {
        [
            Value::Str(tag),
            storage_type,
            Value::Str(key),
            Value::Str(_location),
            numel,
            view,
        ] if tag == "storage" => {
            if !storage_type.is_global("torch", "FloatStorage") {
                return Err(PickleError(format!(
                    "storage {key} has type {storage_type:?}; only torch.FloatStorage is supported"
                )));
            }
            if !matches!(view, Value::None) {
                return Err(PickleError(format!(
                    "storage {key} is a view; storage views are not supported"
                )));
            }
            Ok(StorageRef {
                key: key.clone(),
                numel: numel.as_usize("storage numel")?,
            })
        }
        _ => Err(PickleError(format!("unexpected persistent id {items:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn models_dir() -> PathBuf {
        std::env::var_os("MODELS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/models"))
    }

    fn sum(t: &Tensor) -> f64 {
        t.to_dtype(DType::F64)
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    }

    fn check(file: &str, count: usize, floats: usize, expect: &[(&str, &[usize], f64)]) {
        let path = models_dir().join(file);
        let dict = load_state_dict(&path, &Device::Cpu).unwrap();
        assert_eq!(dict.len(), count, "{file}: tensor count");
        let total: usize = dict.iter().map(|(_, t)| t.elem_count()).sum();
        assert_eq!(total, floats, "{file}: float count");
        for (name, shape, expected_sum) in expect {
            let (_, t) = dict
                .iter()
                .find(|(n, _)| n == name)
                .unwrap_or_else(|| panic!("{file}: {name} missing"));
            assert_eq!(t.dims(), *shape, "{file}: {name} shape");
            let s = sum(t);
            // Reference sums to 9 significant digits.
            assert!(
                (s - expected_sum).abs() <= 1e-8_f64.max(expected_sum.abs() * 1e-8),
                "{file}: {name} sums to {s}, expected {expected_sum}"
            );
        }
    }

    #[test]
    fn reads_pnet() {
        check(
            "pnet.pt",
            13,
            6632,
            &[
                ("conv1.weight", &[10, 3, 3, 3], 2.34876704),
                ("prelu1.weight", &[10], -2.30457546),
                ("conv3.weight", &[32, 16, 3, 3], -43.2797315),
                ("conv4_2.bias", &[4], -0.0945487954),
            ],
        );
    }

    #[test]
    fn reads_rnet() {
        check(
            "rnet.pt",
            16,
            100_178,
            &[
                ("conv2.weight", &[48, 28, 3, 3], -81.3515734),
                ("dense4.weight", &[128, 576], -73.5947546),
                ("dense5_2.bias", &[4], -0.280413114),
            ],
        );
    }

    #[test]
    fn reads_onet() {
        check(
            "onet.pt",
            21,
            389_040,
            &[
                ("conv4.weight", &[128, 64, 2, 2], -56.9071),
                ("dense5.weight", &[256, 1152], -147.486701),
                ("dense6_3.weight", &[10, 256], -0.837648061),
                ("dense6_3.bias", &[10], 5.41747501),
            ],
        );
    }

    /// The strides are column-major: element [o,i,kh,kw] lives at o + 10*i + 30*kh + 90*kw.
    /// Reading the storage as C order would put storage[1] at [0,0,0,1] instead of [1,0,0,0].
    #[test]
    fn honours_column_major_strides() {
        let storage: Vec<f32> = (0..6).map(|v| v as f32).collect();
        // size (2,3), stride (1,2): element [r,c] = storage[r + 2c]
        let out = gather(&storage, 0, &[2, 3], &[1, 2]).unwrap();
        assert_eq!(out, vec![0.0, 2.0, 4.0, 1.0, 3.0, 5.0]);
        assert!(
            gather(&storage, 1, &[2, 3], &[1, 2]).is_err(),
            "out-of-range view accepted"
        );
    }

    #[test]
    fn state_dict_order_is_kept() {
        let dict = load_state_dict(&models_dir().join("pnet.pt"), &Device::Cpu).unwrap();
        let names: Vec<&str> = dict.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names[..3], ["conv1.weight", "conv1.bias", "prelu1.weight"]);
        assert_eq!(names[12], "conv4_2.bias");
    }

    #[test]
    fn truncated_file_is_a_format_error_naming_the_file() {
        let bytes = std::fs::read(models_dir().join("rnet.pt")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        for cut in [10, 1000, bytes.len() - 1] {
            let path = dir.path().join(format!("cut{cut}.pt"));
            std::fs::write(&path, &bytes[..cut]).unwrap();
            let err = load_state_dict(&path, &Device::Cpu).unwrap_err();
            assert!(
                matches!(&err, EngineError::Format { path: p, .. } if *p == path),
                "{err:?}"
            );
            assert!(err.to_string().contains(&format!("cut{cut}.pt")), "{err}");
        }
    }

    #[test]
    fn non_pickle_file_is_a_format_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("not_a_model.pt");
        std::fs::write(&path, b"<html>404 Not Found</html>").unwrap();
        let err = load_state_dict(&path, &Device::Cpu).unwrap_err();
        assert!(
            matches!(&err, EngineError::Format { path: p, .. } if *p == path),
            "{err:?}"
        );
        assert!(err.to_string().contains("not_a_model.pt"), "{err}");
    }

    #[test]
    fn missing_file_is_an_io_error() {
        let err = load_state_dict(Path::new("/nonexistent/pnet.pt"), &Device::Cpu).unwrap_err();
        assert!(matches!(err, EngineError::Io { .. }), "{err:?}");
    }
}
