
/*
 * Copyright (C) ngx_mpns_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "fuzz.h"


/* a zone big enough for any input a target is given */
#define NGX_HTTP_MPNS_FUZZ_ZONE           (1024 * 1024)
#define NGX_HTTP_MPNS_FUZZ_FILES          8

/* a journal record, as ngx_http_mpns_state.c writes it */
#define NGX_HTTP_MPNS_FUZZ_RECORD_HEADER  38
#define NGX_HTTP_MPNS_FUZZ_RECORD_CRC     28


static void ngx_http_mpns_fuzz_state_init(void);
static void ngx_http_mpns_fuzz_state_exit(void);
static void ngx_http_mpns_fuzz_state_clear(void);
static void ngx_http_mpns_fuzz_state_files(ngx_str_t *path, u_char *p,
    u_char *last);
static u_char *ngx_http_mpns_fuzz_state_section(u_char *p, u_char *last);
static void ngx_http_mpns_fuzz_state_crc(u_char *p, u_char *last);
static void ngx_http_mpns_fuzz_state_write(u_char *name, u_char *p,
    size_t len);
static ngx_http_mpns_state_t *ngx_http_mpns_fuzz_state_load(
    ngx_shm_zone_t *shm_zone, ngx_http_mpns_fuzz_owner_pt owner);
static void ngx_http_mpns_fuzz_state_render(ngx_http_mpns_state_t *st,
    ngx_pool_t *pool, ngx_str_t *out);


static ngx_log_t                     ngx_http_mpns_fuzz_log;
static ngx_open_file_t               ngx_http_mpns_fuzz_log_file;

static char                          ngx_http_mpns_fuzz_dir[] =
                                         "/tmp/mpns-fuzz-XXXXXX";
static u_char                        ngx_http_mpns_fuzz_name[NGX_MAX_PATH];
static ngx_str_t                     ngx_http_mpns_fuzz_path;
static u_char                       *ngx_http_mpns_fuzz_shm;
static ngx_cycle_t                   ngx_http_mpns_fuzz_cycle;
static ngx_core_conf_t               ngx_http_mpns_fuzz_ccf;
static ngx_http_mpns_journal_conf_t  ngx_http_mpns_fuzz_journal;


ngx_pool_t *
ngx_http_mpns_fuzz_pool(void)
{
    ngx_pool_t  *pool;

    if (ngx_pagesize == 0) {
        ngx_pagesize = getpagesize();
        ngx_cacheline_size = NGX_CPU_CACHE_LINE;

        /* nothing is logged: the level is below every message's */
        ngx_http_mpns_fuzz_log_file.fd = ngx_stderr;
        ngx_http_mpns_fuzz_log.file = &ngx_http_mpns_fuzz_log_file;
        ngx_http_mpns_fuzz_log.log_level = 0;

        ngx_time_init();
    }

    pool = ngx_create_pool(NGX_DEFAULT_POOL_SIZE, &ngx_http_mpns_fuzz_log);
    if (pool == NULL) {
        ngx_http_mpns_fuzz_fail(__FILE__, __LINE__, "ngx_create_pool()");
    }

    return pool;
}


u_char *
ngx_http_mpns_fuzz_copy(ngx_pool_t *pool, const uint8_t *data, size_t size)
{
    u_char  *p;

    /* a zero-length input still gets a pointer of its own */

    p = ngx_pnalloc(pool, size ? size : 1);
    if (p == NULL) {
        ngx_http_mpns_fuzz_fail(__FILE__, __LINE__, "ngx_pnalloc()");
    }

    if (size) {
        ngx_memcpy(p, data, size);
    }

    return p;
}


void
ngx_http_mpns_fuzz_fail(const char *file, int line, const char *what)
{
    fprintf(stderr, "%s:%d: invariant broken: %s\n", file, line, what);
    abort();
}


/*
 * The state files of a zone: the input's sections as files, loaded into
 * a zone; what a snapshot of it writes, loaded into a new zone, is written
 * the same again.  The lines written: the entries.
 */

