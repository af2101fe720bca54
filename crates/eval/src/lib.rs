//! colzero-eval (placeholder: being built).
