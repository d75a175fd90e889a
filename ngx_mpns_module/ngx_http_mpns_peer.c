
/*
 * Copyright (C) ngx_mpns_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_event_connect.h>
#include "ngx_http_mpns_peer.h"
#include "ngx_http_mpns_service.h"


/*
 * The peer layer: one HTTP/1.1 exchange with a push service's server
 * for one job - resolve, connect (or reuse an idle connection), a CONNECT
 * tunnel through mpns_proxy, TLS, the request, the response's framing -
 * with one pair of I/O handlers and a chain of processing steps.  What
 * the request says and what the answer means belong to job->service.
 */

#include <openssl/rand.h>


/* MPNS answers with about 350 bytes of headers and no body */
#define NGX_HTTP_MPNS_BUFFER_SIZE       2048
#define NGX_HTTP_MPNS_POOL_SIZE         4096
#define NGX_HTTP_MPNS_MAX_DISCARD       65536

#define NGX_HTTP_MPNS_ST_STATUS         0
#define NGX_HTTP_MPNS_ST_HEADER         1
#define NGX_HTTP_MPNS_ST_BODY           2


/*
 * An idle connection; a TLS one is only for the same profile and the
 * same server name: it is authenticated with the profile's certificate.
 */
typedef struct {
    ngx_queue_t                    queue;
    ngx_http_mpns_engine_t        *engine;
    ngx_connection_t              *connection;
    socklen_t                      socklen;
    ngx_sockaddr_t                 sockaddr;
    ngx_http_mpns_ssl_t           *ssl;
    size_t                         name_len;
    u_char                         name[NGX_HTTP_MPNS_NAME_LEN];
} ngx_http_mpns_cache_t;


typedef struct {
    ngx_queue_t                    queue;
    ngx_http_mpns_ssl_t           *ssl;
    ngx_ssl_session_t             *session;
    size_t                         name_len;
    u_char                         name[NGX_HTTP_MPNS_NAME_LEN];
} ngx_http_mpns_session_t;


static void ngx_http_mpns_resolve(ngx_http_mpns_job_t *job);
static void ngx_http_mpns_resolve_handler(ngx_resolver_ctx_t *ctx);
static void ngx_http_mpns_connect(ngx_http_mpns_job_t *job);
static void ngx_http_mpns_next(ngx_http_mpns_job_t *job);
static void ngx_http_mpns_deadline_handler(ngx_event_t *ev);
static void ngx_http_mpns_reconnect(ngx_http_mpns_job_t *job);
static ngx_int_t ngx_http_mpns_test_connect(ngx_connection_t *c);
static void ngx_http_mpns_engine_cleanup(void *data);
static ngx_int_t ngx_http_mpns_retry(ngx_http_mpns_job_t *job,
    ngx_uint_t outcome);
static void ngx_http_mpns_retry_handler(ngx_event_t *ev);
static ngx_int_t ngx_http_mpns_tunnel(ngx_http_mpns_job_t *job);
static ngx_int_t ngx_http_mpns_process_tunnel(ngx_http_mpns_job_t *job);
static void ngx_http_mpns_ssl_init(ngx_http_mpns_job_t *job);
static void ngx_http_mpns_ssl_handshake(ngx_connection_t *c);
static ngx_uint_t ngx_http_mpns_ssl_failure(ngx_http_mpns_job_t *job);
static ngx_int_t ngx_http_mpns_ssl_alert(ngx_http_mpns_job_t *job);
static ngx_uint_t ngx_http_mpns_ssl_failure_kind(ngx_uint_t alert);
static void ngx_http_mpns_ssl_save_session(ngx_connection_t *c);
static ngx_http_mpns_session_t *ngx_http_mpns_ssl_session(
    ngx_http_mpns_engine_t *engine, ngx_http_mpns_ssl_t *ssl,
    u_char *name, size_t len);
static ngx_int_t ngx_http_mpns_event_ended(ngx_http_mpns_job_t *job,
    ngx_event_t *ev);
static void ngx_http_mpns_write_handler(ngx_event_t *wev);
static void ngx_http_mpns_read_handler(ngx_event_t *rev);
static ngx_int_t ngx_http_mpns_process(ngx_http_mpns_job_t *job);
static ngx_int_t ngx_http_mpns_process_status_line(ngx_http_mpns_job_t *job,
    u_char *lf);
static ngx_int_t ngx_http_mpns_process_header(ngx_http_mpns_job_t *job);
static ngx_uint_t ngx_http_mpns_header_is(ngx_str_t *name, char *lowcase);
static ngx_int_t ngx_http_mpns_header_done(ngx_http_mpns_job_t *job);
static void ngx_http_mpns_abort(ngx_http_mpns_job_t *job);
static void ngx_http_mpns_finish(ngx_http_mpns_job_t *job, ngx_uint_t outcome,
    ngx_uint_t keepalive);
static void ngx_http_mpns_close(ngx_connection_t *c);
static ngx_int_t ngx_http_mpns_keepalive_get(ngx_http_mpns_job_t *job);
static void ngx_http_mpns_keepalive_put(ngx_http_mpns_job_t *job);
static void ngx_http_mpns_keepalive_close_handler(ngx_event_t *ev);
static void ngx_http_mpns_keepalive_dummy_handler(ngx_event_t *ev);
static u_char *ngx_http_mpns_log_error(ngx_log_t *log, u_char *buf,
    size_t len);


/* the bytes of a header name: visible, but ":" */
static u_char  ngx_http_mpns_name_byte[256] = {
    /* 0x00 - 0x1f */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /* 0x20 - 0x3f: " " and ":" are not */
    0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1,
    /* 0x40 - 0x7f: DEL is not */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0,
    /* 0x80 - 0xff */
};


/* the bytes of a header value: all but control bytes, HT allowed */
static u_char  ngx_http_mpns_value_byte[256] = {
    /* 0x00 - 0x1f: HT only */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /* 0x20 - 0x7f: DEL is not */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0,
    /* 0x80 - 0xff */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1
};


/*
 * The special-purpose ranges of RFC 6890 and the IANA registries that
 * followed it: not the public Internet a push service is on.  An IPv4
 * address mapped into IPv6 (::ffff:0:0/96) is matched as IPv4 by
 * ngx_cidr_match().
 */

static char  *ngx_http_mpns_special[] = {
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8",
    "169.254.0.0/16", "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24",
    "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24",
    "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
#if (NGX_HAVE_INET6)
    "::/128", "::1/128", "64:ff9b::/96", "64:ff9b:1::/48", "100::/64",
    "2001::/23", "2001:db8::/32", "2002::/16", "fc00::/7", "fe80::/10",
    "ff00::/8",
#endif
    NULL
};


