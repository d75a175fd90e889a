
/*
 * Copyright (C) ngx_mpns_module authors
 */


#ifndef _NGX_HTTP_MPNS_PEER_H_INCLUDED_
#define _NGX_HTTP_MPNS_PEER_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_event_connect.h>
#include "ngx_http_mpns.h"
#include "ngx_http_mpns_message.h"
#include "ngx_http_mpns_ssl.h"
#include "ngx_http_mpns_status.h"


/* mpns_proxy: a forward proxy all of a location's sends go through */
struct ngx_http_mpns_proxy_s {
    ngx_addr_t                    *addrs;
    ngx_uint_t                     naddrs;
    ngx_str_t                      name;      /* "host:port", for logs */
};

typedef void (*ngx_http_mpns_job_handler_pt)(ngx_http_mpns_job_t *job);


/*
 * mpns_allowed_addresses: the addresses a job may connect to, those of
 * "cidrs" and, with "public", any outside the special-purpose ranges
 */
typedef struct {
    ngx_array_t                   *cidrs;     /* ngx_cidr_t, or NULL */
    ngx_array_t                   *special;   /* ngx_cidr_t */
    unsigned                       public:1;
} ngx_http_mpns_addresses_t;


/* per worker: created in init_process, lives as long as the cycle */
#define NGX_HTTP_MPNS_RANDOM_SIZE      4096
#define NGX_HTTP_MPNS_SESSIONS         64

/* "host:port" of a channel, as a cache key */
#define NGX_HTTP_MPNS_NAME_LEN         (255 + sizeof(":65535") - 1)


struct ngx_http_mpns_engine_s {
    ngx_queue_t                    cache;    /* idle connections, MRU first */
    ngx_queue_t                    free;
    ngx_msec_t                     keepalive_timeout;

    /* TLS sessions to resume, by profile and server, MRU first */
    ngx_queue_t                    sessions;
    ngx_queue_t                    free_sessions;

    /* fan-out: jobs of all batches in flight, batches waiting for a slot */
    ngx_uint_t                     busy;
    ngx_queue_t                    waiting;

    u_char                        *random;   /* next unused random bytes */
    u_char                         randoms[NGX_HTTP_MPNS_RANDOM_SIZE];
};


/*
 * One notification to one channel.  The caller fills the "input" part and
 * calls ngx_http_mpns_job_start(); the engine calls "handler" exactly once
 * with the "result" part filled, and destroys the job (and its pool) when
 * the handler returns.  ngx_http_mpns_job_cancel() destroys a job before
 * that without calling the handler.
 */
struct ngx_http_mpns_job_s {
    ngx_http_mpns_engine_t        *engine;
    ngx_pool_t                    *pool;
    ngx_log_t                      log;
    ngx_log_t                     *parent_log;
    ngx_log_t                      quiet_log; /* see the TLS alerts */

    /* input */
    ngx_str_t                      host;      /* name to resolve, or empty */
    ngx_http_mpns_addresses_t     *addresses; /* what it may resolve to */
    in_port_t                      port;
    ngx_addr_t                    *addrs;     /* set for IP literals */
    ngx_uint_t                     naddrs;
    ngx_str_t                      name;      /* "host:port", for logs */
    ngx_str_t                      request;   /* complete request bytes */

    ngx_http_mpns_ssl_t           *ssl;       /* https: the profile */
    ngx_str_t                      ssl_name;  /* host, null-terminated */
    ngx_http_mpns_proxy_t         *proxy;     /* https: CONNECT through it */

    ngx_resolver_t                *resolver;
    ngx_msec_t                     resolver_timeout;
    ngx_msec_t                     connect_timeout;
    ngx_msec_t                     send_timeout;
    ngx_msec_t                     read_timeout;
    ngx_msec_t                     response_timeout;  /* 0: none */

    /* 503, transport errors and timeouts are tried again */
    ngx_uint_t                     retries;
    ngx_msec_t                     retry_timeout;  /* from the start */
    ngx_msec_t                     retry_delay;    /* doubled each time */

    ngx_http_mpns_service_t       *service;
    ngx_http_mpns_status_slot_t   *status;    /* the sending location's */

    ngx_http_mpns_job_handler_pt   handler;
    void                          *data;
    ngx_queue_t                    queue;     /* the owner's, if it wants */

    /* result */
    ngx_http_mpns_response_t       response;
    ngx_uint_t                     outcome;
    ngx_uint_t                     attempts;
    ngx_msec_t                     start;
    ngx_msec_t                     elapsed;

    /* set by ngx_pcalloc() in the engine */
    ngx_resolver_ctx_t            *resolving;
    ngx_peer_connection_t          peer;
    ngx_uint_t                     naddr;
    ngx_buf_t                     *buffer;
    u_char                        *sent;
    ngx_uint_t                     state;
    off_t                          content_length;
    ngx_uint_t                     http_minor;
    ngx_uint_t                     tls_alert; /* the last one received */
    ngx_event_t                    retry;
    ngx_event_t                    deadline;  /* mpns_response_timeout */
    ngx_str_t                      out;       /* the step's request */
    ngx_int_t                    (*process)(ngx_http_mpns_job_t *job);
    const char                    *who;       /* "server" or "proxy" */

    unsigned                       connected:1;  /* to the server */
    unsigned                       reused:1;
    unsigned                       fresh:1;
    unsigned                       chunked:1;
    unsigned                       close:1;
    unsigned                       ip_literal:1;
    unsigned                       tunnel:1;  /* CONNECT sent */
};


ngx_http_mpns_engine_t *ngx_http_mpns_engine_create(ngx_cycle_t *cycle,
    ngx_uint_t keepalive, ngx_msec_t keepalive_timeout);

u_char *ngx_http_mpns_engine_random(ngx_http_mpns_engine_t *engine);

ngx_http_mpns_job_t *ngx_http_mpns_job_create(ngx_http_mpns_engine_t *engine,
    ngx_log_t *log);
void ngx_http_mpns_job_start(ngx_http_mpns_job_t *job);
void ngx_http_mpns_job_resume(ngx_http_mpns_job_t *job);
void ngx_http_mpns_job_cancel(ngx_http_mpns_job_t *job);

ngx_array_t *ngx_http_mpns_special_addresses(ngx_conf_t *cf);
ngx_int_t ngx_http_mpns_address_allowed(ngx_http_mpns_addresses_t *addresses,
    struct sockaddr *sockaddr);

void ngx_http_mpns_ssl_info_callback(const ngx_ssl_conn_t *ssl_conn,
    int where, int ret);


#endif /* _NGX_HTTP_MPNS_PEER_H_INCLUDED_ */
