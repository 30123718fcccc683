#include <stddef.h>
#include <seccomp.h>
