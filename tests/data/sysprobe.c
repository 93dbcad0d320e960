/* sysprobe: make one raw syscall, print "ok" or "err ERRNO" (tests/integration/test_seccomp_differential.py).
 *
 *   sysprobe NR [ARG...]        the native (x86_64) syscall NR with up to six arguments
 *   sysprobe -i386 NR [ARG...]  the same through int $0x80 (the i386 ABI, another AUDIT_ARCH)
 *
 * Numbers are parsed by strtoull (0x... for hex). Built static, so it runs in a busybox rootfs.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static long i386_syscall(unsigned long nr, const unsigned long *a) {
#if defined(__x86_64__)
    long ret;
    __asm__ volatile("int $0x80"
                     : "=a"(ret)
                     : "a"(nr), "b"(a[0]), "c"(a[1]), "d"(a[2]), "S"(a[3]), "D"(a[4])
                     : "memory", "r8", "r9", "r10", "r11");
    return ret;
#else
    (void)nr;
    (void)a;
    return -ENOSYS;
#endif
}

int main(int argc, char **argv) {
    int i386 = argc > 1 && strcmp(argv[1], "-i386") == 0;
    int first = 1 + i386;
    unsigned long a[6] = {0, 0, 0, 0, 0, 0};
    if (argc <= first) {
        fprintf(stderr, "usage: sysprobe [-i386] NR [ARG...]\n");
        return 2;
    }
    unsigned long nr = strtoull(argv[first], NULL, 0);
    for (int i = 0; i < 6 && first + 1 + i < argc; i++)
        a[i] = strtoull(argv[first + 1 + i], NULL, 0);
    long ret;
    if (i386) {
        ret = i386_syscall(nr, a);
        if (ret < 0 && ret > -4096) {
            errno = (int)-ret;
            ret = -1;
        }
    } else {
        ret = syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
    }
    if (ret == -1)
        printf("err %d\n", errno);
    else
        printf("ok\n");
    return 0;
}
