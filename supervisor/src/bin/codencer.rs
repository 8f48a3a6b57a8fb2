//! The `codencer` binary.

fn main() -> std::process::ExitCode {
    codencer_supervisor::codencer_main()
}
