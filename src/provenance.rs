//! Where a kernel's net sysctl defaults come from, so that a comparison of two machines can
//! say why a default differs: the machine's memory (hash tables and buffer limits scale
//! with it), the kernel's build configuration (the default congestion control, a feature
//! built in or left as a module), a boot parameter, a runtime setting from a sysctl file,
//! or, when none of these explains it, the kernel version itself.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Defaults the kernel computes from the machine's memory at boot
/// (`alloc_large_system_hash`, `nr_free_buffer_pages`): `tcp_init`, `tcp_sk_init`,
/// `udp_table_init`, `inet_initpeers`, `nf_conntrack_init_start`.
pub const MEMORY_SCALED: &[&str] = &[
    "net.ipv4.tcp_max_syn_backlog",
    "net.ipv4.tcp_max_tw_buckets",
    "net.ipv4.tcp_max_orphans",
    "net.ipv4.tcp_ehash_entries",
    "net.ipv4.udp_hash_entries",
    "net.ipv4.tcp_mem",
    "net.ipv4.udp_mem",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
    "net.ipv4.inet_peer_threshold",
    "net.netfilter.nf_conntrack_max",
    "net.netfilter.nf_conntrack_buckets",
    "net.netfilter.nf_conntrack_expect_max",
    "net.sctp.sctp_mem",
    "net.sctp.sctp_rmem",
    "net.sctp.sctp_wmem",
];

/// Boot parameters that override a memory-scaled size.
const BOOT_PARAMETERS: &[(&str, &str)] = &[
    ("net.ipv4.tcp_ehash_entries", "thash_entries="),
    ("net.ipv4.tcp_max_syn_backlog", "thash_entries="),
    ("net.ipv4.tcp_max_tw_buckets", "thash_entries="),
    ("net.ipv4.tcp_max_orphans", "thash_entries="),
    ("net.ipv4.udp_hash_entries", "uhash_entries="),
];

/// Defaults a build option sets (the knob, or a prefix of knobs, and the options).
/// A knob under a prefix that one kernel has and the other lacks is a feature built in on
/// one and a module (not loaded when the defaults were read) or absent on the other.
pub const BUILD_OPTIONS: &[(&str, &[&str])] = &[
    (
        "net.ipv4.tcp_congestion_control",
        &["CONFIG_DEFAULT_TCP_CONG"],
    ),
    (
        "net.ipv4.tcp_allowed_congestion_control",
        &["CONFIG_DEFAULT_TCP_CONG"],
    ),
    (
        "net.ipv4.tcp_available_congestion_control",
        &[
            "CONFIG_DEFAULT_TCP_CONG",
            "CONFIG_TCP_CONG_BBR",
            "CONFIG_TCP_CONG_CUBIC",
        ],
    ),
    ("net.core.default_qdisc", &["CONFIG_DEFAULT_NET_SCH"]),
    (
        "net.core.bpf_jit_enable",
        &["CONFIG_BPF_JIT_ALWAYS_ON", "CONFIG_BPF_JIT_DEFAULT_ON"],
    ),
    ("net.ipv4.tcp_syncookies", &["CONFIG_SYN_COOKIES"]),
    ("net.netfilter.nf_conntrack_", &["CONFIG_NF_CONNTRACK"]),
    (
        "net.netfilter.nf_log.",
        &["CONFIG_NF_LOG_IPV4", "CONFIG_NF_LOG_SYSLOG"],
    ),
    ("net.bridge.", &["CONFIG_BRIDGE", "CONFIG_BRIDGE_NETFILTER"]),
    ("net.mptcp.", &["CONFIG_MPTCP"]),
    ("net.sctp.", &["CONFIG_IP_SCTP"]),
    ("net.ipv4.vs.", &["CONFIG_IP_VS"]),
    ("net.ipv6.", &["CONFIG_IPV6"]),
];

