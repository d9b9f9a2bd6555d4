//! The client's token: sent as `authorization: Bearer <token>` on every call, by a tonic
//! interceptor, so no call can forget it. Never shown by `Debug`.

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::{Request, Status};

use crate::error::{ClientError, Result};

/// A token to present, or none.
#[derive(Clone, Default)]
pub struct BearerToken(Option<MetadataValue<Ascii>>);

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "BearerToken(..)"
        } else {
            "BearerToken(none)"
        })
    }
}

impl BearerToken {
    /// The header value for `token`; an error if it cannot be sent as a header.
    pub(crate) fn new(token: &str) -> Result<Self> {
        let token = token.trim();
        let mut value: MetadataValue<Ascii> = format!("Bearer {token}")
            .parse()
            .map_err(|_| ClientError::Config("the token is not printable ASCII".into()))?;
        value.set_sensitive(true);
        Ok(Self(Some(value)))
    }
}

impl Interceptor for BearerToken {
    fn call(&mut self, mut request: Request<()>) -> std::result::Result<Request<()>, Status> {
        if let Some(value) = &self.0 {
            request.metadata_mut().insert("authorization", value.clone());
        }
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_goes_on_every_request_and_is_never_shown() {
        let mut token = BearerToken::new("flt_secret").unwrap();
        assert_eq!(format!("{token:?}"), "BearerToken(..)");
        let req = token.call(Request::new(())).unwrap();
        assert_eq!(req.metadata().get("authorization").unwrap(), "Bearer flt_secret");
        let req = BearerToken::default().call(Request::new(())).unwrap();
        assert!(req.metadata().get("authorization").is_none());
        assert!(BearerToken::new("a\nb").is_err());
    }
}
