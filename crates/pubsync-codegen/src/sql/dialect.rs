//! The databases migrations are written for (the [`Dialect`] every pubsync crate shares), and
//! how strings are quoted for them.

pub use pubsync_schema::Dialect;

/// Quotes an identifier for `dialect` ([`Dialect::quote`]).
pub fn quote(dialect: Dialect, identifier: &str) -> String {
    dialect.quote(identifier)
}

/// A SQL string literal.
pub fn string_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}
