//! Building the STS client: directly from environment credentials when that is
//! equivalent to the default chain, without TLS for `http://` endpoints, and the
//! endpoint named in messages (never with a password).

use super::*;

/// The endpoint named in messages: the platform's, else the one the SDK takes from
/// the environment, else the regional one.
pub(super) fn endpoint_label(platform: &Platform, env: &dyn Fn(&str) -> Option<String>) -> String {
    let from_env = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    let url = platform
        .aws
        .sts_endpoint
        .clone()
        .or_else(|| from_env("AWS_ENDPOINT_URL_STS"))
        .or_else(|| from_env("AWS_ENDPOINT_URL"))
        .unwrap_or_else(|| {
            let region = &platform.aws.region;
            let suffix = if region.starts_with("cn-") {
                "amazonaws.com.cn"
            } else {
                "amazonaws.com"
            };
            format!("https://sts.{region}.{suffix}")
        });
    without_userinfo(&url)
}

/// `scheme://user:password@host/…` → `scheme://host/…`: messages never carry a
/// password, wherever the URL came from.
pub(super) fn without_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => url.to_string(),
    }
}

pub(super) async fn build_client(
    platform: &Platform,
    options: &StsOptions,
    plain_http: bool,
) -> aws_sdk_sts::Client {
    use aws_config::retry::RetryConfig;
    use aws_config::timeout::TimeoutConfig;
    if let Some(conf) = direct_config(platform, options, plain_http) {
        return aws_sdk_sts::Client::from_conf(conf);
    }
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(platform.aws.region.clone()))
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(options.connect_timeout)
                .build(),
        );
    if let Some(c) = &options.base_credentials {
        loader = loader.credentials_provider(aws_credential_types::Credentials::new(
            c.access_key_id.clone(),
            c.secret_access_key.clone(),
            c.session_token.clone(),
            c.expiration,
            "explicit",
        ));
    }
    let sdk = loader.load().await;
    let mut conf = aws_sdk_sts::config::Builder::from(&sdk);
    if let Some(endpoint) = &platform.aws.sts_endpoint {
        conf = conf.endpoint_url(endpoint);
    }
    if plain_http {
        // Only the STS client gets it: credential providers of the chain (SSO, web
        // identity) keep the default HTTPS client.
        conf = conf.http_client(plain_http_client());
    }
    aws_sdk_sts::Client::from_conf(conf.build())
}

/// The STS client configuration built without `aws_config::load()`, when loading
/// would give the same: base credentials in `AWS_ACCESS_KEY_ID` and
/// `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`), which the default chain takes
/// first; no profile file that could add settings (the config and credentials files
/// are missing or empty); no `AWS_PROFILE`, `AWS_USE_FIPS_ENDPOINT` or
/// `AWS_USE_DUALSTACK_ENDPOINT`. The region, retry and timeout settings are the ones
/// the loader is given anyway, and the endpoint is the one the SDK would take
/// ([`configured_endpoint`]). In every other case (including explicit
/// [`StsOptions::base_credentials`], handled by the loader) it returns None and the
/// default chain runs. Skipping the loader also skips building the chain's web
/// identity STS client, which loads the OS trust store.
pub(super) fn direct_config(
    platform: &Platform,
    options: &StsOptions,
    plain_http: bool,
) -> Option<aws_sdk_sts::Config> {
    use aws_config::retry::RetryConfig;
    use aws_config::timeout::TimeoutConfig;
    if options.base_credentials.is_some() {
        return None;
    }
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let key = env("AWS_ACCESS_KEY_ID")?;
    let secret = env("AWS_SECRET_ACCESS_KEY")?;
    if [
        "AWS_PROFILE",
        "AWS_USE_FIPS_ENDPOINT",
        "AWS_USE_DUALSTACK_ENDPOINT",
    ]
    .iter()
    .any(|name| std::env::var_os(name).is_some())
    {
        return None;
    }
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    let file = |var: &str, default: &str| {
        std::env::var_os(var)
            .map(std::path::PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(default)))
    };
    for path in [
        file("AWS_CONFIG_FILE", ".aws/config"),
        file("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials"),
    ] {
        // No HOME: the default files are unknown, so the loader decides.
        let path = path?;
        match std::fs::metadata(&path) {
            Ok(meta) if meta.len() > 0 => return None,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(_) => return None,
        }
    }
    let credentials = aws_credential_types::Credentials::new(
        key,
        secret,
        env("AWS_SESSION_TOKEN"),
        None,
        "Environment",
    );
    let mut conf = aws_sdk_sts::Config::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(platform.aws.region.clone()))
        .credentials_provider(credentials)
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(options.connect_timeout)
                .build(),
        );
    if let Some(endpoint) = configured_endpoint(platform, &|name| std::env::var(name).ok()) {
        conf = conf.endpoint_url(endpoint);
    }
    if plain_http {
        conf = conf.http_client(plain_http_client());
    }
    Some(conf.build())
}