/// What a report records about its machine beyond the kernel release, for [`source`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// The machine's memory (MemTotal), KiB.
    #[serde(default)]
    pub memory_kib: Option<u64>,
    /// Where the build configuration was read (`/proc/config.gz`, `/boot/config-…`).
    #[serde(default)]
    pub config_source: Option<String>,
    /// The build options of [`BUILD_OPTIONS`] and `CONFIG_HZ`, as set (unset ones absent).
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// The kernel command line.
    #[serde(default)]
    pub cmdline: Option<String>,
    /// `net.*` settings of sysctl.conf and sysctl.d files whose value is the one in force
    /// (so a boot script applied them): knob → "file: value".
    #[serde(default)]
    pub sysctl_files: BTreeMap<String, String>,
    /// Knobs a fresh network namespace does not show but the initial one does (global
    /// settings, not per namespace on this kernel), with their value; per-device entries
    /// of the initial namespace's own interfaces are left out.
    #[serde(default)]
    pub initial_namespace_only: BTreeMap<String, String>,
}

impl Provenance {
    /// Reads this machine's facts; `defaults` are its fresh-namespace net sysctls and
    /// `initial` the calling thread's (the initial namespace's, read only).
    pub fn detect(defaults: &BTreeMap<String, String>, initial: &BTreeMap<String, String>) -> Self {
        let (config_source, config) = match netclaim_harness::kernel::config() {
            Some((source, text)) => (
                Some(source),
                netclaim_harness::kernel::config_values(&text, |name| {
                    name == "CONFIG_HZ"
                        || BUILD_OPTIONS.iter().any(|(_, opts)| opts.contains(&name))
                }),
            ),
            None => (None, BTreeMap::new()),
        };
        Self {
            memory_kib: netclaim_harness::kernel::memory_kib(),
            config_source,
            config,
            cmdline: std::fs::read_to_string("/proc/cmdline")
                .ok()
                .map(|s| s.trim().to_owned()),
            sysctl_files: applied_sysctl_files(defaults),
            initial_namespace_only: initial_only(defaults, initial),
        }
    }
}

/// The knobs of `initial` that `fresh` lacks, but for per-device entries of interfaces a
/// fresh namespace does not have (`net.ipv4.conf.eth0.*`).
fn initial_only(
    fresh: &BTreeMap<String, String>,
    initial: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    if fresh.is_empty() {
        return BTreeMap::new();
    }
    initial
        .iter()
        .filter(|(k, _)| !fresh.contains_key(*k) && !is_device_entry(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// `net.ipv4.conf.eth0.rp_filter`, `net.ipv6.neigh.eth0.…`: a setting of one interface
/// (other than lo and the all/default templates every namespace has).
fn is_device_entry(knob: &str) -> bool {
    let parts: Vec<&str> = knob.split('.').collect();
    matches!(parts.as_slice(), ["net", _, "conf" | "neigh", dev, ..] if !matches!(*dev, "all" | "default" | "lo"))
}

/// The sysctl files a boot applies, in `sysctl --system`'s order of directories.
const SYSCTL_DIRS: &[&str] = &[
    "/etc/sysctl.d",
    "/run/sysctl.d",
    "/usr/local/lib/sysctl.d",
    "/usr/lib/sysctl.d",
    "/lib/sysctl.d",
];

/// `net.*` assignments of the sysctl files whose value is the one in force.
fn applied_sysctl_files(defaults: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut files: Vec<std::path::PathBuf> = SYSCTL_DIRS
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flat_map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "conf"))
        .collect();
    files.sort();
    files.push("/etc/sysctl.conf".into());
    let mut out = BTreeMap::new();
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        for (knob, value) in parse_sysctl_file(&text) {
            let in_force = defaults.get(&knob).map(|v| normalise(v));
            if knob.starts_with("net.") && in_force.as_deref() == Some(&normalise(&value)) {
                out.insert(knob, format!("{}: {value}", file.display()));
            }
        }
    }
    out
}

/// `key = value` lines of a sysctl file (`#`/`;` comments, `-` prefix, `/` separators).
fn parse_sysctl_file(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            let k = k.trim().trim_start_matches('-').replace('/', ".");
            (k, v.trim().to_owned())
        })
        .collect()
}

