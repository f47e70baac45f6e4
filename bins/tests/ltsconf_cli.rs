//! The real `ltsconf` binary on the fixture files of ltsconf/tests/fixtures: exit codes,
//! output formats and caret diagnostics.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

fn fixture(name: &str) -> String {
    let p: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "..",
        "ltsconf",
        "tests",
        "fixtures",
        name,
    ]
    .iter()
    .collect();
    p.to_string_lossy().into_owned()
}

fn ltsconf(args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ltsconf"));
    cmd.args(args);
    netboot_testkit::run_with_timeout(&mut cmd, Duration::from_secs(20)).expect("ltsconf finished")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exited normally")
}

#[test]
fn check_passes_a_good_file_and_reports_warnings() {
    let o = ltsconf(&["check", &fixture("farm.lts.conf")]);
    assert_eq!(code(&o), 0, "{}", text(&o.stdout));
    let out = text(&o.stdout);
    assert!(
        out.contains("farm.lts.conf: ok (lts5, 4 sections, 13 entries, 0 errors, 1 warning)"),
        "{out}"
    );

    let o = ltsconf(&["check", &fixture("warnings.lts.conf")]);
    assert_eq!(code(&o), 0);
    let out = text(&o.stdout);
    assert!(
        out.contains("warnings.lts.conf:3:2: warning: unknown variable LDM_LENGUAGE"),
        "{out}"
    );
    assert!(
        out.contains("warnings.lts.conf:4:2: warning: `LDM_DIRECTX` is set again"),
        "{out}"
    );
    assert!(
        out.contains("warnings.lts.conf:5:2: warning: LTSP_NBD_TO_RAM = True is ignored"),
        "{out}"
    );
}

#[test]
fn check_fails_with_caret_diagnostics() {
    let o = ltsconf(&[
        "check",
        &fixture("broken.lts.conf"),
        &fixture("quotes.lts.conf"),
    ]);
    assert_eq!(code(&o), 1);
    let out = text(&o.stdout);
    let want = format!(
        "{}:3:6: error: `=` in an unquoted value: getltscfg ends the value of `B` before it and ignores the rest of the file; put the whole value in double quotes\n 3 | B = x=y\n   |      ^\n",
        fixture("broken.lts.conf")
    );
    assert!(out.contains(&want), "{out}");
    assert!(
        out.contains("quotes.lts.conf:3:13: error: `'` is not a quote"),
        "{out}"
    );
    assert!(
        out.contains(" 3 | SCREEN_02 = 'shell'\n   |             ^\n"),
        "{out}"
    );

    let o = ltsconf(&["check", &fixture("cycle.lts.conf")]);
    assert_eq!(code(&o), 1);
    assert!(text(&o.stdout).contains("cycle.lts.conf:7:1: error: LIKE cycle [a] → [b] → [a]"));
}

#[test]
fn usage_and_io_errors_exit_2() {
    assert_eq!(code(&ltsconf(&["check", "/nonexistent/lts.conf"])), 2);
    assert_eq!(code(&ltsconf(&["check"])), 2);
    assert_eq!(code(&ltsconf(&["frobnicate"])), 2);
    let o = ltsconf(&["resolve", "--mac", "not-a-mac", &fixture("farm.lts.conf")]);
    assert_eq!(code(&o), 2);
    assert!(text(&o.stderr).contains("--mac not-a-mac: not a MAC address"));
    assert_eq!(
        code(&ltsconf(&[
            "resolve",
            "--format",
            "xml",
            &fixture("farm.lts.conf")
        ])),
        2
    );
}

#[test]
fn help_reads_well() {
    let o = ltsconf(&["--help"]);
    assert_eq!(code(&o), 0);
    let out = text(&o.stdout);
    for needle in [
        "check",
        "resolve",
        "explain",
        "Exit status: 0",
        "lts.conf",
        "ltsp.conf",
    ] {
        assert!(out.contains(needle), "--help lacks {needle}:\n{out}");
    }
    let o = ltsconf(&["resolve", "--help"]);
    let out = text(&o.stdout);
    for needle in [
        "--mac",
        "--ip",
        "--hostname",
        "--format",
        "--lenient",
        "getltscfg",
    ] {
        assert!(
            out.contains(needle),
            "resolve --help lacks {needle}:\n{out}"
        );
    }
}

