//! The wall clock, in the one unit stored: whole seconds since the Unix epoch (UTC).

/// Now, in Unix seconds.
pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}
