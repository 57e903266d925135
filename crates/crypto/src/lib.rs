//! Cryptographic provider: algorithm tables chosen by negotiated transform IDs, IKE key derivation.
