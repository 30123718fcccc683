// chronicle-sandbox: runs one untrusted Python program, isolated by the kernel's own tools.
//
// It is a small single-threaded C program rather than code in the Swift server because the
// setup (unshare, uid maps, mounts, rlimits, seccomp) must happen between fork and exec, where a
// multi-threaded process may only call async-signal-safe functions.
//
// Protocol. The server starts it with the limits as arguments and an empty environment. It sets
// up the sandbox at once and starts the interpreter, which waits for the code: a started runner
// is therefore "warm"; it says `ready` on stdout once the interpreter waits. Then it reads one
// request on stdin:
//
//     <wall limit in milliseconds>\n<the code, to end of input>
//
// and answers on stdout with one JSON line, then the kept stdout bytes, then the kept stderr
// bytes (their lengths are in the JSON). Setup failures answer {"error": "..."} and exit 70.
//
// Process tree:  helper (uid 65534 on the host; outside the new PID namespace)
//                  └─ init (PID 1 of the new namespaces: mounts, then reaps)
//                       └─ python3 -I -S -u (PID 2; rlimits, no capabilities, seccomp)
// When init exits, the kernel kills everything left in the PID namespace: a process that
// outlives its parent, a fork bomb's leftovers. At the wall limit the helper kills init.

#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <seccomp.h>

#define SANDBOX_UID 65534
#define SANDBOX_GID 65534
#define EXIT_SETUP 70

struct limits {
    const char *python;
    long long memory_bytes;     // RLIMIT_AS
    long long cpu_seconds;      // RLIMIT_CPU (soft; hard is one second more)
    long long file_bytes;       // RLIMIT_FSIZE
    long long open_files;       // RLIMIT_NOFILE
    long long processes;        // RLIMIT_NPROC, counted inside the run's own user namespace
    long long workspace_bytes;  // tmpfs /workspace
    long long tmp_bytes;        // tmpfs /tmp
    long long output_bytes;     // kept per stream; the rest is counted and dropped
};

// ---------------------------------------------------------------------------------------------
// Failing during setup: one JSON line the server can show, then exit.

static int result_fd = 1;

static void json_string(char *out, size_t size, const char *text) {
    size_t used = 0;
    for (const char *p = text; *p && used + 7 < size; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"' || c == '\\') { out[used++] = '\\'; out[used++] = (char)c; }
        else if (c < 0x20) used += (size_t)snprintf(out + used, size - used, "\\u%04x", c);
        else out[used++] = (char)c;
    }
    out[used] = 0;
}

static void die(const char *format, ...) {
    char message[512], escaped[1100], line[1200];
    int saved = errno;
    va_list args;
    va_start(args, format);
    vsnprintf(message, sizeof message, format, args);
    va_end(args);
    size_t length = strlen(message);
    snprintf(message + length, sizeof message - length, ": %s", strerror(saved));
    json_string(escaped, sizeof escaped, message);
    int n = snprintf(line, sizeof line, "{\"error\":\"%s\"}\n", escaped);
    if (write(result_fd, line, (size_t)n) < 0) { /* nothing left to tell */ }
    _exit(EXIT_SETUP);
}

static void write_file(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) die("open %s", path);
    if (write(fd, text, strlen(text)) != (ssize_t)strlen(text)) die("write %s", path);
    close(fd);
}

static void create_file(const char *path, const char *text, mode_t mode) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) die("create %s", path);
    if (text && write(fd, text, strlen(text)) != (ssize_t)strlen(text)) die("write %s", path);
    close(fd);
}

// ---------------------------------------------------------------------------------------------
// The filesystem: a new root on a small tmpfs holding only what the interpreter needs, read-only,
// with private size-capped tmpfs mounts at /workspace and /tmp. The host's other files (the
// server's own, /etc/shadow, /home, /proc of the host) are not in it at all.

#define NEWROOT "/tmp"  // any existing directory: it is covered only in this mount namespace

// A bind mount made read-only must keep the flags the kernel locked on the original mount
// (nosuid, nodev, noexec, atime), or the remount fails with EPERM inside a user namespace.
static unsigned long locked_flags(const char *path) {
    struct statvfs info;
    if (statvfs(path, &info) != 0) die("statvfs %s", path);
    unsigned long flags = 0;
    if (info.f_flag & ST_NOSUID) flags |= MS_NOSUID;
    if (info.f_flag & ST_NODEV) flags |= MS_NODEV;
    if (info.f_flag & ST_NOEXEC) flags |= MS_NOEXEC;
    if (info.f_flag & ST_NOATIME) flags |= MS_NOATIME;
    if (info.f_flag & ST_NODIRATIME) flags |= MS_NODIRATIME;
    if (info.f_flag & ST_RELATIME) flags |= MS_RELATIME;
    return flags;
}

static void bind_read_only(const char *source, const char *target) {
    if (mount(source, target, NULL, MS_BIND | MS_REC, NULL) != 0) die("bind %s", source);
    unsigned long flags = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | locked_flags(target);
    if (mount(NULL, target, NULL, flags, NULL) != 0) die("read-only %s", target);
}

static void bind_device(const char *name) {
    char source[64], target[96];
    snprintf(source, sizeof source, "/dev/%s", name);
    snprintf(target, sizeof target, NEWROOT "/dev/%s", name);
    create_file(target, NULL, 0644);
    if (mount(source, target, NULL, MS_BIND, NULL) != 0) die("bind %s", source);
}

