/* The C entry point of an exported network (ansor_py/network/export.py).
 *
 * Compiled together with a generated "network_tables.h", which describes one network:
 * its inputs and outputs (name, dtype, shape, bytes), the kernel calls in execution order
 * (each a packed function  int32_t kernel(void **args, int32_t nargs)  and where its
 * arguments live), the copies that fill outputs which no kernel writes, the arena size
 * and the weights (embedded in .rodata with .incbin, or a file beside the library).
 *
 *   int ansor_network_run(const void *const *inputs, void *const *outputs);
 *
 * takes the graph's inputs and outputs in graph order, as contiguous row-major buffers of
 * the sizes the query functions give, and returns 0, or a nonzero status with the reason
 * in ansor_network_last_error(). The first call allocates the arena (64-byte aligned, the
 * size ansor_network_workspace_bytes() gives), loads the weights when they are in a file
 * and fills every kernel argument that does not change between calls; later calls only
 * patch the input and output pointers. Not thread-safe: the arena and the argument table
 * are shared, so one thread runs the network at a time (load the library twice, from two
 * copies of the file, for two concurrent networks). ansor_network_release() frees the
 * arena and loaded weights; the next run sets them up again.
 *
 * The first run also pins the worker threads of libgomp's team, thread t > 0 to the t-th
 * CPU of the process's affinity set, and leaves the calling thread alone, as the
 * in-process network does (ansor_py/network/openmp_team.py says why: an unpinned worker
 * woken after a pause waits behind the caller). Nothing is pinned with one CPU, when
 * OMP_PROC_BIND, OMP_PLACES or GOMP_CPU_AFFINITY is set (libgomp places the threads as
 * told), or when no libgomp is loaded (kernels without parallel loops).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))
#define HIDDEN __attribute__((visibility("hidden")))

typedef int32_t (*packed_func)(void **args, int32_t nargs);

/* where a kernel argument (or a copied output's source) lives */
enum { ARG_INPUT = 0, ARG_OUTPUT = 1, ARG_WEIGHT = 2, ARG_ARENA = 3 };

typedef struct {
    const char *name;
    const char *dtype;
    int32_t ndim;
    const int64_t *shape;
    int64_t nbytes;
} tensor_info;

typedef struct {
    int32_t kind;   /* ARG_* */
    int64_t where;  /* input/output position, or byte offset into the weights or the arena */
} arg_ref;

typedef struct {
    packed_func function;
    const char *name;
    int32_t first_arg; /* index into ansor_args */
    int32_t nargs;
} kernel_call;

typedef struct {
    int32_t output;  /* the output position to fill */
    arg_ref source;  /* a graph input, a weight, or an earlier output */
    int64_t nbytes;
} output_copy;

#include "network_tables.h"

static void *argument_table[ANSOR_NUM_ARGS + 1]; /* the tables end with a sentinel entry */
static uint8_t *arena;
static const uint8_t *weights;
static uint8_t *loaded_weights; /* weights read from a file (owned) */
static int ready;
static char last_error[1024];
static char weights_path[4096];

#if ANSOR_WEIGHTS_EMBEDDED
extern const uint8_t ansor_network_weights_blob[] HIDDEN;
#endif

static int fail(int status, const char *message) {
    snprintf(last_error, sizeof last_error, "%.1000s", message); /* truncated to fit */
    return status;
}

EXPORT int ansor_network_set_weights_path(const char *path) {
    if (strlen(path) >= sizeof weights_path) return fail(-2, "weights path too long");
    snprintf(weights_path, sizeof weights_path, "%s", path);
    return 0;
}

#if !ANSOR_WEIGHTS_EMBEDDED
/* The default weights file: ANSOR_WEIGHTS_FILE in the directory of this library. */
static void default_weights_path(void) {
    Dl_info info;
    const char *dir_end = NULL;
    if (dladdr((void *)&ansor_network_set_weights_path, &info) && info.dli_fname)
        dir_end = strrchr(info.dli_fname, '/');
    if (dir_end)
        snprintf(weights_path, sizeof weights_path, "%.*s/%s", (int)(dir_end - info.dli_fname),
                 info.dli_fname, ANSOR_WEIGHTS_FILE);
    else
        snprintf(weights_path, sizeof weights_path, "%s", ANSOR_WEIGHTS_FILE);
}

