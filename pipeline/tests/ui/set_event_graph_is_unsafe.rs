//! Removing edges from the event graph lets stages race: unsafe, with its contract.
#![forbid(unsafe_code)]
fn edit(p: &mut pc_pipeline::Pipeline<'_>) {
    let _ = p.set_event_graph(|g| g.clone());
}
fn main() {}
