#!/usr/bin/env python3
"""test_inject.py - build/reqid-inject against live processes built here.

The target (C source below) parks threads in epoll_wait, accept4, read on a
pipe, nanosleep, pthread_cond_wait, poll and a write blocked on a full pipe;
one thread loops on malloc/free and one creates and joins threads (churn);
its main thread sleeps in nanosleep, waits in epoll_wait, or (spin mode)
spins in assembly that checks its general, vector (xmm, ymm and, when the
CPU has them, zmm16-31) registers, the 128-byte red zone below its stack
pointer and its errno on every turn. In alarm mode a 500 us interval
timer sends SIGALRM throughout, so signals arrive while threads stop and
during the calls reqid-inject makes on the main thread. The library exports probe (writes its argument to a
file, returns 42), neg (returns -7), where (1 if it runs on a thread
other than the main one), hold (waits for a gate file, then does what probe
does and returns 43) and linger (returns 44 at once, but its thread waits
for the gate in a thread-specific-data destructor before it exits).

Checks, each on a running target:
  - probe: exit 0, stdout "42", the file holds the argument (also a 64 KiB
    one); neg prints -7; where prints 1 (a fresh thread ran it);
  - afterwards every parked thread still works: data written after the
    attach reaches epoll_wait, poll and read, the condition variable wakes
    its waiter, a new connection is accepted, the nanosleep, malloc and main
    threads keep counting, and the blocked writer completes its 1 MiB once
    the pipe is drained; the thread count is back where it was;
  - dlopen of a missing library and a missing function: exit 1 with
    dlerror's text in one line, the target runs on;
  - 50 attaches in a row with the churn thread running: all print 42;
    thread and descriptor counts do not grow (VmRSS growth is reported);
  - 100 attaches in a row: the first maps the pages (with the main thread
    alone stopped, -v says), the others reuse them: the mappings in /proc/PID/maps stay the same, VmRSS grows by less
    than 64 kB, thread and descriptor counts do not change (the numbers and
    the stop times of the first attach and of the reusing ones are
    reported);
  - pages are not reused while a call runs on them (hold: its argument is
    still intact when it returns, meanwhile probe maps new pages), nor
    while the thread that ran them has not exited (linger), and are reused
    again once both are over;
  - -p notes which top pages of each thread's stack hold data; -s, after
    a call returning 0, gives back the pages a deeper call reached below
    the frames of threads parked in read, not of one in epoll_wait (never
    restarted: stopping it would end its wait), the threads' own bytes
    above their stack pointers intact; a second -s, with no note, gives
    nothing back;
  - spin mode: 20 attaches, no register, vector, red-zone or errno
    corruption;
  - main thread in epoll_wait: 5 attaches, epoll_wait's EINTR is retried;
  - alarm mode: 20 attaches, the handler keeps counting;
  - one malloc arena and no tcache (GLIBC_TUNABLES), so a stopped thread
    often holds the lock pthread_create's malloc needs: 100 attaches all
    succeed, and in 95 of them no thread is stopped 40 ms (reqid-inject
    lets the other threads go as soon as the call on the main thread
    sleeps; before, only once they had been stopped 40 ms: 73-81 of 100
    attaches; how often is reported);
  - 1,000 threads parked in futex, nanosleep, read and poll: 10 attaches
    print 42, the thread count is back to 1,000, every parked thread wakes
    when woken afterwards (the stop times are reported);
  - a thread that cannot stop for 300 ms (a vfork parent): the others are
    let go and stopped again (-v says restarts), the call returns 42, no
    thread was stopped 100 ms; the same with a second such thread whose
    vfork lasts 60 ms (let go as soon as it stops);
  - a thread that is never stoppable when a try looks (a vfork parent, 100
    ms at a time, back to back): reqid-inject gives up within a second
    ('did not stop in time'), no thread was stopped 50 ms, the target runs
    on untraced;
  - refusals, each exit 1 with one "reqid-inject: " line and the target
    untouched: no such process, a process traced by strace, a job-stopped
    process, a static binary, seccomp filter and strict modes, another uid
    (through setpriv), and another uid under Yama ptrace_scope 1, 2 and 3
    (a private mount namespace whose /proc/sys/kernel holds the setting:
    this kernel may have no Yama); usage errors exit 2;
  - a main thread that cannot be stopped (a vfork parent waits killable
    only): exit 1 within about 500 ms, the target runs on, untraced;
  - forks while the library loads: a target forks a child every
    millisecond, and each child looks whether it holds a copy of a library
    that was mapped but whose constructor had not finished (a library whose
    constructor takes 150 ms is injected twice: loaded, then already
    loaded). No child may (before the fork hold, 60 of 64 did); some fork
    must have waited (at least 100 ms: the hold makes the forks during the
    load wait, so few are made) and some child must hold the whole
    library. With a prepare handler of the program's that sleeps 50 ms, a
    child may hold a half-loaded copy (a fork inside it when the stub
    registers its handlers runs none of them), but no fork of that child
    may wait for the load; a constructor that forks does not wait for
    its own load.
  - a child held inside fork() (its first instruction after the clone,
    made a jump to itself through a tracer that is gone again), its parent
    threaded and with a cached thread stack, as a fork server attached
    before: no thread appears in it while it is there; once it is let go,
    the call runs and returns, and the child lives on to exit 7 (before:
    the thread was created at once, and when it returned the child
    exit(0)ed, glibc having reset its thread count to 1 after the clone).
  - a child whose main thread spins in its atfork child handler (fork two
    frames up): no thread appears in it while it does; once let go, the
    call returns 43 and the child exits 7 (the cheap test before the
    stack walk must leave this to the walk).
  - a single-threaded malloc/free loop, fresh ten times, 20 attaches each:
    all print 42, the program lives on and exits 0 (the main thread is
    borrowed only outside malloc and the loader);
  - a program that execs itself every 2 ms, 100 attaches: each prints 42
    or says in one line that it is starting up, ran a new program or
    exited; the program never dies.
  - a program whose loader runs a library's 150 ms constructor before
    main, attached at once: the call waits for the start-up and finds the
    constructor done;
  - `reqid attach` and `reqid detach` (10 cycles) of a parent forking a
    child every 3 ms that runs /bin/sh after 1 ms: each exits 0 with an
    empty stderr, every child exits 0.
Prints the stop times reqid-inject -v measured, "N passed, M failed" last,
and exits non-zero on a failure. Part of `make integration` (as root, or
with ptrace permitted).

    python3 tests/integration/test_inject.py
"""
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
INJECT = ROOT / "build" / "reqid-inject"
WRITER_BYTES = 1 << 20

TARGET_C = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static int ctl_fd, ep_fd, poll_fd, full_fd, lsock;
static volatile long sleep_ticks, malloc_loops, churn_loops, alarms;
volatile long main_ticks;
static volatile int churn_on = 1, churn_idle;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int cond_flag;

static void say(const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (write(1, buf, n) != n)
        _exit(4);
}

static void nap_ms(int ms)
{
    struct timespec ts = { 0, ms * 1000000L };
    nanosleep(&ts, NULL);
}

static void *epoll_thread(void *a)
{
    int epfd = epoll_create1(0);
    struct epoll_event ev = { .events = EPOLLIN }, out;
    char c;
    (void)a;
    epoll_ctl(epfd, EPOLL_CTL_ADD, ep_fd, &ev);
    for (;;) {
        int n = epoll_wait(epfd, &out, 1, -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 1 && read(ep_fd, &c, 1) == 1)
            say("epoll %c\n", c);
    }
}

static void *accept_thread(void *a)
{
    (void)a;
    for (;;) {
        int c = accept4(lsock, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0 && errno == EINTR)
            continue;
        if (c >= 0) {
            say("accept\n");
            close(c);
        }
    }
}

static void *read_thread(void *a)
{
    char c;
    (void)a;
    for (;;) {
        ssize_t n = read(ctl_fd, &c, 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            _exit(0);
        say("read %c\n", c);
        if (c == 'c') {
            pthread_mutex_lock(&mu);
            cond_flag = 1;
            pthread_cond_signal(&cv);
            pthread_mutex_unlock(&mu);
        } else if (c == 's') {
            say("stat sleep=%ld malloc=%ld main=%ld churn=%ld idle=%d alarms=%ld\n",
                sleep_ticks, malloc_loops, main_ticks, churn_loops, churn_idle, alarms);
        } else if (c == 'C') {
            churn_on = 1;
        } else if (c == 'P') {
            churn_on = 0;
        }
    }
}

static void *cond_thread(void *a)
{
    (void)a;
    for (;;) {
        pthread_mutex_lock(&mu);
        while (!cond_flag)
            pthread_cond_wait(&cv, &mu);
        cond_flag = 0;
        pthread_mutex_unlock(&mu);
        say("cond\n");
    }
}

static void *sleep_thread(void *a)
{
    (void)a;
    for (;;) {
        nap_ms(5);
        sleep_ticks++;
    }
}

static void *poll_thread(void *a)
{
    struct pollfd p = { .fd = poll_fd, .events = POLLIN };
    char c;
    (void)a;
    for (;;) {
        int n = poll(&p, 1, -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 1 && read(poll_fd, &c, 1) == 1)
            say("poll %c\n", c);
    }
}

static void *writer_thread(void *a)
{
    static char buf[1 << 20];
    size_t total = 0;
    (void)a;
    memset(buf, 'w', sizeof buf);
    while (total < sizeof buf) {
        ssize_t n = write(full_fd, buf + total, sizeof buf - total);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            say("writer error %d\n", errno);
            return NULL;
        }
        total += n;
    }
    say("writer done %zu\n", total);
    return NULL;
}

static void *malloc_thread(void *a)
{
    unsigned r = 1;
    (void)a;
    for (;;) {
        r = r * 1103515245 + 12345;
        char *p = malloc(16 + (r >> 16) % 4096);
        p[0] = 1;
        free(p);
        malloc_loops++;
    }
}

static void on_alarm(int sig)
{
    (void)sig;
    alarms++;
}

static void *noop(void *a)
{
    return a;
}

static void *churn_thread(void *a)
{
    pthread_t t;
    (void)a;
    for (;;) {
        if (!churn_on) {
            churn_idle = 1;
            nap_ms(1);
            continue;
        }
        churn_idle = 0;
        if (pthread_create(&t, NULL, noop, NULL) == 0)
            pthread_join(t, NULL);
        churn_loops++;
    }
}

/* Returns only when a register, the red zone or errno (at spin_errno_at,
 * 4242) changed under it. */
