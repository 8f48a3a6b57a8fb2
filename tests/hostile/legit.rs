//! The legitimate path: what an executor needs keeps working.

use crate::harness::Fixture;

#[test]
fn git_status_diff_commit() {
    let fx = Fixture::new();
    let out = fx.run("echo more >> app.txt && echo new > new.txt && git status --short && git diff --stat && git add -A && git commit -qm work && git log --oneline | head -2");
    out.ok()
        .expect(&[" M app.txt", "?? new.txt", "1 file changed", "work"]);
    let log = codencer_tests::git(
        &fx.path("repo"),
        &["log", "--oneline", crate::harness::ATTEMPT_BRANCH],
    );
    assert!(log.contains("work"));
}

#[test]
fn compiler_and_test_runner_from_usr() {
    let fx = Fixture::new();
    std::fs::write(
        fx.path("wt/hello.c"),
        "#include <stdio.h>\nint main(void){puts(\"hello from cc\");return 0;}\n",
    )
    .unwrap();
    std::fs::write(
        fx.path("wt/Makefile"),
        "test: hello\n\t./hello\nhello: hello.c\n\tcc -o hello hello.c\n",
    )
    .unwrap();
    fx.run("make -s test && cc -o /tmp/h2 hello.c && /tmp/h2 && perl -e 'print \"perl ok\\n\"'")
        .ok()
        .expect(&["hello from cc\nhello from cc", "perl ok"]);
}

#[test]
fn shell_tools_tmp_home_and_devices() {
    let fx = Fixture::new();
    fx.run("mkdir -p $HOME/.cache/x && echo c > $HOME/.cache/x/f && cat $HOME/.cache/x/f; echo t > /tmp/t && cat /tmp/t; head -c 8 /dev/urandom | wc -c; echo > /dev/null && echo null-ok; ls /dev/pts >/dev/null && echo pts-ok; echo shm > /dev/shm/s && cat /dev/shm/s")
        .ok()
        .expect(&["c\n", "t\n", "8\n", "null-ok", "pts-ok", "shm"]);
}

#[test]
fn pipes_and_sigpipe_behave() {
    let fx = Fixture::new();
    fx.run("yes | head -n 3 | wc -l; seq 1 100000 | head -1")
        .ok()
        .expect(&["3\n", "1\n"]);
}

#[test]
fn read_only_install_dir_is_readable_and_executable() {
    let fx = Fixture::new();
    let install = fx.path("install");
    std::fs::create_dir_all(&install).unwrap();
    std::fs::write(install.join("tool"), "#!/bin/sh\necho tool-ran\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(install.join("tool"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut spec = fx.spec(&format!(
        "{i}/tool; touch {i}/evil && echo INSTALL-WRITTEN; true",
        i = install.display()
    ));
    spec.sandbox.read_only.push(install.clone());
    crate::harness::run(&spec, None)
        .ok()
        .expect(&["tool-ran"])
        .never("INSTALL-WRITTEN");
    assert!(!install.join("evil").exists());
}

#[test]
fn read_write_extra_dir_is_writable() {
    let fx = Fixture::new();
    let cache = fx.path("cache");
    std::fs::create_dir_all(&cache).unwrap();
    let mut spec = fx.spec(&format!(
        "echo cached > {}/c && echo RW-OK",
        cache.display()
    ));
    spec.sandbox.read_write.push(cache.clone());
    crate::harness::run(&spec, None).ok().expect(&["RW-OK"]);
    assert_eq!(
        std::fs::read_to_string(cache.join("c")).unwrap(),
        "cached\n"
    );
}

#[test]
fn exit_code_and_signal_reported() {
    let fx = Fixture::new();
    let out = fx.run("exit 42");
    assert_eq!(out.code(), 42);
    let out = fx.run("kill -SEGV $$");
    assert!(
        matches!(
            &out.report.exit,
            Some(codencer_sandbox::ExitStatus::Signaled { signal: 11, .. })
        ),
        "{out}"
    );
}
