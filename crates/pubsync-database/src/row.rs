//! [`FromRow`]: a row type that can be read on every database compiled in, so a function
//! generic over the row type can load it inside [`with_connection!`](crate::with_connection).

use diesel::QueryableByName;
use diesel::sqlite::Sqlite;

/// A row read by column name (`#[derive(QueryableByName)]`) from any database this build
/// supports. Implemented for every type that is.
pub trait FromRow:
    QueryableByName<Sqlite> + FromPostgresRow + FromMysqlRow + Send + 'static
{
}

impl<T> FromRow for T where
    T: QueryableByName<Sqlite> + FromPostgresRow + FromMysqlRow + Send + 'static
{
}

/// A row readable from PostgreSQL, in builds with the `postgres` feature; anything otherwise.
#[cfg(feature = "postgres")]
pub trait FromPostgresRow: QueryableByName<diesel::pg::Pg> {}
#[cfg(feature = "postgres")]
impl<T: QueryableByName<diesel::pg::Pg>> FromPostgresRow for T {}
/// A row readable from PostgreSQL, in builds with the `postgres` feature; anything otherwise.
#[cfg(not(feature = "postgres"))]
pub trait FromPostgresRow {}
#[cfg(not(feature = "postgres"))]
impl<T> FromPostgresRow for T {}

/// A row readable from MySQL/MariaDB, in builds with the `mysql` feature; anything otherwise.
#[cfg(feature = "mysql")]
pub trait FromMysqlRow: QueryableByName<diesel::mysql::Mysql> {}
#[cfg(feature = "mysql")]
impl<T: QueryableByName<diesel::mysql::Mysql>> FromMysqlRow for T {}
/// A row readable from MySQL/MariaDB, in builds with the `mysql` feature; anything otherwise.
#[cfg(not(feature = "mysql"))]
pub trait FromMysqlRow {}
#[cfg(not(feature = "mysql"))]
impl<T> FromMysqlRow for T {}
