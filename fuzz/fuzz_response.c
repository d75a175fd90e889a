
/*
 * Copyright (C) ngx_mpns_module authors
 */


/*
 * A push service's answer as the peer layer reads it (the status line,
 * the headers, a body to discard) and the outcome its service makes of
 * it, the bytes arriving at once and again in pieces: both readings end
 * the same way (an answer, an error, or the connection closed before the
 * end) with the same status, outcome and kept headers; a kept header
 * value has no control byte but HT, and no blank at either end.
 *
 * The first byte picks the service (bit 7: the plain HTTP one) and the
 * sizes of the pieces; the answer follows.
 */


#include "ngx_http_mpns_peer.c"
#include "fuzz.h"


#define NGX_HTTP_MPNS_FUZZ_ANSWER   0
#define NGX_HTTP_MPNS_FUZZ_ERROR    1
#define NGX_HTTP_MPNS_FUZZ_CLOSED   2


typedef struct {
    ngx_uint_t                ended;
    ngx_uint_t                outcome;
    ngx_uint_t                close;
    ngx_http_mpns_response_t  response;
} ngx_http_mpns_fuzz_read_t;


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void ngx_http_mpns_fuzz_read(ngx_pool_t *pool,
    ngx_http_mpns_service_t *service, u_char *p, size_t size,
    ngx_uint_t seed, ngx_http_mpns_fuzz_read_t *rd);


/* the jobs' log: at no level, nothing is logged */
static ngx_log_t  ngx_http_mpns_fuzz_response_log;


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char                     *p, c;
    ngx_str_t                  *h;
    ngx_uint_t                  i, j;
    ngx_pool_t                 *pool;
    ngx_http_mpns_service_t    *service;
    ngx_http_mpns_fuzz_read_t   whole, pieces;

    if (size == 0) {
        return 0;
    }

    pool = ngx_http_mpns_fuzz_pool();

    service = (data[0] & 0x80) ? &ngx_http_mpns_service_http
                               : &ngx_http_mpns_service_mpns;

    p = ngx_http_mpns_fuzz_copy(pool, data + 1, size - 1);

    ngx_http_mpns_fuzz_read(pool, service, p, size - 1, 0, &whole);
    ngx_http_mpns_fuzz_read(pool, service, p, size - 1, data[0] | 1,
                            &pieces);

    ngx_http_mpns_fuzz_assert(whole.ended == pieces.ended);
    ngx_http_mpns_fuzz_assert(whole.outcome == pieces.outcome);
    ngx_http_mpns_fuzz_assert(whole.response.status
                              == pieces.response.status);

    /* more of what follows the answer may be seen at once */
    ngx_http_mpns_fuzz_assert(pieces.close <= whole.close);

    if (whole.ended == NGX_HTTP_MPNS_FUZZ_ANSWER) {
        ngx_http_mpns_fuzz_assert(whole.response.status >= 200
                                  && whole.response.status <= 599);
        ngx_http_mpns_fuzz_assert(whole.outcome < NGX_HTTP_MPNS_NOUTCOMES);
    }

    for (i = 0; i < NGX_HTTP_MPNS_MAX_HEADERS; i++) {
        h = &whole.response.headers[i];

        ngx_http_mpns_fuzz_assert(i < service->nheaders || h->len == 0);
        ngx_http_mpns_fuzz_assert(h->len == pieces.response.headers[i].len);
        ngx_http_mpns_fuzz_assert(h->len == 0
                                  || ngx_memcmp(h->data,
                                                pieces.response.headers[i].data,
                                                h->len) == 0);

        for (j = 0; j < h->len; j++) {
            c = h->data[j];
            ngx_http_mpns_fuzz_assert((c >= 0x20 && c != 0x7f) || c == '\t');
        }

        if (h->len) {
            c = h->data[0];
            ngx_http_mpns_fuzz_assert(c != ' ' && c != '\t');
            c = h->data[h->len - 1];
            ngx_http_mpns_fuzz_assert(c != ' ' && c != '\t');
        }
    }

    ngx_destroy_pool(pool);

    return 0;
}


/*
 * The read handler's loop, with the bytes as recv() would give them: all
 * that fits the buffer (seed 0) or pieces of 1 to 64 bytes
 */

static void
ngx_http_mpns_fuzz_read(ngx_pool_t *pool, ngx_http_mpns_service_t *service,
    u_char *p, size_t size, ngx_uint_t seed, ngx_http_mpns_fuzz_read_t *rd)
{
    size_t                n;
    u_char               *last;
    ngx_int_t             rc;
    ngx_buf_t            *b;
    ngx_http_mpns_job_t  *job;

    ngx_memzero(rd, sizeof(ngx_http_mpns_fuzz_read_t));

    job = ngx_http_mpns_job_create(NULL, &ngx_http_mpns_fuzz_response_log);
    ngx_http_mpns_fuzz_assert(job != NULL);

    job->service = service;
    job->buffer = ngx_create_temp_buf(job->pool, NGX_HTTP_MPNS_BUFFER_SIZE);
    ngx_http_mpns_fuzz_assert(job->buffer != NULL);

    b = job->buffer;
    last = p + size;

    for ( ;; ) {
        n = ngx_min((size_t) (last - p), (size_t) (b->end - b->last));

        if (seed) {
            seed = (seed * 1103515245 + 12345) & 0x7fffffff;
            n = ngx_min(n, (seed >> 16) % 64 + 1);
        }

        if (n == 0) {
            /* the buffer has room, or "too big header" was an error */
            rd->ended = NGX_HTTP_MPNS_FUZZ_CLOSED;
            rd->outcome = NGX_HTTP_MPNS_TRANSPORT_ERROR;
            break;
        }

        b->last = ngx_cpymem(b->last, p, n);
        p += n;

        rc = ngx_http_mpns_process(job);

        ngx_http_mpns_fuzz_assert(rc == NGX_OK || rc == NGX_AGAIN
                                  || rc == NGX_ERROR);
        ngx_http_mpns_fuzz_assert(b->start <= b->pos && b->pos <= b->last
                                  && b->last <= b->end);

        if (rc == NGX_AGAIN) {
            continue;
        }

        if (rc == NGX_ERROR) {
            rd->ended = NGX_HTTP_MPNS_FUZZ_ERROR;
            rd->outcome = NGX_HTTP_MPNS_TRANSPORT_ERROR;
            break;
        }

        rd->ended = NGX_HTTP_MPNS_FUZZ_ANSWER;
        rd->outcome = service->classify(&job->response);
        break;
    }

    rd->close = job->close;
    rd->response = job->response;

    /* the values are in the job's pool: kept for the comparison */

    for (n = 0; n < NGX_HTTP_MPNS_MAX_HEADERS; n++) {
        if (rd->response.headers[n].len) {
            rd->response.headers[n].data =
                ngx_pstrdup(pool, &rd->response.headers[n]);
            ngx_http_mpns_fuzz_assert(rd->response.headers[n].data != NULL);
        }
    }

    ngx_destroy_pool(job->pool);
}
