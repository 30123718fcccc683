#include <stddef.h>
#include <seccomp.h>

/* pipe2 is declared only under _GNU_SOURCE, which Swift's Glibc module is not built with; the
   symbol is always in glibc. The sandbox adapter needs it to make pipes close-on-exec atomically
   (another thread may spawn a process between pipe() and fcntl()). */
extern int pipe2(int pipefd[2], int flags);