static void mount_tmpfs(const char *target, long long bytes, const char *mode) {
    char options[96];
    snprintf(options, sizeof options, "size=%lld,mode=%s,nr_inodes=4096", bytes, mode);
    if (mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, options) != 0) die("tmpfs %s", target);
}

// /bin, /lib, /lib64 and /sbin are links into /usr on merged-/usr systems (Debian 12): copy the
// link. Elsewhere they are directories: bind them read-only like /usr.
static void mirror_top_level(const char *name) {
    char host[32], inside[64], link[256];
    snprintf(host, sizeof host, "/%s", name);
    snprintf(inside, sizeof inside, NEWROOT "/%s", name);
    struct stat info;
    if (lstat(host, &info) != 0) return;
    if (S_ISLNK(info.st_mode)) {
        ssize_t n = readlink(host, link, sizeof link - 1);
        if (n < 0) die("readlink %s", host);
        link[n] = 0;
        if (symlink(link, inside) != 0) die("symlink %s", inside);
    } else if (S_ISDIR(info.st_mode)) {
        if (mkdir(inside, 0755) != 0) die("mkdir %s", inside);
        bind_read_only(host, inside);
    }
}

// Makes every missing directory of `path` (not the last component), all inside the new root.
static void make_parents(const char *path) {
    char partial[512];
    snprintf(partial, sizeof partial, "%s", path);
    for (char *slash = strchr(partial + strlen(NEWROOT) + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
        *slash = 0;
        if (mkdir(partial, 0755) != 0 && errno != EEXIST) die("mkdir %s", partial);
        *slash = '/';
    }
}

// Binds the host's `path` read-only at the same place in the new root; a missing path is skipped.
static void bind_same(const char *path) {
    struct stat info;
    if (stat(path, &info) != 0) return;
    char target[512];
    snprintf(target, sizeof target, NEWROOT "%s", path);
    make_parents(target);
    if (S_ISDIR(info.st_mode)) {
        if (mkdir(target, 0755) != 0 && errno != EEXIST) die("mkdir %s", target);
    } else {
        create_file(target, NULL, 0644);
    }
    bind_read_only(path, target);
}

// /usr holds only what the interpreter needs: its executable (and the links that lead to it),
// its standard library, the shared libraries and the locale and time-zone data. Not the host's
// /usr/local (its etc/ and bin/ were visible), its tools or other software.
static void build_usr(const struct limits *limits) {
    char path[512], link[512];
    snprintf(path, sizeof path, "%s", limits->python);
    for (int hops = 0; hops < 8; hops++) {
        struct stat info;
        if (lstat(path, &info) != 0) die("interpreter %s", path);
        if (!S_ISLNK(info.st_mode)) break;
        ssize_t n = readlink(path, link, sizeof link - 1);
        if (n < 0) die("readlink %s", path);
        link[n] = 0;
        char inside[600];
        snprintf(inside, sizeof inside, NEWROOT "%s", path);
        make_parents(inside);
        if (symlink(link, inside) != 0 && errno != EEXIST) die("symlink %s", inside);
        if (link[0] == '/') {
            snprintf(path, sizeof path, "%s", link);
        } else {
            char *slash = strrchr(path, '/');
            char next[512];
            snprintf(next, sizeof next, "%.*s/%s", (int)(slash - path), path, link);
            snprintf(path, sizeof path, "%s", next);
        }
    }
    bind_same(path);
    // <prefix>/bin/pythonX.Y: its library is <prefix>/lib/pythonX.Y (lib-dynload included).
    char prefix[512], library[600];
    snprintf(prefix, sizeof prefix, "%s", path);
    char *name = strrchr(prefix, '/');
    if (!name) die("interpreter path %s", path);
    *name++ = 0;
    char version[64];
    snprintf(version, sizeof version, "%s", name);
    char *bin = strrchr(prefix, '/');
    if (bin) *bin = 0;
    snprintf(library, sizeof library, "%s/lib/%s", prefix, version);
    bind_same(library);
    if (strcmp(prefix, "/usr") != 0) {  // an interpreter installed elsewhere keeps its own lib/
        snprintf(library, sizeof library, "%s/lib", prefix);
        bind_same(library);
    }
    const char *shared[] = {"/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib/locale", "/usr/share/zoneinfo"};
    for (size_t i = 0; i < sizeof shared / sizeof *shared; i++) bind_same(shared[i]);
}

static void build_root(const struct limits *limits) {
    // Nothing done here may propagate back to the host's mounts.
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) die("make mounts private");
    mount_tmpfs(NEWROOT, 1 << 20, "0755");
    const char *dirs[] = {"usr", "dev", "etc", "proc", "workspace", "tmp", ".old"};
    for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) {
        char path[64];
        snprintf(path, sizeof path, NEWROOT "/%s", dirs[i]);
        if (mkdir(path, 0755) != 0) die("mkdir %s", path);
    }
    build_usr(limits);
    mirror_top_level("bin");
    mirror_top_level("lib");
    mirror_top_level("lib64");
    mirror_top_level("sbin");

    // /dev: only the harmless character devices.
    mount_tmpfs(NEWROOT "/dev", 64 << 10, "0755");
    const char *devices[] = {"null", "zero", "full", "random", "urandom"};
    for (size_t i = 0; i < sizeof devices / sizeof *devices; i++) bind_device(devices[i]);
    if (symlink("/proc/self/fd", NEWROOT "/dev/fd") != 0) die("symlink /dev/fd");

    // /etc: who "nobody" is, and nothing else.
    create_file(NEWROOT "/etc/passwd", "sandbox:x:65534:65534:sandbox:/workspace:/usr/sbin/nologin\n", 0644);
    create_file(NEWROOT "/etc/group", "sandbox:x:65534:\n", 0644);
    create_file(NEWROOT "/etc/hostname", "sandbox\n", 0644);

    // /proc of the run's own PID namespace, so a program sees only its own processes. A
    // container that masks parts of its /proc refuses this; the sandbox then has no /proc.
    if (mount("proc", NEWROOT "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0) {
        /* not needed by the interpreter */
    }

    mount_tmpfs(NEWROOT "/workspace", limits->workspace_bytes, "0755");
    mount_tmpfs(NEWROOT "/tmp", limits->tmp_bytes, "1777");

    // Swap the new root in and forget the old one.
    if (syscall(SYS_pivot_root, NEWROOT, NEWROOT "/.old") != 0) die("pivot_root");
    if (chdir("/") != 0) die("chdir /");
    if (umount2("/.old", MNT_DETACH) != 0) die("detach the old root");
    if (rmdir("/.old") != 0) die("rmdir /.old");
    if (mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) != 0) die("read-only /");
    if (mount(NULL, "/dev", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) != 0) die("read-only /dev");
    if (sethostname("sandbox", 7) != 0) die("sethostname");
}

