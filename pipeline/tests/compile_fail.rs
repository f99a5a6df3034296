//! What the pipeline's types refuse at compile time (trybuild; no GPU).
#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
