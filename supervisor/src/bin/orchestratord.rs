fn main() -> std::process::ExitCode {
    codencer_supervisor::orchestratord_main()
}
