//! Shell integration: completion scripts and the man page, made from the command line's own
//! definition, so they cannot drift from it. `pubsync completions <shell>` and `pubsync man`
//! print them; `cargo xtask shell-integration` writes them to files for packaging.

use std::io::Write;
use std::process::ExitCode;

use crate::command::Command;

/// Prints what `command` asks for when it is `completions` or `man`, for the binary whose
/// full definition `cli` gives; `None` for every other command. Neither needs the
/// configuration or a database.
pub fn handle(command: &Command, cli: impl FnOnce() -> clap::Command) -> Option<ExitCode> {
    let mut stdout = std::io::stdout().lock();
    let written = match command {
        Command::Completions { shell } => {
            let mut cli = cli();
            let name = cli.get_name().to_owned();
            clap_complete::generate(*shell, &mut cli, name, &mut stdout);
            Ok(())
        }
        Command::Man => clap_mangen::Man::new(cli()).render(&mut stdout),
        _ => return None,
    };
    Some(match written.and_then(|()| stdout.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        // `pubsync man | head`: the reader has what it wanted.
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: writing to stdout: {error}");
            ExitCode::from(2)
        }
    })
}
