//! `tls:`: how https targets are trusted and which client certificate a
//! user presents: files for the whole scenario, templates (PEM from a data
//! set) per user class.

use crate::ScenarioError;
use crate::model::{ClientCertTemplates, TlsOptions};
use crate::node::{Kind, Node};

use super::Compiler;
use super::fields::Fields;

const SCENARIO_KEYS: &[&str] = &[
    "ca_file",
    "server_name",
    "insecure_skip_verify",
    "client_cert",
    "client_key",
];
const CLASS_KEYS: &[&str] = &["client_cert", "client_key"];

impl Compiler<'_> {
    /// The scenario's `tls:`.
    pub(super) fn tls_options(&self, node: &Node) -> Result<TlsOptions, ScenarioError> {
        let fields = Fields::new(self, node, "tls", SCENARIO_KEYS)?;
        let file = |key: &str| -> Result<Option<String>, ScenarioError> {
            let Some(node) = fields.get(key) else {
                return Ok(None);
            };
            let path = self.non_empty_string(node, &format!("tls.{key}"))?;
            if path.contains("{{") {
                return Err(self.error(
                    node,
                    format!(
                        "tls.{key} of the scenario is a file (relative to the scenario file); a certificate per user goes in a user class's tls, e.g. client_cert: \"{{{{ devices.cert }}}}\""
                    ),
                ));
            }
            Ok(Some(path))
        };
        let insecure_skip_verify = match fields.get("insecure_skip_verify") {
            None => false,
            Some(node) => match node.kind {
                Kind::Bool(on) => on,
                _ => {
                    return Err(self.wrong_type(node, "tls.insecure_skip_verify", "true or false"));
                }
            },
        };
        let server_name = match fields.get("server_name") {
            None => None,
            Some(node) => {
                let name = self.non_empty_string(node, "tls.server_name")?;
                if rustls_name_ok(&name) {
                    Some(name)
                } else {
                    return Err(self.error(
                        node,
                        format!(
                            "invalid tls.server_name {name:?}; expected a DNS name or an IP address"
                        ),
                    ));
                }
            }
        };
        let client = match (file("client_cert")?, file("client_key")?) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => {
                return Err(self.error(
                    node,
                    "tls needs both client_cert and client_key, or neither",
                ));
            }
        };
        Ok(TlsOptions {
            ca_file: file("ca_file")?,
            server_name,
            insecure_skip_verify,
            client,
        })
    }

    /// A user class's `tls:`: each user's client certificate and key, PEM
    /// rendered from templates (typically columns of a data set).
    pub(super) fn class_tls(
        &self,
        node: &Node,
        vars: &[String],
    ) -> Result<ClientCertTemplates, ScenarioError> {
        let fields = Fields::new(self, node, "a user class's tls", CLASS_KEYS)?;
        match (fields.get("client_cert"), fields.get("client_key")) {
            (Some(cert), Some(key)) => Ok(ClientCertTemplates {
                cert: self.template(cert, "tls.client_cert", vars)?,
                key: self.template(key, "tls.client_key", vars)?,
            }),
            _ => Err(self.error(
                node,
                "a user class's tls needs both client_cert and client_key (PEM templates, e.g. \"{{ devices.cert }}\")",
            )),
        }
    }
}

/// A DNS name (letters, digits, `-`, `.`) or an IP address.
fn rustls_name_ok(name: &str) -> bool {
    name.parse::<std::net::IpAddr>().is_ok()
        || (!name.starts_with('.')
            && !name.ends_with('.')
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'))
}
