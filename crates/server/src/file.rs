//! The configuration file: `taskyard serve --config taskyard.toml`.
//!
//! A flat TOML table whose keys are the flags' long names (`max_connections` or
//! `max-connections` for `--max-connections`): every setting has one name across the three
//! sources. Precedence, from weakest: the default, the file, the environment variable, the
//! flag. The file is applied by turning each of its settings into the flag it names, unless
//! that flag is on the command line or its environment variable is set, so clap checks every
//! value the same way whichever source it came from, and a setting added to the command line
//! is in the file with nothing written here. An unknown key is an error naming it, not
//! something silently ignored.

use std::ffi::OsString;
use std::path::PathBuf;

/// What can be wrong with a configuration file.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not valid TOML: {message}")]
    Toml { path: PathBuf, message: String },
    #[error("{path}: unknown setting `{key}`{hint}")]
    Unknown {
        path: PathBuf,
        key: String,
        hint: String,
    },
    #[error("{path}: `{key}` must be a string, number, boolean or list of strings")]
    Shape { path: PathBuf, key: String },
}

/// The flag and environment variable that name the file.
pub const FLAG: &str = "config";
pub const ENV: &str = "TASKYARD_CONFIG";

/// The command line with the file's settings added as flags, for `command` (the whole CLI):
/// the file is the one `--config` or [`ENV`] names, and its settings are the flags of the
/// subcommand on the command line (`serve`, `config check`) and the global ones. The flags
/// added are returned too, for telling where each setting came from.
pub fn apply(
    command: &clap::Command,
    args: Vec<OsString>,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Result<(Vec<OsString>, Vec<String>), FileError> {
    // The subcommand named on the command line, down to the one that takes `--config`.
    let mut subcommand = command;
    let mut sub = None;
    for a in args.iter().skip(1).filter_map(|a| a.to_str()) {
        if let Some(s) = subcommand.find_subcommand(a) {
            subcommand = s;
            sub = Some(a.to_string());
        }
    }
    let Some(sub) = sub.filter(|_| {
        subcommand
            .get_arguments()
            .any(|a| a.get_long() == Some(FLAG))
    }) else {
        return Ok((args, Vec::new()));
    };
    let sub = sub.as_str();
    let Some(path) = config_path(&args, sub).or_else(|| env(ENV).map(PathBuf::from)) else {
        return Ok((args, Vec::new()));
    };
    let text = std::fs::read_to_string(&path).map_err(|source| FileError::Read {
        path: path.clone(),
        source,
    })?;
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| FileError::Toml {
        path: path.clone(),
        message: e.message().to_string(),
    })?;
    // Flags of the subcommand and the global ones (log format) are both settable.
    let known: Vec<&clap::Arg> = subcommand
        .get_arguments()
        .chain(command.get_arguments())
        .filter(|a| a.get_long().is_some_and(|l| l != FLAG))
        .collect();
    let mut added = Vec::new();
    for (key, value) in &table {
        let long = key.replace('_', "-");
        let Some(arg) = known.iter().find(|a| a.get_long() == Some(long.as_str())) else {
            return Err(FileError::Unknown {
                path: path.clone(),
                key: key.clone(),
                hint: hint(&long, &known),
            });
        };
        let on_command_line = args.iter().any(|a| {
            a.to_str().is_some_and(|a| {
                a.strip_prefix("--")
                    .and_then(|a| a.strip_prefix(long.as_str()))
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('='))
            })
        });
        let in_environment = arg
            .get_env()
            .and_then(|e| e.to_str())
            .is_some_and(|e| env(e).is_some());
        if on_command_line || in_environment {
            continue;
        }
        let text = value_text(value).ok_or_else(|| FileError::Shape {
            path: path.clone(),
            key: key.clone(),
        })?;
        added.push(format!("--{long}={text}"));
    }
    // Right after the subcommand's name, where its flags (and the global ones) belong.
    let at = args
        .iter()
        .position(|a| a.to_str() == Some(sub))
        .map_or(args.len(), |i| i + 1);
    let mut out = args;
    out.splice(at..at, added.iter().map(OsString::from));
    Ok((out, added))
}

