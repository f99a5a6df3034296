//! What must not compile: each case in `tests/ui/` with the error it must
//! give (`.stderr`). Regenerate the snapshots with `TRYBUILD=overwrite cargo
//! test -p kernels-gpu --test compile_fail` and read them before committing.
#[test]
fn ui() {
    trybuild::TestCases::new().compile_fail("tests/ui/*.rs");
}
