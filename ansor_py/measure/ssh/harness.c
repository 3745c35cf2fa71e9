/* The timing harness SSHRunner runs on a remote board (ansor_py/measure/ssh/harness.py).
 *
 * Cross-compiled once per target triple and cached on the board by the hash of this file
 * and the compiler command. It loads one candidate's shared library, calls its packed
 * entry  int32_t entry(void **args, int32_t nargs)  once on the task's reference inputs,
 * checks every output against the expected output, then times it as TVM's time_evaluator
 * and LocalRunner do (ansor_py/measure/run_worker.py): `repeat` repeats of `number` calls,
 * `number` grown by the golden ratio until a repeat lasts `min_repeat_ms`, the cache
 * flushed before each repeat when `flush_bytes` > 0 and the "hot" inputs then read back.
 *
 *   harness LIB ENTRY ARGS_FILE NUMBER REPEAT MIN_REPEAT_MS FLUSH_BYTES SETTLE_MS [OUT_DIR]
 *
 * ARGS_FILE: a first line with the argument count, then one line per kernel argument:
 *   ROLE DTYPE NBYTES RTOL ATOL NAME FILE
 * ROLE is "in" (FILE holds the input), "hot" (an input that a flushed timing reads back
 * into the caches, as a network's layer before leaves it) or "out" (FILE holds the
 * expected output); DTYPE one
 * of f16 f32 f64 i8 i16 i32 i64 u8 u16 u32 u64 b; FILE is raw bytes, relative to the
 * directory of ARGS_FILE. Outputs start filled with NaN (floats) or 0xFF bytes, so an
 * element the kernel never writes cannot pass by luck. With OUT_DIR the outputs of the
 * first call are written there as out_<position>.bin, and NUMBER 0 skips checking and
 * timing (running a finished kernel on the board).
 *
 * Replies on stdout, one line each: "LOADED" once the library is open (a crash after it
 * is the kernel's), then one of
 *   COSTS <seconds per call of each repeat>
 *   WRONG_ANSWER <message>     RUNTIME_DEVICE <message>     COMPILE_DEVICE <message>
 *   ERROR <message>            (the harness itself could not do its job)
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <libgen.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef int32_t (*packed_func)(void **args, int32_t nargs);

typedef struct {
    char role[8];
    char dtype[8];
    long nbytes;
    double rtol, atol;
    char name[256];
    char file[1024];
    void *data;      /* what the kernel gets */
    void *expected;  /* outputs: the reference result */
} argument;

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void reply(const char *kind, const char *message) {
    printf("%s %s\n", kind, message);
    fflush(stdout);
}

