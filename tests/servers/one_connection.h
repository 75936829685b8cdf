/*
 * one_connection.h - the listener of the signal tests' servers
 * (sigchld_reaper.c, signal_reopen.c), which serve one connection: listens
 * on an ephemeral port of 127.0.0.1, prints the port on stdout (the test
 * reads it from there) and accepts one connection. Must never log or retry:
 * what failed is for its caller to say, by its exit status.
 */
#ifndef ONE_CONNECTION_H
#define ONE_CONNECTION_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/socket.h>

/* false if there is no listener (nothing printed); else *conn is what
 * accept() returned (-1 if it failed). */
static bool accept_one_connection(int *conn)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int l = socket(AF_INET, SOCK_STREAM, 0);
	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, 1) ||
	    getsockname(l, (struct sockaddr *)&a, &len))
		return false;
	printf("%d\n", ntohs(a.sin_port));
	fflush(stdout);
	*conn = accept(l, NULL, NULL);
	return true;
}

#endif
