//! Every `#[kernel]` of kernels-gpu against the PTX that build.rs compiled
//! from the same source, without a GPU. The kernels are not listed here:
//! each `#[kernel]` records itself (`pc_runtime::launch::KERNEL_ENTRIES`),
//! so a kernel added to kernels-gpu is checked with no other change. Both
//! ways: each recorded kernel is a PTX entry with the parameter sizes of its
//! launcher, and each PTX entry is a recorded kernel.
//!
//! kernels-gpu's own tests cannot do this: the PTX is embedded by this
//! package, which depends on kernels-gpu.
use pc_runtime::launch::{EntryInfo, KernelEntry, check_layout, entries_of, entry_param_bytes};
use std::collections::BTreeSet;

fn recorded() -> Vec<EntryInfo> {
    // Naming one launcher links kernels-gpu, and with it every record.
    let _ = ptx_kernels::ConsumerKernel::NAME;
    entries_of("kernels-gpu")
}

#[test]
fn every_kernel_has_its_ptx_entrys_parameters() {
    let kernels = recorded();
    assert!(kernels.len() >= 10, "{kernels:?}");
    for e in &kernels {
        let found = entry_param_bytes(ptx_kernels::KERNELS, e.name).unwrap_or_else(|| panic!("the PTX has no entry {}", e.name));
        assert_eq!(found, e.param_bytes, "{}: PTX parameter sizes (left) against the launcher's PARAM_BYTES (right)", e.name);
    }
}

#[test]
fn every_kernel_has_the_hosts_element_layouts_in_both_modules() {
    // What `Module::kernel` checks at load: each kernel's layout record in
    // the PTX (the device's size_of/align_of) against the host's.
    let _ = ptx_kernels::hopper::PdlChainKernel::NAME;
    for (krate, ptx) in [("kernels-gpu", ptx_kernels::KERNELS), ("kernels-hopper", ptx_kernels::hopper::KERNELS)] {
        let kernels = if krate == "kernels-gpu" { recorded() } else { entries_of(krate) };
        assert!(!kernels.is_empty(), "{krate}");
        for e in &kernels {
            assert_eq!(e.param_layout.len(), e.param_layout.iter().map(|p| p.name).collect::<BTreeSet<_>>().len(), "{}", e.name);
            check_layout(ptx, krate, e.name, e.signature, e.param_layout).unwrap_or_else(|err| panic!("{err}"));
        }
    }
}

#[test]
fn the_ptx_entries_are_exactly_the_recorded_kernels() {
    let kernels = recorded();
    let listed: BTreeSet<&str> = kernels.iter().map(|e| e.name).collect();
    assert_eq!(listed.len(), kernels.len(), "a kernel is recorded twice");
    let in_ptx: BTreeSet<&str> = ptx_kernels::entries().collect();
    let unlisted: Vec<_> = in_ptx.difference(&listed).collect();
    let missing: Vec<_> = listed.difference(&in_ptx).collect();
    assert!(unlisted.is_empty() && missing.is_empty(), "PTX entries without a #[kernel]: {unlisted:?}; #[kernel]s not in the PTX: {missing:?}");
}

#[test]
fn a_launcher_type_is_its_recorded_kernel() {
    use ptx_kernels::{ProducerVecKernel, ReduceKernel};
    for (name, bytes) in [(ProducerVecKernel::NAME, ProducerVecKernel::PARAM_BYTES), (ReduceKernel::NAME, ReduceKernel::PARAM_BYTES)] {
        assert!(recorded().iter().any(|e| e.name == name && e.param_bytes == bytes), "{name}");
    }
}

#[test]
fn the_builders_entry_list_is_the_ptxs() {
    let mut from_builder: Vec<&str> = ptx_kernels::entries().collect();
    from_builder.sort();
    assert_eq!(from_builder, pc_runtime::launch::entries(ptx_kernels::KERNELS));
}

#[test]
fn every_hopper_kernel_is_a_ptx_entry_of_the_hopper_module_and_back() {
    let _ = ptx_kernels::hopper::PdlChainKernel::NAME;
    let kernels = entries_of("kernels-hopper");
    assert!(kernels.len() >= 4, "{kernels:?}");
    for e in &kernels {
        let found = entry_param_bytes(ptx_kernels::hopper::KERNELS, e.name).unwrap_or_else(|| panic!("the Hopper PTX has no entry {}", e.name));
        assert_eq!(found, e.param_bytes, "{}", e.name);
    }
    let listed: BTreeSet<&str> = kernels.iter().map(|e| e.name).collect();
    let in_ptx: BTreeSet<&str> = ptx_kernels::hopper::entries().collect();
    assert_eq!(listed, in_ptx);
}

#[test]
fn pdl_kernels_are_marked_and_plain_ones_are_not() {
    use ptx_kernels::hopper::{PdlChainKernel, PdlConsumerKernel, PdlProducerKernel, PdlReduceKernel};
    fn pdl<K: pc_runtime::launch::PdlKernel>() {}
    pdl::<PdlProducerKernel>();
    pdl::<PdlConsumerKernel>();
    pdl::<PdlReduceKernel>();
    pdl::<PdlChainKernel>();
    // The fault knob is not a parameter of the ordinary launchers: the
    // consumer's PTX has one more parameter than `launch` takes arguments
    // after the configuration (buffer: 2 words, output: 2, faults: 1).
    assert_eq!(PdlConsumerKernel::PARAM_BYTES, &[8, 8, 8, 8, 4]);
}
