//! The ferrosec configuration model.
