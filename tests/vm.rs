//! `netclaim vm` end to end: boots Debian's 6.1 kernel (/boot/vmlinuz-6.1*) with
//! virtme-ng, runs the SYN-timeout claims inside it and checks the report that comes back.
//!
//! It takes minutes (the default SYN timeout alone is 127 s), so it runs only with
//! NETCLAIM_VM_TESTS=1, and is ignored with the reason when no second kernel, no `vng`,
//! no QEMU or no root privilege is there (`scripts/install-vm-tools` installs them).

use std::path::PathBuf;
use std::process::Command;

use libtest_mimic::{Arguments, Completion, Failed, Trial};
use netclaim_harness::command::which;

const BIN: &str = env!("CARGO_BIN_EXE_netclaim");

/// Why the VM test cannot run here, if it cannot.
fn precondition() -> Result<PathBuf, String> {
    if std::env::var("NETCLAIM_VM_TESTS").as_deref() != Ok("1") {
        return Err(
            "boots a VM for minutes: set NETCLAIM_VM_TESTS=1 to run it (after \
             scripts/install-vm-tools)"
                .into(),
        );
    }
    // The newest 6.1 image.
    let kernel = netclaim_harness::kernel::boot_images()
        .into_iter()
        .rfind(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("vmlinuz-6.1."))
        });
    let Some(kernel) = kernel else {
        return Err(
            "no second kernel: /boot/vmlinuz-6.1* is missing (scripts/install-vm-tools \
             installs Debian's linux-image-amd64)"
                .into(),
        );
    };
    if which("vng").is_none() && which("/opt/netclaim-vm/bin/vng").is_none() {
        return Err("virtme-ng's vng is not installed: run scripts/install-vm-tools".into());
    }
    if which("qemu-system-x86_64").is_none() {
        return Err(
            "qemu-system-x86_64 is not installed (neither KVM nor TCG can run): run \
             scripts/install-vm-tools"
                .into(),
        );
    }
    netclaim_harness::privilege::check()?;
    Ok(kernel)
}

fn syn_timeouts_on_6_1(kernel: PathBuf) -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let out_dir = dir.path().join("out");
    let out = Command::new(BIN)
        .args(["vm", "--kernel"])
        .arg(&kernel)
        .arg("--out")
        .arg(&out_dir)
        .args(["syn.retries-1", "syn.default-timeout"])
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    // 0: every claim reached a verdict; 4: a tool variant was skipped. Not 1 (error).
    if !matches!(out.status.code(), Some(0 | 4)) {
        return Err(format!("netclaim vm exited {:?}:\n{stderr}", out.status).into());
    }
    for needle in ["guest clock:", "under "] {
        if !stderr.contains(needle) {
            return Err(format!("stderr lacks {needle:?}:\n{stderr}").into());
        }
    }
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("report.json"))?)?;
    let kernel_rel = report["kernel"].as_str().unwrap_or_default();
    if !kernel_rel.starts_with("6.1.") {
        return Err(format!("the report is from Linux {kernel_rel:?}, not 6.1").into());
    }
    let vm = &report["vm"];
    if !matches!(vm["accel"].as_str(), Some("kvm" | "tcg")) || !vm["clock_probe"].is_object() {
        return Err(format!("report.json lacks the VM facts (accel, clock_probe): {vm}").into());
    }
    if !out_dir.join("vm.json").is_file() {
        return Err("no vm.json next to report.json".into());
    }
    let claim = |id: &str| {
        report["claims"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["id"] == id))
            .cloned()
            .ok_or_else(|| Failed::from(format!("report.json has no claim {id}")))
    };
    for id in ["syn.retries-1", "syn.default-timeout"] {
        let c = claim(id)?;
        if !matches!(
            c["verdict"].as_str(),
            Some("holds" | "refuted" | "not-applicable")
        ) {
            return Err(format!("{id}: verdict {} ({})", c["verdict"], c["reason"]).into());
        }
    }
    // 6.1 predates tcp_syn_linear_timeouts (6.5): the classic 7 SYNs over 127 s.
    let d = claim("syn.default-timeout")?;
    if d["verdict"] != "holds" || d["observed"]["syn_count"] != 7 || d["observed"]["errno"] != 110 {
        return Err(format!(
            "syn.default-timeout on 6.1: expected holds with 7 SYNs and ETIMEDOUT, got {} \
             with {} SYNs, errno {} ({})",
            d["verdict"], d["observed"]["syn_count"], d["observed"]["errno"], d["reason"]
        )
        .into());
    }
    Ok(())
}

fn main() {
    let args = Arguments::from_args();
    let name = "vm.syn-timeouts-on-6.1";
    let trial = match precondition() {
        Ok(kernel) => Trial::test(name, move || syn_timeouts_on_6_1(kernel)),
        Err(reason) => Trial::ignorable_test(name, move || Ok(Completion::ignored_with(reason))),
    };
    libtest_mimic::run(&args, vec![trial]).exit();
}
