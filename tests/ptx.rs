//! CPU checks of the embedded PTX: it lists its entries, targets Volta
//! (sm_70) unless `NVPTX_ARCH` chose another, a panic on the GPU traps, and
//! ptxas (which needs no GPU) assembles it for sm_70 and sm_90.
//!
//! The ptxas tests need ptxas (`scripts/install-ptxas.sh`). Where it is not
//! installed they say so on standard error and check nothing else, so that
//! `cargo test` passes on a fresh clone; with `PTXAS_REQUIRED=1` (set by
//! `scripts/test.sh`, which installs it) a missing ptxas fails them instead.
use nvptx_builder::{Arch, assemble, find_ptxas, ptx_entries};
use std::io::Write;
use std::path::PathBuf;

#[test]
fn ptx_targets_the_build_arch_and_lists_its_entries() {
    let entries = ptx_entries(ptx_kernels::KERNELS);
    assert_eq!(entries, ptx_kernels::entries().collect::<Vec<_>>());
    assert!(entries.len() >= 10, "{entries:?}");
    assert!(ptx_kernels::KERNELS.contains(&format!(".target {}", ptx_kernels::ARCH)));
}

/// The architecture in the PTX's own `.target` directive.
fn target_of(ptx: &str) -> Arch {
    let line = ptx.lines().find_map(|l| l.trim().strip_prefix(".target ")).expect("the PTX has no .target directive");
    line.split(',').next().unwrap_or_default().trim().parse().unwrap_or_else(|e| panic!(".target {line}: {e}"))
}

/// The built module targets sm_70 (Volta), from which every GPU loads it
/// (newer ones JIT-compile it), unless NVPTX_ARCH asked for another; and
/// it says so in its `.target`, which is what the driver reads.
#[test]
fn the_built_ptx_targets_volta_unless_asked_otherwise() {
    let target = target_of(ptx_kernels::KERNELS);
    assert_eq!(target.name(), ptx_kernels::ARCH);
    match std::env::var("NVPTX_ARCH") {
        Ok(v) if !v.trim().is_empty() => assert_eq!(target, v.parse::<Arch>().unwrap()),
        _ => assert_eq!(target, Arch::Sm70, "the PTX must load on Volta and newer"),
    }
    assert_eq!(target_of(ptx_kernels::hopper::KERNELS), Arch::Sm90);
}

/// A panic in a kernel (an index out of bounds, a division by zero) ends
/// the kernel with `trap`, which the host sees as a launch error, not a
/// hang or a silent exit with wrong results: core's `panic_fmt`, which
/// every panic path calls, is the `#[panic_handler]`, whose first
/// instruction is `trap`; every other panicking function of core calls it.
#[test]
fn a_panic_on_the_gpu_traps() {
    for ptx in [ptx_kernels::KERNELS, ptx_kernels::hopper::KERNELS] {
        let funcs = functions(ptx);
        let panics: Vec<&(String, Vec<&str>)> = funcs.iter().filter(|(name, _)| name.contains("4core9panicking") || name.contains("panic")).collect();
        let Some((fmt, body)) = panics.iter().map(|f| (&f.0, &f.1)).find(|(name, _)| name.ends_with("panic_fmt")) else {
            // No kernel can panic: nothing to check but that.
            assert!(!ptx.contains("panicking"), "the PTX calls core::panicking without a panic_fmt");
            continue;
        };
        assert!(body.first().is_some_and(|i| i.starts_with("trap;")), "{fmt}'s body starts {:?}, not trap", body.first());
        for (name, body) in &panics {
            if name != fmt {
                let calls = body.iter().any(|i| i.starts_with("call") && i.contains(fmt.as_str()));
                assert!(calls || body.first().is_some_and(|i| i.starts_with("trap;")), "{name} neither calls {fmt} nor traps: {body:?}");
            }
        }
    }
}

/// Every `.func` of a PTX module: its name and the instructions of its
/// body (comments, braces and blank lines left out).
fn functions(ptx: &str) -> Vec<(String, Vec<&str>)> {
    let mut out: Vec<(String, Vec<&str>)> = Vec::new();
    let mut lines = ptx.lines().peekable();
    while let Some(l) = lines.next() {
        let Some(rest) = l.trim_start().strip_prefix(".func ") else { continue };
        // A declaration (`;` before any body) has no instructions.
        let rest = if rest.starts_with('(') { &rest[rest.find(')').map_or(0, |i| i + 1)..] } else { rest };
        let name: String = rest.trim_start().chars().take_while(|c| c.is_ascii_alphanumeric() || "_$%".contains(*c)).collect();
        let mut body = Vec::new();
        let mut depth = 0;
        let mut opened = false;
        for l in lines.by_ref() {
            let t = l.trim();
            if t.ends_with(';') && !opened && depth == 0 && !t.starts_with(".param") {
                break;
            }
            if t == "{" && !opened && depth == 0 {
                opened = true;
                depth = 1;
                continue;
            }
            if !opened {
                continue;
            }
            if t.starts_with('{') {
                depth += 1;
            } else if t.starts_with('}') {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            } else if !t.is_empty() && !t.starts_with("//") {
                body.push(t);
            }
        }
        if opened {
            out.push((name, body));
        }
    }
    out
}

/// ptxas, or `None` (the reason written to standard error, past the test
/// harness's capture) where it is not installed; a failure instead where
/// `PTXAS_REQUIRED` is set, so that CI cannot skip these tests silently.
fn ptxas() -> Option<PathBuf> {
    match find_ptxas() {
        Ok(p) => Some(p),
        Err(e) if std::env::var("PTXAS_REQUIRED").is_ok_and(|v| !v.is_empty() && v != "0") => {
            panic!("{e}: PTXAS_REQUIRED is set, so the ptxas tests must run: run scripts/install-ptxas.sh (or set PTXAS)")
        }
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "SKIPPED (no ptxas): {e}; run scripts/install-ptxas.sh to run it (PTXAS_REQUIRED=1 requires it)");
            None
        }
    }
}

#[test]
fn ptxas_assembles_for_sm70_and_sm90() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ptxas-check");
    std::fs::create_dir_all(&dir).unwrap();
    let ptx = dir.join("kernels.ptx");
    std::fs::write(&ptx, ptx_kernels::KERNELS).unwrap();
    let Some(ptxas) = ptxas() else { return };
    let target = target_of(ptx_kernels::KERNELS);
    // PTX assembles for its target and newer: sm_70 (Volta) whenever it targets it.
    let archs: std::collections::BTreeSet<Arch> = [Arch::Sm70, Arch::Sm90, target].into_iter().filter(|a| *a >= target).collect();
    assert!(archs.contains(&Arch::Sm90) && (target > Arch::Sm70 || archs.contains(&Arch::Sm70)));
    for arch in archs {
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
    let Some(ptxas) = ptxas() else { return };
    let err = assemble(&ptxas, &ptx, Arch::Sm90).unwrap_err().to_string();
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
    let Some(ptxas) = ptxas() else { return };
    let report = assemble(&ptxas, &ptx, Arch::Sm90).unwrap_or_else(|e| panic!("{e}"));
    for want in ptx_kernels::hopper::entries() {
        let k = report.iter().find(|r| r.kernel == want).unwrap_or_else(|| panic!("{want} not in ptxas report"));
        assert_eq!(k.spill_store_bytes + k.spill_load_bytes, 0, "spills: {k}");
    }
    // PTX for sm_90 does not assemble for older GPUs: why the host refuses them.
    assert!(assemble(&ptxas, &ptx, Arch::Sm80).is_err());
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
