//! `cicada health --grpc ADDR`: a grpc.health.v1 Check, for container
//! healthchecks (the image has no grpc_health_probe). Needs no token; over
//! `https://` it needs the TLS flags (and a client certificate on an mTLS
//! server).

use std::process::ExitCode;

use anyhow::Context;
use cicada_proto::health::{HealthCheckRequest, HealthClient, health_check_response};
use cicada_tls::GrpcTarget;

use crate::cli::HealthArgs;

pub async fn health(args: HealthArgs) -> anyhow::Result<ExitCode> {
    let url = if args.addr.contains("://") {
        args.addr.clone()
    } else {
        format!("http://{}", args.addr)
    };
    let tls = args
        .tls
        .client()
        .context("bad --tls-ca / --tls-client-cert / --tls-client-key")?;
    let target = GrpcTarget::new(&url, &tls)
        .with_context(|| format!("invalid address {:?}", args.addr))?
        .with(|endpoint| endpoint.connect_timeout(args.timeout).timeout(args.timeout));
    let check = async {
        let channel = target.connect().await?;
        let response = HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: args.service.clone(),
            })
            .await?;
        anyhow::Ok(response.into_inner().status())
    };
    let status = tokio::time::timeout(args.timeout, check)
        .await
        .map_err(|_| anyhow::anyhow!("no answer within {:?}", args.timeout))
        .and_then(|result| result)
        .with_context(|| {
            format!(
                "health check of {url} failed{}",
                crate::session::plaintext_hint(&target)
            )
        })?;
    let serving = status == health_check_response::ServingStatus::Serving;
    eprintln!("{url}: {}", status.as_str_name());
    Ok(if serving {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