/// `--config <path>` or `--config=<path>` after the subcommand.
fn config_path(args: &[OsString], sub: &str) -> Option<PathBuf> {
    let start = args.iter().position(|a| a.to_str() == Some(sub))?;
    let mut it = args[start + 1..].iter();
    while let Some(a) = it.next() {
        let a = a.to_str()?;
        if a == "--" {
            break;
        }
        if a == "--config" {
            return it.next().map(PathBuf::from);
        }
        if let Some(p) = a.strip_prefix("--config=") {
            return Some(PathBuf::from(p));
        }
    }
    None
}

/// A TOML value as the flag's text: lists become the comma-separated lists the flags take.
fn value_text(v: &toml::Value) -> Option<String> {
    Some(match v {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Array(items) => items
            .iter()
            .map(|i| match i {
                toml::Value::String(s) => Some(s.clone()),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()?
            .join(","),
        _ => return None,
    })
}

/// The closest known setting to a mistyped one, if any is close.
fn hint(long: &str, known: &[&clap::Arg]) -> String {
    let best = known
        .iter()
        .filter_map(|a| a.get_long())
        .map(|k| (distance(long, k), k))
        .min();
    match best {
        Some((d, k)) if d <= 3 => format!(" (did you mean `{}`?)", k.replace('-', "_")),
        _ => String::new(),
    }
}

/// Levenshtein distance, for [`hint`].
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let here = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(here + 1);
            prev = here;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn run(file: &str, argv: &[&str], env: &[(&str, &str)]) -> Result<Vec<String>, FileError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("taskyard.toml");
        std::fs::write(&path, file).expect("write");
        let mut args: Vec<OsString> = argv.iter().map(OsString::from).collect();
        args.push(format!("--config={}", path.display()).into());
        let env = |k: &str| {
            env.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| OsString::from(v))
        };
        let (_, added) = apply(&crate::config::Cli::command(), args, &env)?;
        Ok(added)
    }

    #[test]
    fn the_file_gives_way_to_the_environment_and_the_command_line() {
        let added = run(
            "listen = \"0.0.0.0:1\"\nmax_connections = 5\nrate-limit = 2.5\nmetrics = false\nlog_format = \"json\"\n",
            &["taskyard", "serve", "--max-connections", "9"],
            &[("TASKYARD_LISTEN", "127.0.0.1:2")],
        )
        .expect("valid");
        // (A TOML table is read in key order.)
        assert_eq!(
            added,
            ["--log-format=json", "--metrics=false", "--rate-limit=2.5"]
        );
    }

    #[test]
    fn a_flag_given_with_equals_counts_as_given() {
        let added = run(
            "max_connections = 5",
            &["taskyard", "serve", "--max-connections=9"],
            &[],
        )
        .expect("valid");
        assert!(added.is_empty(), "{added:?}");
    }

    #[test]
    fn lists_become_comma_separated_and_config_check_reads_the_file_too() {
        let added = run(
            "callback_deny = [\"10.0.0.0/8\", \"127.0.0.0/8\"]",
            &["taskyard", "config", "check"],
            &[],
        )
        .expect("valid");
        assert_eq!(added, ["--callback-deny=10.0.0.0/8,127.0.0.0/8"]);
    }

    #[test]
    fn unknown_keys_and_odd_values_are_errors() {
        let e = run("max_conections = 5", &["taskyard", "serve"], &[]).expect_err("unknown");
        assert!(
            e.to_string()
                .contains("unknown setting `max_conections` (did you mean `max_connections`?)"),
            "{e}"
        );
        let e = run("config = \"other.toml\"", &["taskyard", "serve"], &[]).expect_err("itself");
        assert!(matches!(e, FileError::Unknown { .. }), "{e}");
        let e = run("[limits]\nmax = 1", &["taskyard", "serve"], &[]).expect_err("table");
        assert!(matches!(e, FileError::Unknown { .. }), "{e}");
        let e = run("listen = { a = 1 }", &["taskyard", "serve"], &[]).expect_err("shape");
        assert!(matches!(e, FileError::Shape { .. }), "{e}");
        let e = run("listen = [", &["taskyard", "serve"], &[]).expect_err("toml");
        assert!(matches!(e, FileError::Toml { .. }), "{e}");
    }
}
