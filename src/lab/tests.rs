//! Lab tests.