// ---------------------------------------------------------------------------------------------
// seccomp: everything is allowed except a reviewed list. A denied call fails with EPERM, so
// Python raises PermissionError with a readable message instead of dying by SIGSYS.

static void deny(scmp_filter_ctx filter, const char *name, int error) {
    int number = seccomp_syscall_resolve_name(name);
    if (number == __NR_SCMP_ERROR) return;  // not on this architecture
    if (seccomp_rule_add_array(filter, SCMP_ACT_ERRNO((uint32_t)error), number, 0, NULL) != 0) die("seccomp rule %s", name);
}

static void load_seccomp(void) {
    scmp_filter_ctx filter = seccomp_init(SCMP_ACT_ALLOW);
    if (!filter) die("seccomp_init");
    // Debugging and reading or writing another process's memory.
    deny(filter, "ptrace", EPERM);
    deny(filter, "process_vm_readv", EPERM);
    deny(filter, "process_vm_writev", EPERM);
    deny(filter, "kcmp", EPERM);
    // Changing what the filesystem looks like, or leaving the new root.
    deny(filter, "mount", EPERM);
    deny(filter, "umount", EPERM);
    deny(filter, "umount2", EPERM);
    deny(filter, "pivot_root", EPERM);
    deny(filter, "chroot", EPERM);
    deny(filter, "fsopen", EPERM);
    deny(filter, "fsmount", EPERM);
    deny(filter, "fsconfig", EPERM);
    deny(filter, "move_mount", EPERM);
    deny(filter, "open_tree", EPERM);
    deny(filter, "mount_setattr", EPERM);
    // New namespaces: another user namespace would hand back capabilities inside it.
    deny(filter, "unshare", EPERM);
    deny(filter, "setns", EPERM);
    // clone3 passes its flags in memory, which a filter cannot read: ENOSYS makes the C library
    // fall back to clone, whose flags are checked below.
    deny(filter, "clone3", ENOSYS);
    {
        // clone with any namespace flag: each flag its own rule, as a filter compares masks.
        int number = seccomp_syscall_resolve_name("clone");
        const uint64_t flags[] = {CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWIPC, CLONE_NEWUTS, CLONE_NEWCGROUP};
        for (size_t i = 0; i < sizeof flags / sizeof *flags; i++) {
            struct scmp_arg_cmp has = SCMP_A0(SCMP_CMP_MASKED_EQ, flags[i], flags[i]);
            if (seccomp_rule_add_array(filter, SCMP_ACT_ERRNO(EPERM), number, 1, &has) != 0) die("seccomp rule clone");
        }
    }
    // The kernel itself: modules, kexec, reboot, swap, eBPF, perf, the keyring, clocks.
    deny(filter, "kexec_load", EPERM);
    deny(filter, "kexec_file_load", EPERM);
    deny(filter, "reboot", EPERM);
    deny(filter, "swapon", EPERM);
    deny(filter, "swapoff", EPERM);
    deny(filter, "init_module", EPERM);
    deny(filter, "finit_module", EPERM);
    deny(filter, "delete_module", EPERM);
    deny(filter, "bpf", EPERM);
    deny(filter, "perf_event_open", EPERM);
    deny(filter, "keyctl", EPERM);
    deny(filter, "add_key", EPERM);
    deny(filter, "request_key", EPERM);
    deny(filter, "settimeofday", EPERM);
    deny(filter, "clock_settime", EPERM);
    deny(filter, "clock_adjtime", EPERM);
    deny(filter, "adjtimex", EPERM);
    deny(filter, "acct", EPERM);
    deny(filter, "quotactl", EPERM);
    deny(filter, "syslog", EPERM);
    deny(filter, "lookup_dcookie", EPERM);
    deny(filter, "userfaultfd", EPERM);  // a tool for stretching kernel race windows
    deny(filter, "personality", EPERM);  // could turn off address-space randomisation
    deny(filter, "io_uring_setup", EPERM);  // a large attack surface that bypasses these rules
    // Sockets: only AF_UNIX (the interpreter and libraries use it locally). No TCP, UDP, raw
    // packets, netlink or other families, even though the network namespace has only lo.
    {
        int socket_call = seccomp_syscall_resolve_name("socket");
        struct scmp_arg_cmp not_unix = SCMP_A0(SCMP_CMP_NE, AF_UNIX);
        if (seccomp_rule_add_array(filter, SCMP_ACT_ERRNO(EPERM), socket_call, 1, &not_unix) != 0) die("seccomp rule socket");
        int pair_call = seccomp_syscall_resolve_name("socketpair");
        if (seccomp_rule_add_array(filter, SCMP_ACT_ERRNO(EPERM), pair_call, 1, &not_unix) != 0) die("seccomp rule socketpair");
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) die("no_new_privs");
    if (seccomp_load(filter) != 0) die("seccomp_load");
    seccomp_release(filter);
}