ngx_http_mpns_engine_t *
ngx_http_mpns_engine_create(ngx_cycle_t *cycle, ngx_uint_t keepalive,
    ngx_msec_t keepalive_timeout)
{
    ngx_uint_t                i;
    ngx_pool_cleanup_t       *cln;
    ngx_http_mpns_cache_t    *cached;
    ngx_http_mpns_engine_t   *engine;
    ngx_http_mpns_session_t  *sessions;

    engine = ngx_pcalloc(cycle->pool, sizeof(ngx_http_mpns_engine_t));
    if (engine == NULL) {
        return NULL;
    }

    ngx_queue_init(&engine->cache);
    ngx_queue_init(&engine->free);
    ngx_queue_init(&engine->waiting);
    ngx_queue_init(&engine->sessions);
    ngx_queue_init(&engine->free_sessions);

    sessions = ngx_pcalloc(cycle->pool, sizeof(ngx_http_mpns_session_t)
                                        * NGX_HTTP_MPNS_SESSIONS);
    if (sessions == NULL) {
        return NULL;
    }

    for (i = 0; i < NGX_HTTP_MPNS_SESSIONS; i++) {
        ngx_queue_insert_tail(&engine->free_sessions, &sessions[i].queue);
    }

    cln = ngx_pool_cleanup_add(cycle->pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    cln->handler = ngx_http_mpns_engine_cleanup;
    cln->data = engine;

    engine->keepalive_timeout = keepalive_timeout;
    engine->random = engine->randoms + NGX_HTTP_MPNS_RANDOM_SIZE;

    if (keepalive == 0) {
        return engine;
    }

    cached = ngx_pcalloc(cycle->pool,
                         sizeof(ngx_http_mpns_cache_t) * keepalive);
    if (cached == NULL) {
        return NULL;
    }

    for (i = 0; i < keepalive; i++) {
        cached[i].engine = engine;
        ngx_queue_insert_head(&engine->free, &cached[i].queue);
    }

    return engine;
}


static void
ngx_http_mpns_engine_cleanup(void *data)
{
    ngx_http_mpns_engine_t *engine = data;

    ngx_queue_t              *q;
    ngx_http_mpns_session_t  *s;

    for (q = ngx_queue_head(&engine->sessions);
         q != ngx_queue_sentinel(&engine->sessions);
         q = ngx_queue_next(q))
    {
        s = ngx_queue_data(q, ngx_http_mpns_session_t, queue);

        if (s->session) {
            ngx_ssl_free_session(s->session);
            s->session = NULL;
        }
    }
}


/*
 * 16 random bytes for a message id.  OpenSSL checks for a fork on every
 * RAND_bytes() call (a getpid() system call), so they are drawn in batches.
 */

u_char *
ngx_http_mpns_engine_random(ngx_http_mpns_engine_t *engine)
{
    u_char      *p;
    ngx_uint_t   i;

    if (engine->random == engine->randoms + NGX_HTTP_MPNS_RANDOM_SIZE) {

        if (RAND_bytes(engine->randoms, NGX_HTTP_MPNS_RANDOM_SIZE) != 1) {
            ngx_ssl_error(NGX_LOG_ALERT, ngx_cycle->log, 0,
                          "RAND_bytes() failed");

            for (i = 0; i < NGX_HTTP_MPNS_RANDOM_SIZE; i++) {
                engine->randoms[i] = (u_char) ngx_random();
            }
        }

        engine->random = engine->randoms;
    }

    p = engine->random;
    engine->random += 16;

    return p;
}


ngx_http_mpns_job_t *
ngx_http_mpns_job_create(ngx_http_mpns_engine_t *engine, ngx_log_t *log)
{
    ngx_pool_t           *pool;
    ngx_http_mpns_job_t  *job;

    /* one allocation holds the job, its buffer and the parsed headers */

    pool = ngx_create_pool(NGX_HTTP_MPNS_POOL_SIZE, log);
    if (pool == NULL) {
        return NULL;
    }

    job = ngx_pcalloc(pool, sizeof(ngx_http_mpns_job_t));
    if (job == NULL) {
        ngx_destroy_pool(pool);
        return NULL;
    }

    job->engine = engine;
    job->pool = pool;

    /*
     * the job logs through its own log object: the caller's context
     * (client, request) followed by the mpns server it talks to
     */

    job->log = *log;
    job->log.handler = ngx_http_mpns_log_error;
    job->log.data = job;
    job->log.action = NULL;
    job->parent_log = log;

    pool->log = &job->log;

    job->content_length = -1;
    job->who = "server";

    return job;
}


void
ngx_http_mpns_job_start(ngx_http_mpns_job_t *job)
{
    ngx_int_t  rc;

    job->start = ngx_current_msec;
    job->attempts = 1;

    ngx_http_mpns_status_start(job->status);

    job->buffer = ngx_create_temp_buf(job->pool, NGX_HTTP_MPNS_BUFFER_SIZE);
    if (job->buffer == NULL) {
        ngx_http_mpns_finish(job, NGX_HTTP_MPNS_TRANSPORT_ERROR, 0);
        return;
    }

    if (job->service->authorize) {
        rc = job->service->authorize(job);

        if (rc == NGX_AGAIN) {
            /* the service calls ngx_http_mpns_job_resume() */
            return;
        }

        if (rc != NGX_OK) {
            ngx_http_mpns_finish(job, NGX_HTTP_MPNS_TRANSPORT_ERROR, 0);
            return;
        }
    }

    ngx_http_mpns_job_resume(job);
}


void
ngx_http_mpns_job_resume(ngx_http_mpns_job_t *job)
{
    if (job->addrs) {
        ngx_http_mpns_connect(job);
        return;
    }

    ngx_http_mpns_resolve(job);
}


void
ngx_http_mpns_job_cancel(ngx_http_mpns_job_t *job)
{
    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, &job->log, 0,
                   "mpns job cancel %V", &job->name);

    ngx_http_mpns_status_cancel(job->status, job->attempts);

    if (job->resolving) {
        ngx_resolve_name_done(job->resolving);
        job->resolving = NULL;
    }

    if (job->peer.connection) {
        ngx_http_mpns_close(job->peer.connection);
        job->peer.connection = NULL;
    }

    if (job->retry.timer_set) {
        ngx_del_timer(&job->retry);
    }

    if (job->deadline.timer_set) {
        ngx_del_timer(&job->deadline);
    }

    ngx_destroy_pool(job->pool);
}


ngx_array_t *
ngx_http_mpns_special_addresses(ngx_conf_t *cf)
{
    char         **p;
    ngx_str_t      text;
    ngx_cidr_t    *cidr;
    ngx_array_t   *special;

    special = ngx_array_create(cf->pool, 32, sizeof(ngx_cidr_t));
    if (special == NULL) {
        return NULL;
    }

    for (p = ngx_http_mpns_special; *p; p++) {
        cidr = ngx_array_push(special);
        if (cidr == NULL) {
            return NULL;
        }

        text.data = (u_char *) *p;
        text.len = ngx_strlen(*p);

        if (ngx_ptocidr(&text, cidr) != NGX_OK) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid special address \"%V\"", &text);
            return NULL;
        }
    }

    return special;
}


/* NGX_OK if mpns_allowed_addresses lets a job connect to the address */

ngx_int_t
ngx_http_mpns_address_allowed(ngx_http_mpns_addresses_t *addresses,
    struct sockaddr *sockaddr)
{
    if (addresses->cidrs
        && ngx_cidr_match(sockaddr, addresses->cidrs) == NGX_OK)
    {
        return NGX_OK;
    }

    if (addresses->public
        && ngx_cidr_match(sockaddr, addresses->special) != NGX_OK)
    {
        return NGX_OK;
    }

    return NGX_DECLINED;
}


static void
ngx_http_mpns_resolve(ngx_http_mpns_job_t *job)
{
    ngx_resolver_ctx_t  *ctx;

    ctx = ngx_resolve_start(job->resolver, NULL);
    if (ctx == NULL) {
        ngx_http_mpns_finish(job, NGX_HTTP_MPNS_TRANSPORT_ERROR, 0);
        return;
    }

    if (ctx == NGX_NO_RESOLVER) {
        ngx_log_error(NGX_LOG_ERR, &job->log, 0,
                      "no resolver defined to resolve %V", &job->host);
        ngx_http_mpns_finish(job, NGX_HTTP_MPNS_TRANSPORT_ERROR, 0);
        return;
    }

    ctx->name = job->host;
    ctx->handler = ngx_http_mpns_resolve_handler;
    ctx->data = job;
    ctx->timeout = job->resolver_timeout;

    job->resolving = ctx;

    /* the handler may run and finish the job before this returns */

    if (ngx_resolve_name(ctx) != NGX_OK) {
        job->resolving = NULL;
        ngx_http_mpns_finish(job, NGX_HTTP_MPNS_TRANSPORT_ERROR, 0);
    }
}