#[test]
fn resolve_json_follows_ltsp_precedence_and_order() {
    let o = ltsconf(&[
        "resolve",
        "--mac",
        "52-54-00-12-34-56",
        &fixture("farm.lts.conf"),
    ]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    let obj = v.as_object().expect("one object");
    assert_eq!(obj["KEEP_SYSTEM_SERVICES"], "ssh kubelet containerd iscsid");
    assert_eq!(obj["HOSTNAME"], "node-storage-1");
    assert_eq!(obj["FSTAB_02_DATA"], "/dev/sdb1 /data ext4 defaults 0 2");
    assert_eq!(obj["LTSP_NBD_TO_RAM"], "true");
    // Key order in the text: PREINIT_2 before PREINIT_10 (sort -V).
    let out = text(&o.stdout);
    assert!(out.find("PREINIT_2_SECOND").unwrap() < out.find("PREINIT_10_LAST").unwrap());

    let o = ltsconf(&[
        "resolve",
        "--mac",
        "52:54:00:aa:00:07",
        &fixture("farm.lts.conf"),
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["LTSP_NBD_TO_RAM"], "false");
    assert_eq!(v["KEEP_SYSTEM_SERVICES"], "ssh kubelet containerd");
    assert!(v.get("HOSTNAME").is_none());
}

#[test]
fn resolve_shell_evals_to_the_json_values() {
    let file = fixture("farm.lts.conf");
    let json = ltsconf(&["resolve", "--mac", "52:54:00:12:34:56", &file]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let sh = ltsconf(&[
        "resolve",
        "--mac",
        "52:54:00:12:34:56",
        "--format",
        "shell",
        &file,
    ]);
    assert_eq!(code(&sh), 0);
    let mut script = text(&sh.stdout);
    for k in v.as_object().unwrap().keys() {
        script.push_str(&format!("printf '%s\\000' \"${k}\"\n"));
    }
    let dash = netboot_testkit::require_tool("dash");
    let out = Command::new(dash).arg("-c").arg(&script).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let got: Vec<String> = text(&out.stdout)
        .split_terminator('\0')
        .map(str::to_string)
        .collect();
    let want: Vec<String> = v
        .as_object()
        .unwrap()
        .values()
        .map(|x| x.as_str().unwrap().to_string())
        .collect();
    assert_eq!(got, want);
    assert!(
        want.iter().any(|w| w.contains("$(not run)")),
        "the fixture carries a command substitution"
    );
}

#[test]
fn resolve_getltscfg_is_the_drop_in_format() {
    let o = ltsconf(&[
        "resolve",
        "--format",
        "getltscfg",
        &fixture("broken.lts.conf"),
        "--lenient",
    ]);
    assert_eq!(code(&o), 0);
    assert_eq!(text(&o.stdout), "A=\"kept\"\nB=\"x\"\nexport A\nexport B\n");
    let o = ltsconf(&[
        "resolve",
        "--format",
        "getltscfg",
        &fixture("farm.lts.conf"),
    ]);
    assert!(text(&o.stdout).contains("MOTD=\"it's \\\"quoted\\\" & $(not run)\"\n"));
    assert!(text(&o.stderr).contains("MOTD's value holds a quote"));
}

#[test]
fn resolve_refuses_errors_unless_lenient() {
    let o = ltsconf(&["resolve", &fixture("broken.lts.conf")]);
    assert_eq!(code(&o), 1);
    assert!(o.stdout.is_empty());
    let err = text(&o.stderr);
    assert!(
        err.contains("broken.lts.conf:3:6: error:") && err.contains("   |      ^"),
        "{err}"
    );
    let o = ltsconf(&["resolve", "--lenient", &fixture("broken.lts.conf")]);
    assert_eq!(code(&o), 0);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v, serde_json::json!({"A": "kept", "B": "x"}));
    // A LIKE cycle: reported, and resolving still ends.
    let o = ltsconf(&[
        "resolve",
        "--lenient",
        "--hostname",
        "a",
        &fixture("cycle.lts.conf"),
    ]);
    assert_eq!(code(&o), 0);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v, serde_json::json!({"A": "1", "X": "from-b"}));
}

#[test]
fn resolve_ltsp19_by_mac_pattern_and_include() {
    let o = ltsconf(&[
        "resolve",
        "--mac",
        "DC:A6:32:00:00:01",
        "--format",
        "json",
        &fixture("clients.ltsp.conf"),
    ]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["FSTAB_BOOT"], "/dev/mmcblk0p1 /boot vfat defaults 0 2");
    assert_eq!(v["HOSTNAME"], "pi-%{MAC}");
    assert_eq!(
        v["FSTAB_NFS"],
        "\"${nfs_ip}:/home /home nfs defaults,nolock 0 0\""
    );
    assert!(v.get("NAT").is_none(), "[server] is not for clients");
    assert!(
        text(&o.stderr).contains("FSTAB_NFS is shell text that LTSP expands on the client"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn explain_names_every_place() {
    let o = ltsconf(&[
        "explain",
        "--mac",
        "52:54:00:12:34:56",
        "keep_system_services",
        &fixture("farm.lts.conf"),
    ]);
    assert_eq!(code(&o), 0);
    let out = text(&o.stdout);
    let file = fixture("farm.lts.conf");
    assert!(
        out.contains("KEEP_SYSTEM_SERVICES = \"ssh kubelet containerd iscsid\""),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "set by    {file}:13:1 in [storage] (LIKE in [52:54:00:12:34:56])"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "overrides {file}:4:1 in [Default] (applies to every client)"
        )),
        "{out}"
    );
    let o = ltsconf(&["explain", "NOPE", &fixture("farm.lts.conf")]);
    assert!(text(&o.stdout).contains("NOPE is not set for this client"));
}

#[test]
fn include_is_followed_like_getltscfg() {
    let main = fixture("include-main.lts.conf");
    let o = ltsconf(&["check", &main]);
    assert_eq!(code(&o), 0, "{}", text(&o.stdout));
    let out = text(&o.stdout);
    assert!(
        out.contains(&format!(
            "{main}:4:1: warning: include `missing.lts.conf`: cannot read"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "{}:4:1: warning: section [Default] again",
            fixture("include-extra.lts.conf")
        )),
        "{out}"
    );
    assert!(out.contains("1 file included"), "{out}");
    let o = ltsconf(&["resolve", "--hostname", "pc01", &main]);
    assert_eq!(code(&o), 0);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"A": "main", "X": "from-extra", "B": "main"})
    );
    let o = ltsconf(&["explain", "--hostname", "pc01", "x", &main]);
    assert!(
        text(&o.stdout).contains(&format!(
            "set by    {}:3:1 in [extra]",
            fixture("include-extra.lts.conf")
        )),
        "{}",
        text(&o.stdout)
    );
}

