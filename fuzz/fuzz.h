
/*
 * Copyright (C) ngx_mpns_module authors
 */


#ifndef _NGX_HTTP_MPNS_FUZZ_H_INCLUDED_
#define _NGX_HTTP_MPNS_FUZZ_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_mpns_state.h"


/*
 * What every target shares: nginx's globals a parser may touch, and a
 * fresh pool per input.  nginx is built with NGX_DEBUG_PALLOC, so each
 * pool allocation is a malloc() of its own and ASan sees its bounds.
 */

ngx_pool_t *ngx_http_mpns_fuzz_pool(void);

/* the input in a buffer of exactly its size, so reading past it is seen */
u_char *ngx_http_mpns_fuzz_copy(ngx_pool_t *pool, const uint8_t *data,
    size_t size);

/* a broken invariant: a crash libFuzzer keeps as an artifact */
#define ngx_http_mpns_fuzz_assert(cond)                                      \
    if (!(cond)) {                                                           \
        ngx_http_mpns_fuzz_fail(__FILE__, __LINE__, #cond);                  \
    }

void ngx_http_mpns_fuzz_fail(const char *file, int line, const char *what);


/*
 * The state file targets: "owner" makes the owner of a zone anew in
 * shm_zone->data, with shm_zone->init and its state's format, data and
 * shm_zone set, and returns its state.  The input is a snapshot, then
 * journal files, each after a line "@@ EPOCH.N"; the records of a journal
 * with the checksum "00000000" get the right one.  Loaded, written as a
 * snapshot, loaded again: both zones write the same.  Returns the number
 * of lines (entries) written.
 */

typedef ngx_http_mpns_state_t *(*ngx_http_mpns_fuzz_owner_pt)(
    ngx_shm_zone_t *shm_zone);

ngx_uint_t ngx_http_mpns_fuzz_state(ngx_shm_zone_t *shm_zone,
    ngx_http_mpns_fuzz_owner_pt owner, const uint8_t *data, size_t size);


#endif /* _NGX_HTTP_MPNS_FUZZ_H_INCLUDED_ */
