//! A rank's environment (`PC_RANK`, `PC_NPROCS`, `PC_NCCL_ID`,
//! `PC_NCCL_ID_FILE`, `PC_DEVICE`): what `host launch` sets for each rank
//! it starts, and what `host pipeline` reads to run as a rank
//! ([`RankEnv::from_env`]), so a job can be started without the launcher
//! too (another machine, Slurm, mpirun).
use anyhow::{Context, Result, bail};
use pc_pipeline::nccl::NcclId;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// This process's rank (0..PC_NPROCS).
pub const RANK: &str = "PC_RANK";
/// Ranks in the job, over every machine.
pub const NPROCS: &str = "PC_NPROCS";
/// The job's NCCL id, 256 hex digits.
pub const NCCL_ID: &str = "PC_NCCL_ID";
/// A file holding the job's NCCL id (instead of PC_NCCL_ID).
pub const NCCL_ID_FILE: &str = "PC_NCCL_ID_FILE";
/// The CUDA device index of this rank on its machine (default 0).
pub const DEVICE: &str = "PC_DEVICE";

/// How long a rank or launcher waits for an id file that rank 0's machine
/// has not written yet.
pub(crate) const ID_FILE_WAIT: Duration = Duration::from_secs(120);

/// A rank's environment, as the launcher sets it (or a person, on a
/// machine without it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RankEnv {
    pub rank: usize,
    pub nprocs: usize,
    pub device: usize,
    pub id: IdSource,
}

/// Where a rank finds the job's NCCL id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdSource {
    Hex(String),
    File(PathBuf),
    /// NCCL's own `NCCL_COMM_ID` (host:port of rank 0's bootstrap root):
    /// every rank makes the same id from it, and rank 0 opens the root.
    NcclCommId(String),
    None,
}

impl RankEnv {
    /// From the process environment; `None` when `PC_RANK` is not set (an
    /// ordinary run).
    pub fn from_env() -> Result<Option<RankEnv>> {
        RankEnv::from_vars(|k| std::env::var_os(k).map(|v| v.to_string_lossy().into_owned()))
    }

    /// From `get(name)`; every error is one line naming the variable.
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Option<RankEnv>> {
        let num = |k: &str| -> Result<Option<usize>> {
            match get(k) {
                None => Ok(None),
                Some(v) => v.trim().parse().map(Some).map_err(|_| anyhow::anyhow!("{k}={v:?}: want a number like 0 or 1")),
            }
        };
        let Some(rank) = num(RANK)? else {
            if get(NPROCS).is_some() {
                bail!("{NPROCS} is set but {RANK} is not: set both (or neither, for an ordinary run)");
            }
            return Ok(None);
        };
        let Some(nprocs) = num(NPROCS)? else { bail!("{RANK} is set but {NPROCS} is not: set both") };
        if nprocs == 0 || rank >= nprocs {
            bail!("{RANK}={rank} with {NPROCS}={nprocs}: ranks are 0..{}", nprocs.saturating_sub(1));
        }
        let device = num(DEVICE)?.unwrap_or(0);
        let id = match (get(NCCL_ID), get(NCCL_ID_FILE)) {
            (Some(_), Some(_)) => bail!("both {NCCL_ID} and {NCCL_ID_FILE} are set: give one"),
            (Some(hex), None) => IdSource::Hex(hex),
            (None, Some(path)) => IdSource::File(path.into()),
            (None, None) => get("NCCL_COMM_ID").map_or(IdSource::None, IdSource::NcclCommId),
        };
        Ok(Some(RankEnv { rank, nprocs, device, id }))
    }

    /// The job's id (read and checked only when a rank needs it).
    pub fn nccl_id(&self) -> Result<NcclId> {
        match &self.id {
            IdSource::Hex(hex) => NcclId::from_hex(hex).context(NCCL_ID),
            IdSource::File(path) => read_id_file(path, ID_FILE_WAIT),
            // NCCL reads NCCL_COMM_ID itself: the id holds that address.
            IdSource::NcclCommId(_) => Ok(NcclId::new()?),
            IdSource::None => bail!("rank {} exchanges chunks through NCCL and needs the job's id: set {NCCL_ID}, {NCCL_ID_FILE} or NCCL_COMM_ID", self.rank),
        }
    }
}

