//! `codencer-worker`: reads an `ExecSpec` on stdin, runs it confined, reports on fd 3.

fn main() -> std::process::ExitCode {
    codencer_worker::run_main()
}