#[test]
fn list_prints_a_family_in_ltsp_order() {
    let dir = std::env::temp_dir().join(format!("ltsconf-list-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("lts.conf");
    // A byte-order sort would put RCFILE_10 before RCFILE_2; LTSP's `sort -V` does not.
    std::fs::write(
        &file,
        "[Default]\n RCFILE_10 = \"ten\"\n RCFILE_2 = \"two\"\n FSTAB_1 = \"a b\"\n\
         [52:54:00:12:34:56]\n RCFILE_1 = \"one\"\n RCFILE_2 = NONE\n",
    )
    .unwrap();
    let f = file.to_string_lossy();
    let o = ltsconf(&["list", "RCFILE", &f]);
    assert_eq!((code(&o), text(&o.stdout)), (0, "two\nten\n".to_string()));
    // The MAC section adds RCFILE_1 and unsets RCFILE_2; a trailing `_` is accepted.
    let o = ltsconf(&["list", "--mac", "52-54-00-12-34-56", "RCFILE_", &f]);
    assert_eq!(text(&o.stdout), "one\nten\n");
    let o = ltsconf(&["list", "-0", "FSTAB", &f]);
    assert_eq!(o.stdout, b"a b\0");
    let o = ltsconf(&["list", "CRONTAB", &f]);
    assert_eq!((code(&o), text(&o.stdout)), (0, String::new()));
    std::fs::remove_dir_all(&dir).unwrap();
}
