/*
 * signal_semantics.c - what a program sees of its signal handlers, printed
 * so that a run under the shim can be compared with a bare run byte for
 * byte (test_signal_lines.py): the old action sigaction reports (handler,
 * flags, mask), signal()'s and sysv_signal()'s return values, SA_RESETHAND,
 * SIG_IGN and SIG_DFL, a refused call's errno, a SA_SIGINFO handler's
 * arguments, a nested signal, a handler left by siglongjmp, one on a
 * sigaltstack, sigset's old handler given back and installed again and its
 * SIG_HOLD, handlers of both kinds on more signals than the shim keeps in
 * its slots (hook_signal.c), each run for its own signal and reported back
 * as itself, and whether a sigaction-chaining library preloaded after the
 * shim (signal_chain.c) still sees the calls. Handlers are named by index,
 * never by address.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* sigset is deprecated, and legacy programs still call it. */
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

static volatile sig_atomic_t ran_one, ran_two, ran_info, info_ok, order_pos;
static volatile sig_atomic_t order[4];
static sigjmp_buf back;
static char *alt_stack;
static size_t alt_size;
static volatile sig_atomic_t on_alt;

static void one(int sig) { (void)sig; ran_one++; }
static void two(int sig) { (void)sig; ran_two++; }

static void info(int sig, siginfo_t *si, void *context)
{
	ran_info++;
	info_ok = sig == SIGUSR1 && si->si_signo == SIGUSR1 && si->si_pid == getpid() &&
		  context != NULL;
}

/* Runs of counted (plain) and counted_info (SA_SIGINFO) per signal. */
static volatile sig_atomic_t plain_runs[NSIG], info_runs[NSIG];
static void counted(int sig) { plain_runs[sig]++; }
static void counted_info(int sig, siginfo_t *si, void *context)
{
	(void)context;
	info_runs[sig] += si->si_signo == sig;
}

static void inner(int sig) { (void)sig; order[order_pos++] = 2; }

static void outer(int sig)
{
	(void)sig;
	order[order_pos++] = 1;
	raise(SIGUSR2);
	order[order_pos++] = 3;
}

static void jumper(int sig) { siglongjmp(back, sig); }

static void alt(int sig)
{
	(void)sig;
	char here;
	on_alt = &here >= alt_stack && &here < alt_stack + alt_size;
}

static const char *name(void (*h)(int))
{
	if (h == SIG_DFL)
		return "SIG_DFL";
	if (h == SIG_IGN)
		return "SIG_IGN";
	if (h == SIG_ERR)
		return "SIG_ERR";
	if (h == SIG_HOLD)
		return "SIG_HOLD";
	if (h == one)
		return "one";
	if (h == two)
		return "two";
	if (h == (void (*)(int))(void (*)(void))info)
		return "info";
	if (h == counted)
		return "counted";
	if (h == (void (*)(int))(void (*)(void))counted_info)
		return "counted_info";
	return "unknown";
}

static void show(const char *what, int sig)
{
	struct sigaction old;
	memset(&old, 0, sizeof(old));
	int r = sigaction(sig, NULL, &old);
	printf("%s: r=%d handler=%s flags=%#x mask:", what, r, name(old.sa_handler),
	       (unsigned)old.sa_flags);
	for (int s = 1; s < 32; s++)
		if (sigismember(&old.sa_mask, s))
			printf(" %d", s);
	printf("\n");
}

