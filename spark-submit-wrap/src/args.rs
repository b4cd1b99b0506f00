//! The `spark-submit` command line, parsed the way Spark's own launcher parses it
//! (`SparkSubmitOptionParser` and `SparkSubmitCommandBuilder.OptionParser`), as a
//! model over the *original* tokens.
//!
//! The model never rewrites a token. It records where each option, value, switch and
//! the primary resource sit, so that [`Parsed::rebuild`] can produce the final argument
//! vector with exactly two kinds of change:
//!
//! * the wrapper's additions, inserted at one point ([`Parsed::insertion_point`]):
//!   right before the primary resource, or at the end when there is none (`--version`,
//!   `--kill ID`, `--status ID`) or when Spark parses options everywhere (the shells);
//! * the value of the user's last `--properties-file`, replaced in place by the
//!   wrapper's merged file (Spark reads one properties file only).
//!
//! Wrapper options (`--wrap-explain`, `--wrap-config PATH`, `--wrap-broker SOCKET`) are recognised where Spark
//! parses options and are removed before exec; Spark would reject them as unknown, so
//! they can never collide with a Spark option.
//!
//! This module must never reorder, re-quote, re-encode or drop a user token (other than
//! the wrapper's own options), and never interpret anything after the primary resource:
//! those tokens belong to the application, even when they look like `--conf` or
//! `--master`.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

/// Options that take a value (Spark 4.x). `-c` is an alias of `--conf`.
const VALUE_OPTIONS: &[&str] = &[
    "--archives",
    "--class",
    "--conf",
    "--deploy-mode",
    "--driver-class-path",
    "--driver-cores",
    "--driver-default-class-path",
    "--driver-java-options",
    "--driver-library-path",
    "--driver-memory",
    "--executor-cores",
    "--executor-memory",
    "--files",
    "--jars",
    "--keytab",
    "--kill",
    "--master",
    "--remote",
    "--name",
    "--num-executors",
    "--packages",
    "--exclude-packages",
    "--principal",
    "--properties-file",
    "--proxy-user",
    "--py-files",
    "--queue",
    "--repositories",
    "--status",
    "--total-executor-cores",
];

/// Options that take no value. `-h` and `-v` are aliases.
const SWITCHES: &[&str] = &[
    "--help",
    "--supervise",
    "--usage-error",
    "--verbose",
    "--version",
    "--load-spark-defaults",
];

/// Switches for which Spark only prints (version or usage) and exits.
const INFO_SWITCHES: &[&str] = &["--help", "--usage-error", "--version"];

/// Main classes that make Spark's launcher accept spark-submit options mixed with
/// application arguments (`bin/spark-shell`, the thrift server and SQL CLI).
const MIXED_ARGUMENT_CLASSES: &[&str] = &[
    "org.apache.spark.repl.Main",
    "org.apache.spark.sql.hive.thriftserver.SparkSQLCLIDriver",
    "org.apache.spark.sql.hive.thriftserver.HiveThriftServer2",
    "org.apache.spark.sql.connect.service.SparkConnectServer",
];

/// First tokens with a meaning of their own to Spark's launcher (`bin/pyspark`,
/// `bin/sparkR`, `bin/run-example`).
pub const PYSPARK_SHELL_MAIN: &str = "pyspark-shell-main";
pub const SPARKR_SHELL_MAIN: &str = "sparkr-shell-main";
pub const RUN_EXAMPLE: &str = "run-example";

/// How an option's value was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// `--opt value`: two tokens.
    Separate,
    /// `--opt=value`: one token.
    Joined,
}

/// One option that takes a value, as found on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionArg {
    /// The option's canonical name (`--conf` for `-c`).
    pub name: &'static str,
    /// Index of the option token.
    pub index: usize,
    /// Index of the token that holds the value (== `index` for [`Form::Joined`]).
    pub value_index: usize,
    pub form: Form,
    pub value: OsString,
}

/// A `--conf` option split the way Spark splits it (at the first `=`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfArg {
    /// Index of the option token.
    pub index: usize,
    pub key: String,
    pub value: String,
}

/// Options only the wrapper understands; stripped before exec.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WrapOptions {
    /// `--wrap-explain`: print the decision, argv and conf; do not exec.
    pub explain: bool,
    /// `--wrap-config PATH`: the platform file.
    pub config: Option<PathBuf>,
    /// `--wrap-broker SOCKET`: ask the broker instead of minting here.
    pub broker: Option<PathBuf>,
}

