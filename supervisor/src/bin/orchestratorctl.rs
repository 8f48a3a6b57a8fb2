//! The `orchestratorctl` binary.

fn main() -> std::process::ExitCode {
    codencer_supervisor::orchestratorctl_main()
}