static void
ngx_http_mpns_resolve_handler(ngx_resolver_ctx_t *ctx)
{
    ngx_http_mpns_job_t *job = ctx->data;

    u_char           *p;
    size_t            len;
    socklen_t         socklen;
    ngx_uint_t        i, n, refused;
    struct sockaddr  *sockaddr;
    u_char            text[NGX_SOCKADDR_STRLEN];

    if (ctx->state) {
        ngx_log_error(NGX_LOG_ERR, &job->log, 0,
                      "%V could not be resolved (%i: %s)",
                      &ctx->name, ctx->state,
                      ngx_resolver_strerror(ctx->state));
        goto failed;
    }

    job->addrs = ngx_pcalloc(job->pool, ctx->naddrs * sizeof(ngx_addr_t));
    if (job->addrs == NULL) {
        goto failed;
    }

    n = 0;
    refused = 0;
    len = 0;

    for (i = 0; i < ctx->naddrs; i++) {

        /* an address mpns_allowed_addresses refuses is never connected to */

        if (job->addresses
            && ngx_http_mpns_address_allowed(job->addresses,
                                             ctx->addrs[i].sockaddr)
               != NGX_OK)
        {
            if (refused++ == 0) {
                len = ngx_sock_ntop(ctx->addrs[i].sockaddr,
                                    ctx->addrs[i].socklen, text,
                                    NGX_SOCKADDR_STRLEN, 0);
            }

            continue;
        }

        socklen = ctx->addrs[i].socklen;

        sockaddr = ngx_palloc(job->pool, socklen);
        if (sockaddr == NULL) {
            goto failed;
        }

        ngx_memcpy(sockaddr, ctx->addrs[i].sockaddr, socklen);
        ngx_inet_set_port(sockaddr, job->port);

        p = ngx_pnalloc(job->pool, NGX_SOCKADDR_STRLEN);
        if (p == NULL) {
            goto failed;
        }

        job->addrs[n].sockaddr = sockaddr;
        job->addrs[n].socklen = socklen;
        job->addrs[n].name.len = ngx_sock_ntop(sockaddr, socklen, p,
                                               NGX_SOCKADDR_STRLEN, 1);
        job->addrs[n].name.data = p;
        n++;
    }

    job->naddrs = n;

    if (refused) {
        ngx_log_error(NGX_LOG_INFO, &job->log, 0,
                      "mpns server address %*s of \"%V\" is not allowed "
                      "(%ui of %ui addresses)",
                      len, text, &ctx->name, refused, ctx->naddrs);
    }

    ngx_resolve_name_done(ctx);
    job->resolving = NULL;

    if (n == 0) {
        ngx_http_mpns_finish(job, NGX_HTTP_MPNS_REFUSED, 0);
        return;
    }

    ngx_http_mpns_connect(job);
    return;

failed:

    ngx_resolve_name_done(ctx);
    job->resolving = NULL;

    ngx_http_mpns_finish(job, NGX_HTTP_MPNS_TRANSPORT_ERROR, 0);
}


static void
ngx_http_mpns_connect(ngx_http_mpns_job_t *job)
{
    ngx_int_t          rc;
    ngx_addr_t        *addr;
    ngx_connection_t  *c;

    addr = &job->addrs[job->naddr];

    job->peer.sockaddr = addr->sockaddr;
    job->peer.socklen = addr->socklen;
    job->peer.name = &addr->name;
    job->peer.get = ngx_event_get_peer;
    job->peer.log = &job->log;
    job->peer.log_error = NGX_ERROR_ERR;

    job->connected = 0;

    /* one exchange, whatever address or connection it ends up on */

    if (job->response_timeout && !job->deadline.timer_set) {
        job->deadline.handler = ngx_http_mpns_deadline_handler;
        job->deadline.data = job;
        job->deadline.log = &job->log;

        ngx_add_timer(&job->deadline, job->response_timeout);
    }

    if (!job->fresh && ngx_http_mpns_keepalive_get(job) == NGX_OK) {
        ngx_http_mpns_status_connection(job->status, 1);
        job->connected = 1;
        ngx_http_mpns_write_handler(job->peer.connection->write);
        return;
    }

    job->log.action = "connecting to mpns server";

    rc = ngx_event_connect_peer(&job->peer);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, &job->log, 0,
                   "mpns connect to %V: %i", &addr->name, rc);

    if (rc == NGX_ERROR) {
        ngx_http_mpns_finish(job, NGX_HTTP_MPNS_TRANSPORT_ERROR, 0);
        return;
    }

    if (rc == NGX_BUSY || rc == NGX_DECLINED) {
        ngx_http_mpns_next(job);
        return;
    }

    c = job->peer.connection;

    ngx_http_mpns_status_connection(job->status, 0);

    c->data = job;
    c->read->handler = ngx_http_mpns_read_handler;
    c->write->handler = ngx_http_mpns_write_handler;

    /* a TLS handshake's last flight and the request are separate writes */

    if (ngx_tcp_nodelay(c) != NGX_OK) {
        ngx_http_mpns_next(job);
        return;
    }

    if (rc == NGX_AGAIN) {
        ngx_add_timer(c->write, job->connect_timeout);
        return;
    }

    ngx_http_mpns_write_handler(c->write);
}


static void
ngx_http_mpns_next(ngx_http_mpns_job_t *job)
{
    if (job->peer.connection) {
        ngx_http_mpns_close(job->peer.connection);
        job->peer.connection = NULL;
    }

    if (++job->naddr < job->naddrs) {
        ngx_http_mpns_connect(job);
        return;
    }

    ngx_http_mpns_finish(job, NGX_HTTP_MPNS_TRANSPORT_ERROR, 0);
}


/*
 * mpns_response_timeout.  A server that was never reached ends like one
 * that refused the connection: a caller cannot tell a filtered port from
 * a closed one.
 */

static void
ngx_http_mpns_deadline_handler(ngx_event_t *ev)
{
    ngx_http_mpns_job_t *job = ev->data;

    ngx_log_error(NGX_LOG_ERR, &job->log, NGX_ETIMEDOUT,
                  "mpns %s response timed out", job->who);

    ngx_http_mpns_finish(job, job->connected ? NGX_HTTP_MPNS_TIMEOUT
                                             : NGX_HTTP_MPNS_TRANSPORT_ERROR,
                         0);
}


/*
 * An idle connection may have been closed by the server just as we
 * reused it; that is not the server's answer, so the request goes once
 * more on a new connection.
 */

static void
ngx_http_mpns_reconnect(ngx_http_mpns_job_t *job)
{
    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, &job->log, 0,
                   "mpns cached connection closed, reconnecting");

    ngx_http_mpns_close(job->peer.connection);
    job->peer.connection = NULL;

    job->reused = 0;
    job->fresh = 1;
    job->sent = NULL;
    job->tls_alert = 0;
    job->tunnel = 0;
    job->who = "server";
    job->buffer->pos = job->buffer->start;
    job->buffer->last = job->buffer->start;

    ngx_http_mpns_connect(job);
}


