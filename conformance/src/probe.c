/* oci-conformance probe: runs inside a container and prints, as one JSON object on stdout, what
 * the process sees. Built by the suite with `gcc -static -O2` (the busybox rootfs has no libc).
 *
 * Usage: probe [PATH...]
 *   Every PATH is reported under "paths": does it exist, its type, mode, device numbers, symlink
 *   target, whether its file system is read-only (statvfs ST_RDONLY), whether an O_WRONLY open
 *   fails, the number of directory entries and the first bytes of a regular file.
 *
 * Keep this file free of anything beyond libc: it is the one piece of the suite that runs
 * inside the runtime under test. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/utsname.h>
#include <unistd.h>

extern char **environ;

static void json_str(const char *s) {
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", stdout); break;
        case '\\': fputs("\\\\", stdout); break;
        case '\n': fputs("\\n", stdout); break;
        case '\t': fputs("\\t", stdout); break;
        default:
            if (*p < 0x20 || *p >= 0x7f)
                printf("\\u%04x", *p);
            else
                putchar(*p);
        }
    }
    putchar('"');
}

/* Reads at most cap-1 bytes of a file into buf; returns the count or -1. */
static long read_file(const char *path, char *buf, size_t cap) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t got = 0;
    while (got + 1 < cap) {
        ssize_t n = read(fd, buf + got, cap - 1 - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    buf[got] = 0;
    return (long)got;
}

/* The value of "Key:\t..." in /proc/self/status, trimmed, or "" when absent. */
static void status_field(const char *status, const char *key, char *out, size_t cap) {
    out[0] = 0;
    size_t klen = strlen(key);
    for (const char *line = status; line && *line;) {
        if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
            const char *v = line + klen + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            size_t n = strcspn(v, "\n");
            if (n >= cap)
                n = cap - 1;
            memcpy(out, v, n);
            out[n] = 0;
            return;
        }
        line = strchr(line, '\n');
        if (line)
            line++;
    }
}

static void print_rlimit(const char *name, int resource, int *first) {
    struct rlimit rl;
    if (getrlimit(resource, &rl) != 0)
        return;
    printf("%s\"%s\":{\"soft\":", *first ? "" : ",", name);
    if (rl.rlim_cur == RLIM_INFINITY)
        printf("-1");
    else
        printf("%llu", (unsigned long long)rl.rlim_cur);
    printf(",\"hard\":");
    if (rl.rlim_max == RLIM_INFINITY)
        printf("-1");
    else
        printf("%llu", (unsigned long long)rl.rlim_max);
    putchar('}');
    *first = 0;
}

/* Result of a raw syscall: 0 on success, otherwise the errno it failed with. */
static int syscall_errno(long ret) { return ret < 0 ? errno : 0; }

/* SIGSYS as SECCOMP_RET_TRAP delivers it (seccomp(2): si_code SYS_SECCOMP, si_syscall the
 * trapped call). SECCOMP_RET_KILL_* cannot be caught, so this handler tells TRAP from KILL. */
static volatile sig_atomic_t sigsys_count, sigsys_code, sigsys_syscall;

static void on_sigsys(int sig, siginfo_t *info, void *ctx) {
    (void)sig;
    (void)ctx;
    sigsys_count++;
    sigsys_code = info->si_code;
    sigsys_syscall = info->si_syscall;
}

static void print_path(const char *path) {
    struct stat st;
    printf("{\"path\":");
    json_str(path);
    if (lstat(path, &st) != 0) {
        printf(",\"exists\":false,\"errno\":%d}", errno);
        return;
    }
    const char *type = S_ISREG(st.st_mode)    ? "file"
                       : S_ISDIR(st.st_mode)  ? "dir"
                       : S_ISLNK(st.st_mode)  ? "symlink"
                       : S_ISCHR(st.st_mode)  ? "char"
                       : S_ISBLK(st.st_mode)  ? "block"
                       : S_ISFIFO(st.st_mode) ? "fifo"
                                              : "other";
    printf(",\"exists\":true,\"type\":\"%s\",\"mode\":%u,\"uid\":%u,\"gid\":%u", type,
           (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid, (unsigned)st.st_gid);
    if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
        printf(",\"major\":%u,\"minor\":%u", major(st.st_rdev), minor(st.st_rdev));
        /* The device cgroup answers EPERM on open; a missing driver ENXIO/ENODEV. */
        int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
        printf(",\"open_errno\":%d", fd < 0 ? errno : 0);
        if (fd >= 0)
            close(fd);
    }
    if (S_ISLNK(st.st_mode)) {
        char target[PATH_MAX];
        ssize_t n = readlink(path, target, sizeof target - 1);
        if (n >= 0) {
            target[n] = 0;
            printf(",\"target\":");
            json_str(target);
        }
    }
    struct statvfs vfs;
    if (statvfs(path, &vfs) == 0)
        printf(",\"readonly_fs\":%s", (vfs.f_flag & ST_RDONLY) ? "true" : "false");
    if (S_ISREG(st.st_mode)) {
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        printf(",\"write_errno\":%d", fd < 0 ? errno : 0);
        if (fd >= 0)
            close(fd);
        char buf[512];
        long n = read_file(path, buf, sizeof buf);
        if (n >= 0) {
            printf(",\"content\":");
            json_str(buf);
        } else {
            printf(",\"read_errno\":%d", errno);
        }
    }
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (d) {
            int entries = 0;
            struct dirent *e;
            while ((e = readdir(d)) != NULL)
                if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
                    entries++;
            closedir(d);
            printf(",\"entries\":%d", entries);
        }
        /* Can a file be created in it? (read-only mounts answer EROFS) */
        char probe_path[PATH_MAX];
        snprintf(probe_path, sizeof probe_path, "%s/.oci-conformance-write-test", path);
        int fd = open(probe_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        printf(",\"create_errno\":%d", fd < 0 ? errno : 0);
        if (fd >= 0) {
            close(fd);
            unlink(probe_path);
        }
    }
    putchar('}');
}