// ---------------------------------------------------------------------------------------------
// The interpreter: says `ready` on fd 4 and closes it, so the program has no descriptor to the
// helper (it could write a limit of its own choosing there); reads the code from fd 3 and closes
// it; runs it as main.py, prints a traceback without its own frame, and names a limit it
// recognises (memory, file_size, disk, processes) by the signal it ends with, SIGRTMIN + 1 to 4,
// which no program meets by accident; the helper maps it back to exit code 1 and the limit.

static const char *LOADER =
    "import os, sys, signal\n"
    "import errno, linecache, traceback\n"  // imported while warm, before any code arrives
    "os.write(4, b'ready\\n')\n"
    "os.close(4)\n"
    "def _chronicle():\n"
    "    parts = []\n"
    "    while True:\n"
    "        part = os.read(3, 65536)\n"
    "        if not part: break\n"
    "        parts.append(part)\n"
    "    os.close(3)\n"
    "    source = b''.join(parts).decode('utf-8', 'replace')\n"
    "    linecache.cache['main.py'] = (len(source), None, source.splitlines(True), 'main.py')\n"
    "    sys.argv = ['main.py']\n"
    "    scope = {'__name__': '__main__', '__file__': 'main.py', '__builtins__': __builtins__}\n"
    "    try:\n"
    "        exec(compile(source, 'main.py', 'exec'), scope)\n"
    "    except SystemExit as done:\n"
    "        code = done.code\n"
    "        if code is None: _finish(0)\n"
    "        if isinstance(code, int): _finish(code & 0xff)\n"
    "        print(code, file=sys.stderr)\n"
    "        _finish(1)\n"
    "    except BaseException as error:\n"
    "        limit = 0\n"
    "        if isinstance(error, MemoryError): limit = 1\n"
    "        elif isinstance(error, OSError) and error.errno == errno.EFBIG: limit = 2\n"
    "        elif isinstance(error, OSError) and error.errno == errno.ENOSPC: limit = 3\n"
    "        elif isinstance(error, OSError) and error.errno == errno.EAGAIN: limit = 4\n"
    "        elif isinstance(error, RuntimeError) and 'new thread' in str(error): limit = 4\n"
    "        trace = error.__traceback__\n"
    "        if trace is not None and trace.tb_frame.f_code is _chronicle.__code__: trace = trace.tb_next\n"
    "        traceback.print_exception(type(error), error, trace)\n"
    "        _finish(1, limit)\n"
    "    _finish(0)\n"
    // What the interpreter's own exit does that a program can observe (non-daemon threads
    // joined, atexit handlers run, buffered output written), without tearing down every
    // module, which costs about 3 ms of a 5 ms run and is of no use to a process about to go.
    "def _finish(code, limit=0):\n"
    "    try:\n"
    "        if 'threading' in sys.modules: sys.modules['threading']._shutdown()\n"
    "        import atexit\n"
    "        atexit._run_exitfuncs()\n"
    "    finally:\n"
    "        for stream in (sys.stdout, sys.stderr):\n"
    "            try: stream.flush()\n"
    "            except BaseException: pass\n"
    "        if limit: os.kill(os.getpid(), signal.SIGRTMIN + limit)\n"
    "        os._exit(code)\n"
    "_chronicle()\n";

static void set_limit(int resource, rlim_t soft, rlim_t hard, const char *name) {
    struct rlimit value = {soft, hard};
    if (setrlimit(resource, &value) != 0) die("setrlimit %s", name);
}