ngx_uint_t
ngx_http_mpns_fuzz_state(ngx_shm_zone_t *shm_zone,
    ngx_http_mpns_fuzz_owner_pt owner, const uint8_t *data, size_t size)
{
    u_char                 *p;
    ngx_str_t               first, again;
    ngx_uint_t              lines;
    ngx_pool_t             *pool;
    ngx_http_mpns_state_t  *st;

    pool = ngx_http_mpns_fuzz_pool();

    if (ngx_http_mpns_fuzz_shm == NULL) {
        ngx_http_mpns_fuzz_state_init();
    }

    p = ngx_http_mpns_fuzz_copy(pool, data, size);

    /* what a zone allocates from its cycle's pool goes with the input */
    ngx_http_mpns_fuzz_cycle.pool = pool;

    ngx_http_mpns_fuzz_state_clear();
    ngx_http_mpns_fuzz_state_files(&ngx_http_mpns_fuzz_path, p, p + size);

    st = ngx_http_mpns_fuzz_state_load(shm_zone, owner);
    ngx_http_mpns_fuzz_state_render(st, pool, &first);

    ngx_http_mpns_fuzz_state_clear();
    ngx_http_mpns_fuzz_state_write(ngx_http_mpns_fuzz_path.data, first.data,
                                   first.len);

    st = ngx_http_mpns_fuzz_state_load(shm_zone, owner);
    ngx_http_mpns_fuzz_state_render(st, pool, &again);

    ngx_http_mpns_fuzz_assert(again.len == first.len);
    ngx_http_mpns_fuzz_assert(first.len == 0
                              || ngx_memcmp(again.data, first.data,
                                            first.len) == 0);

    lines = 0;

    for (p = first.data; p < first.data + first.len; p++) {
        if (*p == LF) {
            lines++;
        }
    }

    ngx_http_mpns_fuzz_assert(first.len == 0 || first.data[first.len - 1]
                                                == LF);

    ngx_destroy_pool(pool);

    return lines;
}


/* the master's view at start: a cycle with no zones yet, no user */

static void
ngx_http_mpns_fuzz_state_init(void)
{
    void        **ctx;
    ngx_uint_t    n;
    ngx_pool_t   *pool;
    ngx_cycle_t  *cycle;

    if (mkdtemp(ngx_http_mpns_fuzz_dir) == NULL) {
        ngx_http_mpns_fuzz_fail(__FILE__, __LINE__, "mkdtemp()");
    }

    if (atexit(ngx_http_mpns_fuzz_state_exit) != 0) {
        ngx_http_mpns_fuzz_fail(__FILE__, __LINE__, "atexit()");
    }

    if (ngx_preinit_modules() != NGX_OK) {
        ngx_http_mpns_fuzz_fail(__FILE__, __LINE__, "ngx_preinit_modules()");
    }

    /* as ngx_os_init() sets it */
    for (n = ngx_pagesize; n >>= 1; ngx_pagesize_shift++) { /* void */ }

    ngx_slab_sizes_init();
    ngx_pid = ngx_getpid();

    /* for the process's life; each input gives the cycle its own pool */

    pool = ngx_create_pool(NGX_DEFAULT_POOL_SIZE, &ngx_http_mpns_fuzz_log);
    if (pool == NULL) {
        ngx_http_mpns_fuzz_fail(__FILE__, __LINE__, "ngx_create_pool()");
    }

    cycle = &ngx_http_mpns_fuzz_cycle;
    cycle->log = &ngx_http_mpns_fuzz_log;

    ctx = ngx_pcalloc(pool, ngx_max_module * sizeof(void *));
    if (ctx == NULL) {
        ngx_http_mpns_fuzz_fail(__FILE__, __LINE__, "ngx_pcalloc()");
    }

    ngx_http_mpns_fuzz_ccf.user = (ngx_uid_t) NGX_CONF_UNSET_UINT;
    ctx[ngx_core_module.index] = &ngx_http_mpns_fuzz_ccf;
    cycle->conf_ctx = (void ****) ctx;

    if (ngx_list_init(&cycle->shared_memory, pool, 1,
                      sizeof(ngx_shm_zone_t))
        != NGX_OK)
    {
        ngx_http_mpns_fuzz_fail(__FILE__, __LINE__, "ngx_list_init()");
    }

    ngx_cycle = cycle;

    ngx_http_mpns_fuzz_path.data = ngx_pnalloc(pool, NGX_MAX_PATH);
    if (ngx_http_mpns_fuzz_path.data == NULL) {
        ngx_http_mpns_fuzz_fail(__FILE__, __LINE__, "ngx_pnalloc()");
    }

    ngx_http_mpns_fuzz_path.len =
        ngx_sprintf(ngx_http_mpns_fuzz_path.data, "%s/state.ndjson%Z",
                    ngx_http_mpns_fuzz_dir)
        - ngx_http_mpns_fuzz_path.data - 1;

    ngx_http_mpns_fuzz_shm = ngx_memalign(ngx_pagesize,
                                          NGX_HTTP_MPNS_FUZZ_ZONE,
                                          cycle->log);
    if (ngx_http_mpns_fuzz_shm == NULL) {
        ngx_http_mpns_fuzz_fail(__FILE__, __LINE__, "ngx_memalign()");
    }
}


