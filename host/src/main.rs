//! The `host` command: the CLI of the `host` library with the built-in stages.
fn main() -> std::process::ExitCode {
    host::install_panic_hook();
    host::main_with(pc_pipeline::StageRegistry::builtin())
}