static int load_weights(void) {
    char message[sizeof weights_path + 200];
    if (!weights_path[0]) default_weights_path();
    FILE *f = fopen(weights_path, "rb");
    if (!f) {
        snprintf(message, sizeof message, "cannot open the weights file %s: %s", weights_path,
                 strerror(errno));
        return fail(-3, message);
    }
    uint64_t header[3] = {0, 0, 0};
    size_t got = fread(header, sizeof header[0], 3, f);
    /* the header: magic, payload bytes, and the export's digest of the payload (a file
     * written by another export is refused, not run) */
    if (got != 3 || memcmp(header, "ANSORPYW", 8) != 0 || header[1] != (uint64_t)ANSOR_WEIGHTS_BYTES ||
        header[2] != ANSOR_WEIGHTS_DIGEST) {
        fclose(f);
        snprintf(message, sizeof message,
                 "%s is not this network's weights file (expected %lld bytes of weights, digest %016llx)",
                 weights_path, (long long)ANSOR_WEIGHTS_BYTES, (unsigned long long)ANSOR_WEIGHTS_DIGEST);
        return fail(-3, message);
    }
    if (posix_memalign((void **)&loaded_weights, 64, ANSOR_WEIGHTS_BYTES + 64) != 0) {
        fclose(f);
        return fail(-4, "cannot allocate memory for the weights");
    }
    fseek(f, 64, SEEK_SET); /* the header is padded to 64 bytes */
    got = fread(loaded_weights, 1, ANSOR_WEIGHTS_BYTES, f);
    fclose(f);
    if (got != (size_t)ANSOR_WEIGHTS_BYTES) {
        free(loaded_weights);
        loaded_weights = NULL;
        snprintf(message, sizeof message, "%s is truncated: %zu of %lld bytes of weights", weights_path,
                 got, (long long)ANSOR_WEIGHTS_BYTES);
        return fail(-3, message);
    }
    weights = loaded_weights;
    return 0;
}
#endif

/* Pinning libgomp's workers (see the top of this file), once per loaded library. */
typedef struct {
    int (*thread_num)(void);
    const int *cpus;
    int count;
} team_places;

static void pin_worker(void *data) {
    const team_places *places = data;
    int thread = places->thread_num();
    if (thread <= 0) return; /* the caller's thread keeps its mask */
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(places->cpus[thread % places->count], &one);
    sched_setaffinity(0, sizeof one, &one); /* 0: the calling thread */
}

static void pin_team_workers(void) {
    static int done;
    if (done) return;
    done = 1;
    if (getenv("OMP_PROC_BIND") || getenv("OMP_PLACES") || getenv("GOMP_CPU_AFFINITY")) return;
    void (*parallel)(void (*)(void *), void *, unsigned, unsigned) =
        (void (*)(void (*)(void *), void *, unsigned, unsigned))dlsym(RTLD_DEFAULT, "GOMP_parallel");
    int (*thread_num)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "omp_get_thread_num");
    cpu_set_t allowed;
    if (!parallel || !thread_num || sched_getaffinity(0, sizeof allowed, &allowed)) return;
    static int cpus[CPU_SETSIZE];
    int count = 0;
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
        if (CPU_ISSET(cpu, &allowed)) cpus[count++] = cpu;
    if (count < 2) return;
    team_places places = {thread_num, cpus, count};
    parallel(pin_worker, &places, 0, 0); /* 0 threads: the default team */
}

static void *resolve(arg_ref ref, const void *const *inputs, void *const *outputs) {
    switch (ref.kind) {
    case ARG_INPUT: return (void *)inputs[ref.where];
    case ARG_OUTPUT: return outputs[ref.where];
    case ARG_WEIGHT: return (void *)(weights + ref.where);
    default: return arena + ref.where;
    }
}