static ngx_int_t
ngx_http_mpns_test_connect(ngx_connection_t *c)
{
    int        err;
    socklen_t  len;

    err = 0;
    len = sizeof(int);

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, (void *) &err, &len) == -1) {
        err = ngx_socket_errno;
    }

    if (err) {
        (void) ngx_connection_error(c, err, "connect() failed");
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * https through mpns_proxy: a CONNECT request is the first step on the
 * connection, its answer is processed like any other, then TLS inside.
 */

static ngx_int_t
ngx_http_mpns_tunnel(ngx_http_mpns_job_t *job)
{
    u_char  *p, *colon;
    size_t   len;

    /* the authority as in the channel, with the port made explicit */

    colon = NULL;

    for (p = job->name.data; p < job->name.data + job->name.len; p++) {
        if (*p == ':') {
            colon = p;

        } else if (*p == ']') {
            colon = NULL;
        }
    }

    len = sizeof("CONNECT  HTTP/1.1" CRLF "Host: " CRLF CRLF) - 1
          + 2 * (job->name.len + sizeof(":65535") - 1);

    p = ngx_pnalloc(job->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    job->out.data = p;

    p = ngx_cpymem(p, "CONNECT ", sizeof("CONNECT ") - 1);
    p = ngx_cpymem(p, job->name.data, job->name.len);

    if (colon == NULL) {
        p = ngx_sprintf(p, ":%d", (int) job->port);
    }

    p = ngx_cpymem(p, " HTTP/1.1" CRLF "Host: ",
                   sizeof(" HTTP/1.1" CRLF "Host: ") - 1);
    p = ngx_cpymem(p, job->name.data, job->name.len);

    if (colon == NULL) {
        p = ngx_sprintf(p, ":%d", (int) job->port);
    }

    p = ngx_cpymem(p, CRLF CRLF, sizeof(CRLF CRLF) - 1);

    job->out.len = p - job->out.data;
    job->process = ngx_http_mpns_process_tunnel;
    job->who = "proxy";

    job->log.action = "opening a tunnel through mpns proxy";

    return NGX_OK;
}


/* a TLS server speaks only after our hello: nothing follows the answer */

static ngx_int_t
ngx_http_mpns_process_tunnel(ngx_http_mpns_job_t *job)
{
    u_char      *p;
    ngx_buf_t   *b;
    ngx_uint_t   status;

    b = job->buffer;

    p = ngx_strlcasestrn(b->start, b->last, (u_char *) CRLF CRLF, 3);

    if (p == NULL) {
        if (b->last == b->end) {
            ngx_log_error(NGX_LOG_ERR, &job->log, 0,
                          "mpns proxy sent too big an answer to CONNECT");
            return NGX_ERROR;
        }

        return NGX_AGAIN;
    }

    status = 0;

    if (b->last - b->start > 12
        && ngx_strncmp(b->start, "HTTP/1.", 7) == 0
        && b->start[8] == ' '
        && b->start[9] >= '1' && b->start[9] <= '5'
        && b->start[10] >= '0' && b->start[10] <= '9'
        && b->start[11] >= '0' && b->start[11] <= '9')
    {
        status = (b->start[9] - '0') * 100 + (b->start[10] - '0') * 10
                 + b->start[11] - '0';
    }

    if (status < 200 || status > 299) {
        ngx_log_error(NGX_LOG_ERR, &job->log, 0,
                      "mpns proxy refused CONNECT to \"%V\" with %ui",
                      &job->name, status);
        return NGX_ERROR;
    }

    if (p + 4 != b->last) {
        ngx_log_error(NGX_LOG_ERR, &job->log, 0,
                      "mpns proxy sent data after its answer to CONNECT");
        return NGX_ERROR;
    }

    b->pos = b->start;
    b->last = b->start;

    job->tunnel = 1;
    job->connected = 1;
    job->sent = NULL;
    job->who = "server";

    if (job->peer.connection->read->timer_set) {
        ngx_del_timer(job->peer.connection->read);
    }

    ngx_http_mpns_ssl_init(job);

    return NGX_DONE;
}


static void
ngx_http_mpns_ssl_init(ngx_http_mpns_job_t *job)
{
    ngx_int_t                 rc;
    ngx_connection_t         *c;
    ngx_http_mpns_session_t  *s;

    c = job->peer.connection;

    /* the TLS state belongs to the connection, which may outlive the job */

    if (c->pool == NULL) {
        c->pool = ngx_create_pool(128, &job->log);
        if (c->pool == NULL) {
            ngx_http_mpns_finish(job, NGX_HTTP_MPNS_TRANSPORT_ERROR, 0);
            return;
        }
    }

    if (ngx_ssl_create_connection(&job->ssl->ssl, c,
                                  NGX_SSL_BUFFER|NGX_SSL_CLIENT)
        != NGX_OK)
    {
        ngx_http_mpns_finish(job, NGX_HTTP_MPNS_TLS_HANDSHAKE_FAILED, 0);
        return;
    }

    /* RFC 6066: no server name for an address */

    if (job->ssl->server_name && !job->ip_literal
        && SSL_set_tlsext_host_name(c->ssl->connection,
                                    (char *) job->ssl_name.data)
           != 1)
    {
        ngx_ssl_error(NGX_LOG_ERR, &job->log, 0,
                      "SSL_set_tlsext_host_name(\"%s\") failed",
                      job->ssl_name.data);
        ngx_http_mpns_finish(job, NGX_HTTP_MPNS_TLS_HANDSHAKE_FAILED, 0);
        return;
    }

    s = ngx_http_mpns_ssl_session(job->engine, job->ssl, job->name.data,
                                  job->name.len);

    if (s && ngx_ssl_set_session(c, s->session) != NGX_OK) {
        ngx_http_mpns_finish(job, NGX_HTTP_MPNS_TLS_HANDSHAKE_FAILED, 0);
        return;
    }

    c->ssl->save_session = ngx_http_mpns_ssl_save_session;

    job->log.action = "SSL handshaking to mpns server";

    rc = ngx_ssl_handshake(c);

    if (rc == NGX_AGAIN) {
        if (!c->write->timer_set) {
            ngx_add_timer(c->write, job->connect_timeout);
        }

        c->ssl->handler = ngx_http_mpns_ssl_handshake;
        return;
    }

    ngx_http_mpns_ssl_handshake(c);
}


static void
ngx_http_mpns_ssl_handshake(ngx_connection_t *c)
{
    long                  rc;
    X509                 *cert;
    ngx_uint_t            match;
    ngx_http_mpns_job_t  *job;

    job = c->data;

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    if (!c->ssl->handshaked) {

        if (c->read->timedout || c->write->timedout) {
            ngx_log_error(NGX_LOG_ERR, &job->log, NGX_ETIMEDOUT,
                          "mpns server timed out");
            ngx_http_mpns_finish(job, NGX_HTTP_MPNS_TIMEOUT, 0);
            return;
        }

        /* ngx_ssl_handshake() has logged why */

        ngx_http_mpns_finish(job, ngx_http_mpns_ssl_failure(job), 0);
        return;
    }

    if (job->ssl->verify) {
        rc = SSL_get_verify_result(c->ssl->connection);

        if (rc != X509_V_OK) {
            ngx_log_error(NGX_LOG_ERR, &job->log, 0,
                          "mpns server SSL certificate verify error: "
                          "(%l:%s)", rc, X509_verify_cert_error_string(rc));
            ngx_http_mpns_finish(job, NGX_HTTP_MPNS_TLS_VERIFY_FAILED, 0);
            return;
        }

        if (job->ip_literal) {
            cert = SSL_get_peer_certificate(c->ssl->connection);

            match = (cert && X509_check_ip_asc(cert,
                                               (char *) job->ssl_name.data,
                                               0)
                             == 1);
            if (cert) {
                X509_free(cert);
            }

        } else {
            match = (ngx_ssl_check_host(c, &job->ssl_name) == NGX_OK);
        }

        if (!match) {
            ngx_log_error(NGX_LOG_ERR, &job->log, 0,
                          "mpns server SSL certificate does not match \"%V\"",
                          &job->ssl_name);
            ngx_http_mpns_finish(job, NGX_HTTP_MPNS_TLS_VERIFY_FAILED, 0);
            return;
        }
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, &job->log, 0,
                   "mpns ssl handshake done, session reused: %d",
                   SSL_session_reused(c->ssl->connection));

    ngx_http_mpns_status_handshake(job->status,
                                   SSL_session_reused(c->ssl->connection));

    c->read->handler = ngx_http_mpns_read_handler;
    c->write->handler = ngx_http_mpns_write_handler;

    ngx_http_mpns_write_handler(c->write);
}


/*
 * A server that refuses our certificate after the handshake (TLS 1.3)
 * may close before the request is written: its alert is still to be read.
 * NGX_DECLINED if one arrived.
 */

static ngx_int_t
ngx_http_mpns_ssl_alert(ngx_http_mpns_job_t *job)
{
    int                n;
    u_char             buf[512];
    ngx_connection_t  *c;

    c = job->peer.connection;

    if (job->tls_alert == 0) {
        do {
            n = SSL_read(c->ssl->connection, buf, sizeof(buf));
        } while (n > 0);

        ERR_clear_error();
    }

    return job->tls_alert ? NGX_DECLINED : NGX_OK;
}


/* a refused client certificate, or any other failure */

static ngx_uint_t
ngx_http_mpns_ssl_failure(ngx_http_mpns_job_t *job)
{
    if (ngx_http_mpns_ssl_failure_kind(job->tls_alert)
        == NGX_HTTP_MPNS_CERTIFICATE_REJECTED)
    {
        ngx_log_error(NGX_LOG_ERR, &job->log, 0,
                      "mpns server refused the client certificate%s%V "
                      "(SSL alert number %ui)",
                      job->ssl->certificate.len ? " " : "",
                      &job->ssl->certificate, job->tls_alert);
        return NGX_HTTP_MPNS_CERTIFICATE_REJECTED;
    }

    return NGX_HTTP_MPNS_TLS_HANDSHAKE_FAILED;
}


static ngx_uint_t
ngx_http_mpns_ssl_failure_kind(ngx_uint_t alert)
{
    switch (alert) {

    case SSL_AD_BAD_CERTIFICATE:
    case SSL_AD_UNSUPPORTED_CERTIFICATE:
    case SSL_AD_CERTIFICATE_REVOKED:
    case SSL_AD_CERTIFICATE_EXPIRED:
    case SSL_AD_CERTIFICATE_UNKNOWN:
    case SSL_AD_UNKNOWN_CA:
    case SSL_AD_ACCESS_DENIED:
#ifdef SSL_AD_CERTIFICATE_REQUIRED
    case SSL_AD_CERTIFICATE_REQUIRED:
#endif
        return NGX_HTTP_MPNS_CERTIFICATE_REJECTED;

    default:
        return NGX_HTTP_MPNS_TLS_HANDSHAKE_FAILED;
    }
}


/* an alert from the server: kept to tell why the connection failed */

void
ngx_http_mpns_ssl_info_callback(const ngx_ssl_conn_t *ssl_conn, int where,
    int ret)
{
    ngx_connection_t     *c;
    ngx_http_mpns_job_t  *job;

    if (!(where & SSL_CB_READ_ALERT)) {
        return;
    }

    c = ngx_ssl_get_connection((ngx_ssl_conn_t *) ssl_conn);

    if (c == NULL || c->idle) {
        return;
    }

    job = c->data;
    job->tls_alert = ret & 0xff;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "mpns ssl alert received: %d", ret & 0xff);

    /*
     * A TLS 1.3 server refuses a client certificate with an alert that
     * nginx logs at "crit" when the next read fails; the failure is
     * expected and gets our own line (ngx_http_mpns_ssl_failure()).
     */

    if (ngx_http_mpns_ssl_failure_kind(job->tls_alert)
        == NGX_HTTP_MPNS_CERTIFICATE_REJECTED)
    {
        job->quiet_log = job->log;
        job->quiet_log.log_level = NGX_LOG_EMERG;

        c->log = &job->quiet_log;
        c->read->log = c->log;
        c->write->log = c->log;
    }
}


/* called by OpenSSL when the server hands out a session (or a ticket) */

static void
ngx_http_mpns_ssl_save_session(ngx_connection_t *c)
{
    u_char                   *name;
    size_t                    len;
    ngx_queue_t              *q;
    ngx_ssl_session_t        *session;
    ngx_http_mpns_ssl_t      *ssl;
    ngx_http_mpns_job_t      *job;
    ngx_http_mpns_cache_t    *item;
    ngx_http_mpns_engine_t   *engine;
    ngx_http_mpns_session_t  *s;

    if (c->idle) {
        item = c->data;
        engine = item->engine;
        ssl = item->ssl;
        name = item->name;
        len = item->name_len;

    } else {
        job = c->data;
        engine = job->engine;
        ssl = job->ssl;
        name = job->name.data;
        len = job->name.len;
    }

    if (len > NGX_HTTP_MPNS_NAME_LEN) {
        return;
    }

    session = ngx_ssl_get_session(c);
    if (session == NULL) {
        return;
    }

    s = ngx_http_mpns_ssl_session(engine, ssl, name, len);

    if (s == NULL) {

        if (ngx_queue_empty(&engine->free_sessions)) {
            q = ngx_queue_last(&engine->sessions);

        } else {
            q = ngx_queue_head(&engine->free_sessions);
        }

        ngx_queue_remove(q);
        ngx_queue_insert_head(&engine->sessions, q);

        s = ngx_queue_data(q, ngx_http_mpns_session_t, queue);

        s->ssl = ssl;
        s->name_len = len;
        ngx_memcpy(s->name, name, len);
    }

    if (s->session) {
        ngx_ssl_free_session(s->session);
    }

    s->session = session;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "mpns ssl session saved for \"%*s\"", len, name);
}


