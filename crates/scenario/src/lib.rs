//! CONTRACT PLACEHOLDER (to be replaced by the scenario engineer): the public
//! API other crates compile against. Keep these signatures.

/// A parsed, validated scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    name: String,
    host: Option<String>,
    user_classes: Vec<UserClassInfo>,
    endpoints: Vec<EndpointDef>,
}

/// Identity of one user class.
#[derive(Debug, Clone)]
pub struct UserClassInfo {
    pub name: String,
    pub weight: u32,
}

/// One endpoint (a stats row): every request step with the same method and
/// name maps to the same endpoint index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointDef {
    pub method: String,
    pub name: String,
}

/// A scenario error with its location.
#[derive(Debug, thiserror::Error)]
#[error("{source_name}:{line}:{column}: {message}")]
pub struct ScenarioError {
    pub source_name: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl Scenario {
    /// Parses and validates `yaml`; `source_name` (a file path) prefixes errors.
    pub fn parse(source_name: &str, yaml: &str) -> Result<Scenario, ScenarioError> {
        let _ = (source_name, yaml);
        unimplemented!("contract placeholder")
    }
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The default target host from the file, if any.
    pub fn host(&self) -> Option<&str> {
        self.host.as_deref()
    }
    pub fn user_classes(&self) -> &[UserClassInfo] {
        &self.user_classes
    }
    /// The endpoint table; deltas refer to endpoints by index into it.
    pub fn endpoints(&self) -> &[EndpointDef] {
        &self.endpoints
    }
}
