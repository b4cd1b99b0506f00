//! Usage errors as one line: `PROBLEM; fix: ...` (the product's rule for bad input,
//! ARCHITECTURE.md, "Invariants"), built from clap's structured error context rather
//! than from the text clap renders.
//!
//! The problem is what clap would say in its first paragraph (the same words, its list
//! items joined by spaces); the fix is clap's suggestions, then the usage (with the
//! subcommands to choose from when one is missing), then a pointer to `--help`. This
//! module never prints.

use clap::error::{ContextKind, ContextValue, ErrorKind};

use crate::error::Error;

/// The usage error for a command line clap rejected.
pub fn usage_error(e: &clap::Error) -> Error {
    Error::Usage(message(e))
}

/// `PROBLEM; fix: ...` for `e`.
fn message(e: &clap::Error) -> String {
    let mut fix = Vec::new();
    // clap prints every suggestion as a `tip:` line of one paragraph.
    let tips = tips(e);
    if !tips.is_empty() {
        fix.push(tips.join(" tip: "));
    }
    if let Some(usage) = text(e, ContextKind::Usage) {
        let usage = usage.strip_prefix("Usage:").unwrap_or(&usage);
        let mut line = format!("the usage is `{}`", words(usage));
        let commands: Vec<&str> = strings(e, ContextKind::ValidSubcommand)
            .into_iter()
            .filter(|c| *c != "help")
            .collect();
        if e.kind() == ErrorKind::MissingSubcommand && !commands.is_empty() {
            line.push_str(&format!(" with COMMAND one of {}", commands.join(", ")));
        }
        fix.push(line);
    }
    fix.push("--help explains every option".into());
    format!("{}; fix: {}", problem(e), fix.join("; "))
}

/// The problem in clap's words.
fn problem(e: &clap::Error) -> String {
    let arg = text(e, ContextKind::InvalidArg);
    let value = text(e, ContextKind::InvalidValue);
    let described = match e.kind() {
        ErrorKind::MissingSubcommand | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            Some("no subcommand given".to_string())
        }
        ErrorKind::InvalidSubcommand => text(e, ContextKind::InvalidSubcommand)
            .map(|s| format!("unrecognized subcommand '{s}'")),
        ErrorKind::UnknownArgument => arg.map(|a| format!("unexpected argument '{a}' found")),
        ErrorKind::InvalidValue => arg.zip(value).map(|(a, v)| {
            let mut p = if v.is_empty() {
                format!("a value is required for '{a}' but none was supplied")
            } else {
                format!("invalid value '{v}' for '{a}'")
            };
            let valid = strings(e, ContextKind::ValidValue);
            if !valid.is_empty() {
                let valid: Vec<String> = valid.into_iter().map(escape).collect();
                p.push_str(&format!(" [possible values: {}]", valid.join(", ")));
            }
            p
        }),
        ErrorKind::ValueValidation => arg.zip(value).map(|(a, v)| {
            let mut p = format!("invalid value '{v}' for '{a}'");
            if let Some(source) = std::error::Error::source(e) {
                p.push_str(&format!(": {source}"));
            }
            p
        }),
        ErrorKind::TooManyValues => arg
            .zip(value)
            .map(|(a, v)| format!("unexpected value '{v}' for '{a}' found; no more were expected")),
        ErrorKind::MissingRequiredArgument => match e.get(ContextKind::InvalidArg) {
            Some(ContextValue::Strings(missing)) => Some(
                std::iter::once("the following required arguments were not provided:")
                    .chain(missing.iter().map(String::as_str))
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            _ => None,
        },
        ErrorKind::ArgumentConflict => Some(conflict(e)),
        ErrorKind::NoEquals => {
            arg.map(|a| format!("equal sign is needed when assigning values to '{a}'"))
        }
        _ => None,
    };
    let problem = described
        .or_else(|| e.kind().as_str().map(str::to_string))
        .unwrap_or_else(|| "invalid arguments".to_string());
    // A parser's message may span lines; the error is one line.
    words(&problem)
}

