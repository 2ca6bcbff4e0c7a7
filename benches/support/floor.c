/* The floor of `cargo bench --bench supervise`: the least a supervisor can do.
 *
 * usage: floor N WORKLOAD STAMPS
 *
 * Starts N copies of WORKLOAD (`WORKLOAD svcNNNN STAMPS`) with posix_spawn (glibc: a
 * CLONE_VM|CLONE_VFORK child, the cheapest way to exec from a process), each in its own
 * session with an empty signal mask, stdin from /dev/null and stdout/stderr to /dev/null
 * (the floor captures no output). Then it sleeps in sigwaitinfo:
 *
 * - SIGCHLD: reap every exited child (waitpid(-1, WNOHANG) until none) and start the same
 *   workload again at once: restart with no delay;
 * - SIGTERM: send SIGTERM to every child, reap them all, exit 0: stop all.
 *
 * Idle it makes no system call. It keeps nothing but a pid per slot.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static int n;
static pid_t *pids;
static const char *workload, *stamps;
static posix_spawnattr_t attr;
static posix_spawn_file_actions_t actions;

static void start(int i) {
    char id[32];
    snprintf(id, sizeof id, "svc%04d", i);
    char *argv[] = {(char *)workload, id, (char *)stamps, NULL};
    int err = posix_spawn(&pids[i], workload, &actions, &attr, argv, environ);
    if (err != 0) {
        errno = err;
        perror("floor: posix_spawn");
        exit(1);
    }
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: floor N WORKLOAD STAMPS\n");
        return 2;
    }
    n = atoi(argv[1]);
    workload = argv[2];
    stamps = argv[3];
    pids = calloc((size_t)n, sizeof *pids);

    /* Blocked before the first spawn so that no exit can be missed; the children get an
     * empty mask back through POSIX_SPAWN_SETSIGMASK. */
    sigset_t wanted, empty;
    sigemptyset(&wanted);
    sigaddset(&wanted, SIGCHLD);
    sigaddset(&wanted, SIGTERM);
    sigprocmask(SIG_BLOCK, &wanted, NULL);
    sigemptyset(&empty);

    posix_spawnattr_init(&attr);
    posix_spawnattr_setsigmask(&attr, &empty);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK);
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);

    for (int i = 0; i < n; i++)
        start(i);

    for (;;) {
        siginfo_t info;
        int sig = sigwaitinfo(&wanted, &info);
        if (sig == SIGTERM)
            break;
        if (sig != SIGCHLD)
            continue;
        pid_t pid;
        while ((pid = waitpid(-1, NULL, WNOHANG)) > 0) {
            for (int i = 0; i < n; i++) {
                if (pids[i] == pid) {
                    start(i);
                    break;
                }
            }
        }
    }

    for (int i = 0; i < n; i++)
        kill(pids[i], SIGTERM);
    int left = n;
    while (left > 0) {
        if (waitpid(-1, NULL, 0) > 0)
            left--;
        else if (errno == ECHILD)
            break;
    }
    return 0;
}
