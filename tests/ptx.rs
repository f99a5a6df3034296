//! CPU checks of the embedded PTX: it has both kernels, and ptxas (which needs
//! no GPU) assembles it for sm_90 and for the default architecture.
use nvptx_builder::{Arch, assemble, find_ptxas, ptx_entries};
use std::path::PathBuf;

#[test]
fn ptx_targets_the_build_arch_and_lists_its_entries() {
    let entries = ptx_entries(ptx_kernels::KERNELS);
    assert_eq!(entries, ptx_kernels::entries().collect::<Vec<_>>());
    assert!(entries.len() >= 10, "{entries:?}");
    assert!(ptx_kernels::KERNELS.contains(&format!(".target {}", ptx_kernels::ARCH)));
}

#[test]
fn default_arch_loads_on_volta_and_newer() {
    // Unless NVPTX_ARCH overrides it, the PTX targets sm_70.
    if std::env::var_os("NVPTX_ARCH").is_none() {
        assert_eq!(ptx_kernels::ARCH, "sm_70");
    }
}

fn ptxas() -> PathBuf {
    find_ptxas().unwrap_or_else(|e| panic!("{e}: run scripts/install-ptxas.sh (or set PTXAS)"))
}

#[test]
fn ptxas_assembles_for_sm90_and_the_default_arch() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ptxas-check");
    std::fs::create_dir_all(&dir).unwrap();
    let ptx = dir.join("kernels.ptx");
    std::fs::write(&ptx, ptx_kernels::KERNELS).unwrap();
    let ptxas = ptxas();
    for arch in [Arch::Sm90, ptx_kernels::ARCH.parse().unwrap()] {
        let report = assemble(&ptxas, &ptx, arch).unwrap_or_else(|e| panic!("{e}"));
        for want in ptx_kernels::entries() {
            let k = report.iter().find(|r| r.kernel == want).unwrap_or_else(|| panic!("{want} not in ptxas report"));
            assert!(k.registers > 0, "{k}");
            assert_eq!(k.spill_store_bytes + k.spill_load_bytes, 0, "spills: {k}");
        }
    }
}

#[test]
fn ptxas_rejects_broken_ptx() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ptxas-broken");
    std::fs::create_dir_all(&dir).unwrap();
    let ptx = dir.join("broken.ptx");
    std::fs::write(&ptx, ptx_kernels::KERNELS.replace("ret;", "ret_nonsense;")).unwrap();
    let err = assemble(&ptxas(), &ptx, Arch::Sm90).unwrap_err().to_string();
    assert!(err.contains("ptxas -arch=sm_90 rejected"), "{err}");
}
