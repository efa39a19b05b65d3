//! Bad input never panics: schema and transfer files damaged at random (a range cut out, text
//! put in, a range repeated) either parse or give an error naming the file.

use proptest::prelude::*;
use pubsync_codegen::schema::{SourceFile, parse_schemas};
use pubsync_codegen::transfer::parse_transfers;

const SCHEMA: &str = include_str!("../../pubsync-hello/schema/spy_hello_spryker.schema.xml");
const TRANSFER: &str = include_str!("../../pubsync-hello/transfer/hello_spryker.transfer.xml");

/// `text` with one damage applied at places chosen by `a` and `b`.
fn damaged(text: &'static str) -> impl Strategy<Value = String> {
    let len = text.len();
    (0..3u8, 0..=len, 0..=len, "[<>/=\"' a-z!&;\\-]{0,12}").prop_map(move |(kind, a, b, insert)| {
        let bytes = text.as_bytes();
        let (start, end) = (a.min(b), a.max(b));
        let mut out = Vec::with_capacity(len + insert.len() + (end - start));
        match kind {
            0 => {
                out.extend_from_slice(&bytes[..start]);
                out.extend_from_slice(&bytes[end..]);
            }
            1 => {
                out.extend_from_slice(&bytes[..start]);
                out.extend_from_slice(insert.as_bytes());
                out.extend_from_slice(&bytes[start..]);
            }
            _ => {
                out.extend_from_slice(&bytes[..end]);
                out.extend_from_slice(&bytes[start..end]);
                out.extend_from_slice(&bytes[end..]);
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    })
}

fn file(path: &str, text: String) -> SourceFile {
    SourceFile {
        path: path.to_owned(),
        package: Some("damaged".to_owned()),
        text,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1_000, ..ProptestConfig::default() })]

    #[test]
    fn damaged_schema_files_parse_or_name_the_file(text in damaged(SCHEMA)) {
        if let Err(error) = parse_schemas(&[file("schema/damaged.schema.xml", text)]) {
            let message = error.to_string();
            prop_assert!(message.contains("damaged.schema.xml"), "{message}");
        }
    }

    #[test]
    fn damaged_transfer_files_parse_or_name_the_file(text in damaged(TRANSFER)) {
        if let Err(error) = parse_transfers(&[file("transfer/damaged.transfer.xml", text)]) {
            let message = error.to_string();
            prop_assert!(message.contains("damaged.transfer.xml"), "{message}");
        }
    }
}
