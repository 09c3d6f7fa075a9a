/* oci-conformance console-socket receiver (the role of runc's contrib/cmd/recvtty): listens on
 * a unix socket, receives the pty master that the runtime sends with SCM_RIGHTS, and copies
 * everything read from it into a file until the container side closes (EIO) or the timeout.
 * Built by the suite with `gcc -static -O2`, like the probe; it runs on the host.
 *
 * Usage: console SOCKET OUTFILE TIMEOUT_SECONDS
 * The socket is bound under a temporary name and renamed once listening, so the suite can
 * wait for SOCKET to exist. The first line of OUTFILE is "payload: <name sent with the fd>". */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: console SOCKET OUTFILE TIMEOUT_SECONDS\n");
        return 2;
    }
    alarm((unsigned)atoi(argv[3]));
    char tmp[sizeof(((struct sockaddr_un *)0)->sun_path)];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", argv[1]) >= (int)sizeof tmp) {
        fprintf(stderr, "console: socket path too long\n");
        return 2;
    }
    int ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    memcpy(addr.sun_path, tmp, strlen(tmp)); /* fits: checked above */
    unlink(tmp);
    if (ls < 0 || bind(ls, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(ls, 1) != 0 ||
        rename(tmp, argv[1]) != 0) {
        perror("console: listen");
        return 1;
    }
    int conn = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
    if (conn < 0) {
        perror("console: accept");
        return 1;
    }
    char name[4096];
    struct iovec iov = {.iov_base = name, .iov_len = sizeof name - 1};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } control;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                         .msg_controllen = sizeof control.buf};
    ssize_t n = recvmsg(conn, &msg, MSG_CMSG_CLOEXEC);
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    if (n < 0 || cm == NULL || cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) {
        fprintf(stderr, "console: no file descriptor received\n");
        return 1;
    }
    name[n] = 0;
    int master;
    memcpy(&master, CMSG_DATA(cm), sizeof master);
    FILE *out = fopen(argv[2], "w");
    if (out == NULL) {
        perror("console: output");
        return 1;
    }
    fprintf(out, "payload: %s\n", name);
    fflush(out);
    char buf[4096];
    for (;;) {
        ssize_t r = read(master, buf, sizeof buf);
        if (r <= 0)
            break;
        fwrite(buf, 1, (size_t)r, out);
        fflush(out);
    }
    fclose(out);
    return 0;
}