static void
ngx_http_mpns_fuzz_state_exit(void)
{
    ngx_http_mpns_fuzz_state_clear();
    (void) ngx_delete_dir(ngx_http_mpns_fuzz_dir);
}


static void
ngx_http_mpns_fuzz_state_clear(void)
{
    ngx_dir_t  dir;
    ngx_str_t  name;

    name.data = (u_char *) ngx_http_mpns_fuzz_dir;
    name.len = ngx_strlen(ngx_http_mpns_fuzz_dir);

    if (ngx_open_dir(&name, &dir) == NGX_ERROR) {
        ngx_http_mpns_fuzz_fail(__FILE__, __LINE__, "ngx_open_dir()");
    }

    while (ngx_read_dir(&dir) == NGX_OK) {
        if (ngx_de_name(&dir)[0] == '.') {
            continue;
        }

        (void) ngx_sprintf(ngx_http_mpns_fuzz_name, "%s/%s%Z",
                           ngx_http_mpns_fuzz_dir, ngx_de_name(&dir));
        (void) ngx_delete_file(ngx_http_mpns_fuzz_name);
    }

    (void) ngx_close_dir(&dir);
}


/*
 * The snapshot, then a section per journal file, each after a line
 * "@@ EPOCH.N"; an input that begins with such a line has no snapshot
 */

static void
ngx_http_mpns_fuzz_state_files(ngx_str_t *path, u_char *p, u_char *last)
{
    u_char      *name, *lf, *next, *q;
    ngx_uint_t   files;

    if (last - p < 3 || ngx_strncmp(p, "@@ ", 3) != 0) {
        next = ngx_http_mpns_fuzz_state_section(p, last);
        ngx_http_mpns_fuzz_state_write(path->data, p, next - p);
        p = next;
    }

    for (files = 0; p < last; p = next) {

        /* at "@@ " */

        name = p + 3;

        lf = ngx_strlchr(name, last, LF);
        if (lf == NULL) {
            return;
        }

        next = ngx_http_mpns_fuzz_state_section(lf + 1, last);

        if (files == NGX_HTTP_MPNS_FUZZ_FILES
            || lf == name || lf - name > 24)
        {
            continue;
        }

        /* what the module's name parser is given: no "/", no NUL */

        for (q = name; q < lf; q++) {
            if (!(isalnum(*q) || *q == '.' || *q == '-')) {
                break;
            }
        }

        if (q < lf) {
            continue;
        }

        ngx_http_mpns_fuzz_state_crc(lf + 1, next);

        (void) ngx_sprintf(ngx_http_mpns_fuzz_name, "%V-journal.%*s%Z", path,
                           (size_t) (lf - name), name);

        ngx_http_mpns_fuzz_state_write(ngx_http_mpns_fuzz_name, lf + 1,
                                       next - lf - 1);
        files++;
    }
}


/* the start of the next section: a line "@@ ..." */

static u_char *
ngx_http_mpns_fuzz_state_section(u_char *p, u_char *last)
{
    for ( ;; ) {
        p = ngx_strlchr(p, last, LF);

        if (p == NULL) {
            return last;
        }

        p++;

        if (last - p >= 3 && ngx_strncmp(p, "@@ ", 3) == 0) {
            return p;
        }
    }
}


/*
 * The records at the start of a journal section get their checksum where
 * it is "00000000": seeds stay valid however their payloads are changed
 */

static void
ngx_http_mpns_fuzz_state_crc(u_char *p, u_char *last)
{
    size_t     len;
    uint32_t   crc;
    ngx_int_t  n;

    while (last - p > NGX_HTTP_MPNS_FUZZ_RECORD_HEADER) {

        if (p[0] != 'J' || p[17] != ' ' || p[19] != ' ' || p[28] != ' '
            || p[37] != ' ')
        {
            return;
        }

        n = ngx_hextoi(&p[20], 8);

        if (n == NGX_ERROR
            || (size_t) n >= (size_t) (last - p)
                             - NGX_HTTP_MPNS_FUZZ_RECORD_HEADER)
        {
            return;
        }

        len = n;

        if (ngx_strncmp(&p[29], "00000000", 8) == 0) {
            ngx_crc32_init(crc);
            ngx_crc32_update(&crc, p, NGX_HTTP_MPNS_FUZZ_RECORD_CRC);
            ngx_crc32_update(&crc, p + NGX_HTTP_MPNS_FUZZ_RECORD_HEADER, len);
            ngx_crc32_final(crc);

            (void) ngx_sprintf(&p[29], "%08xD", crc);
        }

        p += NGX_HTTP_MPNS_FUZZ_RECORD_HEADER + len + 1;
    }
}


