//! Privileges, setuid, capabilities, fail-closed admission.

use codencer_sandbox::{Enforcement, Layer, NetworkSpec};

use crate::harness::{self, Fixture};

#[test]
fn setuid_binary_gains_nothing() {
    let fx = Fixture::new();
    let out = fx.run(
        "stat -c %A /usr/bin/passwd; su -c id root </dev/null 2>&1; passwd -S 2>&1; id -u; grep -E '^(CapEff|CapPrm|NoNewPrivs)' /proc/self/status",
    );
    out.ok().never("uid=0").expect(&[
        "1000\n",
        "CapEff:\t0000000000000000",
        "CapPrm:\t0000000000000000",
        "NoNewPrivs:\t1",
    ]);
}

#[test]
fn setuid_copy_in_worktree_gains_nothing() {
    let fx = Fixture::new();
    fx.run("cp /usr/bin/id ./myid && chmod u+s ./myid; ./myid -u; stat -c %A ./myid")
        .ok()
        .expect(&["1000\n"]);
}

#[test]
fn no_capabilities_and_bounding_set_empty() {
    let fx = Fixture::new();
    fx.run("grep -E '^Cap(Inh|Bnd|Amb)' /proc/self/status")
        .ok()
        .expect(&[
            "CapInh:\t0000000000000000",
            "CapBnd:\t0000000000000000",
            "CapAmb:\t0000000000000000",
        ]);
}

#[test]
fn runs_as_non_root_with_a_name() {
    let fx = Fixture::new();
    fx.run("id; whoami; echo $HOME; hostname")
        .ok()
        .expect(&[
            "uid=1000(codencer)",
            "codencer\n",
            "/home/codencer",
            "codencer\n",
        ])
        .never("uid=0");
}

#[test]
fn all_layers_reported_enforced() {
    let fx = Fixture::new();
    let out = fx.run("true");
    out.ok();
    for layer in Layer::ALL {
        let l = out
            .report
            .layer(layer)
            .unwrap_or_else(|| panic!("{layer:?} missing:\n{out}"));
        assert_eq!(l.status, Enforcement::Enforced, "{layer:?}:\n{out}");
    }
    assert!(out.report.setup_error.is_none());
}

#[test]
fn strict_refuses_host_network_fail_closed() {
    let fx = Fixture::new();
    let mut spec = fx.spec("touch RAN");
    spec.sandbox.strict = true;
    spec.sandbox.network = NetworkSpec::Host;
    let out = harness::run(&spec, None);
    let err = out
        .report
        .setup_error
        .clone()
        .unwrap_or_else(|| panic!("not refused:\n{out}"));
    assert!(err.contains("network") && err.contains("Fix"), "{err}");
    assert!(out.report.exit.is_none());
    assert!(!fx.path("wt/RAN").exists(), "the process must not start");
}

#[test]
fn strict_admits_when_everything_is_enforced() {
    let fx = Fixture::new();
    let mut spec = fx.spec("echo strict-ok");
    spec.sandbox.strict = true;
    spec.sandbox.limits.cpu_seconds = Some(30);
    spec.sandbox.limits.open_files = Some(256);
    harness::run(&spec, None).ok().expect(&["strict-ok"]);
}

#[test]
fn host_network_still_scopes_abstract_sockets() {
    let fx = Fixture::new();
    let name = format!("codencer-hostile-host-{}", std::process::id());
    let addr =
        <std::os::unix::net::SocketAddr as std::os::linux::net::SocketAddrExt>::from_abstract_name(
            name.as_bytes(),
        )
        .unwrap();
    let _listener = std::os::unix::net::UnixListener::bind_addr(&addr).unwrap();
    let mut spec = fx.spec(&format!(
        "probe abstract_connect {name}; probe abstract_self in-{name}"
    ));
    spec.sandbox.network = NetworkSpec::Host;
    let out = harness::run(&spec, None);
    out.ok().expect(&["DENIED EPERM\nOK"]);
    assert_eq!(
        out.report.layer(Layer::Network).unwrap().status,
        Enforcement::NotEnforced
    );
}

#[test]
fn missing_program_is_a_setup_error_not_a_hang() {
    let fx = Fixture::new();
    let mut spec = fx.spec("");
    spec.argv = vec!["definitely-not-a-program".into()];
    let out = harness::run(&spec, None);
    assert!(
        out.report
            .setup_error
            .as_deref()
            .unwrap_or("")
            .contains("not found"),
        "{out}"
    );
}
