//! What must not compile: each case in `tests/ui/` with the error it must
//! give (`.stderr`); and what must (`tests/ui/pass/`). Regenerate the
//! snapshots with `TRYBUILD=overwrite cargo test -p kernels-gpu --test
//! compile_fail` and read them before committing.
#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
    t.pass("tests/ui/pass/*.rs");
}
