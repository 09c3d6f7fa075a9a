/* A probe run inside test containers: tries the system calls a seccomp profile must stop and
 * prints one line per attempt, "<name> ok" or "<name> <errno name>". Built statically by the
 * tests (gcc -static) because the busybox rootfs has no libc. */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void report(const char *name, long ret) {
    if (ret >= 0)
        printf("%s ok\n", name);
    else
        printf("%s %s\n", name, strerrorname_np(errno));
}

int main(void) {
    /* keyctl(KEYCTL_JOIN_SESSION_KEYRING, NULL): a new session keyring. */
    report("keyctl", syscall(SYS_keyctl, 1, 0, 0, 0, 0));
    /* clone with a namespace flag, fork-style (no new stack). */
    long pid = syscall(SYS_clone, CLONE_NEWUTS | SIGCHLD, 0, 0, 0, 0);
    if (pid == 0)
        _exit(0);
    report("clone-newuts", pid);
    if (pid > 0)
        waitpid(pid, NULL, 0);
    /* A plain fork must still work. */
    pid = fork();
    if (pid == 0) {
        pause();
        _exit(0);
    }
    report("fork", pid);
    /* ptrace another process of the container. */
    if (pid > 0) {
        report("ptrace-attach", ptrace(PTRACE_ATTACH, pid, 0, 0));
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    report("unshare-newns", unshare(CLONE_NEWNS));
    report("getpid", getpid());
    return 0;
}