/// Whitespace-insensitive form of a sysctl value ("4096\t131072" = "4096 131072").
fn normalise(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// How [`source`] begins for a default that differs only because a module was loaded
/// on one machine and not the other: not a difference of the kernels.
pub const MODULE_LOADED: &str = "module load state";

/// A machine as [`source`] needs it.
pub struct Side<'a> {
    /// A short name ("6.1.0-56-amd64").
    pub name: &'a str,
    /// Its kernel release.
    pub kernel: &'a str,
    /// The default in force there (`None`: the kernel lacks the knob).
    pub value: Option<&'a str>,
    /// Its facts.
    pub facts: &'a Provenance,
}

/// Where the difference of `knob` between `a` and `b` comes from, in words.
pub fn source(knob: &str, a: &Side, b: &Side) -> String {
    // A runtime setting on either machine.
    for s in [a, b] {
        if let Some(f) = s.facts.sysctl_files.get(knob) {
            return format!("runtime setting on {} ({f})", s.name);
        }
    }
    let options = build_options(knob);
    let config = |s: &Side, o: &str| s.facts.config.get(o).cloned();
    // One kernel lacks the knob: a feature left out or left as a module, a newer knob, or
    // a global one that only the initial namespace shows.
    if a.value.is_none() != b.value.is_none() {
        let (has, lacks) = if a.value.is_some() { (a, b) } else { (b, a) };
        if let Some(v) = lacks.facts.initial_namespace_only.get(knob) {
            let same = has.value.map(normalise) == Some(normalise(v));
            return format!(
                "kernel version: per network namespace on Linux {}, global on Linux {} (its \
                 initial namespace shows {v}{})",
                has.kernel,
                lacks.kernel,
                if same { ", the same value" } else { "" }
            );
        }
        if let Some(o) = options
            .iter()
            .find(|o| config(a, o).as_deref() == Some("m") && config(b, o).as_deref() == Some("m"))
        {
            return format!(
                "{MODULE_LOADED}: {o}=m on both, loaded on {} only when the defaults were read",
                has.name
            );
        }
        if let Some(text) = differing_options(options, a, b) {
            return format!(
                "build configuration: {text} (left out, or a module not loaded when the \
                 defaults were read, on {})",
                lacks.name
            );
        }
        return format!(
            "kernel version: Linux {} has the knob, Linux {} does not",
            has.kernel, lacks.kernel
        );
    }
    // A boot parameter, then the memory, for memory-scaled sizes.
    if MEMORY_SCALED.contains(&knob) {
        for (k, param) in BOOT_PARAMETERS {
            for s in [a, b] {
                if *k == knob
                    && s.facts
                        .cmdline
                        .as_deref()
                        .is_some_and(|c| c.split_whitespace().any(|w| w.starts_with(param)))
                {
                    return format!("boot parameter {param}… on {}", s.name);
                }
            }
        }
        let gib = |s: &Side| s.facts.memory_kib.map(|k| k as f64 / 1024.0 / 1024.0);
        let mem = |s: &Side| gib(s).map_or("?".into(), |g| format!("{g:.1} GiB"));
        let memories = format!("{} {} vs {} {}", a.name, mem(a), b.name, mem(b));
        // The memories differ (by more than 10 %), or the values differ as they do (a
        // size proportional to free memory): the memory accounts for it. Alike memories
        // and unlike values: something else does (a cap the kernel version changed).
        let alike = |x: f64, y: f64| (x / y - 1.0).abs() <= 0.1;
        let memory_explains = match (gib(a), gib(b)) {
            (Some(ma), Some(mb)) => {
                !alike(ma, mb)
                    || match (largest_number(a.value), largest_number(b.value)) {
                        (Some(va), Some(vb)) => alike(va / vb, ma / mb),
                        _ => false,
                    }
            }
            _ => true,
        };
        if memory_explains {
            return format!("machine memory ({memories}): scales with RAM at boot");
        }
        if let Some(text) = differing_options(options, a, b) {
            return format!("build configuration: {text}");
        }
        return format!(
            "kernel version (Linux {} vs {}): scales with memory, but the memories are alike \
             ({memories}) and the values are not",
            a.kernel, b.kernel
        );
    }
    if let Some(text) = differing_options(options, a, b) {
        return format!("build configuration: {text}");
    }
    format!(
        "kernel version (Linux {} vs {}): no build option, memory scaling, boot parameter or \
         sysctl file accounts for it",
        a.kernel, b.kernel
    )
}