/// `the argument 'A' cannot be used multiple times` or `... cannot be used with 'B'`.
fn conflict(e: &clap::Error) -> String {
    let mut prior = e.get(ContextKind::PriorArg);
    let mut p = if let Some(arg) = text(e, ContextKind::InvalidArg) {
        if prior == Some(&ContextValue::String(arg.clone())) {
            prior = None;
            format!("the argument '{arg}' cannot be used multiple times")
        } else {
            format!("the argument '{arg}' cannot be used with")
        }
    } else if let Some(sub) = text(e, ContextKind::InvalidSubcommand) {
        format!("the subcommand '{sub}' cannot be used with")
    } else {
        e.kind().as_str().unwrap_or_default().to_string()
    };
    match prior {
        Some(ContextValue::Strings(others)) => {
            p.push(':');
            for o in others {
                p.push_str(&format!(" {o}"));
            }
        }
        Some(ContextValue::String(other)) => p.push_str(&format!(" '{other}'")),
        Some(_) => p.push_str(" one or more of the other specified arguments"),
        None => {}
    }
    p
}

/// clap's suggestions, in the order it prints them: a similar subcommand, argument or
/// value, then its other tips.
fn tips(e: &clap::Error) -> Vec<String> {
    let mut tips = Vec::new();
    for (kind, what) in [
        (ContextKind::SuggestedSubcommand, "subcommand"),
        (ContextKind::SuggestedArg, "argument"),
        (ContextKind::SuggestedValue, "value"),
    ] {
        let similar = strings(e, kind);
        match similar.as_slice() {
            [] => {}
            [one] => tips.push(format!("a similar {what} exists: '{one}'")),
            many => tips.push(format!(
                "some similar {what}s exist: {}",
                many.iter()
                    .map(|s| format!("'{s}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
    if let Some(ContextValue::StyledStrs(more)) = e.get(ContextKind::Suggested) {
        tips.extend(more.iter().map(|s| words(&s.to_string())));
    }
    tips
}

/// A context value as plain text (styles dropped).
fn text(e: &clap::Error, kind: ContextKind) -> Option<String> {
    match e.get(kind)? {
        ContextValue::String(s) => Some(s.clone()),
        ContextValue::StyledStr(s) => Some(s.to_string()),
        _ => None,
    }
}

/// A context value that is one or several strings.
fn strings(e: &clap::Error, kind: ContextKind) -> Vec<&str> {
    match e.get(kind) {
        Some(ContextValue::String(s)) => vec![s.as_str()],
        Some(ContextValue::Strings(v)) => v.iter().map(String::as_str).collect(),
        _ => Vec::new(),
    }
}

/// Text that may span lines (a usage with several forms) as one line.
fn words(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A possible value as clap lists it: quoted when empty or holding white space.
fn escape(value: &str) -> String {
    if value.is_empty() || value.contains(char::is_whitespace) {
        format!("{value:?}")
    } else {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::Cli;
    use clap::{CommandFactory, Parser};

    fn line(args: &[&str]) -> String {
        let e = Cli::try_parse_from(args).unwrap_err();
        assert!(e.use_stderr());
        format!("provisioner: {}", usage_error(&e))
    }

    fn kind(args: &[&str]) -> ErrorKind {
        Cli::try_parse_from(args).unwrap_err().kind()
    }

    #[test]
    fn usage_errors_are_one_line_with_problem_and_fix() {
        for args in [
            &["provisioner"][..],
            &["provisioner", "bogus"],
            &["provisioner", "kernel"],
            &["provisioner", "explain", "--nope"],
            &["provisioner", "explain", "--flow", "batch"],
            &["provisioner", "kernelspec"],
            &["provisioner", "kernelspec", "wrap"],
            &["provisioner", "kernel", "--user"],
        ] {
            let l = line(args);
            assert!(!l.contains('\n'), "{args:?}: {l}");
            assert!(
                l.starts_with("provisioner: ") && l.contains("; fix: "),
                "{args:?}: {l}"
            );
        }
        assert_eq!(
            line(&["provisioner"]),
            "provisioner: no subcommand given; fix: the usage is `provisioner <COMMAND>` with COMMAND one of explain, kernel, kernelspec, serve, policies, audit; --help explains every option"
        );
        let l = line(&["provisioner", "kernel"]);
        assert!(
            l.contains("<ARGV>") && l.contains("provisioner kernel -- <ARGV>"),
            "{l}"
        );
        let l = line(&["provisioner", "explain", "--flow", "batch"]);
        assert!(
            l.contains("unknown flow \"batch\"; use notebook, notebook-run or job"),
            "{l}"
        );
    }

    /// A missing subcommand is a usage error with the subcommands to choose from, not
    /// the whole help on stderr: no command asks clap for help on empty arguments.
    #[test]
    fn no_command_shows_help_for_missing_arguments() {
        fn walk(c: &clap::Command) {
            assert!(!c.is_arg_required_else_help_set(), "{}", c.get_name());
            c.get_subcommands().for_each(walk);
        }
        walk(&Cli::command());
    }

    #[test]
    fn missing_subcommand() {
        assert_eq!(
            kind(&["provisioner", "kernelspec"]),
            ErrorKind::MissingSubcommand
        );
        assert_eq!(
            line(&["provisioner", "kernelspec"]),
            "provisioner: no subcommand given; fix: the usage is `provisioner kernelspec <COMMAND>` with COMMAND one of install, wrap, list; --help explains every option"
        );
        assert_eq!(
            line(&["provisioner", "policies"]),
            "provisioner: no subcommand given; fix: the usage is `provisioner policies <COMMAND>` with COMMAND one of sync; --help explains every option"
        );
    }

    #[test]
    fn invalid_subcommand_with_and_without_suggestions() {
        assert_eq!(
            kind(&["provisioner", "launch"]),
            ErrorKind::InvalidSubcommand
        );
        assert_eq!(
            line(&["provisioner", "launch"]),
            "provisioner: unrecognized subcommand 'launch'; fix: the usage is `provisioner <COMMAND>`; --help explains every option"
        );
        assert_eq!(
            line(&["provisioner", "kernl"]),
            "provisioner: unrecognized subcommand 'kernl'; fix: some similar subcommands exist: 'kernelspec', 'kernel'; the usage is `provisioner <COMMAND>`; --help explains every option"
        );
        assert_eq!(
            line(&["provisioner", "policies", "snc"]),
            "provisioner: unrecognized subcommand 'snc'; fix: a similar subcommand exists: 'sync'; the usage is `provisioner policies <COMMAND>`; --help explains every option"
        );
    }

    #[test]
    fn unknown_argument_with_suggested_arg_and_tips() {
        assert_eq!(
            kind(&["provisioner", "explain", "--verbose"]),
            ErrorKind::UnknownArgument
        );
        assert_eq!(
            line(&["provisioner", "explain", "--verbose"]),
            "provisioner: unexpected argument '--verbose' found; fix: the usage is `provisioner explain [OPTIONS]`; --help explains every option"
        );
        assert_eq!(
            line(&["provisioner", "explain", "--jsn"]),
            "provisioner: unexpected argument '--jsn' found; fix: a similar argument exists: '--json'; the usage is `provisioner explain --json`; --help explains every option"
        );
        assert_eq!(
            line(&["provisioner", "kernel", "--nope", "--", "x"]),
            "provisioner: unexpected argument '--nope' found; fix: to pass '--nope' as a value, use '-- --nope'; the usage is `provisioner kernel [OPTIONS] -- <ARGV>...`; --help explains every option"
        );
        assert_eq!(
            line(&["provisioner", "kernel", "--usr", "--", "x"]),
            "provisioner: unexpected argument '--usr' found; fix: a similar argument exists: '--user' tip: to pass '--usr' as a value, use '-- --usr'; the usage is `provisioner kernel --user <ID> -- <ARGV>...`; --help explains every option"
        );
    }

    #[test]
    fn invalid_value_missing_or_not_possible() {
        assert_eq!(
            kind(&["provisioner", "explain", "--user"]),
            ErrorKind::InvalidValue
        );
        assert_eq!(
            line(&["provisioner", "explain", "--user"]),
            "provisioner: a value is required for '--user <ID>' but none was supplied; fix: --help explains every option"
        );
        assert_eq!(
            line(&["provisioner", "kernelspec", "install", "--kind", "bogus"]),
            "provisioner: invalid value 'bogus' for '--kind <KIND>' [possible values: python, pyspark]; fix: --help explains every option"
        );
        assert_eq!(
            line(&["provisioner", "kernelspec", "install", "--kind", "pythn"]),
            "provisioner: invalid value 'pythn' for '--kind <KIND>' [possible values: python, pyspark]; fix: a similar value exists: 'python'; --help explains every option"
        );
        assert_eq!(
            line(&["provisioner", "kernelspec", "install", "--kind"]),
            "provisioner: a value is required for '--kind <KIND>' but none was supplied [possible values: python, pyspark]; fix: --help explains every option"
        );
    }

    #[test]
    fn value_validation_keeps_the_parsers_message() {
        assert_eq!(
            kind(&["provisioner", "explain", "--flow", "batch"]),
            ErrorKind::ValueValidation
        );
        assert_eq!(
            line(&["provisioner", "explain", "--flow", "batch"]),
            "provisioner: invalid value 'batch' for '--flow <FLOW>': unknown flow \"batch\"; use notebook, notebook-run or job; fix: --help explains every option"
        );
    }

    #[test]
    fn too_many_values() {
        assert_eq!(
            kind(&["provisioner", "explain", "--json=1"]),
            ErrorKind::TooManyValues
        );
        assert_eq!(
            line(&["provisioner", "explain", "--json=1"]),
            "provisioner: unexpected value '1' for '--json' found; no more were expected; fix: the usage is `provisioner explain --json`; --help explains every option"
        );
    }

    #[test]
    fn missing_required_arguments_are_listed() {
        assert_eq!(
            kind(&["provisioner", "serve"]),
            ErrorKind::MissingRequiredArgument
        );
        assert_eq!(
            line(&["provisioner", "serve"]),
            "provisioner: the following required arguments were not provided: --config <PATH> --socket <PATH>; fix: the usage is `provisioner serve --config <PATH> --socket <PATH>`; --help explains every option"
        );
        assert_eq!(
            line(&["provisioner", "kernel"]),
            "provisioner: the following required arguments were not provided: <ARGV>...; fix: the usage is `provisioner kernel -- <ARGV>...`; --help explains every option"
        );
    }

    #[test]
    fn argument_conflicts() {
        assert_eq!(
            kind(&["provisioner", "explain", "--json", "--json"]),
            ErrorKind::ArgumentConflict
        );
        assert_eq!(
            line(&["provisioner", "explain", "--json", "--json"]),
            "provisioner: the argument '--json' cannot be used multiple times; fix: the usage is `provisioner explain [OPTIONS]`; --help explains every option"
        );
        assert_eq!(
            line(&[
                "provisioner",
                "kernelspec",
                "install",
                "--user",
                "--prefix",
                "/x"
            ]),
            "provisioner: the argument '--user' cannot be used with '--prefix <PATH>'; fix: the usage is `provisioner kernelspec install --user`; --help explains every option"
        );
    }

    #[test]
    fn invalid_utf8() {
        use std::ffi::OsString;
        use std::os::unix::ffi::OsStringExt;
        let args = [
            OsString::from("provisioner"),
            OsString::from("explain"),
            OsString::from("--user"),
            OsString::from_vec(vec![0xff]),
        ];
        let e = Cli::try_parse_from(args).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidUtf8);
        assert_eq!(
            format!("provisioner: {}", usage_error(&e)),
            "provisioner: invalid UTF-8 was detected in one or more arguments; fix: the usage is `provisioner explain [OPTIONS]`; --help explains every option"
        );
    }
}
