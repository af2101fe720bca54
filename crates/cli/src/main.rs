//! The `colzero` binary (placeholder: being built).
fn main() {}
