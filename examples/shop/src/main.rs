//! The shop's binary: pubsync's command line over the shop's modules.

use std::process::ExitCode;

fn main() -> ExitCode {
    pubsync_cli::main(shop::modules())
}
