//! `--device cuda|sim` and `--sim-seed`: where a command runs. Shared by
//! the demo, `pipeline` and `bench`; imports no command.
use anyhow::{Result, bail};
use clap::{Args, ValueEnum};

/// The device a command runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum DeviceKind {
    /// An NVIDIA GPU, through the CUDA driver.
    #[default]
    Cuda,
    /// The simulated device (`pc_pipeline::sim`): every kernel its CPU
    /// reference, streams and events as CUDA orders them, a seeded
    /// scheduler and a race detector. Needs no GPU or driver; it has no
    /// time, so every time is reported as simulated.
    Sim,
}

/// `--device`'s parser: the names of [`DeviceKind`]; a number (the GPU
/// index `--device` took before it named a kind of device) is refused
/// with the flag that takes the index now.
#[derive(Clone)]
struct DeviceParser;

impl clap::builder::TypedValueParser for DeviceParser {
    type Value = DeviceKind;

    fn parse_ref(&self, cmd: &clap::Command, arg: Option<&clap::Arg>, value: &std::ffi::OsStr) -> Result<DeviceKind, clap::Error> {
        if let Some(index) = value.to_str().filter(|v| v.parse::<usize>().is_ok()) {
            let flag = if cmd.get_name() == "pipeline" { "--gpus" } else { "--gpu" };
            let msg = format!("--device takes cuda or sim, not a GPU index: give the index with {flag} {index}\n");
            return Err(clap::Error::raw(clap::error::ErrorKind::InvalidValue, msg).with_cmd(cmd));
        }
        clap::builder::EnumValueParser::<DeviceKind>::new().parse_ref(cmd, arg, value)
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = clap::builder::PossibleValue> + '_>> {
        Some(Box::new(DeviceKind::value_variants().iter().filter_map(ValueEnum::to_possible_value)))
    }
}

/// Where the command runs, and the simulated device's scheduler seed.
#[derive(Debug, Clone, Args)]
pub struct DeviceArgs {
    /// Where to run: cuda (an NVIDIA GPU) or sim (the simulated device on
    /// the CPU, no GPU or driver needed: the same checks, no time).
    #[arg(long, default_value = "cuda", value_parser = DeviceParser, value_name = "DEVICE")]
    pub(crate) device: DeviceKind,
    /// With --device sim: the scheduler's seed, which of the orders CUDA
    /// allows the simulated device runs the work in [default: drawn at
    /// random, printed so the run replays].
    #[arg(long, value_name = "N")]
    pub(crate) sim_seed: Option<u64>,
}

impl DeviceArgs {
    /// The simulated device's scheduler seed, or `None` on CUDA; refuses
    /// `--sim-seed` without `--device sim`.
    pub(crate) fn sim_seed(&self) -> Result<Option<u64>> {
        match (self.device, self.sim_seed) {
            (DeviceKind::Cuda, Some(_)) => bail!("--sim-seed is the simulated device's scheduler seed: give it with --device sim"),
            (DeviceKind::Cuda, None) => Ok(None),
            (DeviceKind::Sim, Some(s)) => Ok(Some(s)),
            (DeviceKind::Sim, None) => Ok(Some(random_seed())),
        }
    }
}

/// A seed nobody chose: the clock and the process id, mixed.
fn random_seed() -> u64 {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    let mut z = t ^ (u64::from(std::process::id()) << 32);
    // splitmix64's finalizer: nearby clocks give unrelated seeds.
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
