//! sig