static ngx_http_mpns_session_t *
ngx_http_mpns_ssl_session(ngx_http_mpns_engine_t *engine,
    ngx_http_mpns_ssl_t *ssl, u_char *name, size_t len)
{
    ngx_queue_t              *q;
    ngx_http_mpns_session_t  *s;

    for (q = ngx_queue_head(&engine->sessions);
         q != ngx_queue_sentinel(&engine->sessions);
         q = ngx_queue_next(q))
    {
        s = ngx_queue_data(q, ngx_http_mpns_session_t, queue);

        if (s->ssl == ssl && ngx_memn2cmp(s->name, name, s->name_len, len)
                             == 0)
        {
            ngx_queue_remove(q);
            ngx_queue_insert_head(&engine->sessions, q);
            return s;
        }
    }

    return NULL;
}


/*
 * What both I/O handlers check first: a worker that is shutting down, a
 * timer that expired (a connection never made ends like a refused one,
 * see the deadline handler).  NGX_DONE when the job was taken care of.
 */

static ngx_int_t
ngx_http_mpns_event_ended(ngx_http_mpns_job_t *job, ngx_event_t *ev)
{
    ngx_connection_t  *c;

    c = ev->data;

    if (c->close) {
        ngx_http_mpns_abort(job);
        return NGX_DONE;
    }

    if (!ev->timedout) {
        return NGX_OK;
    }

    ngx_log_error(NGX_LOG_ERR, ev->log, NGX_ETIMEDOUT,
                  "mpns %s timed out", job->who);

    if (!job->connected) {
        ngx_http_mpns_next(job);
        return NGX_DONE;
    }

    ngx_http_mpns_finish(job, NGX_HTTP_MPNS_TIMEOUT, 0);

    return NGX_DONE;
}


