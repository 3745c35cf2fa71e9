/* Runs an exported network on a board (ansor_py/network/export_run.py), without Python.
 *
 *   network_driver LIBRARY DIR REPEAT
 *
 * Opens LIBRARY (a library written by export_library), reads input i from DIR/in_<i>.bin
 * (raw bytes, exactly ansor_network_input_nbytes(i) of them), calls ansor_network_run once
 * and writes output j to DIR/out_<j>.bin, then times REPEAT more calls. Replies on stdout:
 *   TIMES <seconds of each timed call>      (the last line, on success)
 *   ERROR <message>                          (exit status 1)
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef int (*count_fn)(void);
typedef int64_t (*nbytes_fn)(int);
typedef int (*run_fn)(const void *const *, void *const *);
typedef const char *(*error_fn)(void);

static int error(const char *format, const char *what, const char *why) {
    printf("ERROR ");
    printf(format, what, why);
    printf("\n");
    return 1;
}

static void *symbol(void *library, const char *name) {
    void *found = dlsym(library, name);
    if (!found) {
        error("%s: %s", name, dlerror());
        exit(1);
    }
    return found;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc != 4) return error("usage: %s LIBRARY DIR REPEAT%s", argv[0], "");
    void *library = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!library) return error("cannot open %s: %s", argv[1], dlerror());
    int num_inputs = ((count_fn)symbol(library, "ansor_network_num_inputs"))();
    int num_outputs = ((count_fn)symbol(library, "ansor_network_num_outputs"))();
    nbytes_fn input_nbytes = (nbytes_fn)symbol(library, "ansor_network_input_nbytes");
    nbytes_fn output_nbytes = (nbytes_fn)symbol(library, "ansor_network_output_nbytes");
    run_fn run = (run_fn)symbol(library, "ansor_network_run");
    error_fn last_error = (error_fn)symbol(library, "ansor_network_last_error");
    int repeat = atoi(argv[3]);
    void **inputs = calloc((size_t)num_inputs + 1, sizeof(void *));
    void **outputs = calloc((size_t)num_outputs + 1, sizeof(void *));
    char path[4096];
    for (int i = 0; i < num_inputs; i++) {
        int64_t n = input_nbytes(i);
        snprintf(path, sizeof path, "%s/in_%d.bin", argv[2], i);
        FILE *f = fopen(path, "rb");
        if (!f) return error("cannot open %s: %s", path, strerror(errno));
        if (posix_memalign(&inputs[i], 64, n > 0 ? (size_t)n : 64) != 0) return error("%s%s", "out of memory", "");
        size_t got = fread(inputs[i], 1, (size_t)n, f);
        int extra = fgetc(f) != EOF;
        fclose(f);
        if ((int64_t)got != n || extra) return error("%s does not hold %s bytes", path, "the input's");
    }
    for (int j = 0; j < num_outputs; j++) {
        int64_t n = output_nbytes(j);
        if (posix_memalign(&outputs[j], 64, n > 0 ? (size_t)n : 64) != 0) return error("%s%s", "out of memory", "");
    }
    if (run((const void *const *)inputs, outputs) != 0) return error("ansor_network_run: %s%s", last_error(), "");
    for (int j = 0; j < num_outputs; j++) {
        snprintf(path, sizeof path, "%s/out_%d.bin", argv[2], j);
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(outputs[j], 1, (size_t)output_nbytes(j), f) != (size_t)output_nbytes(j))
            return error("cannot write %s: %s", path, strerror(errno));
        fclose(f);
    }
    double *times = calloc((size_t)(repeat > 0 ? repeat : 1), sizeof(double));
    for (int r = 0; r < repeat; r++) {
        double start = now_s();
        if (run((const void *const *)inputs, outputs) != 0) return error("ansor_network_run: %s%s", last_error(), "");
        times[r] = now_s() - start;
    }
    printf("TIMES");
    for (int r = 0; r < repeat; r++) printf(" %.9g", times[r]);
    printf("\n");
    return 0;
}