int *spin_errno_at;
int spin_check(int avx, int avx512);
__asm__(
    ".text\n.globl spin_check\n.type spin_check,@function\nspin_check:\n"
    "push %rbx\npush %rbp\npush %r12\npush %r13\npush %r14\npush %r15\n"
    "push %rdi\npush %rsi\n"
    "movabs $0x0123456789abcdef, %rbx\nmov %rbx, %rbp\nnot %rbp\n"
    "lea 1(%rbx), %r12\nlea 2(%rbx), %r13\nlea 3(%rbx), %r14\nlea 4(%rbx), %r15\n"
    "movq %rbx, %xmm0\npunpcklqdq %xmm0, %xmm0\n"
    "movq %rbp, %xmm1\npunpcklqdq %xmm1, %xmm1\n"
    ".irp r,8,10,12,14\nmovdqa %xmm0, %xmm\\r\n.endr\n"
    ".irp r,9,11,13,15\nmovdqa %xmm1, %xmm\\r\n.endr\n"
    "cmpl $0, 8(%rsp)\nje 1f\n"
    ".irp r,8,10,12,14\nvinsertf128 $1, %xmm1, %ymm\\r, %ymm\\r\n.endr\n"
    ".irp r,9,11,13,15\nvinsertf128 $1, %xmm0, %ymm\\r, %ymm\\r\n.endr\n"
    "1: cmpl $0, (%rsp)\nje 1f\n"
    ".irp r,16,18,20,22,24,26,28,30\nvpbroadcastq %rbx, %zmm\\r\n.endr\n"
    ".irp r,17,19,21,23,25,27,29,31\nvpbroadcastq %rbp, %zmm\\r\n.endr\n"
    "1:\n"
    ".irp i,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16\n"
    "lea 100+\\i(%rbx), %rdx\nmov %rdx, -8*\\i(%rsp)\n.endr\n"
    "2: incq main_ticks(%rip)\n"
    "mov spin_errno_at(%rip), %rdx\ncmpl $4242, (%rdx)\njne 9f\n"
    "movabs $0x0123456789abcdef, %rax\ncmp %rax, %rbx\njne 9f\n"
    "mov %rax, %rdx\nnot %rdx\ncmp %rdx, %rbp\njne 9f\n"
    "lea 1(%rax), %rdx\ncmp %rdx, %r12\njne 9f\n"
    "lea 2(%rax), %rdx\ncmp %rdx, %r13\njne 9f\n"
    "lea 3(%rax), %rdx\ncmp %rdx, %r14\njne 9f\n"
    "lea 4(%rax), %rdx\ncmp %rdx, %r15\njne 9f\n"
    "movq %rbx, %xmm0\npunpcklqdq %xmm0, %xmm0\n"
    "movq %rbp, %xmm1\npunpcklqdq %xmm1, %xmm1\n"
    ".irp r,8,10,12,14\nmovdqa %xmm0, %xmm2\npcmpeqb %xmm\\r, %xmm2\n"
    "pmovmskb %xmm2, %edx\ncmp $0xffff, %edx\njne 9f\n.endr\n"
    ".irp r,9,11,13,15\nmovdqa %xmm1, %xmm2\npcmpeqb %xmm\\r, %xmm2\n"
    "pmovmskb %xmm2, %edx\ncmp $0xffff, %edx\njne 9f\n.endr\n"
    ".irp i,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16\n"
    "lea 100+\\i(%rbx), %rdx\ncmp %rdx, -8*\\i(%rsp)\njne 9f\n.endr\n"
    "cmpl $0, 8(%rsp)\nje 3f\n"
    ".irp r,8,10,12,14\nvextractf128 $1, %ymm\\r, %xmm2\npcmpeqb %xmm1, %xmm2\n"
    "pmovmskb %xmm2, %edx\ncmp $0xffff, %edx\njne 9f\n.endr\n"
    ".irp r,9,11,13,15\nvextractf128 $1, %ymm\\r, %xmm2\npcmpeqb %xmm0, %xmm2\n"
    "pmovmskb %xmm2, %edx\ncmp $0xffff, %edx\njne 9f\n.endr\n"
    "3: cmpl $0, (%rsp)\nje 2b\n"
    "vpbroadcastq %rbx, %zmm3\nvpbroadcastq %rbp, %zmm4\n"
    ".irp r,16,18,20,22,24,26,28,30\nvpcmpeqq %zmm\\r, %zmm3, %k1\n"
    "kmovw %k1, %edx\ncmp $0xff, %edx\njne 9f\n.endr\n"
    ".irp r,17,19,21,23,25,27,29,31\nvpcmpeqq %zmm\\r, %zmm4, %k1\n"
    "kmovw %k1, %edx\ncmp $0xff, %edx\njne 9f\n.endr\n"
    "jmp 2b\n"
    "9: mov $1, %eax\nadd $16, %rsp\n"
    "pop %r15\npop %r14\npop %r13\npop %r12\npop %rbp\npop %rbx\nret\n");

int main(int argc, char **argv)
{
    void *(*fns[])(void *) = { epoll_thread, accept_thread, read_thread, cond_thread,
                               sleep_thread, poll_thread, writer_thread, malloc_thread,
                               churn_thread };
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001) };
    socklen_t len = sizeof sa;
    pthread_t t;
    size_t i;

    if (argc != 6)
        return 2;
    ctl_fd = atoi(argv[2]);
    ep_fd = atoi(argv[3]);
    poll_fd = atoi(argv[4]);
    full_fd = atoi(argv[5]);
    lsock = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (bind(lsock, (struct sockaddr *)&sa, sizeof sa) || listen(lsock, 16) ||
        getsockname(lsock, (struct sockaddr *)&sa, &len))
        return 3;
    for (i = 0; i < sizeof fns / sizeof fns[0]; i++)
        pthread_create(&t, NULL, fns[i], NULL);
    say("ready %d\n", ntohs(sa.sin_port));
    if (strcmp(argv[1], "spin") == 0) {
        int avx = __builtin_cpu_supports("avx"), avx512 = __builtin_cpu_supports("avx512f");

        spin_errno_at = &errno;
        errno = 4242;
        spin_check(avx, avx512);
        say("CORRUPT\n");
        _exit(3);
    }
    if (strcmp(argv[1], "alarm") == 0) {
        struct sigaction act = { .sa_handler = on_alarm, .sa_flags = SA_RESTART };
        struct itimerval every = { { 0, 500 }, { 0, 500 } };
        sigaction(SIGALRM, &act, NULL);
        setitimer(ITIMER_REAL, &every, NULL);
    }
    if (strcmp(argv[1], "epoll") == 0) {
        int epfd = epoll_create1(0);
        struct epoll_event ev;
        for (;;) {
            epoll_wait(epfd, &ev, 1, 5);
            main_ticks++;
        }
    }
    for (;;) {
        nap_ms(2);
        main_ticks++;
    }
}
"""

PROBE_C = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int probe(const char *arg)
{
    int fd = open(OUT_PATH, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    size_t len = strlen(arg);
    if (fd < 0 || write(fd, arg, len) != (ssize_t)len)
        return -1;
    close(fd);
    return 42;
}

/* Writes the address of a variable in its frame, on the fresh thread's
 * stack. */
int frame(const char *arg)
{
    char text[32];
    (void)arg;
    snprintf(text, sizeof text, "%lx", (unsigned long)text);
    return probe(text) == 42 ? 45 : -1;
}

int neg(const char *arg)
{
    (void)arg;
    return -7;
}

/* 101 once the program's library with a slow constructor (SLOW_CTOR_C)
 * has finished it, 100 while it runs, -1 without that library. */
int startup_done(const char *arg)
{
    int *done = dlsym(RTLD_DEFAULT, "ctor_done");
    (void)arg;
    return done ? 100 + *done : -1;
}

int zero(const char *arg)
{
    (void)arg;
    return 0;
}

int where(const char *arg)
{
    (void)arg;
    return gettid() != getpid();
}

static void wait_gate(void *unused)
{
    (void)unused;
    while (access(GATE_PATH, F_OK) != 0)
        usleep(1000);
}

int hold(const char *arg)
{
    wait_gate(NULL);
    return probe(arg) == 42 ? 43 : -1;
}

int linger(const char *arg)
{
    pthread_key_t key;
    (void)arg;
    if (pthread_key_create(&key, wait_gate) || pthread_setspecific(key, "x"))
        return -1;
    return 44;
}
"""

# dead_stacks: four threads, each with 4 KiB of its own bytes in its
# frame, parked in read (0-2) or epoll_wait (3) on a pipe of its own; on 'd' one
# calls a function whose 32 KiB array reaches below its frames and says
# "deep I LOW HIGH" (the array's bounds), on 'v' it checks its bytes and
# says "ok I" or "bad I".
DEEP_C = r"""
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

static int pipes[4][2];

static void say(const char *text)
{
    if (write(1, text, strlen(text)) < 0)
        _exit(4);
}

static __attribute__((noinline)) void deep(int id)
{
    volatile char array[32768];
    char line[80];
    for (size_t i = 0; i < sizeof array; i += 512)
        array[i] = (char)i;
    snprintf(line, sizeof line, "deep %d %lx %lx\n", id, (unsigned long)array,
             (unsigned long)(array + sizeof array));
    say(line);
}

static void *park(void *arg)
{
    int id = (int)(long)arg;
    char mine[4096], line[32], c;
    int ep = epoll_create1(0);
    struct epoll_event ev = { .events = EPOLLIN }, got;
    for (size_t i = 0; i < sizeof mine; i++)
        mine[i] = (char)(i * 7 + id);
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, pipes[id][0], &ev))
        _exit(5);
    for (;;) {
        if (id == 3 && epoll_wait(ep, &got, 1, -1) != 1)
            continue;
        if (read(pipes[id][0], &c, 1) != 1)
            continue;
        if (c == 'd')
            deep(id);
        if (c == 'v') {
            int same = 1;
            for (size_t i = 0; i < sizeof mine; i++)
                same &= mine[i] == (char)(i * 7 + id);
            snprintf(line, sizeof line, "%s %d\n", same ? "ok" : "bad", id);
            say(line);
        }
    }
    return NULL;
}

int main(void)
{
    pthread_t t;
    char line[32];
    for (long i = 0; i < 4; i++) {
        if (pipe(pipes[i]) || pthread_create(&t, NULL, park, (void *)i))
            return 1;
        snprintf(line, sizeof line, "pipe %ld %d\n", i, pipes[i][1]);
        say(line);
    }
    say("ready\n");
    for (;;)
        pause();
}
"""

STATIC_C = r"""
#include <unistd.h>
int main(void) { for (;;) pause(); }
"""

VFORK_C = r"""
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
int main(void)
{
    for (;;) {
        pid_t c = vfork();
        if (c == 0) {
            struct timespec ts = { 1, 0 };
            write(1, "child\n", 6); /* the parent is in vfork now */
            nanosleep(&ts, NULL);
            _exit(0);
        }
        waitpid(c, NULL, 0);
        write(1, "tick\n", 5);
    }
}
"""

# late_thread: eight parked threads and one that, for each line on stdin,
# vforks a child that says "child" and sleeps 300 ms: its parent waits
# killable only, so it cannot stop meanwhile; after the line "pair" a thread
# of its own does the same with a child of 60 ms (both say "child"); after
# the line "loop" it vforks children that sleep 100 ms one after another,
# for good (the first says "child").
LATE_C = r"""
#include <pthread.h>
#include <stdio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void *park(void *arg)
{
    (void)arg;
    for (;;)
        pause();
    return NULL;
}

static void *vfork_once(void *ms)
{
    pid_t c = vfork();

    if (c == 0) {
        struct timespec ts = { 0, (long)ms * 1000 * 1000 };
        write(1, "child\n", 6);
        nanosleep(&ts, NULL);
        _exit(0);
    }
    waitpid(c, NULL, 0);
    for (;;)
        pause();
    return NULL;
}

static void *late(void *arg)
{
    char line[16];
    pthread_t t;

    (void)arg;
    while (fgets(line, sizeof line, stdin)) {
        int loop = line[0] == 'l', first = 1;

        if (line[0] == 'p' && pthread_create(&t, NULL, vfork_once, (void *)60L) != 0)
            return NULL;
        do {
            pid_t c = vfork();
            if (c == 0) {
                struct timespec ts = { 0, (loop ? 100 : 300) * 1000 * 1000 };
                if (first)
                    write(1, "child\n", 6);
                nanosleep(&ts, NULL);
                _exit(0);
            }
            waitpid(c, NULL, 0);
            first = 0;
        } while (loop);
    }
    return NULL;
}

int main(void)
{
    pthread_t t;
    int i;

    for (i = 0; i < 8; i++)
        if (pthread_create(&t, NULL, park, NULL) != 0)
            return 2;
    if (pthread_create(&t, NULL, late, NULL) != 0)
        return 2;
    printf("ready\n");
    fflush(stdout);
    for (;;)
        pause();
}
"""

