/* Shared by the sources of test_simt_checks (test_simt_checks.cu, checks_wmma.cu): the check
 * counter and EXPECT, device buffers, and running a planted bug in a child process whose
 * stderr is captured. */
#ifndef RD_SIMT_CHECKS_H
#define RD_SIMT_CHECKS_H

#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

extern int g_checks, g_failed;

#define EXPECT(cond, ...)                                                                      \
    do {                                                                                       \
        g_checks++;                                                                            \
        if (!(cond)) {                                                                         \
            g_failed++;                                                                        \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                               \
            fprintf(stderr, __VA_ARGS__);                                                      \
            fprintf(stderr, "\n");                                                             \
        }                                                                                      \
    } while (0)

template <class T> static inline T *dev(size_t n)
{
    void *p = nullptr;
    if (cudaMalloc(&p, n * sizeof(T)) != cudaSuccess) abort();
    return (T *)p;
}

template <class T> static inline void down(T *h, const T *d, size_t n)
{
    if (cudaMemcpy(h, d, n * sizeof(T), cudaMemcpyDeviceToHost) != cudaSuccess) abort();
}

template <class T> static inline void up(T *d, const T *h, size_t n)
{
    if (cudaMemcpy(d, h, n * sizeof(T), cudaMemcpyHostToDevice) != cudaSuccess) abort();
}

struct outcome {
    int status;
    std::string err;
};

/* runs body in a child with stderr captured */
static inline outcome in_child(void (*body)())
{
    int fd[2];
    if (pipe(fd)) abort();
    fflush(stdout), fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd[1], 2);
        close(fd[0]);
        body();
        fflush(stderr);
        _exit(0);
    }
    close(fd[1]);
    outcome o;
    char buf[4096];
    ssize_t n;
    while ((n = read(fd[0], buf, sizeof buf)) > 0) o.err.append(buf, (size_t)n);
    close(fd[0]);
    waitpid(pid, &o.status, 0);
    return o;
}

static inline bool aborted(const outcome &o) { return WIFSIGNALED(o.status); }
static inline bool says(const outcome &o, const char *s) { return o.err.find(s) != std::string::npos; }

/* checks_wmma.cu: the warp matrix functions and cp.async (planted bugs first: they fork) */
void check_wmma_planted();
void check_wmma_correct();

#endif
