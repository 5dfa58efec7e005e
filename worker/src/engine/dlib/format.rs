//! Reader for dlib's serialization (`dlib/serialize.h`, `dlib/cuda/tensor.h`).
//!
//! The stream has no header and no alignment: every object is written field by field and
//! the reader must know the schema. Only the primitives live here; `shape_predictor.rs`
//! and `resnet/layer_chain.rs` know the schemas.

use std::path::{Path, PathBuf};

use crate::engine::{EngineError, Result};

/// A dlib `tensor`: shape `(num_samples, k, nr, nc)` and raw float32 values in C order.
#[derive(Debug, Clone, PartialEq)]
pub struct DlibTensor {
    pub shape: [usize; 4],
    pub data: Vec<f32>,
}

impl DlibTensor {
    /// Number of elements (the product of the four dimensions).
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A cursor over the bytes of one dlib file. Every error names the file and the byte
/// offset at which the read failed.
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    path: PathBuf,
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8], path: &Path) -> Self {
        Self {
            data,
            pos: 0,
            path: path.to_path_buf(),
        }
    }

    /// Current byte offset.
    pub fn offset(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    pub fn is_at_end(&self) -> bool {
        self.pos == self.data.len()
    }

    /// A `Format` error about the file being read, at the current offset.
    pub fn error(&self, reason: impl std::fmt::Display) -> EngineError {
        self.error_at(self.pos, reason)
    }

    fn error_at(&self, offset: usize, reason: impl std::fmt::Display) -> EngineError {
        EngineError::Format {
            path: self.path.clone(),
            reason: format!("at byte {offset}: {reason}"),
        }
    }

    /// Fails unless the whole input has been consumed.
    pub fn expect_end(&self) -> Result<()> {
        if self.is_at_end() {
            Ok(())
        } else {
            Err(self.error(format!("{} unexpected trailing bytes", self.remaining())))
        }
    }

    pub fn read_bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.remaining() < n {
            return Err(self.error(format!(
                "needs {n} bytes but only {} remain",
                self.remaining()
            )));
        }
        let out = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// One raw byte (`char`, `unsigned char`).
    pub fn read_u8(&mut self) -> Result<u8> {
        Ok(self.read_bytes(1)?[0])
    }

    /// A signed integral of any width: control byte (sign bit 7, byte count in bits 0..3),
    /// then the magnitude little-endian.
    pub fn read_int(&mut self) -> Result<i64> {
        let start = self.pos;
        let control = self.read_u8()?;
        let n = usize::from(control & 0x0F);
        if n == 0 || n > 8 {
            return Err(self.error_at(start, format!("bad integer control byte {control:#04x}")));
        }
        let magnitude = self.magnitude(n)?;
        if control & 0x80 != 0 {
            // -(2^63) is the only magnitude that does not fit a positive i64.
            0i64.checked_sub_unsigned(magnitude)
                .ok_or_else(|| self.error_at(start, "integer out of range"))
        } else {
            i64::try_from(magnitude).map_err(|_| self.error_at(start, "integer out of range"))
        }
    }

    /// An unsigned integral: as `read_int`, but a set sign bit is an error (dlib masks
    /// with 0x8F, so the sign bit makes the byte count invalid).
    pub fn read_uint(&mut self) -> Result<u64> {
        let start = self.pos;
        let control = self.read_u8()?;
        let n = usize::from(control & 0x8F);
        if n == 0 || n > 8 {
            return Err(self.error_at(
                start,
                format!("bad unsigned integer control byte {control:#04x}"),
            ));
        }
        self.magnitude(n)
    }

    /// An unsigned integer used as a size or index.
    pub fn read_usize(&mut self) -> Result<usize> {
        let start = self.pos;
        let v = self.read_uint()?;
        usize::try_from(v).map_err(|_| self.error_at(start, format!("size {v} too large")))
    }

    /// A signed integer that must be a non-negative size (dlib writes `long` dims).
    pub fn read_dim(&mut self) -> Result<usize> {
        let start = self.pos;
        let v = self.read_int()?;
        usize::try_from(v).map_err(|_| self.error_at(start, format!("negative size {v}")))
    }

    fn magnitude(&mut self, n: usize) -> Result<u64> {
        let bytes = self.read_bytes(n)?;
        Ok(bytes
            .iter()
            .rev()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    /// `bool`: the ASCII byte `'1'` or `'0'`.
    pub fn read_bool(&mut self) -> Result<bool> {
        let start = self.pos;
        match self.read_u8()? {
            b'1' => Ok(true),
            b'0' => Ok(false),
            b => Err(self.error_at(start, format!("bad bool byte {b:#04x}"))),
        }
    }

    /// `float_details`: mantissa (int64) first, then exponent (int16);
    /// value = mantissa · 2^exponent.
    fn read_float_details(&mut self) -> Result<(i64, i16)> {
        let start = self.pos;
        let first = *self
            .data
            .get(self.pos)
            .ok_or_else(|| self.error("needs a float but the input ended"))?;
        if first & 0x70 != 0 {
            return Err(self.error_at(start, "old ASCII float encoding is not supported"));
        }
        let mantissa = self.read_int()?;
        let exp_at = self.pos;
        let exponent = i16::try_from(self.read_int()?)
            .map_err(|_| self.error_at(exp_at, "float exponent out of range"))?;
        Ok((mantissa, exponent))
    }

    /// A double from `float_details`.
    pub fn read_f64(&mut self) -> Result<f64> {
        let (m, e) = self.read_float_details()?;
        Ok(match e {
            32000 => f64::INFINITY,
            32001 => f64::NEG_INFINITY,
            32002 => f64::NAN,
            _ => ldexp(m as f64, i32::from(e)),
        })
    }

    /// A float from `float_details`. dlib does `ldexp((float)mantissa, exponent)`; the
    /// writer's mantissa has at most 24 significant bits, so the f64 route is exact.
    pub fn read_f32(&mut self) -> Result<f32> {
        let (m, e) = self.read_float_details()?;
        Ok(match e {
            32000 => f32::INFINITY,
            32001 => f32::NEG_INFINITY,
            32002 => f32::NAN,
            _ => ldexp(m as f64, i32::from(e)) as f32,
        })
    }

    /// `std::string`: unsigned length, then the raw bytes.
    pub fn read_string(&mut self) -> Result<String> {
        let len = self.read_usize()?;
        let start = self.pos;
        let bytes = self.read_bytes(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| self.error_at(start, "string is not UTF-8"))
    }

    /// Reads a string and fails unless it is one of `expected` (layer version tags).
    pub fn expect_string(&mut self, expected: &[&str]) -> Result<String> {
        let start = self.pos;
        let s = self.read_string()?;
        if expected.contains(&s.as_str()) {
            Ok(s)
        } else {
            Err(self.error_at(start, format!("expected one of {expected:?}, found {s:?}")))
        }
    }

    /// Reads a signed int and fails unless it equals `expected` (version numbers).
    pub fn expect_int(&mut self, expected: i64, what: &str) -> Result<()> {
        let start = self.pos;
        let v = self.read_int()?;
        if v == expected {
            Ok(())
        } else {
            Err(self.error_at(start, format!("{what}: expected {expected}, found {v}")))
        }
    }

    /// `std::vector<T>`: unsigned size, then each element through `item`.
    pub fn read_vec<T>(&mut self, mut item: impl FnMut(&mut Self) -> Result<T>) -> Result<Vec<T>> {
        let start = self.pos;
        let n = self.read_usize()?;
        // Every element takes at least one byte: refuse absurd sizes before allocating.
        if n > self.remaining() {
            return Err(self.error_at(start, format!("vector size {n} exceeds the input")));
        }
        (0..n).map(|_| item(self)).collect()
    }

    /// `dlib::matrix<float>`: `-nr`, `-nc` (the negative sign marks the new format; the
    /// old one wrote them positive), then the elements row-major. Returns (nr, nc, data).
    pub fn read_matrix_f32(&mut self) -> Result<(usize, usize, Vec<f32>)> {
        let start = self.pos;
        let nr = self.read_int()?.unsigned_abs();
        let nc = self.read_int()?.unsigned_abs();
        let count = nr
            .checked_mul(nc)
            .filter(|&c| c <= self.remaining() as u64)
            .ok_or_else(|| self.error_at(start, format!("matrix {nr}x{nc} exceeds the input")))?;
        let data = (0..count)
            .map(|_| self.read_f32())
            .collect::<Result<Vec<_>>>()?;
        Ok((nr as usize, nc as usize, data))
    }

    /// `dlib::vector<float,2>`: x then y.
    pub fn read_point_f32(&mut self) -> Result<[f32; 2]> {
        Ok([self.read_f32()?, self.read_f32()?])
    }

    fn read_shape4(&mut self) -> Result<[usize; 4]> {
        Ok([
            self.read_dim()?,
            self.read_dim()?,
            self.read_dim()?,
            self.read_dim()?,
        ])
    }

    /// A DNN `tensor`: version 2, the four dims, then raw little-endian float32 values.
    pub fn read_tensor(&mut self) -> Result<DlibTensor> {
        self.expect_int(2, "tensor version")?;
        let start = self.pos;
        let shape = self.read_shape4()?;
        let count = shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .and_then(|c| c.checked_mul(4).map(|bytes| (c, bytes)))
            .filter(|&(_, bytes)| bytes <= self.remaining())
            .map(|(c, _)| c)
            .ok_or_else(|| self.error_at(start, format!("tensor {shape:?} exceeds the input")))?;
        let bytes = self.read_bytes(count * 4)?;
        let data = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        Ok(DlibTensor { shape, data })
    }

    /// An `alias_tensor` (a view's shape; the offset is implicit): version 1, four dims.
    pub fn read_alias_tensor(&mut self) -> Result<[usize; 4]> {
        self.expect_int(1, "alias_tensor version")?;
        self.read_shape4()
    }
}

/// `ldexp` that stays exact for exponents below f64's normal range by scaling in two steps.
fn ldexp(x: f64, e: i32) -> f64 {
    let half = e / 2;
    x * 2f64.powi(half) * 2f64.powi(e - half)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(bytes: &[u8]) -> Reader<'_> {
        Reader::new(bytes, Path::new("test.dat"))
    }

    #[test]
    fn integers_follow_known_encoding_examples() {
        let mut r = reader(&[0x01, 0x00, 0x01, 0x01, 0x02, 0x00, 0x01, 0x81, 0x01]);
        assert_eq!(r.read_int().unwrap(), 0);
        assert_eq!(r.read_int().unwrap(), 1);
        assert_eq!(r.read_int().unwrap(), 256);
        assert_eq!(r.read_int().unwrap(), -1);
        r.expect_end().unwrap();
    }

    #[test]
    fn unsigned_reader_rejects_the_sign_bit_and_names_the_offset() {
        let mut r = reader(&[0x01, 0x05, 0x81, 0x01]);
        assert_eq!(r.read_uint().unwrap(), 5);
        let err = r.read_uint().unwrap_err().to_string();
        assert!(err.contains("at byte 2"), "{err}");
        assert!(err.contains("test.dat"), "{err}");
    }

    #[test]
    fn zero_length_integer_is_rejected() {
        assert!(reader(&[0x00]).read_int().is_err());
        assert!(
            reader(&[0x09, 0, 0, 0, 0, 0, 0, 0, 0, 0])
                .read_int()
                .is_err()
        );
    }

    #[test]
    fn floats_are_mantissa_first() {
        let mut r = reader(&[
            0x03, 0x0a, 0xd7, 0xa3, 0x81, 0x1c, // 0.04f
            0x03, 0x62, 0x90, 0xf5, 0x81, 0x11, // 122.782f
            0x01, 0x10, 0x81, 0x04, // 1.0
            0x01, 0x00, 0x01, 0x0b, // 0.0
        ]);
        assert_eq!(r.read_f32().unwrap(), 0.04f32);
        assert_eq!(r.read_f32().unwrap(), 122.782f32);
        assert_eq!(r.read_f64().unwrap(), 1.0);
        assert_eq!(r.read_f64().unwrap(), 0.0);
        r.expect_end().unwrap();
    }

    #[test]
    fn special_float_exponents() {
        // mantissa 0, exponent 32000 / 32001 / 32002
        let mut r = reader(&[
            0x01, 0x00, 0x02, 0x00, 0x7d, 0x01, 0x00, 0x02, 0x01, 0x7d, 0x01, 0x00, 0x02, 0x02,
            0x7d,
        ]);
        assert_eq!(r.read_f32().unwrap(), f32::INFINITY);
        assert_eq!(r.read_f32().unwrap(), f32::NEG_INFINITY);
        assert!(r.read_f32().unwrap().is_nan());
    }

    #[test]
    fn strings_bools_matrices_and_tensors() {
        let mut bytes = vec![0x01, 0x05];
        bytes.extend_from_slice(b"con_4");
        bytes.extend_from_slice(b"10");
        // 2x1 matrix (new format, negative dims) of 1.0f, 0.0f
        bytes.extend_from_slice(&[
            0x81, 0x02, 0x81, 0x01, 0x01, 0x10, 0x81, 0x04, 0x01, 0x00, 0x01, 0x0b,
        ]);
        // tensor (1,2,1,1) = [1.5, -2.0]
        bytes.extend_from_slice(&[0x01, 0x02, 0x01, 0x01, 0x01, 0x02, 0x01, 0x01, 0x01, 0x01]);
        bytes.extend_from_slice(&1.5f32.to_le_bytes());
        bytes.extend_from_slice(&(-2.0f32).to_le_bytes());
        // alias tensor (1,2,1,1)
        bytes.extend_from_slice(&[0x01, 0x01, 0x01, 0x01, 0x01, 0x02, 0x01, 0x01, 0x01, 0x01]);
        // empty tensor
        bytes.extend_from_slice(&[0x01, 0x02, 0x01, 0x00, 0x01, 0x00, 0x01, 0x00, 0x01, 0x00]);
        let mut r = reader(&bytes);
        assert_eq!(r.expect_string(&["con_4"]).unwrap(), "con_4");
        assert!(r.read_bool().unwrap());
        assert!(!r.read_bool().unwrap());
        assert_eq!(r.read_matrix_f32().unwrap(), (2, 1, vec![1.0, 0.0]));
        let t = r.read_tensor().unwrap();
        assert_eq!(t.shape, [1, 2, 1, 1]);
        assert_eq!(t.data, vec![1.5, -2.0]);
        assert_eq!(r.read_alias_tensor().unwrap(), [1, 2, 1, 1]);
        assert!(r.read_tensor().unwrap().is_empty());
        r.expect_end().unwrap();
    }

    #[test]
    fn truncated_tensor_is_an_error_not_a_panic() {
        let bytes = [
            0x01, 0x02, 0x01, 0x01, 0x01, 0x02, 0x01, 0x01, 0x01, 0x01, 0, 0,
        ];
        let err = reader(&bytes).read_tensor().unwrap_err().to_string();
        assert!(err.contains("exceeds the input"), "{err}");
    }

    #[test]
    fn unexpected_version_string_is_reported() {
        let mut bytes = vec![0x01, 0x04];
        bytes.extend_from_slice(b"fc_9");
        let err = reader(&bytes)
            .expect_string(&["fc_2"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("fc_9") && err.contains("at byte 0"), "{err}");
    }
}
