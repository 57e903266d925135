//! The only crate that does IO: TUN devices, UDP 500/4500, raw ESP/AH sockets. Not yet implemented: see issue 6.
