//! The optional TOML config file: the same settings as the flags (kebab-case keys), so a
//! deployment can keep them in one reviewed file. Flags given on the command line win.
//!
//! ```toml
//! root = "/srv/tftp"
//! listen = ["198.18.0.1:69", "[::]:69"]
//! max-blksize = 1468
//! rollover = "0"
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Every key the file may hold; an unknown key is an error (a typo must not be ignored).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileConfig {
    pub root: Option<PathBuf>,
    pub listen: Option<Vec<String>>,
    pub max_sessions: Option<usize>,
    pub max_sessions_per_client: Option<usize>,
    pub max_blksize: Option<u16>,
    pub max_windowsize: Option<u16>,
    pub max_window_bytes: Option<u32>,
    pub max_transfer_secs: Option<u64>,
    pub timeout_ms: Option<u64>,
    pub retries: Option<u32>,
    pub rollover: Option<String>,
    pub allow_write: Option<bool>,
    pub allow_overwrite: Option<bool>,
    pub max_upload_bytes: Option<u64>,
    pub map_backslash: Option<bool>,
    pub remap: Option<PathBuf>,
    pub max_request_len: Option<usize>,
    pub threads: Option<u16>,
    pub busy_poll_us: Option<u64>,
}

/// Reads and parses `path`; the error names the file, line and column.
pub fn load(path: &Path) -> Result<FileConfig, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}