static void reset_signals(void) {
    for (int sig = 1; sig < NSIG; sig++) signal(sig, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

static void drop_capabilities(void) {
    struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof data);
    if (syscall(SYS_capset, &header, data) != 0) die("capset");
}

static void exec_python(const struct limits *limits, int code_fd, int limit_fd, int out_fd, int err_fd) {
    // Descriptors: 0 /dev/null, 1 and 2 the capture pipes, 3 the code, 4 the limit report.
    // Moved above 20 first, so that no dup2 below overwrites a descriptor still needed.
    int code_high = fcntl(code_fd, F_DUPFD_CLOEXEC, 20), limit_high = fcntl(limit_fd, F_DUPFD_CLOEXEC, 20);
    int out_high = fcntl(out_fd, F_DUPFD_CLOEXEC, 20), err_high = fcntl(err_fd, F_DUPFD_CLOEXEC, 20);
    int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (code_high < 0 || limit_high < 0 || out_high < 0 || err_high < 0 || null_fd < 0) die("dup");
    if (dup2(null_fd, 0) < 0 || dup2(out_high, 1) < 0 || dup2(err_high, 2) < 0 || dup2(code_high, 3) < 0 || dup2(limit_high, 4) < 0)
        die("dup2");
    if (syscall(SYS_close_range, 5, ~0U, 0) != 0) die("close_range");
    result_fd = 2;

    if (chdir("/workspace") != 0) die("chdir /workspace");
    set_limit(RLIMIT_AS, (rlim_t)limits->memory_bytes, (rlim_t)limits->memory_bytes, "as");
    // Soft below hard: SIGXCPU first (the run is reported as over its CPU limit), SIGKILL after.
    set_limit(RLIMIT_CPU, (rlim_t)limits->cpu_seconds, (rlim_t)limits->cpu_seconds + 1, "cpu");
    set_limit(RLIMIT_FSIZE, (rlim_t)limits->file_bytes, (rlim_t)limits->file_bytes, "fsize");
    set_limit(RLIMIT_NOFILE, (rlim_t)limits->open_files, (rlim_t)limits->open_files, "nofile");
    set_limit(RLIMIT_NPROC, (rlim_t)limits->processes, (rlim_t)limits->processes, "nproc");
    set_limit(RLIMIT_CORE, 0, 0, "core");
    set_limit(RLIMIT_MEMLOCK, 0, 0, "memlock");
    set_limit(RLIMIT_MSGQUEUE, 0, 0, "msgqueue");
    reset_signals();
    drop_capabilities();
    load_seccomp();
    char *const argv[] = {"python3", "-I", "-S", "-u", "-c", (char *)LOADER, NULL};
    char *const envp[] = {"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/workspace", "LANG=C.UTF-8", NULL};
    execve(limits->python, argv, envp);
    die("exec %s", limits->python);
}

// The helper's "time is up": kill everything else in the namespace, so that init can still reap
// the interpreter and report its CPU time and memory. Only a signal from outside the namespace
// (si_pid 0 here) counts; the sandboxed program could send one too.
static void on_time_up(int sig, siginfo_t *info, void *context) {
    (void)sig;
    (void)context;
    if (info->si_pid == 0) kill(-1, SIGKILL);
}

// PID 1 of the run: starts the interpreter, reaps every process, and reports the interpreter's
// wait status on status_fd. Its exit ends the namespace and everything still in it.
static int helper_argc;
static char **helper_argv;

// /proc/1/cmdline of the namespace is init's, inherited from the helper: its host path and every
// limit. Blanked (the kernel reads the memory the arguments were in), and named plain "init".
static void forget_arguments(void) {
    if (helper_argc > 0) {
        char *start = helper_argv[0];
        char *end = helper_argv[helper_argc - 1] + strlen(helper_argv[helper_argc - 1]);
        memset(start, 0, (size_t)(end - start));
        if (end - start >= 4) memcpy(start, "init", 4);
    }
    if (prctl(PR_SET_NAME, "init", 0, 0, 0) != 0) die("name init");
}

static void run_init(const struct limits *limits, int code_fd, int limit_fd, int out_fd, int err_fd, int status_fd) {
    // Failures from here on are the run's stderr: the helper's stdout carries only its answer.
    result_fd = err_fd;
    forget_arguments();
    if (dup2(err_fd, 1) < 0 || dup2(err_fd, 2) < 0) die("dup2");
    close(0);
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) die("pdeathsig");
    build_root(limits);
    // Not dumpable: the sandboxed program, with the same uid, cannot read init's memory or
    // /proc/1/environ. exec makes the interpreter dumpable again, which harms nothing.
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) die("not dumpable");
    pid_t python = fork();
    if (python < 0) die("fork");
    if (python == 0) exec_python(limits, code_fd, limit_fd, out_fd, err_fd);
    close(code_fd);
    close(limit_fd);
    close(out_fd);
    close(err_fd);
    drop_capabilities();
    struct sigaction time_up;
    memset(&time_up, 0, sizeof time_up);
    time_up.sa_sigaction = on_time_up;
    time_up.sa_flags = SA_SIGINFO | SA_RESTART;
    sigaction(SIGUSR1, &time_up, NULL);
    int status = 0;
    for (;;) {
        int reaped_status;
        pid_t pid = waitpid(-1, &reaped_status, __WALL);
        if (pid < 0 && errno == EINTR) continue;
        if (pid < 0) break;
        if (pid == python) { status = reaped_status; break; }
    }
    char line[32];
    int n = snprintf(line, sizeof line, "%d\n", status);
    if (write(status_fd, line, (size_t)n) < 0) { /* the helper is gone */ }
    _exit(0);
}


// ---------------------------------------------------------------------------------------------
// cgroups (v1 memory and pids, where the host gives them): rlimits bound each process, a cgroup
// bounds the whole run, so 64 processes of 500 MiB each, or a workspace filled on top of a large
// heap, cannot take the host's memory. Best effort: without a writable hierarchy the run goes on
// with its rlimits and the answer says `"cgroup":false`.
//
// As root, the helper makes `chronicle-sandbox` under its own cgroup of each controller and gives
// it to the sandbox user; as that user it makes `run-<pid>` inside, sets the limit and joins it,
// so init and the interpreter are born in it. The directories are kept open: after init's
// pivot_root the helper shares the sandbox's root and can no longer reach /sys by path.

struct cgroup {
    int parent_fd;
    int run_fd;
    char name[32];
};

static struct cgroup cg_memory = {-1, -1, ""};
static struct cgroup cg_pids = {-1, -1, ""};

