//! The connection file Jupyter writes: transport, address, ports, key and signature
//! scheme, checked before anything is bound.

use super::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Scheme {
    Sha256,
    Sha512,
}

/// The contents of a connection file. No `Debug`: it holds the signing key.
pub(super) struct ConnectionInfo {
    pub(super) ip: String,
    pub(super) shell_port: u16,
    pub(super) iopub_port: u16,
    pub(super) stdin_port: u16,
    pub(super) control_port: u16,
    pub(super) hb_port: u16,
    pub(super) key: Vec<u8>,
    pub(super) scheme: Scheme,
}

#[derive(Deserialize)]
pub(super) struct ConnectionFile {
    #[serde(default)]
    pub(super) transport: Option<String>,
    #[serde(default)]
    pub(super) ip: Option<String>,
    pub(super) shell_port: u16,
    pub(super) iopub_port: u16,
    pub(super) stdin_port: u16,
    pub(super) control_port: u16,
    pub(super) hb_port: u16,
    /// Kept as a JSON value so a wrongly typed key is never quoted in an error.
    #[serde(default)]
    pub(super) key: Option<Value>,
    #[serde(default)]
    pub(super) signature_scheme: Option<String>,
}

impl ConnectionInfo {
    pub(super) fn read(path: &Path) -> Result<ConnectionInfo, RefusalKernelError> {
        let text = std::fs::read_to_string(path).map_err(|source| RefusalKernelError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        ConnectionInfo::parse(&text).map_err(|reason| RefusalKernelError::Invalid {
            path: path.to_path_buf(),
            reason,
        })
    }

    pub(super) fn parse(text: &str) -> Result<ConnectionInfo, String> {
        let f: ConnectionFile = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let transport = f.transport.as_deref().unwrap_or("tcp");
        if transport != "tcp" {
            return Err(format!(
                "transport {transport:?} is not supported, only \"tcp\""
            ));
        }
        let scheme = match f.signature_scheme.as_deref().unwrap_or("hmac-sha256") {
            "hmac-sha256" => Scheme::Sha256,
            "hmac-sha512" => Scheme::Sha512,
            other => {
                return Err(format!(
                    "signature_scheme {other:?} is not supported, only \"hmac-sha256\" or \"hmac-sha512\""
                ));
            }
        };
        let ports = [
            ("shell_port", f.shell_port),
            ("iopub_port", f.iopub_port),
            ("stdin_port", f.stdin_port),
            ("control_port", f.control_port),
            ("hb_port", f.hb_port),
        ];
        if let Some((name, _)) = ports.iter().find(|(_, p)| *p == 0) {
            return Err(format!("{name} is 0; every port must be given"));
        }
        let key = match f.key {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(k)) => k.into_bytes(),
            Some(_) => return Err("key is not a string".to_string()),
        };
        let ip = f.ip.unwrap_or_else(|| "127.0.0.1".to_string());
        if ip.is_empty() {
            return Err("ip is empty".to_string());
        }
        Ok(ConnectionInfo {
            ip,
            shell_port: f.shell_port,
            iopub_port: f.iopub_port,
            stdin_port: f.stdin_port,
            control_port: f.control_port,
            hb_port: f.hb_port,
            key,
            scheme,
        })
    }

    pub(super) fn endpoint(&self, port: u16) -> String {
        if self.ip.contains(':') && !self.ip.starts_with('[') {
            format!("tcp://[{}]:{port}", self.ip)
        } else {
            format!("tcp://{}:{port}", self.ip)
        }
    }
}