static int setup(void) {
    if (ready) return 0;
#if ANSOR_WEIGHTS_EMBEDDED
    weights = ansor_network_weights_blob;
#else
    int status = load_weights();
    if (status) return status;
#endif
    if (posix_memalign((void **)&arena, 64, ANSOR_WORKSPACE_BYTES > 0 ? ANSOR_WORKSPACE_BYTES : 64) != 0)
        return fail(-4, "cannot allocate the arena of ansor_network_workspace_bytes() bytes");
    for (int i = 0; i < ANSOR_NUM_ARGS; i++)
        if (ansor_args[i].kind >= ARG_WEIGHT) argument_table[i] = resolve(ansor_args[i], NULL, NULL);
    pin_team_workers();
    ready = 1;
    return 0;
}

EXPORT void ansor_network_release(void) {
    free(arena);
    free(loaded_weights);
    arena = NULL;
    loaded_weights = NULL;
    weights = NULL;
    ready = 0;
}

EXPORT int ansor_network_run(const void *const *inputs, void *const *outputs) {
    int status = setup();
    if (status) return status;
    for (int i = 0; i < ANSOR_NUM_ARGS; i++)
        if (ansor_args[i].kind < ARG_WEIGHT) argument_table[i] = resolve(ansor_args[i], inputs, outputs);
    for (int c = 0; c < ANSOR_NUM_CALLS; c++) {
        const kernel_call *call = &ansor_calls[c];
        status = call->function(&argument_table[call->first_arg], call->nargs);
        if (status) {
            snprintf(last_error, sizeof last_error, "kernel %s (call %d) returned %d", call->name, c, status);
            return status;
        }
    }
    for (int k = 0; k < ANSOR_NUM_COPIES; k++) {
        const output_copy *copy = &ansor_copies[k];
        memcpy(outputs[copy->output], resolve(copy->source, inputs, outputs), (size_t)copy->nbytes);
    }
    return 0;
}

EXPORT const char *ansor_network_last_error(void) { return last_error; }
EXPORT const char *ansor_network_name(void) { return ANSOR_NETWORK_NAME; }
EXPORT int64_t ansor_network_workspace_bytes(void) { return ANSOR_WORKSPACE_BYTES; }
EXPORT int64_t ansor_network_weights_bytes(void) { return ANSOR_WEIGHTS_BYTES; }
EXPORT int ansor_network_weights_embedded(void) { return ANSOR_WEIGHTS_EMBEDDED; }
EXPORT int ansor_network_num_kernel_calls(void) { return ANSOR_NUM_CALLS; }
EXPORT int ansor_network_num_inputs(void) { return ANSOR_NUM_INPUTS; }
EXPORT int ansor_network_num_outputs(void) { return ANSOR_NUM_OUTPUTS; }

/* Query functions: NULL / -1 for a position out of range. */
static const tensor_info *input_info(int i) {
    return i >= 0 && i < ANSOR_NUM_INPUTS ? &ansor_inputs[i] : NULL;
}
static const tensor_info *output_info(int i) {
    return i >= 0 && i < ANSOR_NUM_OUTPUTS ? &ansor_outputs[i] : NULL;
}
EXPORT const char *ansor_network_input_name(int i) { return input_info(i) ? input_info(i)->name : NULL; }
EXPORT const char *ansor_network_input_dtype(int i) { return input_info(i) ? input_info(i)->dtype : NULL; }
EXPORT int ansor_network_input_ndim(int i) { return input_info(i) ? input_info(i)->ndim : -1; }
EXPORT const int64_t *ansor_network_input_shape(int i) { return input_info(i) ? input_info(i)->shape : NULL; }
EXPORT int64_t ansor_network_input_nbytes(int i) { return input_info(i) ? input_info(i)->nbytes : -1; }
EXPORT const char *ansor_network_output_name(int i) { return output_info(i) ? output_info(i)->name : NULL; }
EXPORT const char *ansor_network_output_dtype(int i) { return output_info(i) ? output_info(i)->dtype : NULL; }
EXPORT int ansor_network_output_ndim(int i) { return output_info(i) ? output_info(i)->ndim : -1; }
EXPORT const int64_t *ansor_network_output_shape(int i) {
    return output_info(i) ? output_info(i)->shape : NULL;
}
EXPORT int64_t ansor_network_output_nbytes(int i) { return output_info(i) ? output_info(i)->nbytes : -1; }
