//! Form bodies as name/value pairs: checkbox groups repeat a name, which the usual
//! struct-shaped form decoding cannot hold.

use super::error::ConsoleError;
use axum::extract::{FromRequest, Request};

pub struct Fields(pub Vec<(String, String)>);

impl Fields {
    /// The first value of `name`, trimmed; empty when absent.
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.trim())
    }

    /// Every value of `name`.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// The value of `name`, or `None` when empty.
    pub fn opt(&self, name: &str) -> Option<String> {
        let v = self.get(name);
        (!v.is_empty()).then(|| v.to_string())
    }
}

impl<S: Send + Sync> FromRequest<S> for Fields {
    type Rejection = ConsoleError;

    async fn from_request(req: Request, s: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::Bytes::from_request(req, s)
            .await
            .map_err(|_| ConsoleError::bad_request("unreadable form"))?;
        Ok(Fields(
            url::form_urlencoded::parse(&bytes)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        ))
    }
}
