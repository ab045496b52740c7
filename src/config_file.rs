//! `--config FILE`: a TOML file of defaults for `kausal serve`.
//!
//! Keys are the long flag names (`listen`, `client-ca`, `watch-namespace`...).
//! Each key becomes the flag's environment variable unless that variable is
//! already set, before the command line is parsed. That gives one precedence
//! rule everywhere, implemented by clap itself: flag > environment > file.

use std::path::Path;

use anyhow::Context as _;

/// A flag a config file may set: its long name and its environment variable.
pub struct Settable {
    pub long: String,
    pub env: String,
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

/// Reads the file and returns `(variable, value)` pairs for the keys whose
/// variable is not set yet. Unknown keys are an error that lists the known ones.
pub fn env_defaults(path: &Path, settable: &[Settable]) -> anyhow::Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading config file {}", path.display()))?;
    let table: toml::Table =
        text.parse().with_context(|| format!("config file {} is not valid TOML", path.display()))?;
    let mut out = Vec::new();
    for (key, value) in table {
        let normalised = key.replace('_', "-");
        let Some(flag) = settable.iter().find(|s| s.long == normalised) else {
            let known: Vec<&str> = settable.iter().map(|s| s.long.as_str()).collect();
            anyhow::bail!("{}: unknown key `{key}`; known keys: {}", path.display(), known.join(", "));
        };
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Array(items) => items
                .into_iter()
                .map(|v| match v {
                    toml::Value::String(s) => Ok(s),
                    other => Ok(other.to_string()),
                })
                .collect::<anyhow::Result<Vec<_>>>()?
                .join(","),
            other => anyhow::bail!(
                "{}: key `{key}` has a {} value; expected a string, number, boolean or list",
                path.display(),
                other.type_str()
            ),
        };
        if std::env::var_os(&flag.env).is_none() {
            out.push((flag.env.clone(), text));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_keys_become_unset_environment_variables() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kausal.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:1\"\nqueue_capacity = 5\nwatch-namespace = [\"a\", \"b\"]\n")
            .unwrap();
        let settable = [
            Settable { long: "listen".into(), env: "KAUSAL_TEST_CF_LISTEN".into() },
            Settable { long: "queue-capacity".into(), env: "KAUSAL_TEST_CF_QUEUE".into() },
            Settable { long: "watch-namespace".into(), env: "KAUSAL_TEST_CF_NS".into() },
        ];
        let mut pairs = env_defaults(&path, &settable).unwrap();
        pairs.sort();
        assert_eq!(
            pairs,
            [
                ("KAUSAL_TEST_CF_LISTEN".to_owned(), "127.0.0.1:1".to_owned()),
                ("KAUSAL_TEST_CF_NS".to_owned(), "a,b".to_owned()),
                ("KAUSAL_TEST_CF_QUEUE".to_owned(), "5".to_owned()),
            ]
        );
        std::fs::write(&path, "lisen = 1\n").unwrap();
        let err = env_defaults(&path, &settable).unwrap_err().to_string();
        assert!(err.contains("unknown key `lisen`") && err.contains("listen"), "{err}");
    }

    #[test]
    fn the_config_path_comes_from_either_flag_form() {
        let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(path_from(&args(&["kausal", "serve", "--config", "a.toml"])), Some("a.toml".into()));
        assert_eq!(path_from(&args(&["kausal", "serve", "--config=b.toml"])), Some("b.toml".into()));
    }
}
