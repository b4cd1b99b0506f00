//! Spark configuration as `spark-submit` would see it: `--conf` options, the
//! `--properties-file`, and `spark-defaults.conf`, merged with Spark's precedence
//! (`--conf` > properties file > defaults; within `--conf` the last one wins).
//!
//! ## When Spark reads `spark-defaults.conf`
//!
//! Spark 4.x reads the defaults file only when no `--properties-file` is given, or
//! when `--load-spark-defaults` is also given (before 4.0, never with a properties
//! file). The wrapper always hands Spark a properties file of its own, which changes
//! what Spark would read, so it reproduces Spark's own behaviour *without* the wrapper:
//!
//! | user gave | Spark without the wrapper reads | the wrapper's merged file holds | Spark then also reads |
//! |---|---|---|---|
//! | no `--properties-file` | defaults | the defaults (copied) + injected keys | nothing else |
//! | `--properties-file X` | X | X + injected keys | nothing else |
//! | `--properties-file X --load-spark-defaults` | X, then defaults | X + injected keys | defaults (flag kept) |
//! | `--load-spark-defaults` alone | defaults | the defaults + injected keys | defaults again (same values) |
//!
//! In the last two rows Spark fills keys missing from the merged file from the
//! defaults file itself, so a key the wrapper must neutralise cannot simply be left
//! out there: [`Effective::defaults_reread`] tells the injection step to shadow it.
//!
//! Files are read as Spark reads them: Java properties syntax, UTF-8. This module
//! never writes anything and never logs a value (values may be secrets).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use java_properties::PropertiesIter;

/// Where an effective value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A `--conf` option (token index).
    Cli(usize),
    /// The user's `--properties-file`.
    PropertiesFile,
    /// `spark-defaults.conf`.
    Defaults,
}

impl Source {
    pub fn describe(self) -> &'static str {
        match self {
            Source::Cli(_) => "--conf",
            Source::PropertiesFile => "--properties-file",
            Source::Defaults => "spark-defaults.conf",
        }
    }
}

/// One effective key: its value and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub value: String,
    pub source: Source,
}

/// A properties file that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {what} {path}: {cause}; {fix}")]
pub struct ConfError {
    pub what: &'static str,
    pub path: String,
    pub cause: String,
    pub fix: &'static str,
}

/// Reads a Java properties file as Spark does (UTF-8).
pub fn read_properties(
    path: &Path,
    what: &'static str,
) -> Result<BTreeMap<String, String>, ConfError> {
    let err = |cause: String| ConfError {
        what,
        // A path may hold a line break; the error stays one line.
        path: path.display().to_string().escape_debug().to_string(),
        cause,
        fix: "fix the path or the file's syntax",
    };
    let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
    if !meta.is_file() {
        return Err(err("not a regular file".into()));
    }
    // Decoded here, not by the java-properties reader: its decoder panics on a file
    // that ends inside a UTF-8 sequence. Malformed bytes become U+FFFD, as in Java's
    // UTF-8 reader that Spark uses.
    let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let text = String::from_utf8_lossy(&bytes);
    let mut map = BTreeMap::new();
    PropertiesIter::new_with_encoding(text.as_bytes(), encoding_rs::UTF_8)
        .read_into(|k, v| {
            // java.util.Properties keeps the last of repeated keys.
            map.insert(k, v);
        })
        .map_err(|e| err(e.to_string()))?;
    Ok(map)
}

/// The `spark-defaults.conf` Spark would use: `$SPARK_CONF_DIR/spark-defaults.conf`,
/// else `$SPARK_HOME/conf/spark-defaults.conf`, else (when `SPARK_HOME` is unset and
/// the Spark scripts will derive it) `<spark_home_guess>/conf/spark-defaults.conf`.
/// Only an existing regular file counts, as in Spark.
pub fn defaults_path(
    env: &dyn Fn(&str) -> Option<String>,
    spark_home_guess: Option<&Path>,
) -> Option<PathBuf> {
    let non_empty = |k: &str| env(k).filter(|v| !v.is_empty());
    let dir = non_empty("SPARK_CONF_DIR")
        .map(PathBuf::from)
        .or_else(|| non_empty("SPARK_HOME").map(|h| Path::new(&h).join("conf")))
        .or_else(|| spark_home_guess.map(|h| h.join("conf")))?;
    let path = dir.join("spark-defaults.conf");
    path.is_file().then_some(path)
}

/// What Spark will see, before the wrapper changes anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Effective {
    /// Every effective key, with the source that wins.
    pub entries: BTreeMap<String, Entry>,
    /// The user's properties file content (when given).
    pub user_file: Option<BTreeMap<String, String>>,
    /// The defaults file content, when Spark would read it without the wrapper.
    pub defaults: Option<BTreeMap<String, String>>,
    /// Spark will itself read the defaults file after the merged file
    /// (`--load-spark-defaults` given): keys left out of the merged file come back.
    pub defaults_reread: bool,
}

impl Effective {
    /// Merges with Spark's precedence. `cli` is the `--conf` list in order (later wins);
    /// `defaults` is the defaults file content when Spark would read it (see the module
    /// table), `load_flag` whether `--load-spark-defaults` was given.
    pub fn merge(
        cli: &[(usize, String, String)],
        user_file: Option<BTreeMap<String, String>>,
        defaults: Option<BTreeMap<String, String>>,
        load_flag: bool,
    ) -> Effective {
        let mut entries = BTreeMap::new();
        for (index, k, v) in cli {
            entries.insert(
                k.clone(),
                Entry {
                    value: v.clone(),
                    source: Source::Cli(*index),
                },
            );
        }
        for (src, map) in [
            (Source::PropertiesFile, user_file.as_ref()),
            (Source::Defaults, defaults.as_ref()),
        ] {
            for (k, v) in map.into_iter().flatten() {
                entries.entry(k.clone()).or_insert_with(|| Entry {
                    value: v.clone(),
                    source: src,
                });
            }
        }
        Effective {
            entries,
            user_file,
            defaults_reread: load_flag && defaults.is_some(),
            defaults,
        }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.get(key).map(|e| e.value.as_str())
    }