int main(int argc, char **argv) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigsys;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSYS, &sa, NULL);

    static char status[16384];
    if (read_file("/proc/self/status", status, sizeof status) < 0)
        status[0] = 0;

    printf("{\"args\":[");
    for (int i = 0; i < argc; i++) {
        if (i)
            putchar(',');
        json_str(argv[i]);
    }
    printf("],\"pid\":%d,\"ppid\":%d", (int)getpid(), (int)getppid());
    printf(",\"uid\":%u,\"gid\":%u,\"euid\":%u,\"egid\":%u", (unsigned)getuid(), (unsigned)getgid(),
           (unsigned)geteuid(), (unsigned)getegid());

    gid_t groups[256];
    int ngroups = getgroups(256, groups);
    printf(",\"groups\":[");
    for (int i = 0; i < ngroups; i++)
        printf("%s%u", i ? "," : "", (unsigned)groups[i]);
    putchar(']');

    static const char *status_keys[] = {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb",
                                        "NoNewPrivs", "Seccomp", "State"};
    printf(",\"status\":{");
    for (size_t i = 0; i < sizeof status_keys / sizeof *status_keys; i++) {
        char value[256];
        status_field(status, status_keys[i], value, sizeof value);
        printf("%s\"%s\":", i ? "," : "", status_keys[i]);
        json_str(value);
    }
    putchar('}');

    printf(",\"tty\":[%d,%d,%d]", isatty(0), isatty(1), isatty(2));

    char cwd[PATH_MAX];
    printf(",\"cwd\":");
    json_str(getcwd(cwd, sizeof cwd) ? cwd : "");

    printf(",\"env\":[");
    for (char **e = environ; e && *e; e++) {
        if (e != environ)
            putchar(',');
        json_str(*e);
    }
    putchar(']');

    mode_t mask = umask(0);
    umask(mask);
    printf(",\"umask\":%u", (unsigned)mask);

    printf(",\"rlimits\":{");
    int first = 1;
    print_rlimit("RLIMIT_NOFILE", RLIMIT_NOFILE, &first);
    print_rlimit("RLIMIT_CORE", RLIMIT_CORE, &first);
    print_rlimit("RLIMIT_NPROC", RLIMIT_NPROC, &first);
    print_rlimit("RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE, &first);
    print_rlimit("RLIMIT_STACK", RLIMIT_STACK, &first);
    putchar('}');

    struct utsname uts;
    if (uname(&uts) == 0) {
        printf(",\"hostname\":");
        json_str(uts.nodename);
        printf(",\"domainname\":");
        json_str(uts.domainname);
    }

    static const char *ns_names[] = {"cgroup", "ipc",  "mnt",  "net",
                                     "pid",    "time", "user", "uts"};
    printf(",\"namespaces\":{");
    first = 1;
    for (size_t i = 0; i < sizeof ns_names / sizeof *ns_names; i++) {
        char link[64], target[128];
        snprintf(link, sizeof link, "/proc/self/ns/%s", ns_names[i]);
        ssize_t n = readlink(link, target, sizeof target - 1);
        if (n < 0)
            continue;
        target[n] = 0;
        printf("%s\"%s\":", first ? "" : ",", ns_names[i]);
        json_str(target);
        first = 0;
    }
    putchar('}');

    static char buf[65536];
    printf(",\"uid_map\":");
    json_str(read_file("/proc/self/uid_map", buf, sizeof buf) >= 0 ? buf : "");
    printf(",\"gid_map\":");
    json_str(read_file("/proc/self/gid_map", buf, sizeof buf) >= 0 ? buf : "");
    printf(",\"oom_score_adj\":");
    json_str(read_file("/proc/self/oom_score_adj", buf, sizeof buf) >= 0 ? buf : "");

    printf(",\"mountinfo\":[");
    if (read_file("/proc/self/mountinfo", buf, sizeof buf) >= 0) {
        first = 1;
        for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
            if (!first)
                putchar(',');
            json_str(line);
            first = 0;
        }
    }
    putchar(']');

    /* System calls the seccomp cases filter: 0 or the errno they failed with. Neither changes
     * any state. getpriority(PRIO_PROCESS = 0 | PRIO_PGRP = 1 | PRIO_USER = 2, 0) differ only in
     * argument 0, which the argument-operator cases compare. */
    printf(",\"syscalls\":{\"getpgid\":%d", syscall_errno(syscall(SYS_getpgid, 0)));
    printf(",\"getpriority_process\":%d", syscall_errno(syscall(SYS_getpriority, PRIO_PROCESS, 0)));
    printf(",\"getpriority_pgrp\":%d", syscall_errno(syscall(SYS_getpriority, PRIO_PGRP, 0)));
    printf(",\"getpriority_user\":%d}", syscall_errno(syscall(SYS_getpriority, PRIO_USER, 0)));
    printf(",\"sigsys\":{\"count\":%d,\"code\":%d,\"syscall\":%d}", (int)sigsys_count,
           (int)sigsys_code, (int)sigsys_syscall);

    printf(",\"paths\":[");
    for (int i = 1; i < argc; i++) {
        if (i > 1)
            putchar(',');
        print_path(argv[i]);
    }
    printf("]}\n");
    fflush(stdout);
    return 0;
}
