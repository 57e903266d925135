//! Sans-IO IKE engines (IKEv2 in `v2`, IKEv1 in `v1`). Not yet implemented: see issue 5.