/// The SDK's default HTTP client without its TLS half, for `http://` endpoints.
///
/// The default client builds a rustls connector with the OS trust store on first use,
/// which reads and parses every certificate of the store (milliseconds per launch),
/// although a plain-http endpoint never needs one. This client is the same hyper
/// client, with the same connect timeout, sleep and proxy settings (`HTTP_PROXY`,
/// `NO_PROXY`, as the default client reads them), but no TLS: hyper's connector
/// refuses any `https://` URL it is given ("invalid URL, scheme is not http"), so a
/// wrong guess about the endpoint fails the call and never weakens what is verified.
pub(super) fn plain_http_client() -> aws_sdk_sts::config::SharedHttpClient {
    use aws_smithy_http_client::proxy::ProxyConfig;
    use aws_smithy_http_client::{Builder, ConnectorBuilder};
    Builder::new().build_with_connector_fn(|settings, components| {
        let mut conn = ConnectorBuilder::default();
        conn.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            conn.set_sleep_impl(components.sleep_impl());
        }
        conn.set_proxy_config(Some(ProxyConfig::from_env()));
        conn.build_http()
    })
}

/// True when the STS endpoint is `http://`: the platform's `aws.sts_endpoint`, else
/// `AWS_ENDPOINT_URL_STS`, else `AWS_ENDPOINT_URL`, as the SDK takes them (it ignores
/// the environment's when `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS` is true). The
/// regional endpoint is https.
pub(super) fn plain_http_endpoint(
    platform: &Platform,
    env: &dyn Fn(&str) -> Option<String>,
) -> bool {
    configured_endpoint(platform, env).is_some_and(|u| {
        u.trim()
            .get(..7)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("http://"))
    })
}

/// The endpoint URL configured for STS, if any: the platform's, else the
/// environment's as the SDK reads it.
pub(super) fn configured_endpoint(
    platform: &Platform,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<String> {
    let from_env = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    let ignore_env = from_env("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    platform.aws.sts_endpoint.clone().or_else(|| {
        if ignore_env {
            None
        } else {
            from_env("AWS_ENDPOINT_URL_STS").or_else(|| from_env("AWS_ENDPOINT_URL"))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_labels_drop_passwords() {
        assert_eq!(
            without_userinfo("https://u:p@sts.example.com/x@y"),
            "https://sts.example.com/x@y"
        );
        assert_eq!(
            without_userinfo("http://127.0.0.1:5000"),
            "http://127.0.0.1:5000"
        );
    }

    #[test]
    fn only_http_endpoints_get_the_client_without_tls() {
        let text = include_str!("../../../examples/platform.json");
        let mut platform = crate::load::load_str(text, "examples/platform.json", &|_| None)
            .expect("the example platform loads");
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        platform.aws.sts_endpoint = None;
        assert!(!plain_http_endpoint(&platform, &env(&[])));
        assert!(plain_http_endpoint(
            &platform,
            &env(&[("AWS_ENDPOINT_URL", "http://127.0.0.1:1")])
        ));
        assert!(!plain_http_endpoint(
            &platform,
            &env(&[
                ("AWS_ENDPOINT_URL_STS", "https://sts.internal"),
                ("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
            ])
        ));
        assert!(!plain_http_endpoint(
            &platform,
            &env(&[
                ("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:1"),
                ("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true")
            ])
        ));
        platform.aws.sts_endpoint = Some("HTTP://127.0.0.1:2".into());
        assert!(plain_http_endpoint(
            &platform,
            &env(&[("AWS_ENDPOINT_URL_STS", "https://sts.internal")])
        ));
        platform.aws.sts_endpoint = Some("https://127.0.0.1:2".into());
        assert!(!plain_http_endpoint(
            &platform,
            &env(&[("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:1")])
        ));
    }
}