/// Reads an id file, waiting up to `wait` for it to appear.
pub fn read_id_file(path: &Path, wait: Duration) -> Result<NcclId> {
    let start = Instant::now();
    loop {
        match std::fs::read_to_string(path) {
            Ok(text) => return NcclId::from_hex(&text).with_context(|| format!("id file {}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && start.elapsed() < wait => std::thread::sleep(Duration::from_millis(200)),
            Err(e) => bail!("id file {}: {e}", path.display()),
        }
    }
}

/// Writes an id file whole or not at all (a temporary file, renamed), so a
/// reader waiting for it never reads half an id.
pub fn write_id_file(path: &Path, id: &NcclId) -> Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).with_context(|| format!("id file {}", path.display()))?;
    std::io::Write::write_all(&mut tmp, format!("{}\n", id.to_hex()).as_bytes()).with_context(|| format!("id file {}", path.display()))?;
    tmp.persist(path).map_err(|e| anyhow::anyhow!("id file {}: {}", path.display(), e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> Result<Option<RankEnv>> {
        let m: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        RankEnv::from_vars(|k| m.get(k).cloned())
    }

    #[test]
    fn rank_environment_parses_and_refuses_in_one_line() {
        assert_eq!(env(&[]).unwrap(), None);
        let e = env(&[(RANK, "1"), (NPROCS, "2"), (NCCL_ID, "ab"), (DEVICE, "3")]).unwrap().unwrap();
        assert_eq!(e, RankEnv { rank: 1, nprocs: 2, device: 3, id: IdSource::Hex("ab".into()) });
        let e = env(&[(RANK, "0"), (NPROCS, "2"), (NCCL_ID_FILE, "/x/id")]).unwrap().unwrap();
        assert_eq!((e.device, e.id), (0, IdSource::File("/x/id".into())));
        for (vars, want) in [
            (vec![(NPROCS, "2")], "PC_NPROCS is set but PC_RANK is not"),
            (vec![(RANK, "0")], "PC_RANK is set but PC_NPROCS is not"),
            (vec![(RANK, "2"), (NPROCS, "2")], "ranks are 0..1"),
            (vec![(RANK, "x"), (NPROCS, "2")], "PC_RANK=\"x\""),
            (vec![(RANK, "0"), (NPROCS, "2"), (NCCL_ID, "a"), (NCCL_ID_FILE, "b")], "both PC_NCCL_ID and PC_NCCL_ID_FILE"),
        ] {
            let e = env(&vars).unwrap_err().to_string();
            assert!(e.contains(want) && !e.contains('\n'), "{vars:?}: {e}");
        }
        let e = env(&[(RANK, "1"), (NPROCS, "2"), ("NCCL_COMM_ID", "10.0.0.1:29500")]).unwrap().unwrap();
        assert_eq!(e.id, IdSource::NcclCommId("10.0.0.1:29500".into()));
        let none = env(&[(RANK, "1"), (NPROCS, "2")]).unwrap().unwrap();
        assert!(none.nccl_id().unwrap_err().to_string().contains("needs the job's id"));
    }

    #[test]
    fn ids_pass_through_files_and_the_environment() {
        let id = NcclId([7u8; 128]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("job.id");
        write_id_file(&path, &id).unwrap();
        assert_eq!(read_id_file(&path, Duration::ZERO).unwrap(), id);
        let e = RankEnv { rank: 1, nprocs: 2, device: 0, id: IdSource::File(path.clone()) };
        assert_eq!(e.nccl_id().unwrap(), id);
        let e = RankEnv { id: IdSource::Hex(id.to_hex()), ..e };
        assert_eq!(e.nccl_id().unwrap(), id);
        // A file that never appears: one line, after the wait.
        let missing = read_id_file(&dir.path().join("none"), Duration::from_millis(300)).unwrap_err().to_string();
        assert!(missing.contains("none") && !missing.contains('\n'), "{missing}");
        // A file written later is waited for.
        let later = dir.path().join("later.id");
        let (l2, id2) = (later.clone(), id.clone());
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            write_id_file(&l2, &id2).unwrap();
        });
        assert_eq!(read_id_file(&later, Duration::from_secs(10)).unwrap(), id);
        t.join().unwrap();
    }
}