static void *read_file(const char *path, long nbytes, char *error, size_t error_len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(error, error_len, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    void *data = NULL;
    if (posix_memalign(&data, 64, nbytes > 0 ? (size_t)nbytes : 64) != 0) {
        fclose(f);
        snprintf(error, error_len, "cannot allocate %ld bytes", nbytes);
        return NULL;
    }
    size_t got = fread(data, 1, (size_t)nbytes, f);
    fclose(f);
    if ((long)got != nbytes) {
        snprintf(error, error_len, "%s holds %zu bytes, expected %ld", path, got, nbytes);
        free(data);
        return NULL;
    }
    return data;
}

static int dtype_size(const char *dtype) {
    if (!strcmp(dtype, "b") || !strcmp(dtype, "i8") || !strcmp(dtype, "u8")) return 1;
    if (!strcmp(dtype, "f16") || !strcmp(dtype, "i16") || !strcmp(dtype, "u16")) return 2;
    if (!strcmp(dtype, "f32") || !strcmp(dtype, "i32") || !strcmp(dtype, "u32")) return 4;
    if (!strcmp(dtype, "f64") || !strcmp(dtype, "i64") || !strcmp(dtype, "u64")) return 8;
    return 0;
}

static int is_float(const char *dtype) { return dtype[0] == 'f'; }

static double half_to_double(uint16_t h) {
    int sign = h >> 15, exponent = (h >> 10) & 31, mantissa = h & 1023;
    double value;
    if (exponent == 0) value = ldexp(mantissa, -24);
    else if (exponent == 31) value = mantissa ? NAN : INFINITY;
    else value = ldexp(mantissa + 1024, exponent - 25);
    return sign ? -value : value;
}

static double element(const argument *a, const void *data, long i) {
    const char *t = a->dtype;
    if (!strcmp(t, "f32")) return ((const float *)data)[i];
    if (!strcmp(t, "f64")) return ((const double *)data)[i];
    if (!strcmp(t, "f16")) return half_to_double(((const uint16_t *)data)[i]);
    if (!strcmp(t, "i8")) return ((const int8_t *)data)[i];
    if (!strcmp(t, "i16")) return ((const int16_t *)data)[i];
    if (!strcmp(t, "i32")) return ((const int32_t *)data)[i];
    if (!strcmp(t, "i64")) return (double)((const int64_t *)data)[i];
    if (!strcmp(t, "u8") || !strcmp(t, "b")) return ((const uint8_t *)data)[i];
    if (!strcmp(t, "u16")) return ((const uint16_t *)data)[i];
    if (!strcmp(t, "u32")) return ((const uint32_t *)data)[i];
    return (double)((const uint64_t *)data)[i];
}

/* Read every byte of an input once, bringing it back into the caches after a flush. */
static void read_through(const void *data, long nbytes) {
    const volatile unsigned char *bytes = data;
    unsigned char folded = 0;
    for (long i = 0; i < nbytes; i += 64) folded |= bytes[i];
    if (nbytes > 0) folded |= bytes[nbytes - 1];
    (void)folded;
}

/* Fill an output before the first call: NaN for floats, 0xFF bytes otherwise. */
static void fill_sentinel(argument *a) {
    long n = a->nbytes / dtype_size(a->dtype);
    if (!strcmp(a->dtype, "f32")) for (long i = 0; i < n; i++) ((float *)a->data)[i] = NAN;
    else if (!strcmp(a->dtype, "f64")) for (long i = 0; i < n; i++) ((double *)a->data)[i] = NAN;
    else if (!strcmp(a->dtype, "f16")) for (long i = 0; i < n; i++) ((uint16_t *)a->data)[i] = 0x7e00;
    else memset(a->data, 0xff, (size_t)a->nbytes);
}

/* 0 when the output matches (the rule of run_worker.compare_output), else 1 and a message. */
static int compare(const argument *a, char *message, size_t len) {
    long n = a->nbytes / dtype_size(a->dtype), bad = 0, worst = -1;
    double scale = 1.0, worst_error = -1.0;
    int floating = is_float(a->dtype);
    if (floating)
        for (long i = 0; i < n; i++) {
            double e = fabs(element(a, a->expected, i));
            if (isfinite(e) && e > scale) scale = e;
        }
    for (long i = 0; i < n; i++) {
        double got = element(a, a->data, i), want = element(a, a->expected, i);
        double error = fabs(got - want);
        int ok;
        if (!floating) ok = got == want;
        else if (isnan(want) || isnan(got)) ok = isnan(want) && isnan(got);
        else if (isinf(want) || isinf(got)) ok = got == want;
        else ok = error <= a->atol * scale + a->rtol * fabs(want);
        if (!ok) {
            if (isnan(error)) error = INFINITY;
            bad++;
            if (error > worst_error) worst_error = error, worst = i;
        }
    }
    if (!bad) return 0;
    snprintf(message, len,
             "output '%s' differs from the reference at %ld of %ld elements: max error %.4g at flat "
             "index %ld (got %.9g, expected %.9g; tolerance rtol=%g, atol=%g*%.3g)",
             a->name, bad, n, worst_error, worst, element(a, a->data, worst),
             element(a, a->expected, worst), a->rtol, a->atol, scale);
    return 1;
}

static int load_arguments(const char *args_file, argument **out, int *count, char *error, size_t len) {
    FILE *f = fopen(args_file, "r");
    if (!f) {
        snprintf(error, len, "cannot open %s: %s", args_file, strerror(errno));
        return 1;
    }
    char dir_buffer[1024];
    snprintf(dir_buffer, sizeof dir_buffer, "%s", args_file);
    const char *dir = dirname(dir_buffer);
    if (fscanf(f, "%d", count) != 1 || *count < 1 || *count > 4096) {
        fclose(f);
        snprintf(error, len, "%s: the first line must be the argument count", args_file);
        return 1;
    }
    argument *args = calloc((size_t)*count, sizeof(argument));
    for (int i = 0; i < *count; i++) {
        argument *a = &args[i];
        char file[1024], path[2100];
        if (fscanf(f, "%7s %7s %ld %lf %lf %255s %1023s", a->role, a->dtype, &a->nbytes, &a->rtol, &a->atol,
                   a->name, file) != 7 || !dtype_size(a->dtype) || a->nbytes < 0) {
            fclose(f);
            snprintf(error, len, "%s: argument line %d is malformed", args_file, i + 1);
            return 1;
        }
        snprintf(path, sizeof path, "%s/%s", dir, file);
        void *content = read_file(path, a->nbytes, error, len);
        if (!content) {
            fclose(f);
            return 1;
        }
        if (strcmp(a->role, "out")) {
            a->data = content;
        } else {
            a->expected = content;
            if (posix_memalign(&a->data, 64, a->nbytes > 0 ? (size_t)a->nbytes : 64) != 0) {
                fclose(f);
                snprintf(error, len, "cannot allocate %ld bytes", a->nbytes);
                return 1;
            }
            fill_sentinel(a);
        }
    }
    fclose(f);
    *out = args;
    return 0;
}

static int write_outputs(const argument *args, int count, const char *out_dir, char *error, size_t len) {
    for (int i = 0; i < count; i++) {
        if (strcmp(args[i].role, "out")) continue;
        char path[2100];
        snprintf(path, sizeof path, "%s/out_%d.bin", out_dir, i);
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(args[i].data, 1, (size_t)args[i].nbytes, f) != (size_t)args[i].nbytes) {
            snprintf(error, len, "cannot write %s: %s", path, strerror(errno));
            if (f) fclose(f);
            return 1;
        }
        fclose(f);
    }
    return 0;
}

