//! The provider: algorithm lookup by negotiated transform ID.
