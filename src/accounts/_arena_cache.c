/*
 * Keeps the small blocks CPython frees through its arena allocator, so that the
 * next block of the same size is reused instead of unmapped and mapped afresh.
 *
 * Why: on Python 3.11+ every greenlet starts its own frame stack, a 16 KiB block
 * from the arena allocator (mmap), and unmaps it when the greenlet ends (greenlet
 * issue #328). SQLAlchemy's asyncio layer runs each awaited session call in a new
 * greenlet. Unmapping memory while another thread of the process runs on another
 * core (an argon2 hash) makes the kernel interrupt that core to flush its TLB and
 * wait for it: ~1.4 ms a time on a 2-core VM, several times per login, all of it
 * on the event loop (docs/performance.md). Kept here, the block is never unmapped.
 *
 * Correctness rests on one rule: every block handed out still comes from the
 * allocator that was installed before us, and every block freed is either held
 * here (at most CACHE_SLOTS, until reused or the process ends) or given back to
 * that allocator. Blocks that predate install() are no different: they came from
 * the same allocator. A block is only ever handed out for the size it was freed
 * with, and a pointer already held is never held twice.
 *
 * The lock is required, not defensive: subinterpreters with their own GIL (3.12+),
 * PyThreadState_Delete (documented as callable without the GIL) and free-threaded
 * builds all reach the allocator without holding one shared GIL.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pthread.h>

/* Frame-stack blocks are 16 KiB unless a single frame needs more; pymalloc's own
 * arenas (256 KiB or 1 MiB) are larger and pass through untouched. */
#define CACHED_SIZE_MAX (64 * 1024)
/* At most 64 blocks held: 1 MiB of 16 KiB blocks, 4 MiB at the very worst. */
#define CACHE_SLOTS 64

static PyObjectArenaAllocator inner;
static struct {
    void *ptr;
    size_t size;
} cache[CACHE_SLOTS];
static int held;
static unsigned long long reused, passed_through;
static int installed;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void *
cached_alloc(void *ctx, size_t size)
{
    (void)ctx;
    if (size <= CACHED_SIZE_MAX) {
        pthread_mutex_lock(&lock);
        for (int i = held - 1; i >= 0; i--) {
            if (cache[i].size == size) {
                void *ptr = cache[i].ptr;
                cache[i] = cache[--held];
                reused++;
                pthread_mutex_unlock(&lock);
                return ptr;
            }
        }
        passed_through++;
        pthread_mutex_unlock(&lock);
    }
    return inner.alloc(inner.ctx, size);
}

static void
cached_free(void *ctx, void *ptr, size_t size)
{
    (void)ctx;
    if (ptr != NULL && size <= CACHED_SIZE_MAX) {
        pthread_mutex_lock(&lock);
        int already_held = 0;
        for (int i = 0; i < held; i++) {
            if (cache[i].ptr == ptr) {
                already_held = 1; /* a double free: handed on, as it was before us */
                break;
            }
        }
        if (!already_held && held < CACHE_SLOTS) {
            cache[held].ptr = ptr;
            cache[held].size = size;
            held++;
            pthread_mutex_unlock(&lock);
            return;
        }
        pthread_mutex_unlock(&lock);
    }
    inner.free(inner.ctx, ptr, size);
}

/* Held across fork(), so that the child's copy of the cache is never caught half
 * updated by a thread that does not exist in the child. */
static void
lock_before_fork(void)
{
    pthread_mutex_lock(&lock);
}

static void
unlock_after_fork(void)
{
    pthread_mutex_unlock(&lock);
}

static PyObject *
install(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    /* Under the lock: two first calls at once must not wrap the cache in itself. */
    pthread_mutex_lock(&lock);
    if (!installed) {
        if (pthread_atfork(lock_before_fork, unlock_after_fork, unlock_after_fork) != 0) {
            pthread_mutex_unlock(&lock);
            PyErr_SetString(PyExc_OSError, "pthread_atfork failed");
            return NULL;
        }
        PyObjectArenaAllocator ours;
        PyObject_GetArenaAllocator(&inner);
        ours.ctx = NULL;
        ours.alloc = cached_alloc;
        ours.free = cached_free;
        PyObject_SetArenaAllocator(&ours);
        installed = 1;
    }
    pthread_mutex_unlock(&lock);
    Py_RETURN_NONE;
}

static PyObject *
stats(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    pthread_mutex_lock(&lock);
    int now_installed = installed, now_held = held;
    unsigned long long now_reused = reused, now_passed = passed_through;
    pthread_mutex_unlock(&lock);
    return Py_BuildValue("{s:O,s:i,s:K,s:K}", "installed", now_installed ? Py_True : Py_False,
                         "held", now_held, "reused", now_reused, "passed_through",
                         now_passed);
}

static PyMethodDef methods[] = {
    {"install", install, METH_NOARGS,
     "Put the cache in front of the arena allocator, once per process."},
    {"stats", stats, METH_NOARGS,
     "installed, blocks held, allocations served from the cache and passed through."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    "accounts._arena_cache",
    "A cache of freed small arena blocks (CPython frame stacks); see arena_cache.py.",
    -1,
    methods,
};

PyMODINIT_FUNC
PyInit__arena_cache(void)
{
    return PyModule_Create(&module_def);
}