static void
ngx_http_mpns_write_handler(ngx_event_t *wev)
{
    ssize_t               n;
    ngx_connection_t     *c;
    ngx_http_mpns_job_t  *job;

    c = wev->data;
    job = c->data;

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, wev->log, 0, "mpns write handler");

    if (ngx_http_mpns_event_ended(job, wev) == NGX_DONE) {
        return;
    }

    if (job->sent == NULL) {

        /* the connection is ready for the next step */

        if (!job->reused && c->ssl == NULL && !job->tunnel
            && ngx_http_mpns_test_connect(c) != NGX_OK)
        {
            ngx_http_mpns_next(job);
            return;
        }

        if (job->ssl && c->ssl == NULL) {

            if (!job->proxy || job->tunnel) {
                job->connected = 1;
                ngx_http_mpns_ssl_init(job);
                return;
            }

            if (ngx_http_mpns_tunnel(job) != NGX_OK) {
                ngx_http_mpns_finish(job, NGX_HTTP_MPNS_TRANSPORT_ERROR, 0);
                return;
            }

        } else {
            job->connected = 1;
            job->out = job->request;
            job->process = ngx_http_mpns_process;
            job->log.action = "sending request to mpns server";
        }

        job->sent = job->out.data;
    }

    while (job->sent < job->out.data + job->out.len) {

        n = c->send(c, job->sent, job->out.data + job->out.len - job->sent);

        if (n == NGX_ERROR) {

            if (job->reused) {
                ngx_http_mpns_reconnect(job);
                return;
            }

            if (c->ssl && ngx_http_mpns_ssl_alert(job) != NGX_OK) {
                ngx_http_mpns_finish(job, ngx_http_mpns_ssl_failure(job), 0);
                return;
            }

            ngx_http_mpns_finish(job, NGX_HTTP_MPNS_TRANSPORT_ERROR, 0);
            return;
        }

        if (n == NGX_AGAIN) {
            ngx_add_timer(wev, job->send_timeout);

            if (ngx_handle_write_event(wev, 0) != NGX_OK) {
                ngx_http_mpns_finish(job, NGX_HTTP_MPNS_TRANSPORT_ERROR, 0);
            }

            return;
        }

        job->sent += n;
    }

    if (wev->timer_set) {
        ngx_del_timer(wev);
    }

    wev->handler = ngx_http_mpns_keepalive_dummy_handler;

    if (job->process == ngx_http_mpns_process) {
        job->log.action = "reading response from mpns server";
    }

    ngx_add_timer(c->read, job->read_timeout);

    if (c->read->ready) {
        ngx_http_mpns_read_handler(c->read);
        return;
    }

    if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
        ngx_http_mpns_finish(job, NGX_HTTP_MPNS_TRANSPORT_ERROR, 0);
    }
}


/* one read handler for every step: job->process takes what arrived */

static void
ngx_http_mpns_read_handler(ngx_event_t *rev)
{
    ssize_t               n;
    ngx_int_t             rc;
    ngx_buf_t            *b;
    ngx_connection_t     *c;
    ngx_http_mpns_job_t  *job;

    c = rev->data;
    job = c->data;
    b = job->buffer;

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, rev->log, 0, "mpns read handler");

    if (ngx_http_mpns_event_ended(job, rev) == NGX_DONE) {
        return;
    }

    if (job->sent == NULL || job->sent != job->out.data + job->out.len) {
        /* the step's request is not sent yet: the write handler reads */
        return;
    }

    for ( ;; ) {

        n = c->recv(c, b->last, b->end - b->last);

        if (n == NGX_AGAIN) {
            ngx_add_timer(rev, job->read_timeout);

            if (ngx_handle_read_event(rev, 0) != NGX_OK) {
                ngx_http_mpns_finish(job, NGX_HTTP_MPNS_TRANSPORT_ERROR, 0);
            }

            return;
        }

        if (n == NGX_ERROR || n == 0) {

            if (job->reused && b->last == b->start
                && job->state == NGX_HTTP_MPNS_ST_STATUS)
            {
                ngx_http_mpns_reconnect(job);
                return;
            }

            if (c->ssl && job->tls_alert) {
                /* TLS 1.3 servers refuse a client certificate late */
                ngx_http_mpns_finish(job, ngx_http_mpns_ssl_failure(job), 0);
                return;
            }

            ngx_log_error(NGX_LOG_ERR, rev->log, 0,
                          "mpns %s prematurely closed connection", job->who);
            ngx_http_mpns_finish(job, NGX_HTTP_MPNS_TRANSPORT_ERROR, 0);
            return;
        }

        b->last += n;

        rc = job->process(job);

        if (rc == NGX_AGAIN) {
            continue;
        }

        if (rc == NGX_DONE) {
            /* the next step has the connection (and maybe ended the job) */
            return;
        }

        if (rc == NGX_ERROR) {
            ngx_http_mpns_finish(job, NGX_HTTP_MPNS_TRANSPORT_ERROR, 0);
            return;
        }

        ngx_http_mpns_finish(job, job->service->classify(&job->response),
                             !job->close);
        return;
    }
}


static ngx_int_t
ngx_http_mpns_process(ngx_http_mpns_job_t *job)
{
    size_t      n;
    u_char     *lf;
    ngx_int_t   rc;
    ngx_buf_t  *b;

    b = job->buffer;

    for ( ;; ) {

        if (job->state == NGX_HTTP_MPNS_ST_BODY) {

            /* the body is read and thrown away, MPNS sends none */

            n = b->last - b->pos;

            if ((off_t) n > job->content_length) {
                ngx_log_error(NGX_LOG_WARN, &job->log, 0,
                              "mpns server sent more data than specified "
                              "in \"Content-Length\" header");
                job->close = 1;
                return NGX_OK;
            }

            job->content_length -= n;
            b->pos = b->start;
            b->last = b->start;

            return job->content_length ? NGX_AGAIN : NGX_OK;
        }

        if (job->state == NGX_HTTP_MPNS_ST_STATUS) {
            lf = ngx_strlchr(b->pos, b->last, LF);

            rc = (lf == NULL) ? NGX_AGAIN
                              : ngx_http_mpns_process_status_line(job, lf);

        } else {
            rc = ngx_http_mpns_process_header(job);
        }

        if (rc == NGX_AGAIN && b->last == b->end) {
            ngx_log_error(NGX_LOG_ERR, &job->log, 0,
                          "mpns server sent too big header");
            return NGX_ERROR;
        }

        if (rc == NGX_DONE) {
            /* the empty line after the headers */

            rc = ngx_http_mpns_header_done(job);

            if (rc == NGX_DONE
                || (rc == NGX_OK && job->state == NGX_HTTP_MPNS_ST_BODY))
            {
                continue;
            }

            return rc;
        }

        if (rc != NGX_OK) {
            return rc;
        }
    }
}


static ngx_int_t
ngx_http_mpns_process_status_line(ngx_http_mpns_job_t *job, u_char *lf)
{
    u_char      *p, *last;
    ngx_uint_t   status;

    p = job->buffer->pos;
    last = (lf > p && *(lf - 1) == CR) ? lf - 1 : lf;

    /* "HTTP/1.x NNN[ reason]" */

    if (last - p < 12
        || ngx_strncmp(p, "HTTP/1.", 7) != 0
        || p[7] < '0' || p[7] > '9'
        || p[8] != ' '
        || p[9] < '1' || p[9] > '5'
        || p[10] < '0' || p[10] > '9'
        || p[11] < '0' || p[11] > '9'
        || (last - p > 12 && p[12] != ' '))
    {
        ngx_log_error(NGX_LOG_ERR, &job->log, 0,
                      "mpns server sent invalid status line");
        return NGX_ERROR;
    }

    status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, &job->log, 0,
                   "mpns status %ui", status);

    job->http_minor = p[7] - '0';
    job->response.status = status;
    job->state = NGX_HTTP_MPNS_ST_HEADER;
    job->buffer->pos = lf + 1;

    return NGX_OK;
}


/*
 * One header line in one pass: the name (a token), ":", the value (no
 * control characters but HT; CR only before LF).  NGX_AGAIN until the
 * line is complete, NGX_DONE for the empty line that ends the headers.
 */

