/* faults.c — system calls made to fail through seccomp user notification (see faults.h). */
#define _GNU_SOURCE
#include "tests/support/faults.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__)
#define FAULT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define FAULT_ARCH AUDIT_ARCH_AARCH64
#else
#error "faults.c: add this architecture's AUDIT_ARCH value"
#endif

/* The calls stopped, and which rule kind each belongs to. */
static const struct {
    long nr;
    bk_fault_call call;
} trapped[] = {
    {SYS_write, BK_FAULT_WRITE},     {SYS_pwrite64, BK_FAULT_WRITE},  {SYS_writev, BK_FAULT_WRITE},
    {SYS_pwritev, BK_FAULT_WRITE},   {SYS_pwritev2, BK_FAULT_WRITE},  {SYS_fsync, BK_FAULT_FSYNC},
    {SYS_fdatasync, BK_FAULT_FSYNC},
#ifdef SYS_rename
    {SYS_rename, BK_FAULT_RENAME},
#endif
    {SYS_renameat, BK_FAULT_RENAME}, {SYS_renameat2, BK_FAULT_RENAME}, {SYS_close, BK_FAULT_CLOSE},
};
enum { N_TRAPPED = sizeof trapped / sizeof trapped[0] };

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* In the child: the filter, whose listener descriptor is returned (-1 on failure). */
static int install_filter(void) {
    struct sock_filter f[4 + 2 * N_TRAPPED + 1];
    int k = 0;
    f[k++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
    f[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, FAULT_ARCH, 1, 0);
    f[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    f[k++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
    for (int i = 0; i < N_TRAPPED; i++) {
        f[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)trapped[i].nr, 0, 1);
        f[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF);
    }
    f[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    struct sock_fprog prog = {(unsigned short)k, f};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return -1;
    return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
}

static bool send_fd(int sock, int fd) {
    char byte = 0, control[CMSG_SPACE(sizeof(int))];
    memset(control, 0, sizeof control);
    struct iovec iov = {&byte, 1};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control};
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof fd);
    return sendmsg(sock, &m, 0) == 1;
}

static int receive_fd(int sock) {
    char byte, control[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {&byte, 1};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control};
    if (recvmsg(sock, &m, 0) != 1) return -1;
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    if (!c || c->cmsg_type != SCM_RIGHTS) return -1;
    int fd;
    memcpy(&fd, CMSG_DATA(c), sizeof fd);
    return fd;
}

/* A NUL-terminated string at `addr` in task `tid`, read page by page ("" if unreadable). */
static void read_string(pid_t tid, unsigned long long addr, char *buf, size_t len) {
    size_t got = 0;
    buf[0] = '\0';
    while (got + 1 < len) {
        size_t page_left = 4096 - (size_t)((addr + got) % 4096), want = len - 1 - got;
        if (want > page_left) want = page_left;
        struct iovec local = {buf + got, want}, remote = {(void *)(uintptr_t)(addr + got), want};
        ssize_t n = process_vm_readv(tid, &local, 1, &remote, 1, 0);
        if (n <= 0) break;
        buf[got + (size_t)n] = '\0';
        if (memchr(buf + got, '\0', (size_t)n)) return;
        got += (size_t)n;
    }
    buf[got] = '\0';
}

/* The bytes a writev-type call would write: the sum of its iovecs. */
static long long iov_bytes(pid_t tid, unsigned long long iov, unsigned long long count) {
    long long total = 0;
    for (unsigned long long i = 0; i < count && i < 1024; i++) {
        struct iovec v;
        struct iovec local = {&v, sizeof v}, remote = {(void *)(uintptr_t)(iov + i * sizeof v), sizeof v};
        if (process_vm_readv(tid, &local, 1, &remote, 1, 0) != (ssize_t)sizeof v) break;
        total += (long long)v.iov_len;
    }
    return total;
}

static void fd_path(pid_t tid, unsigned long long fd, char *buf, size_t len) {
    char link[64];
    snprintf(link, sizeof link, "/proc/%d/fd/%llu", (int)tid, fd);
    ssize_t n = readlink(link, buf, len - 1);
    buf[n > 0 ? n : 0] = '\0';
}

/* Whether the call fails, and with which errno. */
static int decide(const struct seccomp_notif *req, bk_fault *rules, int n) {
    bk_fault_call call = BK_FAULT_CLOSE;
    int which = -1;
    for (int i = 0; i < N_TRAPPED; i++)
        if (trapped[i].nr == req->data.nr) call = trapped[i].call, which = i;
    if (which < 0) return 0;
    const unsigned long long *a = req->data.args;
    char p1[PATH_MAX] = "", p2[PATH_MAX] = "";
    long long bytes = 0;
    if (call == BK_FAULT_RENAME) {
        bool at = req->data.nr == SYS_renameat || req->data.nr == SYS_renameat2; /* (dirfd, old, dirfd, new) */
        read_string(req->pid, at ? a[1] : a[0], p1, sizeof p1);
        read_string(req->pid, at ? a[3] : a[1], p2, sizeof p2);
    } else {
        fd_path(req->pid, a[0], p1, sizeof p1);
        if (call == BK_FAULT_WRITE)
            bytes = req->data.nr == SYS_write || req->data.nr == SYS_pwrite64 ? (long long)a[2]
                                                                               : iov_bytes(req->pid, a[1], a[2]);
    }
    for (int r = 0; r < n; r++) {
        bk_fault *f = &rules[r];
        if (f->call != call || !(strstr(p1, f->path) || (p2[0] && strstr(p2, f->path)))) continue;
        f->matched++;
        bool fail = f->failed > 0 || (call == BK_FAULT_WRITE ? f->written + bytes > f->after : f->matched > f->after);
        if (!fail) {
            f->written += bytes;
            continue;
        }
        if (!f->failed++) snprintf(f->first_failed, sizeof f->first_failed, "%.500s", p1);
        return f->error;
    }
    return 0;
}

int bk_fault_run(const char *const *argv, const char *out, const char *err, bk_fault *rules, int n, double seconds) {
    for (int r = 0; r < n; r++) {
        rules[r].matched = rules[r].failed = 0;
        rules[r].written = 0;
        rules[r].first_failed[0] = '\0';
    }
    int sv[2] = {-1, -1};
    if (n > 0 && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        printf("    socketpair: %s\n", strerror(errno));
        return -1;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        printf("    fork: %s\n", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644), e = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (o < 0 || e < 0) _exit(127);
        dup2(o, 1);
        dup2(e, 2);
        close(o);
        close(e);
        signal(SIGINT, SIG_DFL);
        alarm(0);
        if (n > 0) {
            close(sv[0]);
            int listener = install_filter(); /* from here on, writes and closes wait for the parent */
            if (listener < 0) {
                const char msg[] = "faults: cannot install the seccomp filter\n";
                if (write(2, msg, sizeof msg - 1) < 0) _exit(126);
                _exit(126);
            }
            if (!send_fd(sv[1], listener)) _exit(126);
        }
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    int listener = -1;
    if (n > 0) {
        close(sv[1]);
        listener = receive_fd(sv[0]);
        close(sv[0]);
        if (listener < 0) {
            printf("    %s could not be run under the seccomp filter (user notification needs Linux 5.5): see %s\n",
                   argv[0], err);
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            return -1;
        }
    }
    struct seccomp_notif_sizes sizes = {0};
    struct seccomp_notif *req = NULL;
    struct seccomp_notif_resp *resp = NULL;
    if (listener >= 0) {
        if (syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &sizes) != 0) {
            sizes.seccomp_notif = sizeof *req;
            sizes.seccomp_notif_resp = sizeof *resp;
        }
        req = calloc(1, sizes.seccomp_notif > sizeof *req ? sizes.seccomp_notif : sizeof *req);
        resp = calloc(1, sizes.seccomp_notif_resp > sizeof *resp ? sizes.seccomp_notif_resp : sizeof *resp);
    }
    double t0 = now();
    int status = 0;
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid) break;
        if (now() - t0 > seconds) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            printf("    %s did not finish in %.0f s (killed)\n", argv[0], seconds);
            status = -1;
            break;
        }
        if (listener < 0) {
            struct timespec ts = {0, 5000000};
            nanosleep(&ts, NULL);
            continue;
        }
        struct pollfd p = {listener, POLLIN, 0};
        if (poll(&p, 1, 20) <= 0) continue;
        if (!(p.revents & POLLIN)) { /* no task left in the filter: the child is exiting */
            struct timespec ts = {0, 2000000};
            nanosleep(&ts, NULL);
            continue;
        }
        memset(req, 0, sizes.seccomp_notif);
        if (ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, req) != 0) continue; /* the caller died meanwhile */
        int error = decide(req, rules, n);
        memset(resp, 0, sizes.seccomp_notif_resp);
        resp->id = req->id;
        if (error) resp->error = -error;
        else resp->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
        ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, resp); /* fails only if the caller died */
    }
    if (listener >= 0) close(listener);
    free(req);
    free(resp);
    return status;
}
