//! colzero-model (placeholder: being built).