/// The largest number in a sysctl value ("4096 131072 6291456" → 6291456).
fn largest_number(v: Option<&str>) -> Option<f64> {
    v?.split_whitespace()
        .filter_map(|w| w.parse::<f64>().ok())
        .map(f64::abs)
        .reduce(f64::max)
}

/// The build options that set `knob` (by name or prefix).
fn build_options(knob: &str) -> &'static [&'static str] {
    BUILD_OPTIONS
        .iter()
        .find(|(prefix, _)| {
            knob == *prefix || (prefix.ends_with(['.', '_']) && knob.starts_with(prefix))
        })
        .map_or(&[], |(_, o)| o)
}

/// "CONFIG_X=a vs b, …" for the options that differ between the two machines.
fn differing_options(options: &[&str], a: &Side, b: &Side) -> Option<String> {
    let v = |s: &Side, o: &str| {
        s.facts
            .config
            .get(o)
            .map_or_else(|| "unset".to_owned(), |v| v.clone())
    };
    let differing: Vec<String> = options
        .iter()
        .filter(|o| a.facts.config.get(**o) != b.facts.config.get(**o))
        .map(|o| format!("{o}={} vs {}", v(a, o), v(b, o)))
        .collect();
    (!differing.is_empty()).then(|| differing.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(mem_gib: u64, config: &[(&str, &str)], files: &[(&str, &str)]) -> Provenance {
        Provenance {
            memory_kib: Some(mem_gib * 1024 * 1024),
            config_source: Some("/proc/config.gz".into()),
            config: config
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
            cmdline: Some("quiet".into()),
            initial_namespace_only: Default::default(),
            sysctl_files: files
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
        }
    }

    fn side<'a>(name: &'a str, value: Option<&'a str>, f: &'a Provenance) -> Side<'a> {
        Side {
            name,
            kernel: name,
            value,
            facts: f,
        }
    }

    #[test]
    fn each_kind_of_difference_is_named() {
        let host = facts(24, &[("CONFIG_DEFAULT_TCP_CONG", "\"bbr\"")], &[]);
        let small = facts(2, &[("CONFIG_DEFAULT_TCP_CONG", "\"cubic\"")], &[]);
        let (a, b) = (
            side("6.18", Some("2048"), &host),
            side("6.1", Some("128"), &small),
        );
        assert_eq!(
            source("net.ipv4.tcp_max_syn_backlog", &a, &b),
            "machine memory (6.18 24.0 GiB vs 6.1 2.0 GiB): scales with RAM at boot"
        );
        // Alike memories, unlike values: a cap the kernel version changed.
        let host_like = facts(23, &[], &[]);
        assert_eq!(
            source(
                "net.ipv4.tcp_rmem",
                &side("6.18", Some("4096 131072 33554432"), &host),
                &side("6.12", Some("4096 131072 6291456"), &host_like)
            ),
            "kernel version (Linux 6.18 vs 6.12): scales with memory, but the memories are \
             alike (6.18 24.0 GiB vs 6.12 23.0 GiB) and the values are not"
        );
        assert!(source(
            "net.ipv4.tcp_mem",
            &side("6.18", Some("280000 373000 560000"), &host),
            &side("6.12", Some("268000 357000 536000"), &host_like)
        )
        .starts_with("machine memory"));
        assert_eq!(
            source("net.ipv4.tcp_congestion_control", &a, &b),
            "build configuration: CONFIG_DEFAULT_TCP_CONG=\"bbr\" vs \"cubic\""
        );
        assert_eq!(
            source("net.core.rmem_max", &a, &b),
            "kernel version (Linux 6.18 vs 6.1): no build option, memory scaling, boot \
             parameter or sysctl file accounts for it"
        );
        let (a, b) = (side("6.18", Some("4"), &host), side("6.1", None, &small));
        assert_eq!(
            source("net.ipv4.tcp_syn_linear_timeouts", &a, &b),
            "kernel version: Linux 6.18 has the knob, Linux 6.1 does not"
        );
        let tuned = facts(
            24,
            &[],
            &[("net.core.rmem_max", "/etc/sysctl.d/x.conf: 4194304")],
        );
        assert_eq!(
            source(
                "net.core.rmem_max",
                &side("host", Some("4194304"), &tuned),
                &side("vm", Some("212992"), &small)
            ),
            "runtime setting on host (/etc/sysctl.d/x.conf: 4194304)"
        );
    }

    #[test]
    fn a_module_built_in_on_one_side_is_a_build_difference() {
        let host = facts(24, &[("CONFIG_NF_CONNTRACK", "y")], &[]);
        let vm = facts(24, &[("CONFIG_NF_CONNTRACK", "m")], &[]);
        assert_eq!(
            source(
                "net.netfilter.nf_conntrack_acct",
                &side("host", Some("0"), &host),
                &side("vm", None, &vm)
            ),
            "build configuration: CONFIG_NF_CONNTRACK=y vs m (left out, or a module not \
             loaded when the defaults were read, on vm)"
        );
    }

    #[test]
    fn the_same_module_loaded_on_one_side_only_is_no_kernel_difference() {
        let f = facts(24, &[("CONFIG_NF_CONNTRACK", "m")], &[]);
        assert!(source(
            "net.netfilter.nf_conntrack_max",
            &side("a", None, &f),
            &side("b", Some("262144"), &f)
        )
        .starts_with(MODULE_LOADED));
        let small = facts(2, &[("CONFIG_NF_CONNTRACK", "m")], &[]);
        assert!(source(
            "net.netfilter.nf_conntrack_max",
            &side("a", Some("65536"), &small),
            &side("b", Some("262144"), &f)
        )
        .starts_with("machine memory"));
        assert_eq!(
            source(
                "net.netfilter.nf_conntrack_acct",
                &side("a", None, &f),
                &side("b", Some("0"), &f)
            ),
            "module load state: CONFIG_NF_CONNTRACK=m on both, loaded on b only when the \
             defaults were read"
        );
    }

    #[test]
    fn a_global_knob_of_the_initial_namespace_is_no_missing_knob() {
        let new = facts(24, &[], &[]);
        let mut old = facts(24, &[], &[]);
        old.initial_namespace_only
            .insert("net.core.rmem_max".into(), "212992".into());
        assert_eq!(
            source(
                "net.core.rmem_max",
                &side("6.12", Some("212992"), &new),
                &side("6.1", None, &old)
            ),
            "kernel version: per network namespace on Linux 6.12, global on Linux 6.1 (its \
             initial namespace shows 212992, the same value)"
        );
        let fresh: BTreeMap<String, String> =
            [("net.core.somaxconn".to_owned(), "4096".to_owned())].into();
        let initial: BTreeMap<String, String> = [
            ("net.core.somaxconn", "4096"),
            ("net.core.rmem_max", "212992"),
            ("net.ipv4.conf.eth0.rp_filter", "2"),
            ("net.ipv4.conf.all.rp_filter", "2"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(
            initial_only(&fresh, &initial)
                .into_keys()
                .collect::<Vec<_>>(),
            vec!["net.core.rmem_max", "net.ipv4.conf.all.rp_filter"]
        );
    }

    #[test]
    fn sysctl_files_parse_like_sysctl_does() {
        let text = "# c\n; c\nnet.core.rmem_max = 4194304\n-net/ipv4/tcp_ecn=1\n\nkernel.x=1\n";
        assert_eq!(
            parse_sysctl_file(text),
            vec![
                ("net.core.rmem_max".into(), "4194304".into()),
                ("net.ipv4.tcp_ecn".into(), "1".into()),
                ("kernel.x".into(), "1".into())
            ]
        );
        assert_eq!(normalise("4096\t131072  6291456"), "4096 131072 6291456");
    }
}
