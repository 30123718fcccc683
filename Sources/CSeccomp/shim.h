#include <stddef.h>
#include <seccomp.h>

/* pipe2 is declared only under _GNU_SOURCE, which Swift's Glibc module is not built with; the
   symbol is always in glibc. The sandbox adapter needs it to make pipes close-on-exec atomically
   (another thread may spawn a process between pipe() and fcntl()). */
extern int pipe2(int pipefd[2], int flags);

#include <errno.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#ifndef P_PIDFD
#define P_PIDFD 3
#endif

/* A child reaped through a pidfd is that child and no other: waitpid(pid) after another part of
   the process (Foundation's Process) reaped it could wait on a reused pid and steal that exit.
   syscall() is variadic, so Swift reaches these through inline wrappers. */
static inline int chronicle_pidfd_open(int pid) { return (int)syscall(SYS_pidfd_open, pid, 0); }
static inline int chronicle_pidfd_reap(int pidfd) {
    siginfo_t info;
    int result;
    do { result = waitid((idtype_t)P_PIDFD, (id_t)pidfd, &info, WEXITED); } while (result < 0 && errno == EINTR);
    return result;
}
