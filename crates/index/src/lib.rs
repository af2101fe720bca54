//! colzero-index (placeholder: being built).