/// The parsed command line. Indices refer to `tokens` (argv without the program name).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    pub tokens: Vec<OsString>,
    /// Value options, in command-line order.
    pub options: Vec<OptionArg>,
    /// Switches: (index, canonical name).
    pub switches: Vec<(usize, &'static str)>,
    /// Tokens that look like options but are not Spark options. Spark rejects them
    /// ("Unrecognized option"); the wrapper passes them through untouched.
    pub unknown: Vec<usize>,
    /// The primary resource (application jar or script, `pyspark-shell`,
    /// `spark-internal`, …). Everything after it belongs to the application.
    pub primary: Option<usize>,
    /// A leading `pyspark-shell-main`, `sparkr-shell-main` or `run-example`.
    pub leading: Option<usize>,
    /// Spark parses options all the way to the end (shells and mixed-argument classes).
    pub mixed: bool,
    /// The last token is an option missing its value; Spark refuses such a command line.
    pub dangling: Option<usize>,
    /// Tokens that belong to the wrapper's own options.
    pub wrap_tokens: Vec<usize>,
    pub wrap: WrapOptions,
}

/// A wrapper option that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Java's `.` (used in Spark's `(--[^=]+)=(.+)` pattern) does not match line terminators.
fn is_java_line_terminator(c: char) -> bool {
    matches!(c, '\n' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

/// Splits `--name=value` the way Spark's `(--[^=]+)=(.+)` pattern does: the name is
/// everything before the first `=`, the value must be non-empty and free of line
/// terminators.
fn split_joined(token: &[u8]) -> Option<(&[u8], &[u8])> {
    if !token.starts_with(b"--") {
        return None;
    }
    let eq = token.iter().position(|&b| b == b'=')?;
    let (name, value) = (&token[..eq], &token[eq + 1..]);
    if name.len() < 3 || value.is_empty() {
        return None;
    }
    if String::from_utf8_lossy(value)
        .chars()
        .any(is_java_line_terminator)
    {
        return None;
    }
    Some((name, value))
}

fn find_value_option(name: &[u8]) -> Option<&'static str> {
    if name == b"-c" {
        return Some("--conf");
    }
    VALUE_OPTIONS.iter().copied().find(|o| o.as_bytes() == name)
}

fn find_switch(name: &[u8]) -> Option<&'static str> {
    match name {
        b"-h" => Some("--help"),
        b"-v" => Some("--verbose"),
        _ => SWITCHES.iter().copied().find(|s| s.as_bytes() == name),
    }
}

impl Parsed {
    /// Parses `tokens` (argv without the program name).
    pub fn parse(tokens: Vec<OsString>) -> Result<Parsed, UsageError> {
        let mut p = Parsed {
            tokens,
            ..Parsed::default()
        };
        let n = p.tokens.len();
        let mut i = 0;
        let mut first_seen = false;
        let mut example = false;
        while i < n {
            let tok = p.tokens[i].as_bytes().to_vec();
            // Wrapper options live wherever Spark parses options.
            if tok.starts_with(b"--wrap-") {
                i = p.take_wrap_option(i)?;
                continue;
            }
            if !first_seen {
                first_seen = true;
                match tok.as_slice() {
                    t if t == PYSPARK_SHELL_MAIN.as_bytes()
                        || t == SPARKR_SHELL_MAIN.as_bytes() =>
                    {
                        p.leading = Some(i);
                        p.primary = Some(i);
                        p.mixed = true;
                        i += 1;
                        continue;
                    }
                    t if t == RUN_EXAMPLE.as_bytes() => {
                        p.leading = Some(i);
                        example = true;
                        i += 1;
                        continue;
                    }
                    _ => {}
                }
            }
            let (name, joined_value) = match split_joined(&tok) {
                Some((name, value)) => (name.to_vec(), Some(value.to_vec())),
                None => (tok.clone(), None),
            };
            if let Some(opt) = find_value_option(&name) {
                let (value_index, form, value) = match joined_value {
                    Some(v) => (i, Form::Joined, OsString::from_vec(v)),
                    None => {
                        if i + 1 >= n {
                            p.dangling = Some(i);
                            break;
                        }
                        (i + 1, Form::Separate, p.tokens[i + 1].clone())
                    }
                };
                if opt == "--class"
                    && MIXED_ARGUMENT_CLASSES
                        .iter()
                        .any(|c| c.as_bytes() == value.as_bytes())
                {
                    p.mixed = true;
                }
                p.options.push(OptionArg {
                    name: opt,
                    index: i,
                    value_index,
                    form,
                    value,
                });
                i = value_index + 1;
                continue;
            }
            // Spark looks switches up by the split name too: `--verbose=x` is
            // `--verbose` (the value is dropped).
            if let Some(sw) = find_switch(&name) {
                p.switches.push((i, sw));
                i += 1;
                continue;
            }
            // Unknown token.
            if p.mixed {
                // Spark hands it to the application and keeps parsing.
                i += 1;
                continue;
            }
            if tok.starts_with(b"-") && !example {
                // Spark stops with "Unrecognized option". Keep parsing so the rest of
                // the command line is still modelled.
                p.unknown.push(i);
                i += 1;
                continue;
            }
            p.primary = Some(i);
            break;
        }
        Ok(p)
    }