static void
ngx_http_mpns_fuzz_state_write(u_char *name, u_char *p, size_t len)
{
    ssize_t   n;
    ngx_fd_t  fd;

    fd = ngx_open_file(name, NGX_FILE_WRONLY, NGX_FILE_TRUNCATE,
                       NGX_FILE_DEFAULT_ACCESS);

    if (fd == NGX_INVALID_FILE) {
        ngx_http_mpns_fuzz_fail(__FILE__, __LINE__, "ngx_open_file()");
    }

    while (len) {
        n = write(fd, p, len);

        if (n <= 0) {
            ngx_http_mpns_fuzz_fail(__FILE__, __LINE__, "write()");
        }

        p += n;
        len -= n;
    }

    (void) ngx_close_file(fd);
}


/* a new zone from the files, as the master makes it */

static ngx_http_mpns_state_t *
ngx_http_mpns_fuzz_state_load(ngx_shm_zone_t *shm_zone,
    ngx_http_mpns_fuzz_owner_pt owner)
{
    ngx_int_t               rc;
    ngx_slab_pool_t        *sp;
    ngx_http_mpns_state_t  *st;

    ngx_memzero(shm_zone, sizeof(ngx_shm_zone_t));

    shm_zone->shm.addr = ngx_http_mpns_fuzz_shm;
    shm_zone->shm.size = NGX_HTTP_MPNS_FUZZ_ZONE;
    shm_zone->shm.log = &ngx_http_mpns_fuzz_log;
    ngx_str_set(&shm_zone->shm.name, "fuzz");

    st = owner(shm_zone);

    st->path = ngx_http_mpns_fuzz_path;
    st->cycle = &ngx_http_mpns_fuzz_cycle;
    st->conf = &ngx_http_mpns_fuzz_journal;

    /* shared memory is zeroed when mapped: the lock is free */

    sp = (ngx_slab_pool_t *) shm_zone->shm.addr;
    ngx_memzero(sp, sizeof(ngx_slab_pool_t));

    sp->end = shm_zone->shm.addr + shm_zone->shm.size;
    sp->min_shift = 3;
    sp->addr = shm_zone->shm.addr;

    if (ngx_shmtx_create(&sp->mutex, &sp->lock, NULL) != NGX_OK) {
        ngx_http_mpns_fuzz_fail(__FILE__, __LINE__, "ngx_shmtx_create()");
    }

    ngx_slab_init(sp);

    rc = shm_zone->init(shm_zone, NULL);

    /* whatever the files hold: loaded or skipped */
    ngx_http_mpns_fuzz_assert(rc == NGX_OK);

    return st;
}


/* what a snapshot of the zone writes */

static void
ngx_http_mpns_fuzz_state_render(ngx_http_mpns_state_t *st, ngx_pool_t *pool,
    ngx_str_t *out)
{
    u_char     *p;
    size_t      size;
    void       *cursor;
    ngx_buf_t  *b;
    ngx_int_t   rc;

    b = ngx_create_temp_buf(pool, st->format->buffer_size);
    cursor = ngx_pcalloc(pool, st->format->cursor_size);

    if (b == NULL || cursor == NULL) {
        ngx_http_mpns_fuzz_fail(__FILE__, __LINE__, "ngx_pcalloc()");
    }

    size = st->format->buffer_size;
    out->len = 0;

    out->data = ngx_pnalloc(pool, size);
    if (out->data == NULL) {
        ngx_http_mpns_fuzz_fail(__FILE__, __LINE__, "ngx_pnalloc()");
    }

    for ( ;; ) {
        b->last = b->start;

        rc = st->format->render(st, cursor, b);

        ngx_http_mpns_fuzz_assert(rc == NGX_OK || rc == NGX_AGAIN);

        /* every line fits the buffer of a save */
        ngx_http_mpns_fuzz_assert(rc == NGX_OK || b->last > b->start);

        if (out->len + (b->last - b->start) > size) {
            size = 2 * (out->len + (b->last - b->start));

            p = ngx_pnalloc(pool, size);
            if (p == NULL) {
                ngx_http_mpns_fuzz_fail(__FILE__, __LINE__, "ngx_pnalloc()");
            }

            if (out->len) {
                ngx_memcpy(p, out->data, out->len);
            }

            out->data = p;
        }

        if (b->last > b->start) {
            ngx_memcpy(out->data + out->len, b->start, b->last - b->start);
            out->len += b->last - b->start;
        }

        if (rc == NGX_OK) {
            return;
        }
    }
}