    /// The content the merged file starts from, before injection: the user's file
    /// when given, else the defaults (which Spark would have read, and no longer will
    /// once the wrapper passes a properties file).
    pub fn file_base(&self) -> BTreeMap<String, String> {
        match (&self.user_file, &self.defaults) {
            (Some(u), _) => u.clone(),
            (None, Some(d)) => d.clone(),
            (None, None) => BTreeMap::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::fs::File;
    use std::io::Write;

    #[test]
    fn unreadable_path_with_a_line_break_is_one_line() {
        let e =
            read_properties(Path::new("/nonexistent/a\nb.conf"), "properties file").unwrap_err();
        let text = e.to_string();
        assert!(!text.contains('\n'), "{text}");
        assert!(text.contains("a\\nb.conf"), "{text}");
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn precedence_cli_then_file_then_defaults_and_last_cli_wins() {
        let cli = vec![
            (0, "spark.a".to_string(), "cli1".to_string()),
            (2, "spark.a".to_string(), "cli2".to_string()),
        ];
        let e = Effective::merge(
            &cli,
            Some(map(&[("spark.a", "file"), ("spark.b", "file")])),
            Some(map(&[("spark.b", "def"), ("spark.c", "def")])),
            true,
        );
        assert_eq!(e.get("spark.a"), Some("cli2"));
        assert_eq!(e.entries["spark.a"].source, Source::Cli(2));
        assert_eq!(e.get("spark.b"), Some("file"));
        assert_eq!(e.get("spark.c"), Some("def"));
        assert!(e.defaults_reread);
        assert_eq!(
            e.file_base(),
            map(&[("spark.a", "file"), ("spark.b", "file")])
        );
    }

    #[test]
    fn without_user_file_the_base_is_the_defaults() {
        let e = Effective::merge(&[], None, Some(map(&[("spark.c", "def")])), false);
        assert_eq!(e.file_base(), map(&[("spark.c", "def")]));
        assert!(!e.defaults_reread);
    }

    #[test]
    fn reads_java_properties_syntax_as_utf8() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.conf");
        let mut f = File::create(&path).unwrap();
        f.write_all(
            "# comment\nspark.a = 1\nspark.b:2\nspark.c 3\nspark.d=multi\\\n   line\nspark.e=caf\u{e9}\nspark.f=\\u0041\nspark.a=last\n"
                .as_bytes(),
        )
        .unwrap();
        let m = read_properties(&path, "--properties-file").unwrap();
        assert_eq!(m["spark.a"], "last");
        assert_eq!(m["spark.b"], "2");
        assert_eq!(m["spark.c"], "3");
        assert_eq!(m["spark.d"], "multiline");
        assert_eq!(m["spark.e"], "caf\u{e9}");
        assert_eq!(m["spark.f"], "A");
    }

    #[test]
    fn a_file_ending_inside_a_utf8_sequence_is_read_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.conf");
        std::fs::write(&path, b"spark.a=1\nspark.b=caf\xc3").unwrap();
        let m = read_properties(&path, "--properties-file").unwrap();
        assert_eq!(m["spark.a"], "1");
        assert_eq!(m["spark.b"], "caf\u{fffd}");
        std::fs::write(&path, b"\xd3").unwrap();
        let m = read_properties(&path, "--properties-file").unwrap();
        assert_eq!(m.get("\u{fffd}").map(String::as_str), Some(""));
    }

    #[test]
    fn missing_file_names_path_and_fix() {
        let e = read_properties(Path::new("/nonexistent/x.conf"), "--properties-file").unwrap_err();
        let s = e.to_string();
        assert!(
            s.contains("/nonexistent/x.conf") && s.contains("fix"),
            "{s}"
        );
    }

    #[test]
    fn defaults_path_prefers_conf_dir_then_home_then_guess() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        std::fs::create_dir(b.path().join("conf")).unwrap();
        std::fs::write(a.path().join("spark-defaults.conf"), "x=1").unwrap();
        std::fs::write(b.path().join("conf/spark-defaults.conf"), "x=1").unwrap();
        let env: HashMap<&str, String> = [
            ("SPARK_CONF_DIR", a.path().display().to_string()),
            ("SPARK_HOME", b.path().display().to_string()),
        ]
        .into();
        let look = |k: &str| env.get(k).cloned();
        assert_eq!(
            defaults_path(&look, None),
            Some(a.path().join("spark-defaults.conf"))
        );
        let look = |k: &str| {
            if k == "SPARK_HOME" {
                env.get(k).cloned()
            } else {
                None
            }
        };
        assert_eq!(
            defaults_path(&look, None),
            Some(b.path().join("conf/spark-defaults.conf"))
        );
        let none = |_: &str| None;
        assert_eq!(
            defaults_path(&none, Some(b.path())),
            Some(b.path().join("conf/spark-defaults.conf"))
        );
        // A conf dir without the file: Spark reads no defaults (no fall-through).
        let c = tempfile::tempdir().unwrap();
        let look = |k: &str| match k {
            "SPARK_CONF_DIR" => Some(c.path().display().to_string()),
            "SPARK_HOME" => env.get(k).cloned(),
            _ => None,
        };
        assert_eq!(defaults_path(&look, None), None);
    }
}