static ngx_int_t
ngx_http_mpns_process_header(ngx_http_mpns_job_t *job)
{
    u_char                  *p, *last;
    ngx_str_t               name, value, *dst;
    ngx_buf_t              *b;
    ngx_uint_t              i;
    ngx_http_mpns_header_t *h;

    b = job->buffer;
    p = b->pos;
    last = b->last;

    if (p < last && (*p == CR || *p == LF)) {

        if (*p == CR) {
            if (p + 1 == last) {
                return NGX_AGAIN;
            }

            if (*++p != LF) {
                goto invalid;
            }
        }

        b->pos = p + 1;

        return NGX_DONE;
    }

    /* a name of visible bytes, ":", a value without control bytes */

    name.data = p;

    while (p < last && ngx_http_mpns_name_byte[*p]) {
        p++;
    }

    if (p == last) {
        return NGX_AGAIN;
    }

    if (*p != ':') {
        goto invalid;
    }

    name.len = p - name.data;

    if (name.len == 0) {
        goto invalid;
    }

    for (p++; p < last && (*p == ' ' || *p == '\t'); p++) {
        /* void */
    }

    value.data = p;

    for ( ;; ) {

        while (p < last && ngx_http_mpns_value_byte[*p]) {
            p++;
        }

        if (p == last) {
            return NGX_AGAIN;
        }

        if (*p == LF) {
            break;
        }

        /* CR only before LF */

        if (*p != CR) {
            goto invalid;
        }

        if (p + 1 == last) {
            return NGX_AGAIN;
        }

        if (p[1] != LF) {
            goto invalid;
        }

        p++;
        break;
    }

    b->pos = p + 1;

    if (p > value.data && *(p - 1) == CR) {
        p--;
    }

    while (p > value.data && (*(p - 1) == ' ' || *(p - 1) == '\t')) {
        p--;
    }

    value.len = p - value.data;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, &job->log, 0,
                   "mpns header: \"%V: %V\"", &name, &value);

    switch (name.len) {

    case sizeof("content-length") - 1:

        if (!ngx_http_mpns_header_is(&name, "content-length")) {
            break;
        }

        if (job->content_length != -1) {
            goto invalid;
        }

        job->content_length = ngx_atoof(value.data, value.len);

        if (job->content_length == NGX_ERROR) {
            goto invalid;
        }

        return NGX_OK;

    case sizeof("transfer-encoding") - 1:

        if (ngx_http_mpns_header_is(&name, "transfer-encoding")) {
            job->chunked = 1;
            return NGX_OK;
        }

        break;

    case sizeof("connection") - 1:

        if (ngx_http_mpns_header_is(&name, "connection")) {
            if (ngx_strlcasestrn(value.data, value.data + value.len,
                                 (u_char *) "close", 5 - 1)
                != NULL)
            {
                job->close = 1;
            }

            return NGX_OK;
        }

        break;
    }

    /* the headers the service keeps */

    h = job->service->headers;

    for (i = 0; i < job->service->nheaders; i++) {

        if (name.len != h[i].name.len
            || !ngx_http_mpns_header_is(&name, (char *) h[i].name.data))
        {
            continue;
        }

        /* the buffer is reused for the body, so values are copied */

        dst = &job->response.headers[i];

        dst->data = ngx_pstrdup(job->pool, &value);
        if (dst->data == NULL) {
            return NGX_ERROR;
        }

        dst->len = value.len;

        break;
    }

    return NGX_OK;

invalid:

    ngx_log_error(NGX_LOG_ERR, &job->log, 0,
                  "mpns server sent invalid header");

    return NGX_ERROR;
}


/*
 * A header name, already checked to be a token, against a lower-case one
 * of the same length.  A token's byte ORed with 0x20 is a letter or "-"
 * only if it was; eight bytes are compared at a time, like the methods in
 * ngx_http_parse_request_line().
 */

static ngx_uint_t
ngx_http_mpns_header_is(ngx_str_t *name, char *lowcase)
{
    size_t    i;
    uint64_t  word, low;

    for (i = 0; i + 8 <= name->len; i += 8) {
        ngx_memcpy(&word, name->data + i, 8);
        ngx_memcpy(&low, lowcase + i, 8);

        if ((word | 0x2020202020202020ULL) != low) {
            return 0;
        }
    }

    for ( /* void */ ; i < name->len; i++) {
        if ((name->data[i] | 0x20) != (u_char) lowcase[i]) {
            return 0;
        }
    }

    return 1;
}


static ngx_int_t
ngx_http_mpns_header_done(ngx_http_mpns_job_t *job)
{
    if (job->response.status < 200) {

        /* an interim response: the final one follows */

        ngx_memzero(&job->response, sizeof(ngx_http_mpns_response_t));
        job->content_length = -1;
        job->chunked = 0;
        job->close = 0;
        job->state = NGX_HTTP_MPNS_ST_STATUS;

        return NGX_DONE;
    }

    if (job->http_minor == 0 || job->chunked || job->content_length == -1
        || job->content_length > NGX_HTTP_MPNS_MAX_DISCARD)
    {
        /* the end of the body is not known or not worth waiting for */
        job->close = 1;
        return NGX_OK;
    }

    if (job->content_length) {
        job->state = NGX_HTTP_MPNS_ST_BODY;
        return NGX_OK;
    }

    if (job->buffer->pos != job->buffer->last) {
        ngx_log_error(NGX_LOG_WARN, &job->log, 0,
                      "mpns server sent data after the response");
        job->close = 1;
    }

    return NGX_OK;
}


/*
 * worker_shutdown_timeout: nginx sets c->close on every connection and
 * calls its read handler; the send ends without an answer
 */

static void
ngx_http_mpns_abort(ngx_http_mpns_job_t *job)
{
    ngx_log_error(NGX_LOG_ERR, &job->log, 0,
                  "mpns send aborted: worker is shutting down");

    ngx_http_mpns_finish(job, NGX_HTTP_MPNS_TRANSPORT_ERROR, 0);
}


static void
ngx_http_mpns_finish(ngx_http_mpns_job_t *job, ngx_uint_t outcome,
    ngx_uint_t keepalive)
{
    ngx_connection_t  *c;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, &job->log, 0,
                   "mpns job finish %V: %V", &job->name,
                   &ngx_http_mpns_outcome(outcome)->name);

    if (job->deadline.timer_set) {
        ngx_del_timer(&job->deadline);
    }

    if (job->resolving) {
        ngx_resolve_name_done(job->resolving);
        job->resolving = NULL;
    }

    c = job->peer.connection;

    if (c) {
        if (c->read->timer_set) {
            ngx_del_timer(c->read);
        }

        if (c->write->timer_set) {
            ngx_del_timer(c->write);
        }

        if (keepalive) {
            ngx_http_mpns_keepalive_put(job);

        } else {
            ngx_http_mpns_close(c);
        }

        job->peer.connection = NULL;
    }

    if (outcome == NGX_HTTP_MPNS_TRANSPORT_ERROR
        || outcome == NGX_HTTP_MPNS_TIMEOUT)
    {
        /* a partial answer is no answer */
        ngx_memzero(&job->response, sizeof(ngx_http_mpns_response_t));
    }

    if (ngx_http_mpns_retry(job, outcome) == NGX_OK) {
        return;
    }

    job->outcome = outcome;
    job->elapsed = ngx_current_msec - job->start;
    job->log.action = NULL;

    job->handler(job);

    ngx_destroy_pool(job->pool);
}


/*
 * What the service takes as worth another try, after a delay that
 * doubles from mpns_retry_delay, a random half of it jitter.
 */

