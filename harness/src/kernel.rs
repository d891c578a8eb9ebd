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
    config().map(|(_, text)| text)
}

/// The running kernel's build configuration and where it was read: `/proc/config.gz`,
/// else `/boot/config-RELEASE`; `None` when neither is readable.
pub fn config() -> Option<(String, String)> {
    if let Ok(file) = std::fs::File::open("/proc/config.gz") {
        let mut text = String::new();
        flate2::read::GzDecoder::new(file)
            .read_to_string(&mut text)
            .ok()?;
        return Some(("/proc/config.gz".into(), text));
    }
    let path = format!("/boot/config-{}", release());
    let text = std::fs::read_to_string(&path).ok()?;
    Some((path, text))
}

/// The value of every `CONFIG_*` option of `text` whose name `wanted` accepts, as the
/// config states it (`y`, `m`, `250`, `"cubic"`); options that are not set are left out.
pub fn config_values(
    text: &str,
    wanted: impl Fn(&str) -> bool,
) -> std::collections::BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .filter(|(name, _)| name.starts_with("CONFIG_") && wanted(name))
        .map(|(name, value)| (name.to_owned(), value.trim().to_owned()))
        .collect()
}

/// The machine's memory as the kernel counts it (`MemTotal` in /proc/meminfo), in KiB.
pub fn memory_kib() -> Option<u64> {
    parse_mem_total(&std::fs::read_to_string("/proc/meminfo").ok()?)
}

fn parse_mem_total(meminfo: &str) -> Option<u64> {
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
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
    fn reads_config_values_and_mem_total() {
        let cfg = "CONFIG_HZ=250\nCONFIG_DEFAULT_TCP_CONG=\"bbr\"\n# CONFIG_TCP_CONG_VEGAS is not set\nCONFIG_TCP_CONG_CUBIC=m\n";
        let v = config_values(cfg, |n| {
            n.starts_with("CONFIG_TCP_CONG_") || n == "CONFIG_DEFAULT_TCP_CONG"
        });
        assert_eq!(
            v.into_iter().collect::<Vec<_>>(),
            vec![
                ("CONFIG_DEFAULT_TCP_CONG".to_owned(), "\"bbr\"".to_owned()),
                ("CONFIG_TCP_CONG_CUBIC".to_owned(), "m".to_owned())
            ]
        );
        assert_eq!(
            parse_mem_total("MemTotal:       24684092 kB\nMemFree: 1 kB\n"),
            Some(24_684_092)
        );
        assert_eq!(parse_mem_total("MemFree: 1 kB\n"), None);
    }

    #[test]
    fn finds_hz_in_a_config() {
        let cfg = "CONFIG_HZ_250=y\n# CONFIG_HZ_1000 is not set\nCONFIG_HZ=250\n";
        assert_eq!(parse_config_hz(cfg), Some(250));
        assert_eq!(parse_config_hz("CONFIG_HZ_PERIODIC=y\n"), None);
    }
}
