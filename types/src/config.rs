//! Config files: each process keeps one TOML file under its home (`nesad`:
//! `config/nesad.toml`, `nesa-node`: `config.toml`), every field with a default and a comment.
//! This is the one loader they share; each process writes its own commented layout.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// A config file that cannot be read, parsed or written.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or its folder could not be read or written.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was attempted (`read`, `write`, `create`).
        action: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this config.
    #[error("{path} is not valid: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, with its line and column.
        source: toml::de::Error,
    },
}

/// Reads the config at `path`, or the defaults when the file does not exist; missing fields
/// take their defaults too (with `#[serde(default)]` on the config type).
pub fn load_or_default<T: DeserializeOwned + Default>(path: &Path) -> Result<T, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(source) => Err(ConfigError::Io {
            action: "read",
            path: path.to_owned(),
            source,
        }),
    }
}

/// Writes `text` (a commented TOML document) to `path`, creating its folder.
pub fn write(path: &Path, text: &str) -> Result<(), ConfigError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| ConfigError::Io {
            action: "create",
            path: dir.to_owned(),
            source,
        })?;
    }
    std::fs::write(path, text).map_err(|source| ConfigError::Io {
        action: "write",
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, PartialEq, serde::Deserialize)]
    #[serde(default)]
    struct Sample {
        name: String,
        port: u16,
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("nesa-config-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_missing_file_gives_the_defaults() {
        let dir = temp_dir("missing");
        let loaded: Sample = load_or_default(&dir.join("none.toml")).unwrap();
        assert_eq!(loaded, Sample::default());
    }

    #[test]
    fn a_written_file_loads_back_and_absent_fields_default() {
        let dir = temp_dir("written");
        let path = dir.join("sub/config.toml");
        write(&path, "# a comment\nname = \"x\"\n").unwrap();
        let loaded: Sample = load_or_default(&path).unwrap();
        assert_eq!(
            loaded,
            Sample {
                name: "x".into(),
                port: 0
            }
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn invalid_toml_names_the_file() {
        let dir = temp_dir("invalid");
        let path = dir.join("config.toml");
        write(&path, "port = \"not a number\"\n").unwrap();
        let error = load_or_default::<Sample>(&path).unwrap_err();
        assert!(error
            .to_string()
            .starts_with(&format!("{} is not valid", path.display())));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
