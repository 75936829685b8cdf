/*
 * signal_reopen.c - integration-test server for a log reopened from a
 * signal handler (dup2 onto fd 2, as daemons do on SIGHUP), while the
 * thread is inside libc holding one of its locks and the shim holds a
 * syslog message and a line for fd 2. test_signal_reopen.py runs it under
 * the shim several times: each run must end (helper-76 found the shim's
 * close path writing the held syslog message from the handler, which
 * waited forever on libc's time zone lock the interrupted code held).
 *
 *     signal_reopen
 *
 * Prints its port, serves one request: reads its head, writes the first
 * bytes of the response (its lines are held from then on, until its next
 * I/O on the connection), logs once with syslog() and once to fd 2, then
 * converts times with localtime_r for a second while SIGALRM, 50 ms in,
 * runs a handler that dup2()s a copy of fd 2 onto fd 2. Then it finishes
 * the response and prints "done".
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "one_connection.h"

static int copy_of_stderr;
static volatile sig_atomic_t reopened;

static void reopen_log(int sig)
{
	(void)sig;
	if (dup2(copy_of_stderr, 2) == 2)
		reopened = 1;
}

int main(void)
{
	int c;
	if (!accept_one_connection(&c))
		return 1;
	char head[4096];
	size_t n = 0;
	while (n < 4 || memcmp(head + n - 4, "\r\n\r\n", 4) != 0) {
		ssize_t r = read(c, head + n, sizeof(head) - n);
		if (r <= 0)
			return 1;
		n += (size_t)r;
	}
	copy_of_stderr = dup(2);
	signal(SIGALRM, reopen_log);
	if (write(c, "HTTP/1.1 200 OK\r\n", 17) != 17)
		return 1;
	openlog("signal_reopen", LOG_PID, LOG_USER);
	syslog(LOG_INFO, "handled /x");
	if (write(2, "access /x\n", 10) != 10)
		return 1;
	struct itimerval alarm_in = {.it_value = {0, 50000}};
	setitimer(ITIMER_REAL, &alarm_in, NULL);
	struct timespec start, now;
	clock_gettime(CLOCK_MONOTONIC, &start);
	unsigned long k = 0;
	do {
		time_t t = time(NULL) + (time_t)(k++ & 1023);
		struct tm tm;
		localtime_r(&t, &tm);
		clock_gettime(CLOCK_MONOTONIC, &now);
	} while ((now.tv_sec - start.tv_sec) * 1000000000L + (now.tv_nsec - start.tv_nsec) <
		 1000000000L); /* a whole second: the alarm comes at 50 ms */
	if (write(c, "Content-Length: 0\r\n\r\n", 21) != 21)
		return 1;
	close(c);
	printf("done reopened=%d\n", (int)reopened);
	return 0;
}
