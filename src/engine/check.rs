//! One `check` run: resolve, probe rounds, analyse.