# many_threads: argv[1] threads in all, the others parked in turn in
# pthread_cond_wait, nanosleep, read on a pipe and poll; each counts its
# wake-ups, and the main thread, once it reads a line on stdin, wakes them
# all (a broadcast, a byte for each reader, the sleepers by a signal) and
# prints how many woke.
MANY_C = r"""
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int pipes[2], go;
static volatile int woke;

static void on_usr1(int sig)
{
    (void)sig;
}

static void *park(void *arg)
{
    long kind = (long)arg % 4;
    struct pollfd p = { 0, POLLIN, 0 };
    struct timespec ts = { 3600, 0 };
    char c;

    p.fd = pipes[0];
    switch (kind) {
    case 0:
        pthread_mutex_lock(&mu);
        while (!go)
            pthread_cond_wait(&cv, &mu);
        pthread_mutex_unlock(&mu);
        break;
    case 1:
        nanosleep(&ts, NULL);
        break;
    case 2:
        if (read(pipes[0], &c, 1) != 1)
            return NULL;
        break;
    case 3:
        poll(&p, 1, -1);
        break;
    }
    __atomic_add_fetch(&woke, 1, __ATOMIC_SEQ_CST);
    for (;;)
        pause();
    return NULL;
}

int main(int argc, char **argv)
{
    int n = atoi(argv[1]), i;
    pthread_t *t = calloc(n, sizeof *t);
    pthread_attr_t a;
    char line[16];

    signal(SIGUSR1, on_usr1);
    pthread_attr_init(&a);
    pthread_attr_setstacksize(&a, 65536);
    if (!t || pipe(pipes) != 0)
        return 2;
    for (i = 1; i < n; i++)
        if (pthread_create(&t[i], &a, park, (void *)(long)i) != 0)
            return 2;
    printf("ready\n");
    fflush(stdout);
    if (!fgets(line, sizeof line, stdin))
        return 2;
    pthread_mutex_lock(&mu);
    go = 1;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    for (i = 1; i < n; i++)
        if (i % 4 == 1)
            pthread_kill(t[i], SIGUSR1);
    for (i = 1; i < n; i++)
        if (i % 4 == 2 || i % 4 == 3)
            if (write(pipes[1], "x", 1) != 1)
                return 2;
    while (woke < n - 1)
        usleep(1000);
    printf("woke %d\n", woke);
    fflush(stdout);
    for (;;)
        pause();
}
"""

# A library whose constructor takes 150 ms, then sets ctor_done.
SLOW_CTOR_C = r"""
#include <time.h>
int ctor_done;
__attribute__((constructor)) static void slow(void)
{
    struct timespec ts = { 0, 150 * 1000 * 1000 };
    nanosleep(&ts, NULL);
    ctor_done = 1;
}
int probe(const char *arg)
{
    (void)arg;
    return 42;
}
"""

# A library whose constructor forks: probe returns how long that fork took
# (ms).
CTOR_FORK_C = r"""
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
static double fork_ms;
__attribute__((constructor)) static void forks(void)
{
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    pid_t pid = fork();
    if (pid == 0)
        _exit(0);
    clock_gettime(CLOCK_MONOTONIC, &b);
    fork_ms = (b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) / 1e6;
    if (pid > 0)
        waitpid(pid, NULL, 0);
}
int probe(const char *arg)
{
    (void)arg;
    return (int)fork_ms;
}
"""

# forker NAME OFFSET [slow-prepare]: prints "ready", then forks a child
# every millisecond (on a thread of its own) until a line comes on stdin, then prints "forks N half
# H whole W stuck S longest MS". Each child reads /proc/self/maps: NAME not
# mapped, it exits 0; else 1 if the int at its base + OFFSET (ctor_done) is
# set, 3 if not (a copy of a library half loaded), 4 if not and a fork of
# its own then takes over half a second (it waits for a load that runs in
# no thread of it). A child killed by a signal counts as half too. With
# slow-prepare the program registers a prepare handler that sleeps 50 ms:
# a fork is inside it when the stub registers its own.
FORKER_C = r"""
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char maps[1 << 16];

static int look(const char *name, unsigned long offset)
{
    int fd = open("/proc/self/maps", O_RDONLY);
    ssize_t n, len = 0;
    while (fd >= 0 && len < (ssize_t)sizeof maps - 1 &&
           (n = read(fd, maps + len, sizeof maps - 1 - len)) > 0)
        len += n;
    maps[len] = 0;
    for (char *line = strtok(maps, "\n"); line; line = strtok(NULL, "\n")) {
        unsigned long start, off;
        if (strstr(line, name) && sscanf(line, "%lx-%*x %*s %lx", &start, &off) == 2 &&
            off == 0)
            return *(volatile int *)(start + offset) ? 1 : 3;
    }
    return 0;
}

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static void slow_prepare(void)
{
    struct timespec ts = { 0, 50 * 1000 * 1000 };
    nanosleep(&ts, NULL);
}

/* In a child holding a half-loaded copy: 4 if its own fork waits. */
static int half(void)
{
    double t = now_ms();
    pid_t pid = fork();
    if (pid == 0)
        _exit(0);
    if (pid > 0)
        waitpid(pid, NULL, 0);
    return now_ms() - t > 500 ? 4 : 3;
}

static const char *name;
static unsigned long offset;
static volatile int stop;
static long forks, halves, whole, stuck;
static double longest;

/* Forks (the program's main thread stays free for the injector to
 * borrow, as a server's usually is). */
static void *fork_loop(void *arg)
{
    (void)arg;
    while (!stop) {
        double t = now_ms();
        int st;
        pid_t pid = fork();
        if (pid == 0) {
            int r = look(name, offset);
            _exit(r == 3 ? half() : r);
        }
        if (now_ms() - t > longest)
            longest = now_ms() - t;
        if (pid < 0 || waitpid(pid, &st, 0) != pid)
            exit(1);
        forks++;
        if (WIFSIGNALED(st) || WEXITSTATUS(st) >= 3)
            halves++;
        if (!WIFSIGNALED(st) && WEXITSTATUS(st) == 4)
            stuck++;
        else if (!WIFSIGNALED(st) && WEXITSTATUS(st) == 1)
            whole++;
        usleep(1000);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    char line[16];
    pthread_t t;
    name = argv[1];
    offset = strtoul(argv[2], NULL, 16);
    if (argc > 3)
        pthread_atfork(slow_prepare, NULL, NULL);
    if (pthread_create(&t, NULL, fork_loop, NULL) != 0)
        return 1;
    printf("ready\n");
    fflush(stdout);
    if (!fgets(line, sizeof line, stdin))
        return 1;
    stop = 1;
    pthread_join(t, NULL);
    printf("forks %ld half %ld whole %ld stuck %ld longest %.0f\n", forks, halves, whole,
           stuck, longest);
    return 0;
}
"""

# child_inside_fork: a program with a second thread (so that its fork takes
# glibc's path for a threaded parent, which makes the child's state that of
# one thread only after the clone returns) and the stack of a joined one in
# glibc's cache (so that pthread_create in a child still inside fork needs
# no malloc, whose locks the fork holds until then, as in a fork server
# that was attached before) forks when told on stdin; the child waits for
# the file argv[1], then exits 7; the parent reports the child's wait
# status.
IN_FORK_TARGET_C = r"""
#include <pthread.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

static void *done(void *arg)
{
	return arg;
}

static void *idle(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t t;
	char line[16];
	int status;
	pid_t pid;

	if (argc != 2 || pthread_create(&t, NULL, idle, NULL) != 0 ||
	    pthread_create(&t, NULL, done, NULL) != 0 || pthread_join(t, NULL) != 0)
		return 2;
	printf("ready\n");
	fflush(stdout);
	if (!fgets(line, sizeof line, stdin))
		return 2;
	pid = fork();
	if (pid == 0) {
		while (access(argv[1], F_OK) != 0)
			usleep(2000);
		_exit(7);
	}
	waitpid(pid, &status, 0);
	printf("child status %d\n", status);
	return 0;
}
"""

# Seizes the target with PTRACE_O_TRACEFORK; at its fork, the child's first
# stop is just after the clone returned in it, inside _Fork: the child's own
# copy of the code there is made a "jmp ." (so that the child stays inside
# fork until the test writes the two bytes back), then both are let go.
# Prints "seized", then "CHILD RIP BYTES" (hex).
IN_FORK_HOLDER_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>

int main(int argc, char **argv)
{
	pid_t target = atoi(argv[argc - 1]), child = 0, w;
	int st, child_stopped = 0, target_stopped = 0;
	struct user_regs_struct regs;
	unsigned long event, word;

	if (ptrace(PTRACE_SEIZE, target, 0, PTRACE_O_TRACEFORK) < 0)
		return 2;
	printf("seized\n");
	fflush(stdout);
	while (!child_stopped || !target_stopped) {
		w = waitpid(-1, &st, __WALL);
		if (w < 0 || !WIFSTOPPED(st))
			return 3;
		if (w == target && st >> 16 == PTRACE_EVENT_FORK) {
			ptrace(PTRACE_GETEVENTMSG, target, 0, &event);
			child = (pid_t)event;
			target_stopped = 1;
		} else if (w == target) {
			ptrace(PTRACE_CONT, target, 0, WSTOPSIG(st));
		} else {
			child = w;
			child_stopped = 1;
		}
	}
	if (ptrace(PTRACE_GETREGS, child, 0, &regs) < 0)
		return 4;
	word = ptrace(PTRACE_PEEKTEXT, child, regs.rip, 0);
	if (ptrace(PTRACE_POKETEXT, child, regs.rip, (word & ~0xffffUL) | 0xfeeb) < 0)
		return 5;
	ptrace(PTRACE_DETACH, child, 0, 0);
	ptrace(PTRACE_DETACH, target, 0, 0);
	printf("%d %llx %04lx\n", (int)child, regs.rip, word & 0xffff);
	return 0;
}
"""

# child_in_fork_handler: a child whose atfork child handler spins until its
# flag (address printed at start) is set; its stack then holds fork two
# frames up (the handler, glibc's __run_postfork_handlers, fork). Forks
# when told on stdin and prints the child's pid; the child, once out of
# the handler, waits for the file argv[1], then exits 7; the parent
# reports the child's wait status.
IN_FORK_HANDLER_C = r"""
#include <pthread.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile int released;

static void spin(void)
{
	while (!released)
		;
}

int main(int argc, char **argv)
{
	char line[16];
	int status;
	pid_t pid;

	if (argc != 2 || pthread_atfork(NULL, NULL, spin) != 0)
		return 2;
	printf("ready %lx\n", (unsigned long)&released);
	fflush(stdout);
	if (!fgets(line, sizeof line, stdin))
		return 2;
	pid = fork();
	if (pid == 0) {
		while (access(argv[1], F_OK) != 0)
			usleep(2000);
		_exit(7);
	}
	printf("child %d\n", (int)pid);
	fflush(stdout);
	waitpid(pid, &status, 0);
	printf("child status %d\n", status);
	return 0;
}
"""

# hold_until(path): returns 43 once the file exists.
IN_FORK_LIB_C = r"""
#include <unistd.h>

