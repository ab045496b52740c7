//! `--config FILE`: a TOML file of defaults for `kausal serve`.
//!
//! Keys are the long flag names (`listen`, `client-ca`, `watch-namespace`...).
//! Each key becomes its flag's default value before the command line is
//! parsed, so clap applies one precedence rule everywhere: flag > environment
//! > file > built-in default. Nothing touches the process environment.

use std::path::{Path, PathBuf};

/// A flag a config file may set.
pub struct Settable {
    /// clap's id for the argument.
    pub id: String,
    /// The long flag name, which is the key in the file.
    pub long: String,
    /// Takes several values (repeatable or comma-separated): a TOML array
    /// gives one value per item.
    pub takes_many: bool,
}

/// A flag's default value from the file.
#[derive(Debug, PartialEq, Eq)]
pub struct FileDefault {
    pub id: String,
    pub values: Vec<String>,
}

/// Why the config file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    #[error("reading config file {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {} is not valid TOML: {source}", path.display())]
    Toml { path: PathBuf, source: toml::de::Error },
    #[error("{}: unknown key `{key}`; known keys: {known}", path.display())]
    UnknownKey { path: PathBuf, key: String, known: String },
    #[error("{}: key `{key}` has a {found} value; expected a string, number, boolean or list", path.display())]
    WrongType { path: PathBuf, key: String, found: &'static str },
}

/// The config file named by `--config FILE`, `--config=FILE` or `KAUSAL_CONFIG`.
pub fn path_from(args: &[String]) -> Option<String> {
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if arg == "--" {
            break;
        }
        if arg == "--config" {
            return iter.next().cloned();
        }
        if let Some(path) = arg.strip_prefix("--config=") {
            return Some(path.to_owned());
        }
    }
    std::env::var("KAUSAL_CONFIG").ok().filter(|p| !p.is_empty())
}

/// Reads the file and returns each key's flag and values. Unknown keys are an
/// error that lists the known ones.
pub fn defaults(path: &Path, settable: &[Settable]) -> Result<Vec<FileDefault>, ConfigFileError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| ConfigFileError::Read { path: path.to_owned(), source })?;
    let table: toml::Table = text.parse().map_err(|source| ConfigFileError::Toml { path: path.to_owned(), source })?;
    let mut out = Vec::new();
    for (key, value) in table {
        let normalised = key.replace('_', "-");
        let Some(flag) = settable.iter().find(|s| s.long == normalised) else {
            let known = settable.iter().map(|s| s.long.as_str()).collect::<Vec<_>>().join(", ");
            return Err(ConfigFileError::UnknownKey { path: path.to_owned(), key, known });
        };
        let values = match value {
            toml::Value::Array(items) => items.into_iter().map(scalar_text).collect::<Vec<_>>(),
            toml::Value::Table(_) | toml::Value::Datetime(_) => {
                return Err(ConfigFileError::WrongType { path: path.to_owned(), key, found: value.type_str() });
            }
            scalar => vec![scalar_text(scalar)],
        };
        // A single-valued flag given a list takes it as one comma-joined value.
        let values = if flag.takes_many { values } else { vec![values.join(",")] };
        out.push(FileDefault { id: flag.id.clone(), values });
    }
    Ok(out)
}

fn scalar_text(value: toml::Value) -> String {
    match value {
        toml::Value::String(s) => s,
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_keys_become_flag_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kausal.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:1\"\nqueue_capacity = 5\nwatch-namespace = [\"a\", \"b\"]\n")
            .unwrap();
        let settable = [
            Settable { id: "listen".into(), long: "listen".into(), takes_many: false },
            Settable { id: "queue_capacity".into(), long: "queue-capacity".into(), takes_many: false },
            Settable { id: "watch_namespaces".into(), long: "watch-namespace".into(), takes_many: true },
        ];
        let mut found = defaults(&path, &settable).unwrap();
        found.sort_by(|a, b| a.id.cmp(&b.id));
        let expect = |id: &str, values: &[&str]| FileDefault {
            id: id.to_owned(),
            values: values.iter().map(|v| v.to_string()).collect(),
        };
        assert_eq!(
            found,
            [
                expect("listen", &["127.0.0.1:1"]),
                expect("queue_capacity", &["5"]),
                expect("watch_namespaces", &["a", "b"])
            ]
        );
        std::fs::write(&path, "lisen = 1\n").unwrap();
        let err = defaults(&path, &settable).unwrap_err().to_string();
        assert!(err.contains("unknown key `lisen`") && err.contains("listen"), "{err}");
        std::fs::write(&path, "listen = { a = 1 }\n").unwrap();
        assert!(matches!(defaults(&path, &settable), Err(ConfigFileError::WrongType { .. })));
    }

    #[test]
    fn the_config_path_comes_from_either_flag_form() {
        let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(path_from(&args(&["kausal", "serve", "--config", "a.toml"])), Some("a.toml".into()));
        assert_eq!(path_from(&args(&["kausal", "serve", "--config=b.toml"])), Some("b.toml".into()));
    }
}