    fn take_wrap_option(&mut self, i: usize) -> Result<usize, UsageError> {
        let tok = self.tokens[i].as_bytes().to_vec();
        let (name, joined) = match tok.iter().position(|&b| b == b'=') {
            Some(eq) => (tok[..eq].to_vec(), Some(tok[eq + 1..].to_vec())),
            None => (tok.clone(), None),
        };
        match name.as_slice() {
            b"--wrap-explain" => {
                if joined.is_some() {
                    return Err(UsageError(
                        "--wrap-explain takes no value; write --wrap-explain alone".into(),
                    ));
                }
                self.wrap.explain = true;
                self.wrap_tokens.push(i);
                Ok(i + 1)
            }
            b"--wrap-config" | b"--wrap-broker" => {
                let (flag, what) = if name.as_slice() == b"--wrap-config" {
                    ("--wrap-config", "PATH (the platform file)")
                } else {
                    ("--wrap-broker", "SOCKET (the broker's socket)")
                };
                let (value, next) = match joined {
                    Some(v) => (v, i + 1),
                    None => match self.tokens.get(i + 1) {
                        Some(v) => {
                            self.wrap_tokens.push(i + 1);
                            (v.as_bytes().to_vec(), i + 2)
                        }
                        None => {
                            return Err(UsageError(format!(
                                "{flag} needs a value; write {flag} {what}"
                            )));
                        }
                    },
                };
                if value.is_empty() {
                    return Err(UsageError(format!("{flag} needs a non-empty {what}")));
                }
                let path = Some(PathBuf::from(OsString::from_vec(value)));
                if flag == "--wrap-config" {
                    self.wrap.config = path;
                } else {
                    self.wrap.broker = path;
                }
                self.wrap_tokens.push(i);
                Ok(next)
            }
            // Escaped: the name comes from argv and may hold a line break, and the
            // error must stay one line.
            other => Err(UsageError(format!(
                "unknown wrapper option {}; the wrapper knows --wrap-explain, --wrap-config PATH and --wrap-broker SOCKET",
                String::from_utf8_lossy(other).escape_debug()
            ))),
        }
    }

    /// Whether the command line only asks Spark to print its version or usage:
    /// `--version`, `--help` (`-h`) or `--usage-error`, alone or together, with
    /// nothing else but wrapper options. Any other option or argument makes it a
    /// submission (Spark may still only print, but that is Spark's call).
    pub fn is_info_only(&self) -> bool {
        !self.switches.is_empty()
            && self.switches.iter().all(|(_, s)| INFO_SWITCHES.contains(s))
            && self.switches.len() + self.wrap_tokens.len() == self.tokens.len()
    }

    /// The last value of option `name` (Spark keeps the last one).
    pub fn last(&self, name: &str) -> Option<&OptionArg> {
        self.options.iter().rev().find(|o| o.name == name)
    }

    pub fn has_switch(&self, name: &str) -> bool {
        self.switches.iter().any(|(_, s)| *s == name)
    }

    /// `--master`, as Spark would see it (the last one).
    pub fn master(&self) -> Option<String> {
        self.last("--master")
            .map(|o| o.value.to_string_lossy().into_owned())
    }