int main(void)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	struct sigaction sa = {.sa_handler = one, .sa_flags = SA_RESTART | SA_NODEFER}, old;
	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, SIGUSR2);
	sigaddset(&sa.sa_mask, SIGTERM);
	printf("install one: %d\n", sigaction(SIGUSR1, &sa, NULL));
	show("after one", SIGUSR1);
	sa.sa_handler = two;
	sa.sa_flags = 0;
	int r = sigaction(SIGUSR1, &sa, &old);
	printf("install two: %d old=%s\n", r, name(old.sa_handler));
	sa = old; /* the old action given back as it came */
	r = sigaction(SIGUSR1, &sa, &old);
	printf("reinstall old: %d old=%s\n", r, name(old.sa_handler));
	show("after reinstall", SIGUSR1);
	raise(SIGUSR1);
	printf("ran one=%d two=%d\n", ran_one, ran_two);

	struct sigaction si = {.sa_sigaction = info, .sa_flags = SA_SIGINFO};
	sigemptyset(&si.sa_mask);
	r = sigaction(SIGUSR1, &si, &old);
	printf("install info: %d old=%s\n", r, name(old.sa_handler));
	show("after info", SIGUSR1);
	raise(SIGUSR1);
	printf("ran info=%d ok=%d\n", ran_info, info_ok);
	printf("signal two: old=%s\n", name(signal(SIGUSR1, two)));
	show("after signal", SIGUSR1);
	printf("signal ign: old=%s\n", name(signal(SIGUSR1, SIG_IGN)));
	raise(SIGUSR1);
	printf("ran two=%d\n", ran_two);
	printf("signal dfl: old=%s\n", name(signal(SIGUSR1, SIG_DFL)));
	printf("sysv one: old=%s\n", name(sysv_signal(SIGUSR1, one)));
	show("after sysv", SIGUSR1);
	raise(SIGUSR1);
	show("after resethand", SIGUSR1);
	printf("ran one=%d\n", ran_one);

	errno = 0;
	sa.sa_handler = one;
	r = sigaction(SIGKILL, &sa, &old);
	printf("sigkill: r=%d errno=%s\n", r, r ? strerrorname_np(errno) : "-");
	errno = 0;
	void (*was)(int) = signal(SIGKILL, one);
	printf("signal sigkill: %s errno=%s\n", name(was), strerrorname_np(errno));
	errno = 0;
	r = sigaction(0, &sa, NULL);
	printf("bad signal: %d errno=%s\n", r, strerrorname_np(errno));
	errno = 1234;
	sigaction(SIGUSR2, &sa, NULL);
	printf("errno kept: %d\n", errno);

	signal(SIGUSR1, outer);
	signal(SIGUSR2, inner);
	raise(SIGUSR1);
	printf("nested order: %d %d %d (%d)\n", order[0], order[1], order[2], order_pos);

	signal(SIGUSR1, jumper);
	int jumped = sigsetjmp(back, 1);
	if (!jumped)
		raise(SIGUSR1);
	printf("jumped back with %d\n", jumped);

	alt_size = SIGSTKSZ * 4;
	stack_t ss = {.ss_sp = alt_stack = malloc(alt_size), .ss_size = alt_size};
	struct sigaction on = {.sa_handler = alt, .sa_flags = SA_ONSTACK};
	sigemptyset(&on.sa_mask);
	printf("altstack: %d %d\n", sigaltstack(&ss, NULL), sigaction(SIGUSR1, &on, NULL));
	raise(SIGUSR1);
	printf("ran on the alternate stack: %d\n", on_alt);

	signal(SIGUSR2, one);
	void (*saved)(int) = sigset(SIGUSR2, SIG_IGN);
	printf("sigset ign: old=%s\n", name(saved));
	signal(SIGUSR2, two);
	printf("sigset back: old=%s\n", name(sigset(SIGUSR2, saved)));
	ran_one = ran_two = 0;
	raise(SIGUSR2);
	printf("after sigset back ran one=%d two=%d\n", ran_one, ran_two);
	printf("sigset hold: old=%s\n", name(sigset(SIGUSR2, SIG_HOLD)));
	printf("sigset while held: old=%s\n", name(sigset(SIGUSR2, two)));
	show("after sigset", SIGUSR2);

	/* Ten signals, each kind on every other one, then the other kind on
	 * each: more keys than the shim's slots hold. */
	static const int many[] = {SIGHUP, SIGINT, SIGQUIT, SIGALRM, SIGTERM,
				   SIGWINCH, SIGURG, SIGCONT, SIGPROF, SIGVTALRM};
	for (int round = 0; round < 2; round++) {
		for (size_t i = 0; i < sizeof(many) / sizeof(many[0]); i++) {
			struct sigaction act = {.sa_handler = counted};
			if ((i + round) % 2)
				act = (struct sigaction){.sa_sigaction = counted_info,
							 .sa_flags = SA_SIGINFO};
			sigemptyset(&act.sa_mask);
			r = sigaction(many[i], &act, &old);
			raise(many[i]);
			printf("many %d round %d: %d old=%s plain runs=%d info runs=%d\n", many[i],
			       round, r, name(old.sa_handler), plain_runs[many[i]],
			       info_runs[many[i]]);
		}
	}

	int *chain_calls = dlsym(RTLD_DEFAULT, "signal_chain_calls");
	printf("chain: %s\n", !chain_calls ? "none" : *chain_calls > 0 ? "reached" : "bypassed");
	printf("all done\n");
	return 0;
}
