//! kex
