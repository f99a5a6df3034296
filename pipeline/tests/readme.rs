//! README.md's example is `examples/quick_start.rs` (compiled with the
//! examples), quoted verbatim between its `README` markers.

#[test]
fn the_readme_quotes_the_quick_start_example() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let example = std::fs::read_to_string(root.join("examples/quick_start.rs")).unwrap();
    let readme = std::fs::read_to_string(root.join("../README.md")).unwrap();
    let body = example.split("// README begin\n").nth(1).and_then(|s| s.split("// README end").next()).expect("the example has its README markers");
    assert!(readme.contains(&format!("```rust\n{body}```")), "README.md must quote examples/quick_start.rs between its README markers, verbatim");
}