    /// `--deploy-mode`, as Spark would see it (the last one).
    pub fn deploy_mode(&self) -> Option<String> {
        self.last("--deploy-mode")
            .map(|o| o.value.to_string_lossy().into_owned())
    }

    /// The user's effective `--properties-file` (the last one).
    pub fn properties_file(&self) -> Option<&OptionArg> {
        self.last("--properties-file")
    }

    /// `--load-spark-defaults` (Spark 4.0+) was given.
    pub fn load_spark_defaults(&self) -> bool {
        self.has_switch("--load-spark-defaults")
    }

    /// The `--conf` options in order, split at the first `=`. Values Spark would
    /// reject ("Invalid argument to --conf") are left out; see [`Parsed::invalid_confs`].
    pub fn confs(&self) -> Vec<ConfArg> {
        self.options
            .iter()
            .filter(|o| o.name == "--conf")
            .filter_map(|o| {
                let v = o.value.to_string_lossy();
                let (k, val) = v.split_once('=')?;
                Some(ConfArg {
                    index: o.index,
                    key: k.to_string(),
                    value: val.to_string(),
                })
            })
            .collect()
    }

    /// Indices of `--conf` options without `=`, which Spark rejects.
    pub fn invalid_confs(&self) -> Vec<usize> {
        self.options
            .iter()
            .filter(|o| o.name == "--conf" && !o.value.as_bytes().contains(&b'='))
            .map(|o| o.index)
            .collect()
    }

    /// Where the wrapper's additions go, or `None` when it must add nothing (the
    /// command line ends with an option missing its value: Spark refuses it, and an
    /// addition would silently become that value).
    ///
    /// * Normally: right before the primary resource, so the additions come after
    ///   every user option (later `--conf` wins) and before the application's
    ///   arguments.
    /// * Without a primary resource (`--version`, `--kill ID`, `--status ID`): at the end.
    /// * When Spark parses options to the end (`pyspark-shell-main`, mixed-argument
    ///   classes): at the end, which is still after every user option.
    pub fn insertion_point(&self) -> Option<usize> {
        if self.dangling.is_some() {
            return None;
        }
        if self.mixed {
            return Some(self.tokens.len());
        }
        Some(self.primary.unwrap_or(self.tokens.len()))
    }

