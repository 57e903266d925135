//! IANA registries as open newtypes (STYLE.md 5).
//!
//! `registry!` defines `struct Name(pub uN)` with a named constant per registered value,
//! `name()`, a `Debug` that prints the registered name (or `Name(123)` for values we do not
//! know), `Display`, and conversions from and to the integer. Unknown values survive
//! parsing; the protocol layer decides what to do with them.

macro_rules! registry {
    (
        $(#[$meta:meta])*
        pub struct $name:ident($ty:ty) {
            $( $(#[$cmeta:meta])* $cname:ident = $val:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(pub $ty);

        impl $name {
            $(
                $(#[$cmeta])*
                #[doc = concat!("`", stringify!($cname), "` = ", stringify!($val))]
                pub const $cname: $name = $name($val);
            )*

            /// The registered name of this value, if this crate knows it.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $( $val => Some(stringify!($cname)), )*
                    _ => None,
                }
            }
        }

        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                match self.name() {
                    Some(n) => f.write_str(n),
                    None => write!(f, "{}({})", stringify!($name), self.0),
                }
            }
        }

        impl core::fmt::Display for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                core::fmt::Debug::fmt(self, f)
            }
        }

        impl From<$ty> for $name {
            fn from(v: $ty) -> Self {
                $name(v)
            }
        }

        impl From<$name> for $ty {
            fn from(v: $name) -> Self {
                v.0
            }
        }
    };
}

pub(crate) use registry;
