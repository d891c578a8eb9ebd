//! Facts about the running kernel that the model and the reports need.

use std::io::Read;
use std::path::PathBuf;

/// The kernel release (`uname -r`).
pub fn release() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_else(|_| "unknown".into())
}

/// `CONFIG_HZ` of the running kernel, from `/proc/config.gz` or `/boot/config-RELEASE`.
/// `None` when neither is readable.
pub fn config_hz() -> Option<u32> {
    let text = read_config()?;
    parse_config_hz(&text)
}

/// The HZ used for timer-slack bounds: [`config_hz`], or 100 (the coarsest common value,
/// giving the widest slack) when the config is unavailable.
pub fn hz_for_slack() -> u32 {
    config_hz().unwrap_or(100)
}

/// The kernel images installed under `/boot` (`vmlinuz-*`), sorted; empty when there
/// are none or `/boot` cannot be read.
pub fn boot_images() -> Vec<PathBuf> {
    let mut images: Vec<PathBuf> = std::fs::read_dir("/boot")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("vmlinuz-"))
                })
                .collect()
        })
        .unwrap_or_default();
    images.sort();
    images
}

fn read_config() -> Option<String> {
    if let Ok(file) = std::fs::File::open("/proc/config.gz") {
        let mut text = String::new();
        flate2::read::GzDecoder::new(file)
            .read_to_string(&mut text)
            .ok()?;
        return Some(text);
    }
    std::fs::read_to_string(format!("/boot/config-{}", release())).ok()
}

fn parse_config_hz(text: &str) -> Option<u32> {
    text.lines()
        .find_map(|l| l.strip_prefix("CONFIG_HZ="))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_hz_in_a_config() {
        let cfg = "CONFIG_HZ_250=y\n# CONFIG_HZ_1000 is not set\nCONFIG_HZ=250\n";
        assert_eq!(parse_config_hz(cfg), Some(250));
        assert_eq!(parse_config_hz("CONFIG_HZ_PERIODIC=y\n"), None);
    }
}