static ngx_int_t
ngx_http_mpns_retry(ngx_http_mpns_job_t *job, ngx_uint_t outcome)
{
    ngx_msec_t  delay, elapsed;

    if (!job->service->retryable(outcome)) {
        return NGX_DECLINED;
    }

    if (job->attempts > job->retries || ngx_exiting || ngx_terminate) {
        return NGX_DECLINED;
    }

    delay = job->retry_delay << ngx_min(job->attempts - 1, 16);
    delay = delay / 2 + (delay / 2 ? (ngx_msec_t) ngx_random() % (delay / 2)
                                   : 0);

    elapsed = ngx_current_msec - job->start;

    if (elapsed + delay >= job->retry_timeout) {
        return NGX_DECLINED;
    }

    ngx_log_error(NGX_LOG_INFO, &job->log, 0,
                  "mpns send %V, trying again in %M ms (attempt %ui of %ui)",
                  &ngx_http_mpns_outcome(outcome)->name, delay,
                  job->attempts + 1, job->retries + 1);

    job->retry.handler = ngx_http_mpns_retry_handler;
    job->retry.data = job;
    job->retry.log = &job->log;

    ngx_add_timer(&job->retry, delay);

    return NGX_OK;
}


static void
ngx_http_mpns_retry_handler(ngx_event_t *ev)
{
    ngx_http_mpns_job_t *job = ev->data;

    job->attempts++;

    ngx_memzero(&job->response, sizeof(ngx_http_mpns_response_t));

    job->naddr = 0;
    job->sent = NULL;
    job->state = NGX_HTTP_MPNS_ST_STATUS;
    job->content_length = -1;
    job->http_minor = 0;
    job->tls_alert = 0;
    job->reused = 0;
    job->fresh = 0;
    job->chunked = 0;
    job->close = 0;
    job->tunnel = 0;
    job->who = "server";
    job->buffer->pos = job->buffer->start;
    job->buffer->last = job->buffer->start;

    job->log.action = NULL;

    if (job->addrs == NULL) {
        ngx_http_mpns_resolve(job);
        return;
    }

    ngx_http_mpns_connect(job);
}


static void
ngx_http_mpns_close(ngx_connection_t *c)
{
    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "mpns close connection: %d", c->fd);

    if (c->ssl) {
        c->ssl->no_wait_shutdown = 1;
        (void) ngx_ssl_shutdown(c);
    }

    if (c->pool) {
        ngx_destroy_pool(c->pool);
        c->pool = NULL;
    }

    ngx_close_connection(c);
}


static ngx_int_t
ngx_http_mpns_keepalive_get(ngx_http_mpns_job_t *job)
{
    ngx_queue_t            *q;
    ngx_connection_t       *c;
    ngx_http_mpns_cache_t  *item;
    ngx_http_mpns_engine_t *engine;

    engine = job->engine;

    for (q = ngx_queue_head(&engine->cache);
         q != ngx_queue_sentinel(&engine->cache);
         q = ngx_queue_next(q))
    {
        item = ngx_queue_data(q, ngx_http_mpns_cache_t, queue);

        if (ngx_memn2cmp((u_char *) &item->sockaddr,
                         (u_char *) job->peer.sockaddr,
                         item->socklen, job->peer.socklen)
            != 0)
        {
            continue;
        }

        if (item->ssl != job->ssl
            || (job->ssl
                && ngx_memn2cmp(item->name, job->name.data, item->name_len,
                                job->name.len)
                   != 0))
        {
            continue;
        }

        ngx_queue_remove(q);
        ngx_queue_insert_head(&engine->free, q);

        c = item->connection;

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, &job->log, 0,
                       "mpns get keepalive connection %p", c);

        c->idle = 0;
        c->sent = 0;
        c->data = job;
        c->log = &job->log;
        c->read->log = &job->log;
        c->write->log = &job->log;

        if (c->pool) {
            c->pool->log = &job->log;
        }

        if (c->read->timer_set) {
            ngx_del_timer(c->read);
        }

        c->read->handler = ngx_http_mpns_read_handler;
        c->write->handler = ngx_http_mpns_write_handler;

        job->peer.connection = c;
        job->reused = 1;

        return NGX_OK;
    }

    return NGX_DECLINED;
}


static void
ngx_http_mpns_keepalive_put(ngx_http_mpns_job_t *job)
{
    ngx_queue_t            *q;
    ngx_connection_t       *c;
    ngx_http_mpns_cache_t  *item;
    ngx_http_mpns_engine_t *engine;

    engine = job->engine;
    c = job->peer.connection;

    if (ngx_terminate || ngx_exiting || c->error || c->read->eof
        || (ngx_queue_empty(&engine->free) && ngx_queue_empty(&engine->cache))
        || job->name.len > NGX_HTTP_MPNS_NAME_LEN)
    {
        ngx_http_mpns_close(c);
        return;
    }

    if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
        ngx_http_mpns_close(c);
        return;
    }

    if (ngx_queue_empty(&engine->free)) {

        /* the least recently used idle connection makes room */

        q = ngx_queue_last(&engine->cache);
        ngx_queue_remove(q);

        item = ngx_queue_data(q, ngx_http_mpns_cache_t, queue);
        ngx_http_mpns_close(item->connection);
        ngx_http_mpns_status_idle(job->status, -1);

    } else {
        q = ngx_queue_head(&engine->free);
        ngx_queue_remove(q);

        item = ngx_queue_data(q, ngx_http_mpns_cache_t, queue);
    }

    ngx_queue_insert_head(&engine->cache, q);
    ngx_http_mpns_status_idle(job->status, 1);

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, &job->log, 0,
                   "mpns put keepalive connection %p", c);

    item->connection = c;
    item->socklen = job->peer.socklen;
    ngx_memcpy(&item->sockaddr, job->peer.sockaddr, job->peer.socklen);

    item->ssl = job->ssl;
    item->name_len = ngx_min(job->name.len, NGX_HTTP_MPNS_NAME_LEN);
    ngx_memcpy(item->name, job->name.data, item->name_len);

    c->read->handler = ngx_http_mpns_keepalive_close_handler;
    c->write->handler = ngx_http_mpns_keepalive_dummy_handler;

    c->data = item;
    c->idle = 1;
    c->log = ngx_cycle->log;
    c->read->log = ngx_cycle->log;
    c->write->log = ngx_cycle->log;

    if (c->pool) {
        c->pool->log = ngx_cycle->log;
    }

    ngx_add_timer(c->read, engine->keepalive_timeout);

    if (c->read->ready) {
        ngx_http_mpns_keepalive_close_handler(c->read);
    }
}


static void
ngx_http_mpns_keepalive_close_handler(ngx_event_t *ev)
{
    int                     n;
    char                    buf[1];
    ngx_connection_t       *c;
    ngx_http_mpns_cache_t  *item;

    c = ev->data;

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, ev->log, 0,
                   "mpns keepalive close handler");

    if (c->close || ev->timedout) {
        goto close;
    }

    n = recv(c->fd, buf, 1, MSG_PEEK);

    if (n == -1 && ngx_socket_errno == NGX_EAGAIN) {
        ev->ready = 0;

        if (ngx_handle_read_event(ev, 0) != NGX_OK) {
            goto close;
        }

        return;
    }

close:

    item = c->data;

    ngx_http_mpns_close(c);
    ngx_http_mpns_status_idle(NULL, -1);

    ngx_queue_remove(&item->queue);
    ngx_queue_insert_head(&item->engine->free, &item->queue);
}


static void
ngx_http_mpns_keepalive_dummy_handler(ngx_event_t *ev)
{
    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, ev->log, 0,
                   "mpns keepalive dummy handler");
}


static u_char *
ngx_http_mpns_log_error(ngx_log_t *log, u_char *buf, size_t len)
{
    u_char               *p;
    ngx_log_t             parent;
    ngx_http_mpns_job_t  *job;

    job = log->data;

    if (job->parent_log->handler) {

        /* the caller's handler prints our action with its own context */

        parent = *job->parent_log;
        parent.action = log->action;

        p = parent.handler(&parent, buf, len);

    } else if (log->action) {
        p = ngx_snprintf(buf, len, " while %s", log->action);

    } else {
        p = buf;
    }

    len -= p - buf;

    return ngx_snprintf(p, len, ", mpns: \"%V\"", &job->name);
}
