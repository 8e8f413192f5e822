/*
 * spawnfloor: how many programs this machine starts and reaps a second
 * with no server at all, the floor under bench/run's ws-a row (each
 * WebSocket session there starts a /bin/cat of its own, in preforkd and
 * in websocketd alike).
 *
 *   spawnfloor [-j jobs] [-d seconds] [program]
 *
 * -j processes (default 2) each start the program (default /bin/cat)
 * back to back for -d seconds (default 5): posix_spawn with its stdin
 * and stdout on pipes, stdin closed at once so that it ends, stdout read
 * to its end, the program reaped.  Output, one line:
 *   spawnfloor jobs=2 secs=5.00 spawns=6000 per_s=1200
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One program started, its stdin closed, its stdout drained, reaped. */
static int
one(char *prog)
{
	posix_spawn_file_actions_t fa;
	char *argv[] = { prog, NULL }, buf[256];
	int in[2], out[2], rc = -1;
	pid_t pid;

	if (pipe(in) == -1)
		return -1;
	if (pipe(out) == -1) {
		close(in[0]);
		close(in[1]);
		return -1;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in[0], 0);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	posix_spawn_file_actions_addclose(&fa, in[1]);
	posix_spawn_file_actions_addclose(&fa, out[0]);
	if (posix_spawn(&pid, prog, &fa, NULL, argv, environ) == 0)
		rc = 0;
	posix_spawn_file_actions_destroy(&fa);
	close(in[0]);
	close(out[1]);
	close(in[1]);
	for (;;) {
		ssize_t r = read(out[0], buf, sizeof(buf));

		if (r == 0 || (r == -1 && errno != EINTR))
			break;
	}
	close(out[0]);
	if (rc == 0)
		while (waitpid(pid, NULL, 0) == -1 && errno == EINTR)
			;
	return rc;
}

int
main(int argc, char *argv[])
{
	int jobs = 2, c, fds[2];
	double secs = 5, start, end;
	char *prog = "/bin/cat";
	long total = 0, n;

	while ((c = getopt(argc, argv, "j:d:")) != -1) {
		switch (c) {
		case 'j':
			jobs = atoi(optarg);
			break;
		case 'd':
			secs = atof(optarg);
			break;
		default:
			fprintf(stderr, "usage: spawnfloor [-j jobs] "
			    "[-d seconds] [program]\n");
			return 2;
		}
	}
	if (optind < argc)
		prog = argv[optind];
	if (jobs < 1 || jobs > 64 || secs <= 0 || secs > 600 ||
	    pipe(fds) == -1)
		return 2;
	start = now();
	end = start + secs;
	for (int j = 0; j < jobs; j++) {
		if (fork() == 0) {
			long k = 0;

			close(fds[0]);
			while (now() < end && one(prog) == 0)
				k++;
			(void)write(fds[1], &k, sizeof(k));
			_exit(0);
		}
	}
	close(fds[1]);
	while (read(fds[0], &n, sizeof(n)) == (ssize_t)sizeof(n))
		total += n;
	while (wait(NULL) > 0)
		;
	end = now() - start;
	printf("spawnfloor jobs=%d secs=%.2f spawns=%ld per_s=%.0f\n", jobs,
	    end, total, (double)total / end);
	return total > 0 ? 0 : 1;
}
