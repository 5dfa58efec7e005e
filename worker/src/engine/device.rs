//! Device choice in one place: `DEVICE=auto|cpu|cuda:N`.

use candle_core::Device;

use super::{EngineError, Result};

/// Parses a device specification. `auto` takes the first CUDA device when the binary
/// was built with the `cuda` feature and a GPU is present, else the CPU.
pub fn select(spec: &str) -> Result<Device> {
    let spec = spec.trim().to_ascii_lowercase();
    match spec.as_str() {
        "" | "auto" => Ok(if candle_core::utils::cuda_is_available() {
            Device::new_cuda(0).unwrap_or(Device::Cpu)
        } else {
            Device::Cpu
        }),
        "cpu" => Ok(Device::Cpu),
        "cuda" => Ok(Device::new_cuda(0)?),
        s => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(n)) => Ok(Device::new_cuda(n)?),
            _ => Err(EngineError::Device(spec)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_and_auto_work_without_a_gpu() {
        assert!(select("cpu").unwrap().is_cpu());
        if !candle_core::utils::cuda_is_available() {
            assert!(select("auto").unwrap().is_cpu());
        }
    }

    #[test]
    fn nonsense_is_rejected_with_the_accepted_forms() {
        let err = select("gpu7").unwrap_err().to_string();
        assert!(err.contains("auto, cpu or cuda:N"), "{err}");
    }
}
