//! The run's host against the controller's `--allow-target` list, checked
//! at `StartRun` before anything is sent.
//!
//! A name matched by a name pattern passes as it is. A name only address
//! patterns could match is resolved here, and passes only if every address
//! it resolves to is inside them; the workers check again at connect time
//! (DNS may answer differently there, or later).

use std::time::Duration;

use cicada_scenario::allow::{AllowList, Check, TargetError};

use crate::ControllerError;

/// How long resolving the run's host for the check may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Refuses `host` (the run's `http[s]://host[:port]`) unless `allow` lets it through.
pub(crate) async fn check(allow: &AllowList, host: &str) -> Result<(), ControllerError> {
    if allow.is_unrestricted() {
        return Ok(());
    }
    let refused = |error: TargetError| ControllerError::TargetNotAllowed(error.to_string());
    let (name, port) = match allow.check(host) {
        Ok(Check::Allowed) => return Ok(()),
        Ok(Check::Refused) => return Err(refused(allow.refusal(host))),
        Ok(Check::Resolve { name, port }) => (name, port),
        Err(error @ TargetError::InvalidHost { .. }) => {
            return Err(ControllerError::InvalidArgument(error.to_string()));
        }
        Err(error) => return Err(refused(error)),
    };
    let addresses = tokio::time::timeout(
        RESOLVE_TIMEOUT,
        tokio::net::lookup_host((name.as_str(), port)),
    )
    .await
    .map_err(|_| format!("no answer within {RESOLVE_TIMEOUT:?}"))
    .and_then(|result| result.map_err(|error| error.to_string()))
    .map_err(|reason| {
        ControllerError::TargetNotAllowed(format!(
            "target {host}: could not resolve {name} to check its addresses against the allowed targets ({}): {reason}",
            allow.to_strings().join(", ")
        ))
    })?
    .collect::<Vec<_>>();
    if let Some(outside) = addresses.iter().find(|a| !allow.allows_addr(a.ip(), port)) {
        return Err(ControllerError::TargetNotAllowed(format!(
            "{}; {name} resolves to {}",
            allow.refusal(host),
            outside.ip()
        )));
    }
    if addresses.is_empty() {
        return Err(refused(allow.refusal(host)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(patterns: &[&str]) -> AllowList {
        AllowList::parse(patterns).unwrap()
    }

    #[tokio::test]
    async fn an_empty_list_checks_nothing() {
        check(&AllowList::default(), "not even a url")
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn localhost_resolves_into_the_loopback_block() {
        check(&list(&["127.0.0.0/8", "::1"]), "http://localhost:9")
            .await
            .unwrap();
        let error = check(&list(&["10.0.0.0/8"]), "http://localhost:9")
            .await
            .unwrap_err();
        let message = error.to_string();
        assert!(
            message.starts_with(
                "target http://localhost:9 is not in the allowed targets (10.0.0.0/8); \
                 the controller's --allow-target decides; localhost resolves to "
            ),
            "{message}"
        );
        assert_eq!(error.code(), tonic::Code::PermissionDenied);
    }

    #[tokio::test]
    async fn refusals_and_bad_hosts() {
        let allow = list(&["*.example.com"]);
        let error = check(&allow, "http://127.0.0.1:8080").await.unwrap_err();
        assert_eq!(
            error.to_string(),
            "target http://127.0.0.1:8080 is not in the allowed targets (*.example.com); \
             the controller's --allow-target decides"
        );
        let error = check(&allow, "127.0.0.1:8080").await.unwrap_err();
        assert_eq!(error.code(), tonic::Code::InvalidArgument);
        // A name pattern passes without resolving (.example.com names do not).
        check(&allow, "https://shop.example.com").await.unwrap();
    }
}
