/* The workload of `cargo bench --bench supervise`: one trivial service.
 *
 * usage: workload ID STAMPS [EXTRA...]
 *
 * First thing after exec it reads CLOCK_MONOTONIC and appends one line `ID PID NS` to the
 * file STAMPS (O_APPEND: one write(2) of a short line is atomic, so a thousand processes can
 * share the file). Then it prints one log line on stdout, like a service that says hello,
 * and sleeps until a signal ends it (default dispositions: SIGTERM and SIGKILL end it).
 * EXTRA arguments are ignored: the bench changes them to make runpm see a changed service.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (argc < 3)
        return 2;
    long long ns = (long long)now.tv_sec * 1000000000LL + now.tv_nsec;
    char line[256];
    int n = snprintf(line, sizeof line, "%s %d %lld\n", argv[1], (int)getpid(), ns);
    int fd = open(argv[2], O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0 || write(fd, line, (size_t)n) != n)
        return 1;
    close(fd);
    n = snprintf(line, sizeof line, "%s started (pid %d)\n", argv[1], (int)getpid());
    if (write(1, line, (size_t)n) < 0) {
        /* Nobody reads the output: not this program's problem. */
    }
    for (;;)
        pause();
}
