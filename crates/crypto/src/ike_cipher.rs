//! ike_cipher
