//! colzero-train (placeholder: being built).
