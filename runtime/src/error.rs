//! The runtime's error type. Every message is one line, for the CLI to print.
use cudarc::driver::DriverError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("no NVIDIA driver found (libcuda.so could not be loaded): this needs a machine with an NVIDIA GPU and its driver")]
    NoDriver,
    #[error("no CUDA device available ({0})")]
    NoDevice(String),
    #[error("device index {index} does not exist: this machine has {count} CUDA device(s), numbered from 0")]
    BadDevice { index: usize, count: usize },
    #[error("element count must be at least 1")]
    EmptyInput,
    #[error("{elements} elements need {needed} of device memory, more than the {free} free on device {device} ({total} in all)", needed = bytes(*needed), free = bytes(*free), total = bytes(*total))]
    TooLarge { elements: u64, needed: u128, free: u128, total: u128, device: usize },
    #[error("{elements} elements need {needed} of host memory for the copy back, which could not be allocated", needed = bytes(*needed))]
    HostMemory { elements: u64, needed: u128 },
    #[error("{} of pinned host memory could not be allocated", bytes(*needed))]
    PinnedMemory { needed: u128 },
    #[error("block size {block} is not accepted by {kernel} on this GPU: it must be between 1 and {max}")]
    BadBlockSize { block: u32, kernel: &'static str, max: u32 },
    #[error("grid size must be at least 1")]
    BadGridSize,
    #[error("loading {origin}: {detail}")]
    BadModule { origin: String, detail: String },
    #[error("PTX module {origin} has no kernel {name} (its entries: {entries})")]
    MissingKernel { name: &'static str, origin: String, entries: String },
    #[error("kernel {name} in {origin} has parameters of {found:?} bytes, but its #[kernel] signature has {want:?}: the PTX was built from other source")]
    KernelSignature { name: &'static str, origin: String, want: Vec<usize>, found: Vec<usize> },
    #[error("kernel {name} in {origin} does not have the host's parameter layout: {detail}")]
    KernelLayout { name: &'static str, origin: String, detail: String },
    #[error("{kernel}: {what} belongs to another device's context than the kernel")]
    WrongContext { kernel: &'static str, what: String },
    #[error("{kernel}: launches are one-dimensional (grid {grid:?}, block {block:?}); each thread's share of an output is defined over x")]
    LaunchShape { kernel: &'static str, grid: (u32, u32, u32), block: (u32, u32, u32) },
    #[error("{kernel}: parameter {param} is not aligned to {align} bytes")]
    Misaligned { kernel: &'static str, param: String, align: usize },
    #[error("{kernel}: {detail}")]
    LengthMismatch { kernel: &'static str, detail: String },
    #[error("{what}: {}", describe(err))]
    Cuda { what: String, err: DriverError },
    #[error("{0}")]
    Refused(&'static str),
    #[error("{what} needs a GPU of compute capability {}.{} or newer; device {device} ({name}) is {}.{}", need.0, need.1, have.0, have.1)]
    NeedsComputeCapability { what: String, need: (i32, i32), have: (i32, i32), device: usize, name: String },
}

impl Error {
    /// Wraps a driver error with what was being done.
    pub fn cuda(what: impl Into<String>) -> impl FnOnce(DriverError) -> Error {
        let what = what.into();
        move |err| Error::Cuda { what, err }
    }
}

/// `CUDA_ERROR_NAME (description)`, from the driver's own strings.
pub fn describe(e: &DriverError) -> String {
    let name = e.error_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|_| format!("{:?}", e.0));
    match e.error_string() {
        Ok(s) => format!("{name} ({})", s.to_string_lossy()),
        Err(_) => name,
    }
}

/// Bytes in binary units, e.g. `4.0 MiB`.
pub fn bytes(n: u128) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 { format!("{n} B") } else { format!("{v:.1} {}", UNITS[u]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_one_line() {
        let errors = [
            Error::NoDriver,
            Error::NoDevice("CUDA_ERROR_NO_DEVICE".into()),
            Error::BadDevice { index: 3, count: 1 },
            Error::EmptyInput,
            Error::TooLarge { elements: 1 << 40, needed: 8 << 40, free: 80 << 30, total: 81 << 30, device: 0 },
            Error::BadBlockSize { block: 2048, kernel: "producer_kernel", max: 1024 },
            Error::NeedsComputeCapability { what: "the Hopper kernels".into(), need: (9, 0), have: (8, 0), device: 0, name: "A100".into() },
        ];
        for e in errors {
            let s = e.to_string();
            assert!(!s.contains('\n') && !s.is_empty(), "{s}");
        }
    }

    #[test]
    fn byte_units() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(4 << 20), "4.0 MiB");
        assert_eq!(bytes(3 << 29), "1.5 GiB");
    }
}
