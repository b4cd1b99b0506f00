//! Shared test harness: runs the built `spark-submit-wrap` against a stand-in
//! `spark-submit` that records what it was given.
//!
//! The stand-in is a shell script. It writes, into `$RECORD_DIR`:
//! `argv` (NUL-separated, byte-exact), `cmdline` (its own `/proc/PID/cmdline`),
//! `environ` (its `/proc/PID/environ`), `pid`, and for every `--properties-file`
//! value it can read, `props.N.path` / `props.N` (the content, read through the path
//! as Spark would, e.g. `/dev/fd/3`) / `props.N.mode` (octal modes of the file and
//! its directory). It exits with `$STANDIN_EXIT` (default 0).
//!
//! Every run starts from an empty environment with explicit values, including
//! `AWS_EC2_METADATA_DISABLED=true`; nothing reaches the network.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const KEYID: &str = "ASIAPROPAGATEDKEYID1";
pub const SECRET: &str = "pr0pagated/Secret+Key0123456789abcdefghij";
pub const TOKEN: &str = "IQoJb3JpZ2luX2VjEPropagatedSessionToken//Zz==";

pub const STANDIN: &str = r#"#!/bin/sh
d="${RECORD_DIR:?RECORD_DIR not set}"
mkdir -p "$d"
printf '%s\0' "$@" > "$d/argv"
cat /proc/$$/cmdline > "$d/cmdline"
cat /proc/$$/environ > "$d/environ"
echo $$ > "$d/pid"
n=0
prev=""
for a in "$@"; do
  p=""
  case "$a" in --properties-file=*) p="${a#--properties-file=}" ;; esac
  [ "$prev" = "--properties-file" ] && p="$a"
  if [ -n "$p" ]; then
    printf '%s' "$p" > "$d/props.$n.path"
    if [ -r "$p" ]; then
      cat "$p" > "$d/props.$n"
      printf '%s %s' "$(stat -L -c %a "$p")" "$(stat -L -c %a "$(dirname "$p")")" > "$d/props.$n.mode"
    fi
    n=$((n+1))
  fi
  prev="$a"
done
exit "${STANDIN_EXIT:-0}"
"#;

pub fn wrapper() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_spark-submit-wrap"))
}

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// A scratch area with a stand-in Spark installation.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("spark/bin");
        std::fs::create_dir_all(&bin).unwrap();
        let s = bin.join("spark-submit");
        std::fs::write(&s, STANDIN).unwrap();
        std::fs::set_permissions(&s, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::create_dir_all(dir.path().join("runtime")).unwrap();
        std::fs::set_permissions(
            dir.path().join("runtime"),
            std::fs::Permissions::from_mode(0o700),
        )
        .unwrap();
        Sandbox { dir }
    }

    pub fn spark_home(&self) -> PathBuf {
        self.dir.path().join("spark")
    }

    pub fn runtime_dir(&self) -> PathBuf {
        self.dir.path().join("runtime")
    }

    pub fn record_dir(&self, name: &str) -> PathBuf {
        self.dir.path().join("records").join(name)
    }

    /// The base environment: explicit, loopback-only, no ambient AWS configuration.
    pub fn base_env(&self) -> Vec<(String, String)> {
        vec![
            ("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()),
            ("HOME".into(), self.dir.path().display().to_string()),
            ("SPARK_HOME".into(), self.spark_home().display().to_string()),
            (
                "SPARK_CONF_DIR".into(),
                fixtures().join("conf").display().to_string(),
            ),
            (
                "XDG_RUNTIME_DIR".into(),
                self.runtime_dir().display().to_string(),
            ),
            ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
            (
                "SYN_PLATFORM_CONFIG".into(),
                self.dir
                    .path()
                    .join("no-platform.json")
                    .display()
                    .to_string(),
            ),
        ]
    }

    /// Propagation mode: a provisioned kernel's marker and scoped credentials.
    pub fn propagation_env(&self) -> Vec<(String, String)> {
        let mut e = self.base_env();
        e.extend([
            (
                "SYN_PROVISIONED".to_string(),
                "tier=session_policy;expiration=2099-01-01T00:00:00Z;user=alice".to_string(),
            ),
            ("AWS_ACCESS_KEY_ID".into(), KEYID.into()),
            ("AWS_SECRET_ACCESS_KEY".into(), SECRET.into()),
            ("AWS_SESSION_TOKEN".into(), TOKEN.into()),
            ("AWS_REGION".into(), "us-east-1".into()),
        ]);
        e
    }

    /// Runs the wrapper with exactly `env` (plus `RECORD_DIR`).
    pub fn run(&self, name: &str, args: &[OsString], env: &[(String, String)]) -> Run {
        let record = self.record_dir(name);
        let mut cmd = Command::new(wrapper());
        cmd.args(args).env_clear();
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.env("RECORD_DIR", &record);
        let child = cmd
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        let output = child.wait_with_output().unwrap();
        Run {
            record,
            output,
            pid,
        }
    }
}