int hold_until(const char *path)
{
	while (access(path, F_OK) != 0)
		usleep(2000);
	return 43;
}
"""

# A single-threaded program that mallocs and frees in a tight loop, sizes
# up to 192 KiB in 64 slots: malloc often grows or trims its heap (brk) or
# maps and unmaps a large chunk. It never has had a thread before the first
# attach, so glibc's malloc takes no lock: a pthread_create started on its
# main thread inside malloc corrupts the heap. On "stop" (stdin, looked at
# every 4096 turns) it frees all, says how many turns it made, exits 0.
MALLOC_LOOP_C = r"""
#define _GNU_SOURCE
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(void)
{
	static char *slot[64];
	unsigned long turns = 0, x = 12345;
	struct pollfd in = { .fd = 0, .events = POLLIN };

	printf("ready\n");
	fflush(stdout);
	for (;;) {
		x = x * 6364136223846793005ul + 1442695040888963407ul;
		unsigned i = (x >> 33) % 64;
		size_t size = 16 + (x >> 40) % (192 * 1024);
		free(slot[i]);
		slot[i] = malloc(size);
		if (!slot[i])
			return 3;
		memset(slot[i], (int)i, size < 64 ? size : 64);
		if (++turns % 4096 == 0 && poll(&in, 1, 0) == 1)
			break;
	}
	for (unsigned i = 0; i < 64; i++)
		free(slot[i]);
	printf("turns %lu\n", turns);
	return 0;
}
"""

# A program that runs itself again (execv of /proc/self/exe) 2 ms after it
# starts, counting its runs in argv[1] and writing the count to the file
# argv[2]: a process that is in the loader's start-up most of its life.
# It exits 0 once the file "stop" next to its count exists.
EXEC_LOOP_C = r"""
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	long runs = argc > 1 ? atol(argv[1]) : 0;
	char next[32], stop[4096];
	struct timespec pause = { 0, 2000000 };
	FILE *f;

	if (argc < 3)
		return 2;
	f = fopen(argv[2], "w");
	if (!f)
		return 3;
	fprintf(f, "%ld\n", runs);
	fclose(f);
	snprintf(stop, sizeof stop, "%s.stop", argv[2]);
	if (access(stop, F_OK) == 0)
		return 0;
	nanosleep(&pause, NULL);
	snprintf(next, sizeof next, "%ld", runs + 1);
	execv("/proc/self/exe", (char *[]){ argv[0], next, argv[2], NULL });
	return 4;
}
"""

# A parent that forks a child every 3 ms, at most 8 at once; each child
# waits 1 ms (a copy of its parent between fork and exec) and then runs
# `/bin/sh -c "exit 0"`, as a server runs a CGI. The parent counts the
# children that did not exit 0; once the file argv[1] exists it waits for
# the last ones and prints "children N abnormal M".
SHORT_CHILDREN_C = r"""
#define _GNU_SOURCE
#include <stdio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct timespec gap = { 0, 3000000 }, before_exec = { 0, 1000000 };
	long children = 0, abnormal = 0, running = 0;
	int st;

	if (argc < 2)
		return 2;
	printf("ready\n");
	fflush(stdout);
	while (access(argv[1], F_OK) != 0) {
		if (running < 8) {
			pid_t pid = fork();
			if (pid == 0) {
				nanosleep(&before_exec, NULL);
				execl("/bin/sh", "sh", "-c", "exit 0", (char *)NULL);
				_exit(127);
			}
			if (pid > 0) {
				children++;
				running++;
			}
		}
		while (waitpid(-1, &st, WNOHANG) > 0) {
			running--;
			abnormal += !(WIFEXITED(st) && WEXITSTATUS(st) == 0);
		}
		nanosleep(&gap, NULL);
	}
	while (running > 0 && wait(&st) > 0) {
		running--;
		abnormal += !(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	printf("children %ld abnormal %ld\n", children, abnormal);
	return 0;
}
"""

# A program linked with libslowctor.so: its start-up runs that library's
# constructor (150 ms in nanosleep) before main, which then sleeps.
SLOW_START_C = r"""
#include <unistd.h>
extern int ctor_done;
int main(void)
{
    while (ctor_done)
        pause();
    return 1;
}
"""

# A program whose main thread waits for a mutex (futex(..., 2): no point to
# borrow it at) that its other thread holds, argv[1] saying where that one
# waits meanwhile: "read" (a read of stdin) or "sleep" (50 ms nanosleeps,
# checking stdin in between); a line on stdin lets the mutex go, and the
# program prints what the holder read and "main got the lock", exit 0.
# "deadlock": each thread waits for the mutex the other holds, for ever
# (no thread at a point to borrow).
MUTEX_WAIT_C = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t first = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t second = PTHREAD_MUTEX_INITIALIZER;
static pthread_barrier_t both;
static const char *how;
static char got[16];
static ssize_t got_n;

static void *holder(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&first);
    pthread_barrier_wait(&both);
    if (strcmp(how, "deadlock") == 0) {
        pthread_mutex_lock(&second);
        return NULL;
    }
    if (strcmp(how, "sleep") == 0) {
        struct pollfd in = { .fd = 0, .events = POLLIN };
        struct timespec nap = { 0, 50 * 1000 * 1000 };
        while (poll(&in, 1, 0) != 1)
            if (nanosleep(&nap, NULL) != 0 && errno != EINTR)
                return NULL;
    }
    got_n = read(0, got, sizeof got - 1);
    pthread_mutex_unlock(&first);
    return NULL;
}

int main(int argc, char **argv)
{
    pthread_t t;
    if (argc != 2)
        return 2;
    how = argv[1];
    pthread_barrier_init(&both, NULL, 2);
    pthread_mutex_lock(&second);
    if (pthread_create(&t, NULL, holder, NULL) != 0)
        return 3;
    pthread_barrier_wait(&both);
    printf("ready\n");
    fflush(stdout);
    pthread_mutex_lock(&first);
    pthread_join(t, NULL);
    printf("holder read %zd %s", got_n, got_n > 0 ? got : "\n");
    printf("main got the lock\n");
    return 0;
}
"""

SECCOMP_C = r"""
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(int argc, char **argv)
{
    struct sock_filter allow = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    struct sock_fprog prog = { 1, &allow };
    char c;
    if (argc == 2 && strcmp(argv[1], "strict") == 0) {
        write(1, "ready\n", 6);
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_STRICT);
        read(0, &c, 1);
        syscall(SYS_exit, 0);
    }
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
    write(1, "ready\n", 6);
    for (;;)
        pause();
}
"""


class Target:
    """The target program, its pipes, and the lines it prints."""

    def __init__(self, exe, mode, env=None):
        self.ctl_r, self.ctl_w = os.pipe()
        self.ep_r, self.ep_w = os.pipe()
        self.poll_r, self.poll_w = os.pipe()
        self.full_r, self.full_w = os.pipe()
        ours = (self.ctl_r, self.ep_r, self.poll_r, self.full_w)
        self.proc = subprocess.Popen(
            [exe, mode] + [str(fd) for fd in ours], stdout=subprocess.PIPE,
            pass_fds=ours, env=env)
        for fd in ours:
            os.close(fd)
        os.set_blocking(self.full_r, False)
        self.pid = self.proc.pid
        self.lines = []
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        self.port = int(self.wait(r"ready (\d+)", 0, 10).group(1))

    def _read(self):
        for raw in self.proc.stdout:
            with self.cond:
                self.lines.append(raw.decode(errors="replace").rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.lines.append("<eof>")
            self.cond.notify_all()

    def mark(self):
        with self.cond:
            return len(self.lines)

    def wait(self, pattern, since, timeout=3.0):
        """The first line from index `since` on matching pattern, or None."""
        end = time.monotonic() + timeout
        with self.cond:
            while True:
                for line in self.lines[since:]:
                    m = re.fullmatch(pattern, line)
                    if m:
                        return m
                left = end - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)

    def send(self, fd, data):
        os.write(fd, data)

    def stat(self):
        m = self.mark()
        self.send(self.ctl_w, b"s")
        found = self.wait(r"stat (.*)", m)
        if not found:
            return None
        return {k: int(v) for k, v in (kv.split("=") for kv in found.group(1).split())}

    def churn(self, on):
        """Starts or pauses the churn thread; after a pause, waits until it idles."""
        self.send(self.ctl_w, b"C" if on else b"P")
        end = time.monotonic() + 3
        while not on and time.monotonic() < end:
            s = self.stat()
            if s and s["idle"]:
                return True
            time.sleep(0.01)
        return on

    def alive(self):
        return self.proc.poll() is None and proc_state(self.pid) not in ("Z", None)

    def drain_writer(self):
        """Drains the full pipe; returns (bytes drained, writer's line)."""
        drained = 0
        found = None
        end = time.monotonic() + 5
        while time.monotonic() < end:
            try:
                drained += len(os.read(self.full_r, 65536))
                continue
            except BlockingIOError:
                pass
            if found:
                return drained, found.group(1)
            found = self.wait(r"writer (.*)", 0, 0.01)
        return drained, None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for fd in (self.ctl_w, self.ep_w, self.poll_w, self.full_r):
            os.close(fd)


def maps_of(pid):
    """[(start, end, perms, path)] of pid's mappings."""
    found = []
    for line in open("/proc/%d/maps" % pid):
        fields = line.split()
        start, end = (int(a, 16) for a in fields[0].split("-"))
        found.append((start, end, fields[1], fields[5] if len(fields) > 5 else ""))
    return found


def proc_state(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("State:"):
                    return line.split()[1]
    except OSError:
        return None
    return None


def proc_field(pid, name):
    """name's value in /proc/PID/status (pid: a number, or "PID/task/TID")."""
    with open("/proc/%s/status" % pid) as f:
        for line in f:
            if line.startswith(name + ":"):
                return line.split()[1]
    return None


def ntasks(pid):
    return len(os.listdir("/proc/%d/task" % pid))


def nfds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def nmaps(pid):
    with open("/proc/%d/maps" % pid) as f:
        return sum(1 for _ in f)


def code_pages(pid):
    """How many anonymous one-page r-xp mappings (reqid-inject's code) pid has."""
    n = 0
    with open("/proc/%d/maps" % pid) as f:
        for line in f:
            fields = line.split()
            start, end = (int(x, 16) for x in fields[0].split("-"))
            n += fields[1] == "r-xp" and fields[4] == "0" and len(fields) == 5 and \
                end - start == 4096
    return n


SYS_FUTEX = 202


def thread_calls(pid):
    """{tid: number of the system call it is in, -1 outside one} of pid's
    threads (/proc/PID/task/TID/syscall; a running thread is left out)."""
    calls = {}
    try:
        tids = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return calls
    for tid in tids:
        try:
            with open("/proc/%d/task/%s/syscall" % (pid, tid)) as f:
                first = f.read().split()[0]
        except (OSError, IndexError):
            continue
        if first != "running":
            calls[int(tid)] = int(first)
    return calls


def wait_until(cond, timeout=3.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.01)
    return cond()


# What the refusal says under each Yama ptrace_scope (the kernel here may
# have no Yama: yama_prefix gives the injector a private mount namespace
# whose /proc/sys/kernel is a tmpfs holding yama/ptrace_scope).
YAMA_HINTS = {
    1: r"ptrace_scope is 1 \(only ancestors may trace\): run with CAP_SYS_PTRACE",
    2: r"ptrace_scope is 2 \(admin only\): run with CAP_SYS_PTRACE",
    3: r"ptrace_scope is 3: ptrace is disabled until reboot",
}


def yama_prefix(scope):
    """Runs the injector as nobody where /proc/sys/kernel/yama/ptrace_scope
    reads scope."""
    return ["unshare", "-m", "sh", "-c",
            "mount -t tmpfs none /proc/sys/kernel && mkdir /proc/sys/kernel/yama && "
            "echo %d > /proc/sys/kernel/yama/ptrace_scope && "
            'exec setpriv --reuid=65534 --regid=65534 --clear-groups "$@"' % scope, "sh"]


def inject(pid, lib, func, arg, verbose=False, prefix=(), pages=False, stacks=False):
    cmd = list(prefix) + [str(INJECT)] + (["-v"] if verbose else []) + (
        ["-p"] if pages else []) + (["-s"] if stacks else []) + [str(pid), str(lib), func, arg]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30)


STOP_TIMES = re.compile(r"reqid-inject: (\d+) threads stopped, longest stop ([\d.]+) ms, "
                        r"total ([\d.]+) ms")


class Suite:
    def __init__(self, tmp):
        self.tmp = Path(tmp)
        self.passed = self.failed = 0
        self.stops = []      # (threads, longest stop ms, total ms) from -v runs
        self.notes = []

    def check(self, name, ok, detail=""):
        if ok:
            self.passed += 1
            print("pass  %s" % name)
        else:
            self.failed += 1
            print("FAIL  %s%s" % (name, ": " + detail if detail else ""))
        return ok

    def cc(self, out, source, *flags):
        src = self.tmp / (out + ".c")
        src.write_text(source)
        r = subprocess.run(["cc", "-O1", "-g", "-o", str(self.tmp / out), str(src)] +
                           list(flags), capture_output=True, text=True)
        return r.returncode == 0, r.stderr

    def one_error(self, name, r, pattern, code=1):
        """Exit `code` and exactly one stderr line, 'reqid-inject: ' + pattern."""
        lines = r.stderr.splitlines()
        ok = (r.returncode == code and len(lines) >= 1 and
              (code == 2 or len(lines) == 1) and
              re.match(r"reqid-inject: .*" + pattern, lines[0]) is not None and
              r.stdout == "")
        return self.check(name, ok, "exit %d, stdout %r, stderr %r" %
                          (r.returncode, r.stdout, r.stderr))

    def record(self, r):
        m = STOP_TIMES.search(r.stderr)
        if m:
            self.stops.append((int(m.group(1)), float(m.group(2)), float(m.group(3))))

    def live(self, name, t, ticks=("sleep", "malloc", "main")):
        """Every parked thread resumed: data sent now reaches each of them."""
        problems = []
        if not t.alive():
            return self.check(name, False, "target is gone")
        m = t.mark()
        t.send(t.ep_w, b"e")
        t.send(t.poll_w, b"p")
        t.send(t.ctl_w, b"c")
        with socket.create_connection(("127.0.0.1", t.port), timeout=3):
            pass
        for pattern in ("epoll e", "poll p", "read c", "cond", "accept"):
            if not t.wait(pattern, m):
                problems.append("no %r" % pattern)
        s1 = t.stat()
        time.sleep(0.1)
        s2 = t.stat()
        if not s1 or not s2:
            problems.append("no stat")
        else:
            problems += ["%s stuck at %d" % (k, s2[k]) for k in ticks if s2[k] <= s1[k]]
        if t.wait("CORRUPT", 0, 0):
            problems.append("CORRUPT")
        return self.check(name, not problems, "; ".join(problems))

    def build(self):
        r = subprocess.run(["make", "-s", "build/reqid-inject"], cwd=ROOT, capture_output=True,
                           text=True)
        if not self.check("build reqid-inject", r.returncode == 0, r.stderr):
            return False
        ok, err = self.cc("target", TARGET_C, "-pthread")
        if not self.check("build target", ok, err):
            return False
        out = self.tmp / "probe.out"
        ok, err = self.cc("libprobe.so", PROBE_C, "-shared", "-fPIC", "-pthread",
                          '-DOUT_PATH="%s"' % out, '-DGATE_PATH="%s"' % (self.tmp / "gate"))
        if not self.check("build libprobe.so", ok, err):
            return False
        ok, err = self.cc("seccomp", SECCOMP_C)
        if not self.check("build seccomp target", ok, err):
            return False
        ok, err = self.cc("vfork", VFORK_C)
        if not self.check("build vfork target", ok, err):
            return False
        ok, err = self.cc("libslowctor.so", SLOW_CTOR_C, "-shared", "-fPIC")
        if not self.check("build libslowctor.so", ok, err):
            return False
        ok, err = self.cc("libctorfork.so", CTOR_FORK_C, "-shared", "-fPIC")
        if not self.check("build libctorfork.so", ok, err):
            return False
        ok, err = self.cc("malloc_loop", MALLOC_LOOP_C)
        if not self.check("build malloc_loop target", ok, err):
            return False
        ok, err = self.cc("mutex_wait", MUTEX_WAIT_C, "-pthread")
        if not self.check("build mutex_wait target", ok, err):
            return False
        ok, err = self.cc("exec_loop", EXEC_LOOP_C)
        if not self.check("build exec_loop target", ok, err):
            return False
        ok, err = self.cc("short_children", SHORT_CHILDREN_C)
        if not self.check("build short_children target", ok, err):
            return False
        ok, err = self.cc("slow_start", SLOW_START_C, "-L" + str(self.tmp), "-lslowctor",
                          "-Wl,-rpath," + str(self.tmp))
        if not self.check("build slow_start target", ok, err):
            return False
        ok, err = self.cc("deep", DEEP_C, "-pthread")
        if not self.check("build deep target", ok, err):
            return False
        ok, err = self.cc("forker", FORKER_C, "-pthread")
        return self.check("build forker", ok, err)

    def forker(self, lib, extra=(), inject_lib=None):
        """Runs the forker on lib's ctor_done, injects inject_lib (lib by
        default) twice while it forks; (the two injections, its counts or
        None, its output)."""
        nm = subprocess.run(["nm", "-D", "--defined-only", str(lib)], capture_output=True,
                            text=True).stdout
        offset = next(l.split()[0] for l in nm.splitlines() if l.endswith(" ctor_done"))
        proc = subprocess.Popen([str(self.tmp / "forker"), lib.name, offset] + list(extra),
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            ready = proc.stdout.readline()
            first = inject(proc.pid, inject_lib or lib, "probe", "x")
            again = inject(proc.pid, inject_lib or lib, "probe", "x")
            proc.stdin.write("stop\n")
            proc.stdin.flush()
            out, _ = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        m = re.fullmatch(r"forks (\d+) half (\d+) whole (\d+) stuck (\d+) longest (\d+)\n",
                         out)
        counts = dict(zip(("forks", "half", "whole", "stuck", "longest"),
                          (int(x) for x in m.groups()))) if m and ready == "ready\n" else None
        return (first, again), counts, out

    def child_inside_fork(self):
        """A child stopped inside fork(), before glibc reset its thread count
        (and its stack list and locks) to those of one thread: reqid-inject
        waits for it to leave fork before it creates its thread there. Until
        2026-12-07 it created the thread at once; the child's reset then
        counted one thread too few, and when that thread returned, glibc
        took it for the last and the child exit(0)ed in the middle of its
        work (a fork-per-connection server's child closed a connection
        without a response: test_attach fork_per_conn under load)."""
        for out, source, flags in (("in_fork_target", IN_FORK_TARGET_C, ["-pthread"]),
                                   ("in_fork_holder", IN_FORK_HOLDER_C, []),
                                   ("libholduntil.so", IN_FORK_LIB_C, ["-shared", "-fPIC"])):
            ok, err = self.cc(out, source, *flags)
            if not self.check("child inside fork: build " + out, ok, err):
                return
        gate, finish = self.tmp / "in_fork.gate", self.tmp / "in_fork.finish"
        target = subprocess.Popen([str(self.tmp / "in_fork_target"), str(finish)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        holder = injector = None
        try:
            target.stdout.readline()
            holder = subprocess.Popen([str(self.tmp / "in_fork_holder"), str(target.pid)],
                                      stdout=subprocess.PIPE, text=True)
            if holder.stdout.readline() != "seized\n":
                self.check("child inside fork: the holder seized the target", False)
                return
            target.stdin.write(b"fork\n")
            target.stdin.flush()
            words = holder.stdout.readline().split()
            if not self.check("child inside fork: the child is held in fork",
                              holder.wait(10) == 0 and len(words) == 3, repr(words)):
                return
            child, rip, code = int(words[0]), int(words[1], 16), bytes.fromhex(words[2])[::-1]
            injector = subprocess.Popen([str(INJECT), str(child), str(self.tmp / "libholduntil.so"),
                                         "hold_until", str(gate)],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            # While the child is inside fork, its thread must not appear.
            early = wait_until(lambda: ntasks(child) > 1, 0.5)
            self.check("child inside fork: no thread created in it while it is inside fork",
                       not early)
            with open("/proc/%d/mem" % child, "r+b", buffering=0) as mem:
                mem.seek(rip)
                mem.write(code)
            self.check("child inside fork: its thread is created once it left fork",
                       wait_until(lambda: ntasks(child) > 1, 5))
            gate.touch()
            out, err = injector.communicate(timeout=30)
            self.check("child inside fork: the call returned 43", out == "43\n", err)
            # The child must still be alive to finish its own work: exit 7.
            alive = target.poll() is None and proc_state(child) not in (None, "Z")
            finish.touch()
            report = target.stdout.readline().decode().strip()
            self.check("child inside fork: the child lived on and exited 7 (%s)" % report,
                       alive and report == "child status %d" % (7 << 8))
        finally:
            for p in (injector, holder, target):
                if p and p.poll() is None:
                    p.kill()
                    p.wait()

    def child_in_fork_handler(self):
        """A child whose main thread is two frames below fork (in its atfork
        child handler): the stack walk says inside fork, so the cheap test
        that comes before it (in_fork.c) must not say outside: no thread is
        created while the handler spins; once it returns, the call runs and
        returns, and the child lives on to exit 7."""
        for out, source, flags in (("in_fork_handler", IN_FORK_HANDLER_C, ["-pthread"]),
                                   ("libholduntil.so", IN_FORK_LIB_C, ["-shared", "-fPIC"])):
            ok, err = self.cc(out, source, *flags)
            if not self.check("child in fork handler: build " + out, ok, err):
                return
        gate, finish = self.tmp / "handler.gate", self.tmp / "handler.finish"
        target = subprocess.Popen([str(self.tmp / "in_fork_handler"), str(finish)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        injector = None
        try:
            flag = int(target.stdout.readline().split()[1], 16)
            target.stdin.write("fork\n")
            target.stdin.flush()
            child = int(target.stdout.readline().split()[1])
            injector = subprocess.Popen([str(INJECT), str(child), str(self.tmp / "libholduntil.so"),
                                         "hold_until", str(gate)],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            early = wait_until(lambda: ntasks(child) > 1, 0.5)
            self.check("child in fork handler: no thread created in it while the handler runs",
                       not early)
            with open("/proc/%d/mem" % child, "r+b", buffering=0) as mem:
                mem.seek(flag)
                mem.write((1).to_bytes(4, "little"))
            self.check("child in fork handler: its thread is created once the handler returned",
                       wait_until(lambda: ntasks(child) > 1, 5))
            gate.touch()
            out, err = injector.communicate(timeout=30)
            self.check("child in fork handler: the call returned 43", out == "43\n", err)
            alive = target.poll() is None and proc_state(child) not in (None, "Z")
            finish.touch()
            report = target.stdout.readline().strip()
            self.check("child in fork handler: the child lived on and exited 7 (%s)" % report,
                       alive and report == "child status %d" % (7 << 8))
        finally:
            for p in (injector, target):
                if p and p.poll() is None:
                    p.kill()
                    p.wait()

    def forks_while_loading(self):
        """No child forked while the library loads gets a half-loaded copy."""
        lib = self.tmp / "libslowctor.so"
        (first, again), c, out = self.forker(lib)
        self.check("forks while loading: both injections print 42",
                   first.stdout == "42\n" and again.stdout == "42\n",
                   "%r, %r" % (first.stderr, again.stderr))
        if not self.check("forks while loading: the forker reports", c, repr(out)):
            return
        self.notes.append("forks while loading: %(forks)d forks, %(half)d children with a "
                          "half-loaded library, %(whole)d with the whole one, longest fork "
                          "%(longest)d ms" % c)
        self.check("forks while loading: no child holds a half-loaded library", c["half"] == 0,
                   "%(half)d of %(forks)d children did" % c)
        self.check("forks while loading: a fork waited for the load (>= 100 ms)",
                   c["longest"] >= 100, "longest fork %(longest)d ms" % c)
        self.check("forks while loading: children after the load hold the whole library",
                   c["whole"] > 0, "%(whole)d" % c)

        # A fork inside the program's own 50 ms prepare handler when the
        # stub registers its handlers runs none of them: its child may hold
        # a half-loaded copy (README), but must not wait for a load that
        # runs in no thread of its own (before: each of its forks waited
        # about 1.1 s).
        (first, again), c, out = self.forker(lib, ["slow-prepare"])
        if not self.check("forks inside a slow prepare handler: the forker reports",
                          c and first.stdout == "42\n", repr(out) + first.stderr):
            return
        self.notes.append("forks inside a 50 ms prepare handler: %(forks)d forks, %(half)d "
                          "children with a half-loaded library, %(stuck)d of them waiting" % c)
        self.check("forks inside a slow prepare handler: no child's fork waits for a load "
                   "it does not run", c["stuck"] == 0, "%(stuck)d children's forks did" % c)

        # A constructor that forks does not wait for its own load (before:
        # 1.1 s).
        (first, again), c, out = self.forker(lib, inject_lib=self.tmp / "libctorfork.so")
        took = int(first.stdout) if first.stdout.strip().isdigit() else None
        self.check("a constructor's fork does not wait for its own load (< 500 ms)",
                   took is not None and took < 500, "%r %r" % (first.stdout, first.stderr))

    def basics(self):
        lib = self.tmp / "libprobe.so"
        out = self.tmp / "probe.out"
        t = Target(str(self.tmp / "target"), "sleep")
        try:
            self.check("churn paused", t.churn(False))
            tasks, fds = ntasks(t.pid), nfds(t.pid)
            r = inject(t.pid, lib, "probe", "hello from the test", verbose=True)
            self.record(r)
            self.check("probe: exit 0, stdout 42", r.returncode == 0 and r.stdout == "42\n",
                       "exit %d, stdout %r, stderr %r" % (r.returncode, r.stdout, r.stderr))
            self.check("probe: file holds the argument",
                       out.exists() and out.read_text() == "hello from the test")
            self.check("threads back to %d after the injected one ended" % tasks,
                       wait_until(lambda: ntasks(t.pid) == tasks),
                       "%d threads" % ntasks(t.pid))
            self.live("parked threads resume after probe", t)

            # -p: a last line says which pages of every read-only file
            # mapping were resident before the injection, libc's and the
            # loader's first, one hex digit for each four pages
            # (inject/resident_pages.c).
            r = inject(t.pid, lib, "probe", "first", pages=True)
            got = out.read_text() if out.exists() else ""
            wanted, runs_it = {}, set()
            for s, e, perms, path in maps_of(t.pid):
                if perms[0] == "r" and perms[1] == "-" and perms[3] == "p" and \
                        path.startswith("/"):
                    wanted["%x-%x" % (s, e)] = (e - s) // 4096
                    base = path.rsplit("/", 1)[-1]
                    if base.startswith("libc.so.6") or base.startswith("ld-linux"):
                        runs_it.add("%x-%x" % (s, e))
            first, _, line = got.partition("\n")
            entries = [entry.split(":") for entry in
                       line.removeprefix("REQID_RESIDENT_BEFORE=").split(",")] \
                if line.startswith("REQID_RESIDENT_BEFORE=") else []
            listed = dict(entries)
            self.check("-p: the resident pages of every read-only file mapping, libc's and "
                       "the loader's first, one line after ARG",
                       r.returncode == 0 and first == "first" and runs_it and
                       set(listed) == set(wanted) and
                       {k for k, _ in entries[:len(runs_it)]} == runs_it and
                       all(len(bits) == (wanted[k] + 3) // 4 and
                           re.fullmatch("[0-9a-f]+", bits) and
                           (k not in runs_it or bits.strip("0"))
                           for k, bits in listed.items()),
                       "exit %d, stderr %r, file %r, mappings %r" % (
                           r.returncode, r.stderr, got[:300], wanted))
            r = inject(t.pid, lib, "probe", "", pages=True)
            self.check("-p with an empty ARG: the line alone",
                       out.read_text().startswith("REQID_RESIDENT_BEFORE="), out.read_text()[:80])

            big = "".join(chr(ord("a") + i % 26) for i in range(65536))
            r = inject(t.pid, lib, "probe", big)
            self.check("64 KiB argument copied", r.stdout == "42\n" and
                       out.read_text() == big, r.stderr)
            r = inject(t.pid, lib, "probe", big + "x")
            self.one_error("65537-byte argument: usage error", r, "ARG is longer", 2)
            r = inject(t.pid, lib, "neg", "")
            self.check("neg prints -7", r.returncode == 0 and r.stdout == "-7\n", r.stderr)
            r = inject(t.pid, lib, "where", "")
            self.check("FUNCTION runs on a fresh thread", r.stdout == "1\n", r.stdout + r.stderr)

            r = inject(t.pid, self.tmp / "missing.so", "probe", "x")
            self.one_error("missing library: dlerror text", r,
                           r"dlopen\(.*missing.so.*cannot open shared object file")
            r = inject(t.pid, lib, "no_such_function", "x")
            self.one_error("missing function: dlerror text", r,
                           r"dlsym\(\"no_such_function\"\).*undefined symbol")
            self.live("parked threads resume after the failures", t)

            self.check("churn running", t.churn(True))
            rss0 = int(proc_field(t.pid, "VmRSS"))
            results = []
            for i in range(50):
                r = inject(t.pid, lib, "probe", "run %d" % i, verbose=True)
                self.record(r)
                results.append(r.returncode == 0 and r.stdout == "42\n" and
                               out.read_text() == "run %d" % i or r.stderr)
            bad = [x for x in results if x is not True]
            self.check("50 attaches in a row with thread churn", not bad,
                       "%d failed, first: %r" % (len(bad), bad[0] if bad else ""))
            self.check("churn paused again", t.churn(False))
            self.check("thread count back to %d" % tasks,
                       wait_until(lambda: ntasks(t.pid) == tasks), "%d" % ntasks(t.pid))
            self.check("descriptor count still %d" % fds, nfds(t.pid) == fds,
                       "%d" % nfds(t.pid))
            self.notes.append("VmRSS after 50 attaches: %+d kB (%d -> %d kB)" % (
                int(proc_field(t.pid, "VmRSS")) - rss0, rss0,
                int(proc_field(t.pid, "VmRSS"))))
            self.live("parked threads resume after 50 attaches", t)
            drained, line = t.drain_writer()
            self.check("blocked writer completes once drained",
                       line == "done %d" % WRITER_BYTES and drained == WRITER_BYTES,
                       "drained %d, writer said %r" % (drained, line))
        finally:
            t.stop()

    def reuse(self):
        lib = self.tmp / "libprobe.so"
        out = self.tmp / "probe.out"
        t = Target(str(self.tmp / "target"), "sleep")
        try:
            t.churn(False)
            tasks, fds = ntasks(t.pid), nfds(t.pid)
            maps0, rss0 = nmaps(t.pid), int(proc_field(t.pid, "VmRSS"))
            results, stops, premapped = [], [], []
            for i in range(100):
                r = inject(t.pid, lib, "probe", "reuse %d" % i, verbose=True)
                self.record(r)
                m = STOP_TIMES.search(r.stderr)
                stops.append(float(m.group(2)) if m else None)
                premapped.append("reqid-inject: new pages first:" in r.stderr)
                results.append(r.returncode == 0 and r.stdout == "42\n" and
                               out.read_text() == "reuse %d" % i or r.stderr)
                if i == 0:
                    wait_until(lambda: ntasks(t.pid) == tasks)
                    maps1, rss1, pages1 = nmaps(t.pid), int(proc_field(t.pid, "VmRSS")), \
                        code_pages(t.pid)
            maps2, rss2, pages2 = nmaps(t.pid), int(proc_field(t.pid, "VmRSS")), code_pages(t.pid)
            bad = [x for x in results if x is not True]
            self.check("100 attaches in a row", not bad,
                       "%d failed, first: %r" % (len(bad), bad[0] if bad else ""))
            self.check("100 attaches: one code page, mapped by the first",
                       pages1 == 1 and pages2 == 1, "%d, then %d" % (pages1, pages2))
            self.check("100 attaches: the first maps its pages with the main thread alone "
                       "stopped (-v: new pages first), no other maps any",
                       premapped[0] and not any(premapped[1:]),
                       "attaches that did: %s" % [i for i, x in enumerate(premapped) if x])
            self.check("100 attaches: mappings stay %d after the first" % maps1,
                       maps2 == maps1, "%d" % maps2)
            self.check("100 attaches: VmRSS grows < 64 kB after the first",
                       rss2 - rss1 < 64, "%d -> %d kB" % (rss1, rss2))
            self.check("100 attaches: threads back to %d, descriptors %d" % (tasks, fds),
                       wait_until(lambda: ntasks(t.pid) == tasks) and nfds(t.pid) == fds,
                       "%d threads, %d descriptors" % (ntasks(t.pid), nfds(t.pid)))
            reused = [x for x in stops[1:] if x is not None]
            self.notes.append(
                "100 attaches: mappings %d -> %d (first) -> %d, VmRSS %d -> %d (first) -> %d kB; "
                "longest stop %.3f ms mapping the pages, median %.3f ms max %.3f ms reusing them"
                % (maps0, maps1, maps2, rss0, rss1, rss2, stops[0] or -1,
                   statistics.median(reused) if reused else -1, max(reused, default=-1)))
            self.live("parked threads resume after 100 attaches", t)
            self.reuse_rules(t, lib, out, tasks)
        finally:
            t.stop()

    def stack_back(self):
        """The fresh thread's stack is given back once it has exited: the
        page its function's frame was on is not resident when reqid-inject
        returns (glibc kept the stacks it allocated, the top pages
        resident, until 2026-12-07), neither at the first injection, which
        maps the pages, nor at one reusing them."""
        lib = self.tmp / "libprobe.so"
        out = self.tmp / "probe.out"
        t = Target(str(self.tmp / "target"), "sleep")
        try:
            for which in ("first", "second"):
                r = inject(t.pid, lib, "frame", "")
                page = int(out.read_text(), 16) // 4096 if r.stdout == "45\n" else 0
                with open("/proc/%d/pagemap" % t.pid, "rb") as f:
                    f.seek(page * 8)
                    entry = int.from_bytes(f.read(8), "little")
                self.check("%s injection: the page of its frame is not resident after" % which,
                           page and not entry >> 63, "%r %r, pagemap %x" % (
                               r.stdout, r.stderr, entry))
            self.live("parked threads resume after the stacks went back", t)
        finally:
            t.stop()

    def dead_stacks(self):
        """-p notes which top pages of each thread's stack hold data; -s,
        after a call returning 0, gives back those of each thread's own
        stack below its frames that held none then: the pages a deeper
        call reached after -p (deep) go back for the threads parked in read,
        not for the one in epoll_wait (stopping it would end its wait); the
        threads' own bytes above their stack pointers are intact and they
        run on. Without a note (a second -s) nothing goes back."""
        lib = self.tmp / "libprobe.so"
        proc = subprocess.Popen([str(self.tmp / "deep")], stdout=subprocess.PIPE, text=True)
        try:
            writers, line = {}, ""
            while line != "ready\n":
                line = proc.stdout.readline()
                if line.startswith("pipe "):
                    writers[int(line.split()[1])] = int(line.split()[2])
            fds = {i: os.open("/proc/%d/fd/%d" % (proc.pid, fd), os.O_WRONLY)
                   for i, fd in writers.items()}
            noted = inject(proc.pid, lib, "zero", "", pages=True)
            arrays = {}
            for i, fd in fds.items():
                os.write(fd, b"d")
                words = proc.stdout.readline().split()
                arrays[int(words[1])] = (int(words[2], 16), int(words[3], 16))

            def held(i):
                low, high = arrays[i]
                start = (low + 4095) // 4096
                with open("/proc/%d/pagemap" % proc.pid, "rb") as f:
                    f.seek(start * 8)
                    entries = f.read((high // 4096 - start) * 8)
                return sum(1 for k in range(len(entries) // 8) if entries[k * 8 + 7] & 0x80)

            def parked():
                calls = []
                for task in os.listdir("/proc/%d/task" % proc.pid):
                    with open("/proc/%d/task/%s/syscall" % (proc.pid, task)) as f:
                        calls.append(f.read().split()[0])
                return sorted(calls) == sorted(["0", "0", "0", "232", "34"])

            before = {i: held(i) for i in arrays}
            wait_until(parked)
            r = inject(proc.pid, lib, "zero", "", verbose=True, stacks=True)
            m = re.search(r"stacks: (\d+) threads stopped one by one, (\d+) pages given back",
                          r.stderr)
            after = {i: held(i) for i in arrays}
            self.check("-s after -p: the read threads' deep pages go back, the epoll "
                       "thread's stay", noted.stdout == "0\n" and r.stdout == "0\n" and m and
                       all(before[i] >= 7 and after[i] == 0 for i in (0, 1, 2)) and
                       after[3] == before[3] >= 7 and int(m.group(2)) >= 21,
                       "%r %r: %r -> %r" % (noted.stdout, r.stderr, before, after))
            for i, fd in fds.items():
                os.write(fd, b"v")
            said = sorted(proc.stdout.readline().strip() for _ in fds)
            self.check("the threads' own bytes are intact", said == ["ok %d" % i for i in range(4)],
                       repr(said))
            os.write(fds[0], b"d")
            again = proc.stdout.readline()
            r = inject(proc.pid, lib, "zero", "", verbose=True, stacks=True)
            self.check("a second -s (no note) gives nothing back",
                       again.startswith("deep 0 ") and r.stdout == "0\n" and
                       "stacks:" not in r.stderr and held(0) >= 7, "%r %r" % (again, r.stderr))
            for fd in fds.values():
                os.close(fd)
        finally:
            proc.kill()
            proc.wait()

    def reuse_rules(self, t, lib, out, tasks):
        """Pages busy with a call (hold) or with a thread still exiting (linger) are left."""
        gate = self.tmp / "gate"
        if gate.exists():
            gate.unlink()
        pages = code_pages(t.pid)
        held = subprocess.Popen([str(INJECT), str(t.pid), str(lib), "hold", "held arg"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            running = wait_until(lambda: ntasks(t.pid) == tasks + 1)
            self.check("hold: its thread runs, on the pages left free", running and
                       code_pages(t.pid) == pages, "%d threads, %d code pages" % (
                           ntasks(t.pid), code_pages(t.pid)))
            rs = [inject(t.pid, lib, "probe", "while held %d" % i) for i in range(3)]
            self.check("probe while hold runs: new pages, then reused",
                       all(r.stdout == "42\n" for r in rs) and code_pages(t.pid) == pages + 1,
                       "%d code pages, %r" % (code_pages(t.pid), [r.stderr for r in rs]))
            r = inject(t.pid, lib, "linger", "")
            self.check("linger returns 44 while its thread waits to exit",
                       r.stdout == "44\n" and ntasks(t.pid) == tasks + 2,
                       "%r %r, %d threads" % (r.stdout, r.stderr, ntasks(t.pid)))
            r = inject(t.pid, lib, "probe", "beside linger")
            self.check("probe beside linger's thread: new pages",
                       r.stdout == "42\n" and code_pages(t.pid) == pages + 2,
                       "%d code pages, %r" % (code_pages(t.pid), r.stderr))
            gate.touch()
            so, se = held.communicate(timeout=10)
        finally:
            gate.touch()
            if held.poll() is None:
                held.kill()
                held.wait()
        self.check("hold returns 43 with its argument intact",
                   so == "43\n" and out.read_text() == "held arg", "%r %r, file %r" % (
                       so, se, out.read_text()))
        self.check("threads back to %d after hold and linger" % tasks,
                   wait_until(lambda: ntasks(t.pid) == tasks), "%d" % ntasks(t.pid))
        maps = nmaps(t.pid)
        rs = [inject(t.pid, lib, "probe", "after %d" % i) for i in range(10)]
        self.check("10 attaches after: pages reused, mappings stay %d" % maps,
                   all(r.stdout == "42\n" for r in rs) and nmaps(t.pid) == maps and
                   code_pages(t.pid) == pages + 2,
                   "%d mappings, %d code pages" % (nmaps(t.pid), code_pages(t.pid)))

    def main_thread_modes(self):
        lib = self.tmp / "libprobe.so"
        for mode, runs in (("spin", 20), ("epoll", 5), ("alarm", 20)):
            t = Target(str(self.tmp / "target"), mode)
            try:
                t.churn(False)
                results = [inject(t.pid, lib, "probe", mode) for _ in range(runs)]
                bad = [r.stderr for r in results if r.stdout != "42\n"]
                self.check("main thread in %s: %d attaches" % (mode, runs), not bad,
                           "%d failed, first: %r" % (len(bad), bad[0] if bad else ""))
                self.check("main thread in %s: registers and red zone intact%s" % (
                    mode, ", errno still 4242" if mode == "spin" else ""),
                           not t.wait("CORRUPT", 0, 0.2))
                ticks = ("sleep", "malloc", "main") + (("alarms",) if mode == "alarm" else ())
                self.live("main thread in %s: parked threads resume" % mode, t, ticks)
            finally:
                t.stop()

    def held_malloc_lock(self):
        lib = self.tmp / "libprobe.so"
        env = dict(os.environ, GLIBC_TUNABLES="glibc.malloc.arena_max=1:"
                   "glibc.malloc.tcache_count=0")
        t = Target(str(self.tmp / "target"), "sleep", env)
        try:
            t.churn(False)
            results = [inject(t.pid, lib, "probe", "x", verbose=True) for _ in range(100)]
            bad = [r.stderr for r in results if r.stdout != "42\n"]
            self.check("one malloc arena: 100 attaches", not bad,
                       "%d failed, first: %r" % (len(bad), bad[0] if bad else ""))
            slow = [m for m in (STOP_TIMES.search(r.stderr) for r in results)
                    if m and float(m.group(2)) >= 40]
            asleep = sum("let-go asleep" in r.stderr for r in results)
            self.check("one malloc arena: no thread stopped 40 ms in 95 of 100 attaches "
                       "(%d had; %d let the others go on finding the call asleep)" % (
                           len(slow), asleep), len(slow) <= 5,
                       max((m.group(0) for m in slow), key=len, default=""))
            self.notes.append("one malloc arena: %d of 100 attaches let the other threads "
                              "go before the setup returned, finding it asleep; longest "
                              "stop %s ms" % (asleep, max(
                                  (m.group(2) for m in (STOP_TIMES.search(r.stderr)
                                                        for r in results) if m),
                                  key=float, default="-")))
            self.live("one malloc arena: parked threads resume", t)
        finally:
            t.stop()

    def many_threads(self):
        """1,000 threads parked in futex, nanosleep, read and poll: 10
        attaches print 42, the thread count is back to 1,000 after each,
        and every parked thread then wakes when woken (the stop times are
        reported)."""
        lib = self.tmp / "libprobe.so"
        ok, err = self.cc("many", MANY_C, "-pthread")
        if not self.check("1,000 threads: build", ok, err):
            return
        p = subprocess.Popen([str(self.tmp / "many"), "1000"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
        try:
            p.stdout.readline()
            results = [inject(p.pid, lib, "probe", "x", verbose=True) for _ in range(10)]
            bad = [r.stderr for r in results if r.stdout != "42\n"]
            self.check("1,000 threads: 10 attaches", not bad,
                       "%d failed, first: %r" % (len(bad), bad[0] if bad else ""))
            self.check("1,000 threads: back to 1,000 threads",
                       wait_until(lambda: ntasks(p.pid) == 1000), "%d" % ntasks(p.pid))
            p.stdin.write("wake\n")
            p.stdin.flush()
            line = p.stdout.readline().strip()
            self.check("1,000 threads: every parked thread wakes (%s)" % line,
                       line == "woke 999")
            longest = [float(m.group(2)) for m in
                       (STOP_TIMES.search(r.stderr) for r in results) if m]
            if longest:
                self.notes.append("1,000 threads: longest stop median %.2f ms, max %.2f ms "
                                  "(10 attaches)" % (statistics.median(longest), max(longest)))
        finally:
            p.kill()
            p.wait()

    def late_thread(self):
        """A thread that cannot stop for 300 ms (a vfork parent) keeps no
        other thread stopped that long: reqid-inject lets the others go 30
        ms after the first interrupt, lets that one go as soon as it has
        stopped, and stops them all again (-v: restarts >= 1); the call
        returns 42 and no thread was stopped 100 ms (without the restart,
        every one about 250 ms). The same with a second late thread whose
        vfork lasts 60 ms: it is let go as soon as it stops (before, once
        the 300 ms one had stopped too: about 240 ms)."""
        lib = self.tmp / "libprobe.so"
        ok, err = self.cc("late", LATE_C, "-pthread")
        if not self.check("late thread: build", ok, err):
            return
        for mode, name in (("go", "late thread"), ("pair", "late pair")):
            p = subprocess.Popen([str(self.tmp / "late")], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True)
            try:
                p.stdout.readline()
                p.stdin.write(mode + "\n")
                p.stdin.flush()
                for _ in range(2 if mode == "pair" else 1):
                    p.stdout.readline()     # "child": a thread is in vfork now
                r = inject(p.pid, lib, "probe", "x", verbose=True)
                stops = STOP_TIMES.search(r.stderr)
                restarts = re.search(r"restarts (\d+)", r.stderr)
                self.check("%s: the call returns 42" % name, r.stdout == "42\n", r.stderr)
                self.check("%s: the others were let go and stopped again" % name,
                           restarts is not None and int(restarts.group(1)) >= 1, r.stderr)
                self.check("%s: no thread stopped 100 ms (%s ms)" % (
                    name, stops.group(2) if stops else "?"), stops is not None and
                    float(stops.group(2)) < 100, r.stderr)
            finally:
                p.kill()
                p.wait()
        self.late_thread_for_good(lib)

    def late_thread_for_good(self, lib):
        """A thread that is never stoppable when a try looks (a vfork
        parent, back to back, 100 ms each): reqid-inject lets the others go
        and tries again until its stop budget is spent, then gives up with
        'did not stop in time' within a second, no thread stopped 50 ms,
        the target running on untraced (before: the third try waited for
        the thread with every other one stopped, up to 100 ms, and the call
        returned 42)."""
        p = subprocess.Popen([str(self.tmp / "late")], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
        try:
            p.stdout.readline()
            p.stdin.write("loop\n")
            p.stdin.flush()
            p.stdout.readline()     # "child": the thread vforks from now on
            start = time.monotonic()
            r = inject(p.pid, lib, "probe", "x", verbose=True)
            took = time.monotonic() - start
            stops = STOP_TIMES.search(r.stderr)
            restarts = re.search(r"restarts (\d+)", r.stderr)
            lines = r.stderr.splitlines()
            self.check("late thread for good: exit 1, 'did not stop in time' last", r.returncode == 1
                       and r.stdout == "" and lines and
                       re.match(r"reqid-inject: .*did not stop in time", lines[-1]) is not None,
                       "exit %d, stdout %r, stderr %r" % (r.returncode, r.stdout, r.stderr))
            self.check("late thread for good: gave up within 1 s (%.2f s, %s restarts)" % (
                took, restarts.group(1) if restarts else "?"), took < 1, r.stderr)
            self.check("late thread for good: no thread stopped 50 ms (%s ms)" % (
                stops.group(2) if stops else "?"), stops is not None and
                float(stops.group(2)) < 50, r.stderr)
            tracers = {proc_field("%d/task/%s" % (p.pid, t), "TracerPid")
                       for t in os.listdir("/proc/%d/task" % p.pid)}
            self.check("late thread for good: runs on, untraced (%s)" % sorted(tracers),
                       p.poll() is None and tracers == {"0"})
        finally:
            p.kill()
            p.wait()

    def inside_malloc(self):
        """A single-threaded program in a malloc/free loop, fresh ten times
        (before its first attach its malloc takes no lock), 20 attaches
        each: every one prints 42 and the program lives on to count its
        turns and exit 0. Until 2026-12-08 the main thread was borrowed
        wherever it stopped, inside malloc too, and the pthread_create
        called there re-entered malloc mid-update."""
        lib = self.tmp / "libprobe.so"
        bad, died, unsafe = [], [], 0
        for run in range(10):
            proc = subprocess.Popen([str(self.tmp / "malloc_loop")], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                proc.stdout.readline()
                for _ in range(20):
                    r = inject(proc.pid, lib, "probe", "m", verbose=True)
                    m = re.search(r"unsafe-points (\d+)", r.stderr)
                    unsafe += int(m.group(1)) if m else 0
                    if r.returncode != 0 or r.stdout != "42\n":
                        bad.append("run %d: exit %d %r" % (run, r.returncode,
                                                          r.stderr.splitlines()[-1:]))
                    if proc.poll() is not None:
                        break
                if proc.poll() is None:
                    proc.stdin.write("stop\n")
                    proc.stdin.flush()
                out, err = proc.communicate(timeout=30)
                if proc.returncode != 0 or not out.startswith("turns "):
                    died.append("run %d: exit %s %r" % (run, proc.returncode, err[-200:]))
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        self.notes.append("inside malloc: 200 attaches let %d stops go for the main "
                          "thread's point" % unsafe)
        self.check("inside malloc: 200 attaches of a malloc loop print 42", not bad,
                   "; ".join(bad[:5]))
        self.check("inside malloc: the programs live on and exit 0", not died,
                   "; ".join(died[:5]))

    def main_thread_on_a_lock(self):
        """The main thread waits for a mutex that the other thread holds
        while asleep in a read or in nanosleep: five attaches borrow the
        other thread (-v: borrowed other), each prints 42, and the program
        then gets its line, its lock and exits 0. Until 2026-12-08 only
        the main thread was borrowed: the attach gave up after 2 s ("the
        main thread ... waiting for a lock"). Threads that wait each for
        the other's mutex leave no thread to borrow: exit 1 with that
        message, the two still waiting."""
        lib = self.tmp / "libprobe.so"
        for how in ("read", "sleep"):
            proc = subprocess.Popen([str(self.tmp / "mutex_wait"), how], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                proc.stdout.readline()
                waiting = wait_until(lambda: thread_calls(proc.pid).get(proc.pid) ==
                                     SYS_FUTEX)
                results = [inject(proc.pid, lib, "probe", how, verbose=True)
                           for _ in range(5)]
                bad = ["exit %d %r %r" % (r.returncode, r.stdout, r.stderr[-300:])
                       for r in results if r.returncode != 0 or r.stdout != "42\n" or
                       "borrowed other" not in r.stderr]
                self.check("main thread on a lock, the holder in %s: 5 attaches borrow "
                           "the holder and print 42" % how, waiting and not bad,
                           "main in futex: %s; %s" % (waiting, "; ".join(bad[:2])))
                out, err = proc.communicate("go\n", timeout=10)
                self.check("main thread on a lock, the holder in %s: the program gets its "
                           "line and lock and exits 0" % how,
                           proc.returncode == 0 and
                           out == "holder read 3 go\nmain got the lock\n",
                           "exit %s, stdout %r, stderr %r" % (proc.returncode, out, err))
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        proc = subprocess.Popen([str(self.tmp / "mutex_wait"), "deadlock"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            proc.stdout.readline()
            both = wait_until(lambda: set(thread_calls(proc.pid).values()) == {SYS_FUTEX} and
                              len(thread_calls(proc.pid)) == 2)
            r = inject(proc.pid, lib, "probe", "d")
            self.one_error("every thread on a lock: no thread to borrow, exit 1",
                           r, r"no thread of process %d came to a point where a thread can "
                           r"be started safely in 2 s \(its main thread last seen waiting "
                           r"for a lock\); try again$" % proc.pid)
            # A thread let go restarts its wait: it shows as running (left
            # out of thread_calls) for a moment after the injector exits.
            wait_until(lambda: len(thread_calls(proc.pid)) == 2)
            calls = thread_calls(proc.pid)
            self.check("every thread on a lock: both still waiting, nothing run",
                       both and proc.poll() is None and set(calls.values()) == {SYS_FUTEX}
                       and len(calls) == 2 and ntasks(proc.pid) == 2,
                       "before %s, after %r" % (both, calls))
        finally:
            proc.kill()
            proc.wait()

    def exec_loop(self):
        """A program that execs itself every 2 ms, attached 100 times: each
        attach prints 42 or fails in one line saying the process is starting
        up, ran a new program, or exited before the call returned; the
        program never dies (ld.so's messages never appear) and runs on.
        Until 2026-12-08 a process in its loader's start-up (libc mapped, not
        yet initialised) was given a thread ('Inconsistency detected by
        ld.so: dl-tls.c'), and one with no libc yet was refused as a static
        binary."""
        lib = self.tmp / "libprobe.so"
        count = self.tmp / "exec_loop.count"
        proc = subprocess.Popen([str(self.tmp / "exec_loop"), "0", str(count)],
                                stderr=subprocess.PIPE, text=True)
        allowed = ("is starting up", "ran a new program (exec)", "exited before",
                   "exited during attach")
        results, bad = {}, []
        try:
            wait_until(count.exists)
            for _ in range(100):
                r = inject(proc.pid, lib, "probe", "e")
                lines = r.stderr.splitlines()
                if r.returncode == 0 and r.stdout == "42\n":
                    results["42"] = results.get("42", 0) + 1
                    continue
                word = next((w for w in allowed if lines and w in lines[0]), None)
                if r.returncode == 1 and len(lines) == 1 and word:
                    results[word] = results.get(word, 0) + 1
                else:
                    bad.append("exit %d %r" % (r.returncode, lines[:2]))
                if proc.poll() is not None:
                    break
            alive = proc.poll() is None
            Path(str(count) + ".stop").touch()
            _, err = proc.communicate(timeout=10)
            runs_then = int(count.read_text() or 0)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        self.notes.append("exec loop: 100 attaches: %s" % results)
        self.check("exec loop: each attach prints 42 or says why in one line", not bad,
                   "; ".join(bad[:5]))
        self.check("exec loop: the program lived through them and exits 0",
                   alive and proc.returncode == 0 and "ld.so" not in err and runs_then > 20,
                   "alive %s, exit %s, runs %d, stderr %r" % (alive, proc.returncode,
                                                             runs_then, err[-300:]))

    def slow_start(self):
        """A program just started, its loader running a library's constructor
        (150 ms in nanosleep) before main: the attach waits for the start-up to
        end (-v: stops let go for the main thread's point) and the call finds
        the constructor done (101). Until 2026-12-08 the main thread, in a
        system call, was borrowed at once: a thread loading a library while
        the loader still started the process (the call saw 100)."""
        lib = self.tmp / "libprobe.so"
        proc = subprocess.Popen([str(self.tmp / "slow_start")])
        try:
            deadline = time.monotonic() + 2
            while True:
                r = inject(proc.pid, lib, "startup_done", "", verbose=True)
                if "is starting up" not in r.stderr or time.monotonic() > deadline:
                    break
            m = re.search(r"unsafe-points (\d+)", r.stderr)
            self.check("slow start: the call waits for the loader's start-up (101)",
                       r.returncode == 0 and r.stdout == "101\n" and m and int(m.group(1)) > 0,
                       "exit %d, stdout %r, stderr %r" % (r.returncode, r.stdout,
                                                          r.stderr[-300:]))
            self.check("slow start: the program runs on", proc.poll() is None)
        finally:
            proc.kill()
            proc.wait()

    def short_children(self):
        """`reqid attach` and `reqid detach` of a parent that forks a child
        every 3 ms, each running /bin/sh after 1 ms (between fork and exec,
        in its loader's start-up, or exiting when the walk reaches it):
        10 cycles, each command exits 0 with nothing on stderr, and every
        child exits 0. Until 2026-12-08 most cycles exited 1 ('no libc.so.6
        mapped', 'cannot write below the stack ... No such process') and
        the children given a thread in their start-up could die."""
        lib = ROOT / "build" / "libreqid.so"
        if not lib.exists():
            self.notes.append("short children: skipped (no build/libreqid.so)")
            return
        stop = self.tmp / "short_children.stop"
        proc = subprocess.Popen([str(self.tmp / "short_children"), str(stop)],
                                stdout=subprocess.PIPE, text=True)
        bad = []
        try:
            proc.stdout.readline()
            for command in ["attach", "detach"] * 10:
                r = subprocess.run([str(ROOT / "scripts" / "reqid"), command, str(proc.pid)],
                                   capture_output=True, text=True, timeout=60)
                if r.returncode != 0 or r.stderr:
                    bad.append("%s: exit %d %r" % (command, r.returncode, r.stderr[:300]))
            stop.touch()
            out, _ = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        m = re.fullmatch(r"children (\d+) abnormal (\d+)\n", out or "")
        self.notes.append("short children: %s" % (out or "").strip())
        self.check("short children: 10 attach/detach cycles exit 0, stderr empty", not bad,
                   "; ".join(bad[:4]))
        self.check("short children: every child exited 0",
                   m is not None and int(m.group(1)) > 50 and int(m.group(2)) == 0, repr(out))

    def refusals(self):
        lib = self.tmp / "libprobe.so"
        r = subprocess.run([str(INJECT)], capture_output=True, text=True)
        self.one_error("no arguments: usage", r, "expects 4 arguments", 2)
        r = inject("12x", lib, "probe", "x")
        self.one_error("bad PID: usage", r, "PID must be", 2)

        p = subprocess.Popen(["true"])
        p.wait()
        r = inject(p.pid, lib, "probe", "x")
        self.one_error("no such process", r, "no such process %d" % p.pid)

        t = Target(str(self.tmp / "target"), "sleep")
        try:
            t.churn(False)
            strace = subprocess.Popen(["strace", "-f", "-o", "/dev/null", "-p", str(t.pid)],
                                      stderr=subprocess.DEVNULL)
            traced = wait_until(lambda: proc_field(t.pid, "TracerPid") != "0", 5)
            r = inject(t.pid, lib, "probe", "x")
            self.one_error("traced by strace", r,
                           r"already traced by process %d \(strace\)" % strace.pid)
            strace.send_signal(signal.SIGINT)
            strace.wait(timeout=10)
            self.check("strace attached then detached", traced and
                       wait_until(lambda: proc_field(t.pid, "TracerPid") == "0", 5))
            self.live("target runs on after strace and the refusal", t)

            os.kill(t.pid, signal.SIGSTOP)
            stopped = wait_until(lambda: proc_state(t.pid) == "T")
            r = inject(t.pid, lib, "probe", "x")
            self.one_error("job-stopped process", r, "stopped by job control")
            self.check("job-stopped process left stopped", stopped and
                       proc_state(t.pid) == "T" and proc_field(t.pid, "TracerPid") == "0")
            os.kill(t.pid, signal.SIGCONT)
            self.live("target runs on after SIGCONT", t)

            r = inject(t.pid, lib, "probe", "x",
                       prefix=["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"])
            self.one_error("other uid (nobody)", r, r"not permitted to trace process %d" % t.pid)
            self.live("target runs on after the refused uid", t)
            for scope, hint in YAMA_HINTS.items():
                r = inject(t.pid, lib, "probe", "x", prefix=yama_prefix(scope))
                self.one_error("other uid, Yama ptrace_scope %d" % scope, r,
                               r"not permitted to trace process %d .*%s" % (t.pid, hint))
            self.live("target runs on after the Yama refusals", t)
        finally:
            t.stop()

        ok, err = self.cc("static", STATIC_C, "-static")
        if ok:
            p = subprocess.Popen([str(self.tmp / "static")])
            try:
                wait_until(lambda: "static" in os.readlink("/proc/%d/exe" % p.pid))
                r = inject(p.pid, lib, "probe", "x")
                self.one_error("static binary", r, "no libc.so.6 mapped")
                self.check("static binary untouched", p.poll() is None and
                           proc_field(p.pid, "TracerPid") == "0")
            finally:
                p.kill()
                p.wait()
        else:
            self.notes.append("static binary case skipped: cc -static failed: " + err)

        p = subprocess.Popen([str(self.tmp / "vfork")], stdout=subprocess.PIPE)
        try:
            for line in iter(p.stdout.readline, b""):
                if line == b"child\n":
                    break
            start = time.monotonic()
            r = inject(p.pid, lib, "probe", "x")
            took = time.monotonic() - start
            self.one_error("vfork parent: cannot stop", r, "did not stop in time")
            self.check("vfork parent: gave up within 1 s (%.2f s)" % took, took < 1)
            self.check("vfork parent: runs on, untraced", p.stdout.readline() == b"tick\n" and
                       proc_field(p.pid, "TracerPid") == "0")
        finally:
            p.kill()
            p.wait()

        for mode, pattern in (("filter", "seccomp filter"), ("strict", "strict seccomp")):
            p = subprocess.Popen([str(self.tmp / "seccomp"), mode], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE)
            try:
                p.stdout.readline()
                wait_until(lambda: proc_field(p.pid, "Seccomp") != "0")
                r = inject(p.pid, lib, "probe", "x")
                self.one_error("seccomp %s" % mode, r, pattern)
                self.check("seccomp %s target untouched" % mode, p.poll() is None)
            finally:
                p.kill()
                p.wait()


def main():
    tmp = tempfile.mkdtemp(prefix="reqid-inject-")
    os.chmod(tmp, 0o755)
    suite = Suite(tmp)
    try:
        if suite.build():
            suite.basics()
            suite.reuse()
            suite.stack_back()
            suite.dead_stacks()
            suite.main_thread_modes()
            suite.held_malloc_lock()
            suite.late_thread()
            suite.many_threads()
            suite.refusals()
            suite.forks_while_loading()
            suite.child_inside_fork()
            suite.child_in_fork_handler()
            suite.inside_malloc()
            suite.main_thread_on_a_lock()
            suite.exec_loop()
            suite.short_children()
            suite.slow_start()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if suite.stops:
        longest = [s[1] for s in suite.stops]
        total = [s[2] for s in suite.stops]
        print("stop times over %d attaches of a %d-thread target: longest thread stop "
              "median %.2f ms, max %.2f ms; whole run median %.2f ms, max %.2f ms" % (
                  len(suite.stops), max(s[0] for s in suite.stops),
                  statistics.median(longest), max(longest),
                  statistics.median(total), max(total)))
    for note in suite.notes:
        print(note)
    print("%d passed, %d failed" % (suite.passed, suite.failed))
    return 1 if suite.failed else 0


if __name__ == "__main__":
    sys.exit(main())
