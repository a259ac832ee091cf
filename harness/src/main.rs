//! `svcbench` binary: see [`svcbench::cli`].

fn main() -> std::process::ExitCode {
    svcbench::cli::main()
}