pub struct Run {
    pub record: PathBuf,
    pub output: Output,
    pub pid: u32,
}

impl Run {
    pub fn ran(&self) -> bool {
        self.record.join("argv").exists()
    }

    pub fn code(&self) -> Option<i32> {
        self.output.status.code()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    fn nul_list(&self, file: &str) -> Vec<OsString> {
        let bytes = std::fs::read(self.record.join(file)).unwrap_or_default();
        let mut v: Vec<OsString> = bytes
            .split(|&b| b == 0)
            .map(|s| OsString::from_vec(s.to_vec()))
            .collect();
        // printf '%s\0' ends with a NUL: drop the empty tail.
        if v.last().is_some_and(|s| s.is_empty()) {
            v.pop();
        }
        v
    }

    /// The argv the stand-in received (without its program name).
    pub fn argv(&self) -> Vec<OsString> {
        self.nul_list("argv")
    }

    pub fn cmdline_bytes(&self) -> Vec<u8> {
        std::fs::read(self.record.join("cmdline")).unwrap_or_default()
    }

    pub fn environ(&self) -> BTreeMap<String, String> {
        self.nul_list("environ")
            .into_iter()
            .filter_map(|kv| {
                let s = kv.to_string_lossy().into_owned();
                s.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect()
    }

    pub fn standin_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.record.join("pid"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
    }

    /// (path, content, "filemode dirmode") for every readable --properties-file.
    pub fn props_files(&self) -> Vec<(String, Option<String>, Option<String>)> {
        (0..)
            .map_while(|n| {
                let path =
                    std::fs::read_to_string(self.record.join(format!("props.{n}.path"))).ok()?;
                let content = std::fs::read_to_string(self.record.join(format!("props.{n}"))).ok();
                let mode =
                    std::fs::read_to_string(self.record.join(format!("props.{n}.mode"))).ok();
                Some((path, content, mode))
            })
            .collect()
    }

    /// The decision record line (JSON) the wrapper wrote to stderr.
    pub fn record_json(&self) -> serde_json::Value {
        self.stderr()
            .lines()
            .rfind(|l| l.starts_with('{'))
            .and_then(|l| serde_json::from_str(l).ok())
            .unwrap_or(serde_json::Value::Null)
    }
}

/// Parses Java properties text as Spark does.
pub fn parse_properties(text: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    java_properties::PropertiesIter::new_with_encoding(text.as_bytes(), encoding_rs::UTF_8)
        .read_into(|k, v| {
            m.insert(k, v);
        })
        .unwrap();
    m
}

/// POSIX-shell-style word splitting: single quotes, double quotes, backslashes.
pub fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    cur.push(c);
                }
            }
            '"' => {
                in_word = true;
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' if matches!(chars.peek(), Some('"' | '\\' | '$')) => {
                            cur.push(chars.next().unwrap());
                        }
                        _ => cur.push(c),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    words
}

/// Substitutes the corpus placeholders.
pub fn expand(s: &str) -> String {
    s.replace("$FIX", &fixtures().display().to_string())
        .replace("$KEYID", KEYID)
        .replace("$SECRET", SECRET)
        .replace("$TOKEN", TOKEN)
}

pub fn contains_bytes(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}
