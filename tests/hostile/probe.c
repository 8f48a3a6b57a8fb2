/* Hostile probe: each subcommand tries one forbidden (or allowed) action and prints
 * "OK" or "DENIED <errno name>". Run inside the sandbox by the hostile suite. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/io_uring.h>
#include <linux/perf_event.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/sysmacros.h>
#include <sys/stat.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

static int report(long rc) {
    if (rc < 0) { printf("DENIED %s\n", strerrorname_np(errno)); return 1; }
    printf("OK\n");
    return 0;
}

static int child_sleeper(void) {
    pid_t p = fork();
    if (p == 0) { pause(); _exit(0); }
    return p;
}

static int unix_connect(const char *path, int abstract) {
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    socklen_t len;
    if (abstract) { a.sun_path[0] = 0; strncpy(a.sun_path + 1, path, sizeof a.sun_path - 2); len = offsetof(struct sockaddr_un, sun_path) + 1 + strlen(path); }
    else { strncpy(a.sun_path, path, sizeof a.sun_path - 1); len = sizeof a; }
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    return report(connect(s, (struct sockaddr *)&a, len));
}

static int unix_self(const char *name, int abstract) {
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    socklen_t len;
    if (abstract) { strncpy(a.sun_path + 1, name, sizeof a.sun_path - 2); len = offsetof(struct sockaddr_un, sun_path) + 1 + strlen(name); }
    else { strncpy(a.sun_path, name, sizeof a.sun_path - 1); len = sizeof a; }
    int l = socket(AF_UNIX, SOCK_STREAM, 0);
    if (bind(l, (struct sockaddr *)&a, len) < 0 || listen(l, 1) < 0) return report(-1);
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    return report(connect(s, (struct sockaddr *)&a, len));
}

static int inet(int type, int proto, const char *ip, int port) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, ip, &a.sin_addr);
    int s = socket(AF_INET, type, proto);
    if (s < 0) return report(-1);
    if (type == SOCK_STREAM) return report(connect(s, (struct sockaddr *)&a, sizeof a));
    char buf[8] = {8, 0, 0, 0, 0, 0, 0, 0};
    return report(sendto(s, buf, sizeof buf, 0, (struct sockaddr *)&a, sizeof a));
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    const char *c = argv[1];
    setvbuf(stdout, NULL, _IONBF, 0);
    if (!strcmp(c, "ptrace_parent")) return report(ptrace(PTRACE_ATTACH, getppid(), 0, 0));
    if (!strcmp(c, "ptrace_pid")) return report(ptrace(PTRACE_ATTACH, atoi(argv[2]), 0, 0));
    if (!strcmp(c, "ptrace_child")) { pid_t p = child_sleeper(); long r = ptrace(PTRACE_ATTACH, p, 0, 0); kill(p, SIGKILL); return report(r); }
    if (!strcmp(c, "ptrace_traceme")) return report(ptrace(PTRACE_TRACEME, 0, 0, 0));
    if (!strcmp(c, "vm_read")) {
        pid_t p = child_sleeper(); char buf[16]; struct iovec l = {buf, 16}, r = {(void *)&buf, 16};
        long rc = syscall(SYS_process_vm_readv, p, &l, 1, &r, 1, 0); kill(p, SIGKILL); return report(rc);
    }
    if (!strcmp(c, "io_uring")) { struct io_uring_params p; memset(&p, 0, sizeof p); return report(syscall(SYS_io_uring_setup, 4, &p)); }
    if (!strcmp(c, "keyctl")) return report(syscall(SYS_keyctl, 0 /* GET_KEYRING_ID */, -3, 0));
    if (!strcmp(c, "add_key")) return report(syscall(SYS_add_key, "user", "x", "y", 1, -3));
    if (!strcmp(c, "bpf")) { union bpf_attr a; memset(&a, 0, sizeof a); return report(syscall(SYS_bpf, BPF_MAP_CREATE, &a, sizeof a)); }
    if (!strcmp(c, "perf")) { struct perf_event_attr a; memset(&a, 0, sizeof a); a.size = sizeof a; a.type = PERF_TYPE_SOFTWARE; a.config = PERF_COUNT_SW_CPU_CLOCK; return report(syscall(SYS_perf_event_open, &a, 0, -1, -1, 0)); }
    if (!strcmp(c, "unshare_user")) return report(unshare(CLONE_NEWUSER));
    if (!strcmp(c, "unshare_mount")) return report(unshare(CLONE_NEWNS));
    if (!strcmp(c, "clone_user")) {
        long r = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
        if (r == 0) _exit(0);
        if (r > 0) waitpid(r, 0, 0);
        return report(r);
    }
    if (!strcmp(c, "clone3")) { struct { unsigned long long f[11]; } a; memset(&a, 0, sizeof a); a.f[0] = CLONE_NEWUSER; a.f[4] = SIGCHLD; long r = syscall(435, &a, sizeof a); if (r == 0) _exit(0); return report(r); }
    if (!strcmp(c, "fork")) { pid_t p = fork(); if (p == 0) _exit(0); waitpid(p, 0, 0); return report(p); }
    if (!strcmp(c, "mount")) return report(syscall(SYS_mount, "none", "/tmp", "tmpfs", 0, 0));
    if (!strcmp(c, "chroot")) return report(chroot("/tmp"));
    if (!strcmp(c, "setns")) { int fd = open("/proc/1/ns/mnt", O_RDONLY); if (fd < 0) return report(-1); return report(setns(fd, 0)); }
    if (!strcmp(c, "mknod")) return report(mknod(argv[2], S_IFCHR | 0666, makedev(1, 3)));
    if (!strcmp(c, "open_by_handle")) return report(syscall(SYS_open_by_handle_at, AT_FDCWD, NULL, O_RDONLY));
    if (!strcmp(c, "tiocsti") || !strcmp(c, "tiocsti_high") || !strcmp(c, "tiocgwinsz")) {
        int m = posix_openpt(O_RDWR | O_NOCTTY);
        if (m < 0 || grantpt(m) < 0 || unlockpt(m) < 0) { printf("NOPTY %s\n", strerrorname_np(errno)); return 3; }
        int s = open(ptsname(m), O_RDWR | O_NOCTTY);
        if (s < 0) { printf("NOPTY %s\n", strerrorname_np(errno)); return 3; }
        if (!strcmp(c, "tiocgwinsz")) { struct winsize w; return report(ioctl(s, TIOCGWINSZ, &w)); }
        char ch = 'x';
        unsigned long req = TIOCSTI;
        if (!strcmp(c, "tiocsti_high")) req |= 0xdead000000000000UL;
        return report(syscall(SYS_ioctl, s, req, &ch));
    }
    if (!strcmp(c, "unix_connect")) return unix_connect(argv[2], 0);
    if (!strcmp(c, "abstract_connect")) return unix_connect(argv[2], 1);
    if (!strcmp(c, "unix_self")) return unix_self(argv[2], 0);
    if (!strcmp(c, "abstract_self")) return unix_self(argv[2], 1);
    if (!strcmp(c, "tcp")) return inet(SOCK_STREAM, 0, argv[2], atoi(argv[3]));
    if (!strcmp(c, "udp")) return inet(SOCK_DGRAM, 0, argv[2], atoi(argv[3]));
    if (!strcmp(c, "icmp")) return inet(SOCK_DGRAM, IPPROTO_ICMP, argv[2], 0);
    if (!strcmp(c, "raw")) return inet(SOCK_RAW, IPPROTO_ICMP, argv[2], 0);
    if (!strcmp(c, "kill")) return report(kill(atoi(argv[2]), argc > 3 ? atoi(argv[3]) : 0));
    if (!strcmp(c, "alloc")) {
        long mb = atol(argv[2]);
        for (long i = 0; i < mb; i++) {
            char *p = malloc(1 << 20);
            if (!p) { printf("ALLOC_FAILED at %ld MiB\n", i); return 4; }
            memset(p, 1, 1 << 20);
        }
        printf("ALLOCATED %ld MiB\n", mb);
        return 0;
    }
    if (!strcmp(c, "spin")) { for (;;) {} }
    if (!strcmp(c, "forks")) {
        int n = atoi(argv[2]), ok = 0, failed = 0;
        for (int i = 0; i < n; i++) {
            pid_t p = fork();
            if (p == 0) { pause(); _exit(0); }
            if (p < 0) failed++; else ok++;
        }
        printf("FORKED %d FAILED %d\n", ok, failed);
        return 0;
    }
    fprintf(stderr, "unknown probe %s\n", c);
    return 2;
}
