//! Reads and writes outside the worktree.

use crate::harness::Fixture;

#[test]
fn read_operator_ssh_key() {
    let fx = Fixture::new();
    let key = fx.path("home/.ssh/id_rsa");
    fx.run(&format!("cat {} 2>&1; echo; cat app.txt", key.display()))
        .ok()
        .never("OPERATOR-SSH-KEY")
        .expect(&["line 1"]);
}

#[test]
fn read_etc_shadow() {
    let fx = Fixture::new();
    fx.run(
        "cat /etc/shadow && echo SHADOW-READ; grep -c codencer /etc/passwd; getent passwd codencer",
    )
    .ok()
    .never("SHADOW-READ")
    .expect(&["1\n", "codencer:x:1000:1000"]);
}

#[test]
fn read_root_home() {
    let fx = Fixture::new();
    fx.run("ls -la /root && echo ROOT-LISTED; echo mine > $HOME/f && cat $HOME/f")
        .ok()
        .never("ROOT-LISTED")
        .expect(&["mine"]);
}

#[test]
fn read_other_worktree() {
    let fx = Fixture::new();
    let other = fx.path("other-wt/other-secret.txt");
    fx.run(&format!(
        "cat {} ; ls {} && echo OTHER-LISTED; cat app.txt",
        other.display(),
        fx.path("other-wt").display()
    ))
    .ok()
    .never("OTHER-WORKTREE-SECRET")
    .never("OTHER-LISTED")
    .expect(&["line 1"]);
}

#[test]
fn other_worktree_git_admin_dir_hidden() {
    let fx = Fixture::new();
    let admin = fx.path("repo/.git/worktrees");
    fx.run(&format!("ls {}", admin.display()))
        .ok()
        .expect(&["wt\n"])
        .never("other-wt");
}

#[test]
fn read_store_db() {
    let fx = Fixture::new();
    fx.run(&format!(
        "cat {} ; ls {} && echo STORE-LISTED; true",
        fx.path("store/codencer.db").display(),
        fx.path("store").display()
    ))
    .ok()
    .never("STORE-DB-CONTENT")
    .never("STORE-LISTED");
}

#[test]
fn hidden_path_inside_worktree() {
    let fx = Fixture::new();
    std::fs::write(fx.path("wt/.env"), "WT-DOTENV-SECRET\n").unwrap();
    let mut spec = fx.spec("cat .env; echo; cat app.txt");
    spec.sandbox.hidden = vec![fx.path("wt/.env")];
    crate::harness::run(&spec, None)
        .ok()
        .never("WT-DOTENV-SECRET")
        .expect(&["line 1"]);
}

#[test]
fn write_outside_worktree() {
    let fx = Fixture::new();
    let target = fx.path("outside/target.txt");
    let out = fx.run(&format!(
        "echo PWNED > {t}; echo PWNED > {root}/new.txt; echo ok > inside.txt && echo WROTE-INSIDE",
        t = target.display(),
        root = fx.root().display()
    ));
    out.ok().expect(&["WROTE-INSIDE"]);
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "ORIGINAL\n");
    assert!(!fx.path("new.txt").exists());
    assert_eq!(
        std::fs::read_to_string(fx.path("wt/inside.txt")).unwrap(),
        "ok\n"
    );
}

#[test]
fn written_files_belong_to_the_operator() {
    let fx = Fixture::new();
    fx.run("echo x > owned.txt; stat -c %u owned.txt")
        .ok()
        .expect(&["1000"]);
    let host = std::fs::metadata(fx.path("wt/owned.txt")).unwrap();
    let me = std::fs::metadata(fx.path("wt/app.txt")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(host.uid(), me.uid(), "file owned by the operator outside");
}

#[test]
fn write_through_symlink_pointing_out() {
    let fx = Fixture::new();
    let target = fx.path("outside/target.txt");
    std::os::unix::fs::symlink(&target, fx.path("wt/link")).unwrap();
    std::os::unix::fs::symlink("../outside/target.txt", fx.path("wt/rel-link")).unwrap();
    let out = fx
        .run("echo PWNED > link; echo PWNED > rel-link; ln -s app.txt good-link && cat good-link");
    out.ok().expect(&["line 1"]);
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "ORIGINAL\n");
}

#[test]
fn write_via_dotdot() {
    let fx = Fixture::new();
    let out = fx.run("echo PWNED > ../escape.txt; echo PWNED > ../../escape.txt; mkdir -p sub && echo ok > sub/../dotdot-ok.txt && cat dotdot-ok.txt");
    out.ok().expect(&["ok"]);
    assert!(!fx.path("escape.txt").exists());
    assert!(!fx.root().parent().unwrap().join("escape.txt").exists());
}

