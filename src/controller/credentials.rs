//! Resolving the Contiguity API token of a resource: its `credentialsSecretRef` or the
//! operator's default token. Secret reads are cached by resourceVersion, which a metadata-only
//! watch keeps current, so an unchanged Secret costs no API call.

use super::error::Error;
use crate::contiguity::ApiToken;
use crate::crd::SecretKeyRef;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PartialObjectMeta};
use kube::runtime::reflector::{ObjectRef, Store};
use std::collections::HashMap;
use std::sync::Mutex;

/// Condition reasons of credential failures.
pub mod reason {
    /// The referenced Secret does not exist.
    pub const SECRET_NOT_FOUND: &str = "CredentialsSecretNotFound";
    /// The Secret exists but lacks the key, or its value is empty.
    pub const SECRET_KEY_MISSING: &str = "CredentialsKeyMissing";
    /// No Secret is referenced and the operator has no default token.
    pub const NO_CREDENTIALS: &str = "NoCredentials";
    /// The Secret could not be read (RBAC or API failure).
    pub const SECRET_UNREADABLE: &str = "CredentialsSecretUnreadable";
}

/// Resolves tokens for resources.
pub struct Credentials {
    client: kube::Client,
    default_token: Option<ApiToken>,
    secrets: Vec<Store<PartialObjectMeta<Secret>>>,
    cache: Mutex<HashMap<SecretKey, (String, ApiToken)>>,
}

/// Namespace, Secret name and key.
type SecretKey = (String, String, String);

impl Credentials {
    /// `secrets` are the metadata stores of the watched namespaces' Secrets.
    pub fn new(
        client: kube::Client,
        default_token: Option<ApiToken>,
        secrets: Vec<Store<PartialObjectMeta<Secret>>>,
    ) -> Self {
        Self {
            client,
            default_token,
            secrets,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The resourceVersion of the referenced Secret as last seen by the watch, if any.
    pub fn secret_version(&self, namespace: &str, secret_ref: Option<&SecretKeyRef>) -> Option<String> {
        let sref = secret_ref?;
        let oref = ObjectRef::<PartialObjectMeta<Secret>>::new(&sref.name).within(namespace);
        self.secrets
            .iter()
            .find_map(|s| s.get(&oref))
            .and_then(|m| m.metadata.resource_version.clone())
    }

    /// The token for a resource in `namespace` with an optional Secret reference.
    pub async fn token(&self, namespace: &str, secret_ref: Option<&SecretKeyRef>) -> Result<ApiToken, Error> {
        let Some(sref) = secret_ref else {
            return self.default_token.clone().ok_or_else(|| Error::Credentials {
                reason: reason::NO_CREDENTIALS,
                message: "no credentialsSecretRef is set and the operator has no default token \
                          (--token-file or CONTIGUITY_TOKEN)"
                    .to_string(),
            });
        };
        let key = (namespace.to_string(), sref.name.clone(), sref.key.clone());
        let oref = ObjectRef::<PartialObjectMeta<Secret>>::new(&sref.name).within(namespace);
        let current_rv = self
            .secrets
            .iter()
            .find_map(|s| s.get(&oref))
            .and_then(|m| m.metadata.resource_version.clone());
        if let (Some(rv), Ok(cache)) = (&current_rv, self.cache.lock())
            && let Some((cached_rv, token)) = cache.get(&key)
            && cached_rv == rv
        {
            return Ok(token.clone());
        }
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let secret = match api.get_opt(&sref.name).await {
            Ok(Some(s)) => s,
            Ok(None) => {
                return Err(Error::Credentials {
                    reason: reason::SECRET_NOT_FOUND,
                    message: format!(
                        "Secret {namespace}/{} named by credentialsSecretRef does not exist",
                        sref.name
                    ),
                });
            }
            Err(kube::Error::Api(s)) if s.code == 403 => {
                return Err(Error::Credentials {
                    reason: reason::SECRET_UNREADABLE,
                    message: format!(
                        "the operator may not read Secret {namespace}/{}: {}",
                        sref.name, s.message
                    ),
                });
            }
            Err(e) => return Err(Error::Kube(e)),
        };
        let value = secret
            .data
            .as_ref()
            .and_then(|d| d.get(&sref.key))
            .map(|b| String::from_utf8_lossy(&b.0).trim().to_string())
            .or_else(|| {
                secret
                    .string_data
                    .as_ref()
                    .and_then(|d| d.get(&sref.key))
                    .map(|s| s.trim().to_string())
            })
            .filter(|v| !v.is_empty());
        let Some(value) = value else {
            return Err(Error::Credentials {
                reason: reason::SECRET_KEY_MISSING,
                message: format!(
                    "Secret {namespace}/{} has no non-empty key {:?} (set credentialsSecretRef.key)",
                    sref.name, sref.key
                ),
            });
        };
        let token = ApiToken::new(value);
        if let (Some(rv), Ok(mut cache)) = (secret.metadata.resource_version.clone(), self.cache.lock()) {
            cache.insert(key, (rv, token.clone()));
        }
        Ok(token)
    }
}
