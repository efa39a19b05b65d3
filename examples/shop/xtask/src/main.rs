//! `cargo xtask codegen [--check] [--update-snapshot]`: pubsync's codegen over the shop's
//! workspace. The transfers of every module go to `shop-shared`.
#![allow(clippy::disallowed_methods)] // reads the environment: not a library

use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(("codegen", rest)) = args.split_first().map(|(c, r)| (c.as_str(), r)) else {
        eprintln!("usage: cargo xtask {}", pubsync_codegen::cli::USAGE);
        return ExitCode::FAILURE;
    };
    let config = pubsync_codegen::Config {
        root: Path::new(env!("CARGO_MANIFEST_DIR")).join(".."),
        transfers: "crates/shared/src/transfer/generated.rs".into(),
        framework: Vec::new(),
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    match pubsync_codegen::cli::run(&config, &cargo, rest) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