static int write_at(int dir, const char *file, const char *text) {
    int fd = openat(dir, file, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = write(fd, text, strlen(text));
    close(fd);
    return n == (ssize_t)strlen(text) ? 0 : -1;
}

static void cgroup_prepare(struct cgroup *cg, const char *controller) {
    char own[512] = "", line[640], path[1100];
    FILE *file = fopen("/proc/self/cgroup", "re");
    if (file) {
        char wanted[64];
        snprintf(wanted, sizeof wanted, ":%s:", controller);
        while (fgets(line, sizeof line, file)) {
            char *at = strstr(line, wanted);
            if (!at) continue;
            snprintf(own, sizeof own, "%s", at + strlen(wanted));
            own[strcspn(own, "\n")] = 0;
        }
        fclose(file);
    }
    snprintf(path, sizeof path, "/sys/fs/cgroup/%s%s", controller, strcmp(own, "/") == 0 ? "" : own);
    if (access(path, W_OK) != 0) snprintf(path, sizeof path, "/sys/fs/cgroup/%s", controller);
    size_t length = strlen(path);
    snprintf(path + length, sizeof path - length, "/chronicle-sandbox");
    if (mkdir(path, 0755) != 0 && errno != EEXIST) return;
    int dir = open(path, O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) return;
    if (fchown(dir, SANDBOX_UID, SANDBOX_GID) != 0 || fchownat(dir, "cgroup.procs", SANDBOX_UID, SANDBOX_GID, 0) != 0) {
        close(dir);
        return;
    }
    cg->parent_fd = dir;
}

// Runs whose helper was killed (the server stopped while it waited, warm) left their empty
// cgroup behind; each helper removes a few of those whose helper is gone, after its answer
// (removing a memory cgroup takes milliseconds, seconds on a loaded machine).
static void cgroup_sweep(const struct cgroup *cg, int most) {
    if (cg->parent_fd < 0) return;
    int dir = cg->parent_fd;
    int listing = dup(dir);
    DIR *entries = listing >= 0 ? fdopendir(listing) : NULL;
    if (entries) {
        struct dirent *entry;
        while ((entry = readdir(entries))) {
            if (strncmp(entry->d_name, "run-", 4) != 0) continue;
            pid_t owner = (pid_t)atoi(entry->d_name + 4);
            if (owner > 0 && owner != getpid() && kill(owner, 0) != 0 && errno == ESRCH && unlinkat(dir, entry->d_name, AT_REMOVEDIR) == 0
                && --most <= 0)
                break;
        }
        closedir(entries);
    } else if (listing >= 0) {
        close(listing);
    }
}

static void cgroup_join(struct cgroup *cg, const char *limit_file, long long limit) {
    if (cg->parent_fd < 0) return;
    snprintf(cg->name, sizeof cg->name, "run-%d", (int)getpid());
    char value[32];
    snprintf(value, sizeof value, "%lld", limit);
    char self[32];
    snprintf(self, sizeof self, "%d", (int)getpid());
    if (mkdirat(cg->parent_fd, cg->name, 0700) == 0) {
        cg->run_fd = openat(cg->parent_fd, cg->name, O_DIRECTORY | O_CLOEXEC);
        if (cg->run_fd >= 0 && write_at(cg->run_fd, limit_file, value) == 0 && write_at(cg->run_fd, "cgroup.procs", self) == 0) return;
        if (cg->run_fd >= 0) close(cg->run_fd);
        unlinkat(cg->parent_fd, cg->name, AT_REMOVEDIR);
    }
    cg->run_fd = -1;
}

// How many processes the kernel's OOM killer took in the run (v1 `memory.oom_control`).
static long long cgroup_oom_kills(const struct cgroup *cg) {
    if (cg->run_fd < 0) return 0;
    int fd = openat(cg->run_fd, "memory.oom_control", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    char text[256];
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    if (n <= 0) return 0;
    text[n] = 0;
    char *at = strstr(text, "oom_kill ");
    return at ? atoll(at + 9) : 0;
}

// Back to the parent cgroup, and the run's removed (it is empty once init is reaped).
static void cgroup_leave(struct cgroup *cg) {
    if (cg->run_fd < 0) return;
    char self[32];
    snprintf(self, sizeof self, "%d", (int)getpid());
    write_at(cg->parent_fd, "cgroup.procs", self);
    close(cg->run_fd);
    cg->run_fd = -1;
    unlinkat(cg->parent_fd, cg->name, AT_REMOVEDIR);
}

// ---------------------------------------------------------------------------------------------
// The helper: drop to the sandbox user, make the namespaces, start init, then serve one request.

static long long option(int argc, char **argv, const char *name, long long fallback) {
    size_t length = strlen(name);
    for (int i = 1; i < argc; i++)
        if (strncmp(argv[i], name, length) == 0 && argv[i][length] == '=') return atoll(argv[i] + length + 1);
    return fallback;
}

static const char *string_option(int argc, char **argv, const char *name, const char *fallback) {
    size_t length = strlen(name);
    for (int i = 1; i < argc; i++)
        if (strncmp(argv[i], name, length) == 0 && argv[i][length] == '=') return argv[i] + length + 1;
    return fallback;
}

static long long now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

static void write_all(int fd, const char *data, size_t length) {
    while (length > 0) {
        ssize_t n = write(fd, data, length);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) _exit(EXIT_SETUP);
        data += n;
        length -= (size_t)n;
    }
}

struct capture {
    int fd;
    char *kept;
    size_t kept_length, capacity;
    long long total;
};

static void capture_read(struct capture *c) {
    char buffer[65536];
    ssize_t n = read(c->fd, buffer, sizeof buffer);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
    if (n <= 0) { close(c->fd); c->fd = -1; return; }
    c->total += n;
    size_t room = c->capacity - c->kept_length;
    size_t take = (size_t)n < room ? (size_t)n : room;
    memcpy(c->kept + c->kept_length, buffer, take);
    c->kept_length += take;
}

int main(int argc, char **argv) {
    // Nothing the server had open reaches the sandbox.
    syscall(SYS_close_range, 3, ~0U, 0);
    helper_argc = argc;
    helper_argv = argv;
    struct limits limits = {
        // A copy: init blanks the memory the arguments are in (forget_arguments).
        .python = strdup(string_option(argc, argv, "--python", "/usr/bin/python3")),
        .memory_bytes = option(argc, argv, "--memory-bytes", 512LL << 20),
        .cpu_seconds = option(argc, argv, "--cpu-seconds", 10),
        .file_bytes = option(argc, argv, "--file-bytes", 32LL << 20),
        .open_files = option(argc, argv, "--open-files", 256),
        .processes = option(argc, argv, "--processes", 64),
        .workspace_bytes = option(argc, argv, "--workspace-bytes", 64LL << 20),
        .tmp_bytes = option(argc, argv, "--tmp-bytes", 64LL << 20),
        .output_bytes = option(argc, argv, "--output-bytes", 1LL << 20),
    };
    if (!limits.python) die("strdup");
    if (limits.python[0] != '/') { errno = EINVAL; die("--python must be an absolute path"); }

    int code[2], out[2], err[2], status[2], limit[2];
    if (pipe2(code, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC) || pipe2(status, O_CLOEXEC) || pipe2(limit, O_CLOEXEC))
        die("pipe");

    // An unprivileged uid on the host: RLIMIT_NPROC holds, and the host's files are "other" to
    // it. The user namespace maps it to itself, so inside it is also 65534 and exec drops every
    // capability the namespace gave.
    uid_t uid = geteuid();
    gid_t gid = getegid();
    if (uid == 0) {
        cgroup_prepare(&cg_memory, "memory");
        cgroup_prepare(&cg_pids, "pids");
        if (setgroups(0, NULL) != 0) die("setgroups");
        if (setresgid(SANDBOX_GID, SANDBOX_GID, SANDBOX_GID) != 0) die("setresgid");
        if (setresuid(SANDBOX_UID, SANDBOX_UID, SANDBOX_UID) != 0) die("setresuid");
        uid = SANDBOX_UID;
        gid = SANDBOX_GID;
    }
    // A uid change makes the process non-dumpable, which would leave /proc/self/uid_map owned
    // by root; the server's death must also end the run.
    if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) != 0) die("dumpable");
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) die("pdeathsig");
    // The whole run's memory: the interpreter's address space and both tmpfs, which are charged
    // to the cgroup of whoever writes them. Processes: the limit, and init.
    cgroup_join(&cg_memory, "memory.limit_in_bytes", limits.memory_bytes + 2 * limits.workspace_bytes);
    cgroup_join(&cg_pids, "pids.max", limits.processes + 1);
    // After joining the run's cgroups: in its own cgroup namespace, /proc/self/cgroup shows them
    // as "/", not the host's path.
    if (unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP) != 0) die("unshare");
    char map[64];
    write_file("/proc/self/setgroups", "deny");
    snprintf(map, sizeof map, "%d %d 1\n", SANDBOX_UID, uid);
    write_file("/proc/self/uid_map", map);
    snprintf(map, sizeof map, "%d %d 1\n", SANDBOX_GID, gid);
    write_file("/proc/self/gid_map", map);

    pid_t init = fork();
    if (init < 0) die("fork init");
    if (init == 0) {
        close(code[1]); close(out[0]); close(err[0]); close(status[0]); close(limit[0]);
        run_init(&limits, code[0], limit[1], out[1], err[1], status[1]);
    }
    close(code[0]); close(out[1]); close(err[1]); close(status[1]); close(limit[1]);

    // Ready: the interpreter has started and waits for code (or it failed to start, and the
    // answer will say how). Only now does the server count this runner as warm.
    {
        char ready[8];
        size_t got = 0;
        while (got < 6) {
            ssize_t n = read(limit[0], ready + got, 6 - got);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;
            got += (size_t)n;
        }
        write_all(1, "ready\n", 6);
        close(limit[0]);  // the loader closed its end: nothing more comes this way
    }

    // Wait for the request. Closing stdin without one (a pool shutting down) ends the runner.
    char header[32];
    size_t header_length = 0;
    while (header_length < sizeof header - 1) {
        ssize_t n = read(0, header + header_length, 1);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            kill(init, SIGKILL);
            waitpid(init, NULL, 0);
            cgroup_leave(&cg_memory);
            cgroup_leave(&cg_pids);
            return 0;
        }
        if (header[header_length] == '\n') break;
        header_length++;
    }
    header[header_length] = 0;
    long long wall_ms = atoll(header);
    if (wall_ms <= 0) { errno = EINVAL; kill(init, SIGKILL); die("bad request header"); }

    long long started = now_us();
    // The code: stdin to the interpreter's fd 3. The interpreter reads it all before it runs
    // anything, so this cannot deadlock with its output.
    signal(SIGPIPE, SIG_IGN);
    for (;;) {
        char buffer[65536];
        ssize_t n = read(0, buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        ssize_t off = 0;
        while (off < n) {
            ssize_t w = write(code[1], buffer + off, (size_t)(n - off));
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) break;
            off += w;
        }
        if (off < n) break;  // the interpreter is gone (it failed to start): report below
    }
    close(code[1]);

    struct capture captures[2] = {
        {out[0], malloc((size_t)limits.output_bytes), 0, (size_t)limits.output_bytes, 0},
        {err[0], malloc((size_t)limits.output_bytes), 0, (size_t)limits.output_bytes, 0},
    };
    if (!captures[0].kept || !captures[1].kept) die("malloc");
    char limit_name[32] = "";
    char status_text[32] = "";
    size_t status_length = 0;
    int status_open = 1;
    int timed_out = 0;
    long long deadline = started + wall_ms * 1000;
    while (captures[0].fd >= 0 || captures[1].fd >= 0 || status_open) {
        struct pollfd fds[3];
        int count = 0;
        int slot[3];
        if (captures[0].fd >= 0) { fds[count] = (struct pollfd){captures[0].fd, POLLIN, 0}; slot[count++] = 0; }
        if (captures[1].fd >= 0) { fds[count] = (struct pollfd){captures[1].fd, POLLIN, 0}; slot[count++] = 1; }
        if (status_open) { fds[count] = (struct pollfd){status[0], POLLIN, 0}; slot[count++] = 2; }
        int timeout = -1;
        if (timed_out < 2) {
            long long left = deadline - now_us();
            if (left <= 0 && timed_out) {
                timed_out = 2;
                kill(init, SIGKILL);
                continue;
            }
            if (left <= 0) {
                // The wall limit: init kills the rest of the namespace and reports; if it has
                // not ended a second later, it is killed too, which ends the namespace.
                timed_out = 1;
                kill(init, SIGUSR1);
                deadline = now_us() + 1000000;
                continue;
            }
            timeout = (int)((left + 999) / 1000);
        }
        int ready = poll(fds, (nfds_t)count, timeout);
        if (ready < 0 && errno == EINTR) continue;
        if (ready < 0) die("poll");
        for (int i = 0; i < count; i++) {
            if (!fds[i].revents) continue;
            if (slot[i] < 2) capture_read(&captures[slot[i]]);
            else {
                size_t room = sizeof status_text - 1 - status_length;
                char sink[64];
                ssize_t n = read(status[0], room ? status_text + status_length : sink, room ? room : sizeof sink);
                if (n < 0 && errno == EINTR) continue;
                if (n <= 0) {
                    status_open = 0;
                    close(status[0]);
                } else if (room) {
                    status_length += (size_t)n;
                }
            }
        }
    }
    struct rusage usage;
    int init_status;
    while (wait4(init, &init_status, __WALL, &usage) < 0 && errno == EINTR) {}
    long long oom_kills = cgroup_oom_kills(&cg_memory);
    int in_cgroup = cg_memory.run_fd >= 0 && cg_pids.run_fd >= 0;
    long long wall_us = now_us() - started;
    status_text[status_length] = 0;

    int exit_code = -1, term_signal = 0;
    if (status_length > 0) {
        int raw = atoi(status_text);
        if (WIFEXITED(raw)) exit_code = WEXITSTATUS(raw);
        else if (WIFSIGNALED(raw)) term_signal = WTERMSIG(raw);
        // The loader's own ending for a limit it recognised (see LOADER): exit code 1, and the limit.
        static const char *loader_limits[] = {"memory", "file_size", "disk", "processes"};
        if (term_signal >= SIGRTMIN + 1 && term_signal <= SIGRTMIN + 4) {
            snprintf(limit_name, sizeof limit_name, "%s", loader_limits[term_signal - SIGRTMIN - 1]);
            exit_code = 1;
            term_signal = 0;
        }
    } else if (!timed_out) {
        // init died without a report: it failed during setup, and said why on stderr.
        term_signal = WIFSIGNALED(init_status) ? WTERMSIG(init_status) : 0;
    }
    long long cpu_us = (long long)usage.ru_utime.tv_sec * 1000000 + usage.ru_utime.tv_usec
        + (long long)usage.ru_stime.tv_sec * 1000000 + usage.ru_stime.tv_usec;
    // The OOM killer acted inside the run's cgroup: the tree as a whole ran out of memory.
    if (oom_kills > 0 && !limit_name[0] && !timed_out) snprintf(limit_name, sizeof limit_name, "memory");
    // SIGXCPU at the soft CPU limit; SIGKILL from the kernel at the hard one.
    if (!limit_name[0] && (term_signal == SIGXCPU || (term_signal == SIGKILL && !timed_out && cpu_us >= limits.cpu_seconds * 1000000)))
        snprintf(limit_name, sizeof limit_name, "cpu");
    char line[512];
    int n = snprintf(line, sizeof line,
        "{\"exit_code\":%d,\"signal\":%d,\"timed_out\":%s,\"limit\":\"%s\",\"wall_us\":%lld,\"cpu_us\":%lld,"
        "\"peak_memory_bytes\":%lld,\"stdout_bytes\":%zu,\"stderr_bytes\":%zu,\"stdout_total\":%lld,\"stderr_total\":%lld,"
        "\"cgroup\":%s}\n",
        exit_code, term_signal, timed_out ? "true" : "false", limit_name, wall_us, cpu_us,
        (long long)usage.ru_maxrss * 1024, captures[0].kept_length, captures[1].kept_length, captures[0].total, captures[1].total,
        in_cgroup ? "true" : "false");
    write_all(1, line, (size_t)n);
    write_all(1, captures[0].kept, captures[0].kept_length);
    write_all(1, captures[1].kept, captures[1].kept_length);
    // After the answer: removing a memory cgroup takes the kernel a few milliseconds, which the
    // server need not wait for (it reads the answer by its length and reaps us later).
    close(1);
    cgroup_leave(&cg_memory);
    cgroup_leave(&cg_pids);
    cgroup_sweep(&cg_memory, 8);
    cgroup_sweep(&cg_pids, 8);
    return 0;
}
