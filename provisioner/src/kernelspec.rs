//! Writing kernel.json files that launch kernels through `provisioner`.
//!
//! (Interface fixed; implementation in progress.)

/// `provisioner kernelspec ...`
#[derive(Debug, clap::Subcommand)]
pub enum KernelspecCommand {
    /// Install a kernelspec that launches a kernel through provisioner.
    Install {},
}

/// Runs a kernelspec subcommand; returns the exit code.
pub fn run(_cmd: KernelspecCommand) -> i32 {
    eprintln!("provisioner: kernelspec: not implemented yet");
    crate::exit::CONFIG
}