int main(int argc, char **argv) {
    char message[4096];
    if (argc != 9 && argc != 10) {
        reply("ERROR", "usage: harness LIB ENTRY ARGS_FILE NUMBER REPEAT MIN_REPEAT_MS FLUSH_BYTES SETTLE_MS [OUT_DIR]");
        return 2;
    }
    const char *lib = argv[1], *entry_name = argv[2], *args_file = argv[3];
    long number = atol(argv[4]), repeat = atol(argv[5]), flush_bytes = atol(argv[7]);
    double min_repeat_ms = atof(argv[6]), settle_ms = atof(argv[8]);
    const char *out_dir = argc == 10 ? argv[9] : NULL;

    argument *args = NULL;
    int count = 0;
    if (load_arguments(args_file, &args, &count, message, sizeof message)) {
        reply("ERROR", message);
        return 2;
    }
    void *handle = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    packed_func entry = handle ? (packed_func)dlsym(handle, entry_name) : NULL;
    if (!entry) {
        reply("COMPILE_DEVICE", dlerror());
        return 0;
    }
    printf("LOADED\n");
    fflush(stdout);

    void **pointers = malloc(sizeof(void *) * (size_t)count);
    for (int i = 0; i < count; i++) pointers[i] = args[i].data;
    double start = now_ms();
    int32_t status = entry(pointers, count);
    double warmup_ms = now_ms() - start;
    if (status != 0) {
        snprintf(message, sizeof message, "kernel returned error status %d", status);
        reply("RUNTIME_DEVICE", message);
        return 0;
    }
    if (out_dir && write_outputs(args, count, out_dir, message, sizeof message)) {
        reply("ERROR", message);
        return 2;
    }
    if (number == 0) {
        reply("COSTS", "");
        return 0;
    }
    for (int i = 0; i < count; i++)
        if (!strcmp(args[i].role, "out") && compare(&args[i], message, sizeof message)) {
            reply("WRONG_ANSWER", message);
            return 0;
        }
    /* A new OpenMP team starts on the caller's core: run a parallel kernel a while first. */
    if (settle_ms > 0 && dlsym(handle, "GOMP_parallel"))
        for (double end = now_ms() + settle_ms; now_ms() < end;) entry(pointers, count);

    if (min_repeat_ms > 0) {  /* a slow kernel needs fewer calls to fill a repeat */
        long enough = (long)ceil(min_repeat_ms / (warmup_ms > 1e-3 ? warmup_ms : 1e-3));
        if (enough < number) number = enough > 1 ? enough : 1;
    }
    char *flush = flush_bytes > 0 ? malloc((size_t)flush_bytes) : NULL;
    int flush_value = 0;
    printf("COSTS");
    for (long r = 0; r < repeat; r++) {
        double duration_ms = 0.0;
        for (;;) {
            if (duration_ms > 0.0) {
                double grown = number * 1.618, needed = min_repeat_ms / (duration_ms / number) + 1;
                number = (long)(needed > grown ? needed : grown);
            }
            if (flush) {
                memset(flush, ++flush_value, (size_t)flush_bytes);
                for (int i = 0; i < count; i++)
                    if (!strcmp(args[i].role, "hot")) read_through(args[i].data, args[i].nbytes);
            }
            start = now_ms();
            for (long k = 0; k < number; k++) entry(pointers, count);
            duration_ms = now_ms() - start;
            if (duration_ms >= min_repeat_ms) break;
        }
        printf(" %.9e", duration_ms / 1e3 / number);
    }
    printf("\n");
    fflush(stdout);
    return 0;
}
