//! The corpora of the bad-input tests: a folder of inputs per format, each file named `ok-*`
//! (an input that must be accepted) or `bad-*` (one that must be refused with a reason), the
//! seeds the property tests damage.

use std::path::Path;

/// One input of a corpus.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Its file name.
    pub name: String,
    /// Its bytes, as committed.
    pub bytes: Vec<u8>,
}

impl Entry {
    /// Whether the input must be accepted (`ok-*`) rather than refused.
    pub fn is_ok(&self) -> bool {
        self.name.starts_with("ok-")
    }

    /// The bytes as text, any that are not UTF-8 as U+FFFD.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

/// The inputs in `dir`, by name. Panics, naming the folder, when it cannot be read or does
/// not hold both inputs to accept and inputs to refuse.
pub fn read(dir: &Path) -> Vec<Entry> {
    let mut entries: Vec<Entry> = std::fs::read_dir(dir)
        .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
        .map(|entry| {
            let path = entry
                .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
                .path();
            Entry {
                name: path.file_name().unwrap().to_string_lossy().into_owned(),
                bytes: std::fs::read(&path)
                    .unwrap_or_else(|error| panic!("{}: {error}", path.display())),
            }
        })
        .collect();
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    assert!(
        entries.iter().any(Entry::is_ok) && entries.iter().any(|entry| !entry.is_ok()),
        "{}: a corpus holds inputs to accept (ok-*) and inputs to refuse (bad-*)",
        dir.display()
    );
    entries
}
