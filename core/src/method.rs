//! HTTP methods as a type: what a route serves ([`crate::endpoint`]), what
//! a request uses, and what a `405` lists.

use std::fmt;

/// An HTTP method. Lanyard's routes serve `GET` (and `HEAD` with it),
/// `POST`, `PATCH` and `DELETE`; any other method a client sends is kept as
/// what it is, so that it is refused with `405`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// `GET`.
    Get,
    /// `HEAD`: served wherever `GET` is.
    Head,
    /// `POST`.
    Post,
    /// `PUT`.
    Put,
    /// `PATCH`.
    Patch,
    /// `DELETE`.
    Delete,
    /// `OPTIONS`.
    Options,
    /// Any other method.
    Other,
}

impl Method {
    /// Every method with a name (not [`Method::Other`]).
    pub const NAMED: [Method; 7] =
        [Method::Get, Method::Head, Method::Post, Method::Put, Method::Patch, Method::Delete, Method::Options];

    /// The method of a request line's method token.
    pub fn parse(s: &str) -> Method {
        Method::NAMED.into_iter().find(|m| m.as_str() == s).unwrap_or(Method::Other)
    }

    /// The method's name, upper case (`OTHER` for [`Method::Other`]).
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
            Method::Other => "OTHER",
        }
    }

    /// Whether the method changes state (and so needs CSRF under a cookie).
    pub fn is_write(self) -> bool {
        !matches!(self, Method::Get | Method::Head | Method::Options)
    }

    /// The method a route must serve for this request: `HEAD` is `GET`'s.
    pub fn served_as(self) -> Method {
        if self == Method::Head { Method::Get } else { self }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
