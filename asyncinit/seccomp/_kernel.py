"""Kernel ABI of seccomp(2) (<linux/seccomp.h>, <linux/audit.h>): plain constants.

Imported by the init's loader, so it imports nothing.
"""

from __future__ import annotations

# seccomp(2) operations
SET_MODE_FILTER = 1
GET_ACTION_AVAIL = 2
GET_NOTIF_SIZES = 3

# seccomp(SECCOMP_SET_MODE_FILTER) flags
FLAG_TSYNC = 1 << 0
FLAG_LOG = 1 << 1
FLAG_SPEC_ALLOW = 1 << 2
FLAG_NEW_LISTENER = 1 << 3
FLAG_TSYNC_ESRCH = 1 << 4
FLAG_WAIT_KILLABLE_RECV = 1 << 5

# SECCOMP_RET_* actions (the filter's 32-bit return value; the low 16 bits are data)
RET_KILL_PROCESS = 0x80000000
RET_KILL_THREAD = 0x00000000
RET_TRAP = 0x00030000
RET_ERRNO = 0x00050000
RET_USER_NOTIF = 0x7FC00000
RET_TRACE = 0x7FF00000
RET_LOG = 0x7FFC0000
RET_ALLOW = 0x7FFF0000
RET_DATA = 0x0000FFFF
MAX_ERRNO = 4095  # the kernel clamps SECCOMP_RET_ERRNO data above it

# AUDIT_ARCH_* values seen in seccomp_data.arch
AUDIT_ARCH_X86_64 = 0xC000003E
AUDIT_ARCH_I386 = 0x40000003
AUDIT_ARCH_S390 = 0x00000016
AUDIT_ARCH_S390X = 0x80000016
X32_SYSCALL_BIT = 0x40000000

# user notification ioctls: _IOWR('!', 0, struct seccomp_notif), ...
IOCTL_NOTIF_RECV = 0xC0502100
IOCTL_NOTIF_SEND = 0xC0182101
IOCTL_NOTIF_ID_VALID = 0x40082102
IOCTL_NOTIF_ADDFD = 0x40182103
USER_NOTIF_FLAG_CONTINUE = 1
ADDFD_FLAG_SETFD = 1
ADDFD_FLAG_SEND = 2