#[test]
fn hardlink_to_file_outside() {
    let fx = Fixture::new();
    let target = fx.path("outside/target.txt");
    let out = fx.run(&format!(
        "ln {} hl && echo LINKED-OUT; ln /usr/bin/env env-hl && echo LINKED-USR; ln app.txt inside-hl && echo LINKED-INSIDE",
        target.display()
    ));
    out.ok()
        .never("LINKED-OUT")
        .never("LINKED-USR")
        .expect(&["LINKED-INSIDE"]);
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "ORIGINAL\n");
}

#[test]
fn write_system_dirs() {
    let fx = Fixture::new();
    fx.run("touch /usr/bin/evil && echo USR-WRITTEN; touch /etc/evil && echo ETC-WRITTEN; touch /evil && echo ROOT-WRITTEN; touch /tmp/fine && echo TMP-OK")
        .ok()
        .never("USR-WRITTEN")
        .never("ETC-WRITTEN")
        .never("ROOT-WRITTEN")
        .expect(&["TMP-OK"]);
    assert!(!std::path::Path::new("/usr/bin/evil").exists());
}

#[test]
fn git_hooks_and_config_not_writable() {
    let fx = Fixture::new();
    let git = fx.path("repo/.git");
    let out = fx.run(&format!(
        "echo 'touch /tmp/pwned' > {g}/hooks/post-checkout && echo HOOK-WRITTEN; git config --file {g}/config core.hooksPath /tmp && echo CONFIG-WRITTEN; echo change >> app.txt && git commit -qam change && echo COMMITTED",
        g = git.display()
    ));
    out.ok()
        .never("HOOK-WRITTEN")
        .never("CONFIG-WRITTEN")
        .expect(&["COMMITTED"]);
    assert!(!git.join("hooks/post-checkout").exists());
    assert!(
        !std::fs::read_to_string(git.join("config"))
            .unwrap()
            .contains("hooksPath")
    );
    let log = codencer_tests::git(
        &fx.path("repo"),
        &["log", "--oneline", crate::harness::ATTEMPT_BRANCH],
    );
    assert!(log.contains("change"), "commit visible outside: {log}");
}

#[test]
fn git_links_and_other_branches_not_writable() {
    let fx = Fixture::new();
    let git = fx.path("repo/.git");
    let main_before = codencer_tests::git(&fx.path("repo"), &["rev-parse", "main"]);
    let link_before = std::fs::read_to_string(fx.path("wt/.git")).unwrap();
    let out = fx.run(&format!(
        "echo 'gitdir: {g}' > .git && echo LINK-WRITTEN; rm -f .git && echo LINK-REMOVED; \
         echo ../../.. > {g}/worktrees/wt/commondir && echo COMMONDIR-WRITTEN; \
         git update-ref refs/heads/main HEAD~0 2>/dev/null && echo MAIN-MOVED; \
         git branch -f other HEAD 2>/dev/null && echo OTHER-MOVED; \
         echo change >> app.txt && git commit -qam change && echo COMMITTED",
        g = git.display()
    ));
    out.ok()
        .never("LINK-WRITTEN")
        .never("LINK-REMOVED")
        .never("COMMONDIR-WRITTEN")
        .never("MAIN-MOVED")
        .never("OTHER-MOVED")
        .expect(&["COMMITTED"]);
    // Outside: the user's branch and the link are as they were; the commit is on the
    // worktree's own branch.
    assert_eq!(
        codencer_tests::git(&fx.path("repo"), &["rev-parse", "main"]),
        main_before
    );
    assert_eq!(
        std::fs::read_to_string(fx.path("wt/.git")).unwrap(),
        link_before
    );
    let log = codencer_tests::git(
        &fx.path("repo"),
        &["log", "--oneline", crate::harness::ATTEMPT_BRANCH],
    );
    assert!(log.contains("change"), "{log}");
}

#[test]
fn other_worktree_branch_ref_is_the_only_shared_state() {
    let fx = Fixture::new();
    // It exists outside, so not seeing it inside is the sandbox's doing.
    assert!(fx.path("repo/.git/worktrees/other-wt").is_dir());
    fx.run(&format!(
        "ls {}/worktrees/other-wt && echo OTHER-ADMIN; true",
        fx.path("repo/.git").display()
    ))
    .ok()
    .never("OTHER-ADMIN");
}

#[test]
fn create_device_node() {
    let fx = Fixture::new();
    fx.run("probe mknod ./nod; mknod ./nod2 c 1 3 && echo MKNOD-OK; head -c 4 /dev/zero | wc -c")
        .ok()
        .expect(&["DENIED", "4"])
        .never("MKNOD-OK");
    assert!(!fx.path("wt/nod").exists());
    assert!(!fx.path("wt/nod2").exists());
}

#[test]
fn host_sockets_dirs_absent() {
    let fx = Fixture::new();
    fx.run("ls /run /var/run /sys /home/* 2>&1; test -e /var/run/docker.sock && echo DOCKER; echo done")
        .ok()
        .never("DOCKER")
        .never("dbus")
        .expect(&["done"]);
}
