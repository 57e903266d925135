//! Sans-IO ESP/AH data plane. Not yet implemented: see issue 6.