    /// The final argument vector (without the program name): the user's tokens in
    /// order, the wrapper's options removed, `additions` at the insertion point, and
    /// the last `--properties-file` value replaced by `properties_path` when given.
    /// Returns the tokens unchanged (apart from wrapper options) when
    /// [`Parsed::insertion_point`] is `None`.
    pub fn rebuild(
        &self,
        properties_path: Option<&OsStr>,
        additions: &[OsString],
    ) -> Vec<OsString> {
        let insert_at = self.insertion_point();
        let replace = properties_path.and_then(|path| {
            self.properties_file().map(|o| {
                let token = match o.form {
                    Form::Separate => path.to_os_string(),
                    Form::Joined => {
                        let mut t = OsString::from("--properties-file=");
                        t.push(path);
                        t
                    }
                };
                (o.value_index, token)
            })
        });
        let mut out = Vec::with_capacity(self.tokens.len() + additions.len());
        for (i, tok) in self.tokens.iter().enumerate() {
            if insert_at == Some(i) {
                out.extend(additions.iter().cloned());
            }
            if self.wrap_tokens.contains(&i) {
                continue;
            }
            match &replace {
                Some((idx, t)) if *idx == i && insert_at.is_some() => out.push(t.clone()),
                _ => out.push(tok.clone()),
            }
        }
        if insert_at == Some(self.tokens.len()) {
            out.extend(additions.iter().cloned());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Parsed {
        Parsed::parse(args.iter().map(OsString::from).collect()).unwrap()
    }

    fn strs(v: &[OsString]) -> Vec<String> {
        v.iter().map(|s| s.to_string_lossy().into_owned()).collect()
    }

    #[test]
    fn both_value_forms_and_alias() {
        let x = p(&[
            "--master=yarn",
            "--deploy-mode",
            "cluster",
            "-c",
            "spark.a=1",
            "--conf=spark.b=2=3",
            "app.jar",
            "x",
        ]);
        assert_eq!(x.master().as_deref(), Some("yarn"));
        assert_eq!(x.deploy_mode().as_deref(), Some("cluster"));
        assert_eq!(x.primary, Some(6));
        let confs = x.confs();
        assert_eq!(confs.len(), 2);
        assert_eq!(
            (confs[1].key.as_str(), confs[1].value.as_str()),
            ("spark.b", "2=3")
        );
    }

    #[test]
    fn parsing_stops_at_primary_resource() {
        let x = p(&[
            "--class",
            "A",
            "app.jar",
            "--conf",
            "spark.x=1",
            "--master",
            "local",
        ]);
        assert_eq!(x.primary, Some(2));
        assert!(x.confs().is_empty());
        assert_eq!(x.master(), None);
        assert_eq!(x.insertion_point(), Some(2));
    }

    #[test]
    fn last_value_wins_for_repeated_options() {
        let x = p(&["--master", "local", "--master", "yarn", "a.py"]);
        assert_eq!(x.master().as_deref(), Some("yarn"));
    }

    #[test]
    fn equals_form_needs_a_value_and_no_newline() {
        // `--conf=` does not match Spark's pattern: it is an unknown option.
        let x = p(&["--conf=", "app.jar"]);
        assert_eq!(x.unknown, vec![0]);
        assert_eq!(x.primary, Some(1));
        let x = p(&["--name=a\nb", "app.jar"]);
        assert_eq!(x.unknown, vec![0]);
    }

    #[test]
    fn switch_with_equals_is_still_the_switch() {
        let x = p(&["--load-spark-defaults=yes", "app.jar"]);
        assert!(x.unknown.is_empty());
        assert!(x.load_spark_defaults());
        assert_eq!(x.primary, Some(1));
    }

    #[test]
    fn special_commands_have_no_primary_and_insert_at_end() {
        for args in [
            &["--version"][..],
            &["--kill", "driver-1", "--master", "spark://h:7077"][..],
            &["--status", "driver-1"][..],
        ] {
            let x = p(args);
            assert_eq!(x.primary, None);
            assert_eq!(x.insertion_point(), Some(args.len()));
        }
    }

    #[test]
    fn dangling_option_means_no_insertion() {
        let x = p(&["--master", "yarn", "--kill"]);
        assert_eq!(x.dangling, Some(2));
        assert_eq!(x.insertion_point(), None);
        let out = x.rebuild(
            Some(OsStr::new("/dev/fd/3")),
            &["--properties-file".into(), "/dev/fd/3".into()],
        );
        assert_eq!(strs(&out), vec!["--master", "yarn", "--kill"]);
    }

    #[test]
    fn pyspark_shell_main_is_mixed() {
        let x = p(&[
            "pyspark-shell-main",
            "--name",
            "PySparkShell",
            "foo",
            "--master",
            "local[2]",
        ]);
        assert!(x.mixed);
        assert_eq!(x.master().as_deref(), Some("local[2]"));
        assert_eq!(x.insertion_point(), Some(6));
    }

    #[test]
    fn spark_shell_class_is_mixed() {
        let x = p(&[
            "--class",
            "org.apache.spark.repl.Main",
            "--name",
            "Spark shell",
            "-i",
            "init.scala",
            "--conf",
            "spark.a=1",
        ]);
        assert!(x.mixed);
        assert_eq!(x.confs().len(), 1);
        assert_eq!(x.insertion_point(), Some(8));
    }

    #[test]
    fn run_example_takes_the_class_as_resource() {
        let x = p(&["run-example", "--master", "local", "SparkPi", "10"]);
        assert_eq!(x.leading, Some(0));
        assert_eq!(x.primary, Some(3));
    }

    #[test]
    fn special_resources_are_plain_tokens() {
        for r in ["pyspark-shell", "spark-shell", "spark-internal"] {
            let x = p(&["--master", "local", r, "--conf", "spark.a=1"]);
            assert_eq!(x.primary, Some(2));
            assert!(x.confs().is_empty());
        }
    }

    #[test]
    fn unknown_options_are_kept_and_parsing_continues() {
        let x = p(&["--frobnicate", "--master", "yarn", "app.py", "--x"]);
        assert_eq!(x.unknown, vec![0]);
        assert_eq!(x.master().as_deref(), Some("yarn"));
        assert_eq!(x.primary, Some(3));
    }

    #[test]
    fn rebuild_inserts_before_primary_and_replaces_properties_value_in_place() {
        let x = p(&[
            "--properties-file",
            "user.conf",
            "--conf",
            "spark.a=1",
            "app.py",
            "--properties-file",
            "not-ours",
        ]);
        let out = x.rebuild(
            Some(OsStr::new("/dev/fd/3")),
            &["--conf".into(), "spark.z=9".into()],
        );
        assert_eq!(
            strs(&out),
            vec![
                "--properties-file",
                "/dev/fd/3",
                "--conf",
                "spark.a=1",
                "--conf",
                "spark.z=9",
                "app.py",
                "--properties-file",
                "not-ours"
            ]
        );
    }

    #[test]
    fn rebuild_replaces_only_the_last_properties_file_and_keeps_joined_form() {
        let x = p(&[
            "--properties-file=a.conf",
            "--properties-file=b.conf",
            "app.jar",
        ]);
        let out = x.rebuild(Some(OsStr::new("/dev/fd/4")), &[]);
        assert_eq!(
            strs(&out),
            vec![
                "--properties-file=a.conf",
                "--properties-file=/dev/fd/4",
                "app.jar"
            ]
        );
    }

    #[test]
    fn wrapper_options_are_stripped_and_only_before_the_primary_resource() {
        let x = p(&[
            "--wrap-explain",
            "--master",
            "local",
            "--wrap-config",
            "/p.json",
            "app.py",
            "--wrap-explain",
        ]);
        assert!(x.wrap.explain);
        assert_eq!(x.wrap.config, Some(PathBuf::from("/p.json")));
        assert_eq!(x.primary, Some(5));
        let out = x.rebuild(None, &[]);
        assert_eq!(
            strs(&out),
            vec!["--master", "local", "app.py", "--wrap-explain"]
        );
    }

    #[test]
    fn unknown_wrapper_option_is_a_usage_error() {
        let e = Parsed::parse(vec!["--wrap-nope".into()]).unwrap_err();
        assert!(e.0.contains("--wrap-explain"), "{e}");
        let e = Parsed::parse(vec!["--wrap-config".into()]).unwrap_err();
        assert!(e.0.contains("PATH"), "{e}");
    }

    #[test]
    fn unknown_wrapper_option_with_a_line_break_is_reported_on_one_line() {
        let e = Parsed::parse(vec!["--wrap-\nx=1".into()]).unwrap_err();
        assert!(!e.0.contains('\n'), "{e}");
        assert!(e.0.contains("--wrap-\\nx"), "{e}");
    }

    #[test]
    fn version_help_and_usage_error_alone_are_info_only() {
        for line in [
            &["--version"][..],
            &["--help"],
            &["-h"],
            &["--usage-error"],
            &["--version", "--help"],
            &["--wrap-config", "/p.json", "--version"],
            &["--version", "--wrap-explain"],
        ] {
            assert!(p(line).is_info_only(), "{line:?}");
        }
        for line in [
            &[][..],
            &["--verbose"],
            &["--version", "--verbose"],
            &["--version", "--master", "yarn"],
            &["--version", "app.py"],
            &["--help", "--bogus"],
            &["--kill", "app-1"],
            &["pyspark-shell-main", "--version"],
            &["app.py", "--version"],
            &["--version", "--master"],
        ] {
            assert!(!p(line).is_info_only(), "{line:?}");
        }
        let out = p(&["--wrap-config", "/p.json", "--version"]).rebuild(None, &[]);
        assert_eq!(strs(&out), vec!["--version"]);
    }

    #[test]
    fn conf_without_equals_is_reported_not_modelled() {
        let x = p(&["--conf", "spark.a", "app.jar"]);
        assert!(x.confs().is_empty());
        assert_eq!(x.invalid_confs(), vec![0]);
    }

    #[test]
    fn non_utf8_tokens_survive_untouched() {
        use std::os::unix::ffi::OsStringExt;
        let weird = OsString::from_vec(vec![b'a', 0xff, b'b']);
        let x = Parsed::parse(vec![
            "--name".into(),
            weird.clone(),
            "app.jar".into(),
            weird.clone(),
        ])
        .unwrap();
        let out = x.rebuild(None, &["--x".into()]);
        assert_eq!(out[1], weird);
        assert_eq!(out[4], weird);
    }
}
