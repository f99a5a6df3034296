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

// ---- the Hopper module (kernels-hopper, sm_90, PTX 8.0) ----

#[test]
fn hopper_ptx_is_sm90_ptx80_and_lists_its_entries() {
    let ptx = ptx_kernels::hopper::KERNELS;
    assert!(ptx.contains(".version 8.0"), "the Hopper module needs PTX 8.0 (mbarrier expect_tx, bulk copies)");
    assert!(ptx.contains(".target sm_90"));
    assert_eq!(ptx_kernels::hopper::ARCH, "sm_90");
    assert_eq!(ptx_entries(ptx), ptx_kernels::hopper::entries().collect::<Vec<_>>());
    for k in ["pdl_producer_kernel", "pdl_consumer_kernel", "pdl_reduce_kernel", "pdl_chain_kernel", "ring_consumer_kernel", "ring_reduce_kernel"] {
        assert!(ptx_kernels::hopper::entries().any(|e| e == k), "{k}");
    }
}

#[test]
fn ptxas_assembles_the_hopper_module_for_sm90_without_spills() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ptxas-hopper");
    std::fs::create_dir_all(&dir).unwrap();
    let ptx = dir.join("hopper.ptx");
    std::fs::write(&ptx, ptx_kernels::hopper::KERNELS).unwrap();
    let report = assemble(&ptxas(), &ptx, Arch::Sm90).unwrap_or_else(|e| panic!("{e}"));
    for want in ptx_kernels::hopper::entries() {
        let k = report.iter().find(|r| r.kernel == want).unwrap_or_else(|| panic!("{want} not in ptxas report"));
        assert_eq!(k.spill_store_bytes + k.spill_load_bytes, 0, "spills: {k}");
    }
    // PTX for sm_90 does not assemble for older GPUs: why the host refuses them.
    assert!(assemble(&ptxas(), &ptx, Arch::Sm80).is_err());
}

/// The lines of entry `name`'s body.
fn body<'a>(ptx: &'a str, name: &str) -> Vec<&'a str> {
    let start = format!(".visible .entry {name}(");
    ptx.lines().skip_while(|l| !l.starts_with(&start)).take_while(|l| *l != "}").collect()
}

/// `#[kernel(pdl)]` makes a missing wait unwritable: in every entry of the
/// module, `griddepcontrol.wait` comes before the first instruction that
/// touches global memory, and before `launch_dependents`.
#[test]
fn every_pdl_entry_waits_before_touching_memory() {
    let ptx = ptx_kernels::hopper::KERNELS;
    for name in ptx_kernels::hopper::entries() {
        let lines = body(ptx, name);
        let first = |pat: &[&str]| lines.iter().position(|l| pat.iter().any(|p| l.trim_start().starts_with(p)));
        let wait = first(&["griddepcontrol.wait"]).unwrap_or_else(|| panic!("{name} has no griddepcontrol.wait"));
        let memory = first(&[
            "ld.global",
            "st.global",
            "atom.",
            "red.",
            "ld.u",
            "ld.f",
            "ld.b",
            "ld.v",
            "st.u",
            "st.f",
            "st.b",
            "st.v",
            "ld.shared",
            "st.shared",
            "mbarrier.",
            "{ .reg",
            "cp.async",
        ]);
        assert!(memory.is_none_or(|m| m > wait), "{name}: memory access at line {memory:?} before the wait at {wait}");
        let launch = first(&["griddepcontrol.launch_dependents"]).unwrap_or_else(|| panic!("{name} never lets its dependents launch"));
        assert!(launch > wait, "{name}");
    }
}

/// The ring kernels use the mbarrier and bulk-copy instructions that need
/// PTX 8.0 (why the module is built with +ptx80).
#[test]
fn the_ring_kernels_use_mbarriers_and_bulk_copies() {
    let ptx = ptx_kernels::hopper::KERNELS;
    for name in ["ring_consumer_kernel", "ring_reduce_kernel"] {
        let text = body(ptx, name).join("\n");
        for want in [
            "mbarrier.init.shared::cta.b64",
            "fence.mbarrier_init",
            "mbarrier.arrive.expect_tx",
            "cp.async.bulk.shared::cluster.global",
            "mbarrier.try_wait.parity",
            "mbarrier.arrive.shared::cta.b64",
            "%dynamic_smem_size",
        ] {
            assert!(text.contains(want), "{name} lacks {want}");
        }
    }
}
