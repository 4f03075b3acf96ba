//! Model-based property test: filled in below.
