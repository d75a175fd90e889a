
/*
 * Copyright (C) ngx_mpns_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "fuzz.h"


static ngx_log_t        ngx_http_mpns_fuzz_log;
static ngx_open_file_t  ngx_http_mpns_fuzz_log_file;


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
